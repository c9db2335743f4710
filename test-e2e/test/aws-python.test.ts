// Trainctl.aws and Trainctl.resources (the Python client, the Rust runctl wrapper's method names)
// driving the real CLI against the EC2 emulator: create, wait, logs, train/monitor/processes on a
// machine without an agent (refused with the CLI's codes), list, stop-all plan, summary, terminate.
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Ec2Emulator, startEc2Emulator } from "../src/ec2-emulator.ts";
import { RUNCTL_BIN, type Workspace, workspace } from "../src/runctl-cli.ts";

const require = createRequire(import.meta.url);
const CLIENT = dirname(require.resolve("@runctl/client-python/package.json"));
const KEY = { accessKeyId: "AKIDPYTHON", secretAccessKey: "secret-python" };
let ec2: Ec2Emulator;
let ws: Workspace;

const SCRIPT = `
import json, sys
from runctl import Trainctl, TrainctlError
tc = Trainctl(binary=[sys.argv[1], sys.argv[2]])
created = tc.aws.create_instance(instance_type="g4dn.xlarge", spot=True, spot_max_price=0.5, name="from-python")
iid = created["placement"]["resourceId"]
tc.aws.wait(iid)
console = tc.aws.logs(iid, tail=20)
refusals = {}
for name, call in (
    ("train", lambda: tc.aws.train(iid, "drive.py", ["--x"], nproc_per_node=2, store="s3://bucket/runctl")),
    ("monitor", lambda: tc.aws.monitor(iid, store="s3://bucket/runctl")),
    ("processes", lambda: tc.aws.processes(iid, store="s3://bucket/runctl")),
):
    try:
        call()
        refusals[name] = None
    except TrainctlError as e:
        refusals[name] = e.code
listed = [r["id"] for r in tc.aws.list_instances()["resources"]]
plan = [r["id"] for r in tc.resources.stop_all(platform="aws", dry_run=True)["stop"]]
summary = tc.resources.summary(platform="aws")["providers"]
tc.aws.terminate(iid)
print(json.dumps({"id": iid, "market": created["placement"]["market"], "listed": listed, "plan": plan, "summary": summary, "console": console["source"], "refusals": refusals}))
`;

beforeAll(async () => {
  ec2 = await startEc2Emulator({ credentials: [KEY], transitionMs: 0 });
  ws = await workspace({
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_REGION: "us-east-1",
    PYTHONPATH: CLIENT,
  });
  await writeFile(join(ws.project, "drive.py"), SCRIPT);
});

afterAll(async () => {
  await ec2?.stop();
});

it("creates, lists, plans stop-all, summarises and terminates through Trainctl", async () => {
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn("/usr/bin/python3", ["drive.py", process.execPath, RUNCTL_BIN], {
        cwd: ws.project,
        env: ws.env,
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    },
  );
  expect(result.code, result.stderr).toBe(0);
  const out = JSON.parse(result.stdout) as {
    id: string;
    market: string;
    listed: string[];
    plan: string[];
    summary: unknown;
    console: string;
    refusals: Record<string, string | null>;
  };
  expect(out.market).toBe("spot");
  expect(out.listed).toEqual([out.id]);
  expect(out.plan).toEqual([out.id]);
  expect(out.summary).toMatchObject([{ provider: "aws", total: 1 }]);
  // Without [nats] a run cannot reach a live machine, and a machine made without a store has no
  // run to read: refused with the CLI's own codes, raised as TrainctlError; its console is there.
  expect(out.console).toBe("console");
  expect(out.refusals).toEqual({ train: "nats_missing", monitor: "no_run", processes: "no_run" });
  const instance = ec2.cloud.instances.get(out.id);
  expect(instance?.spot?.maxPrice).toBe("0.5");
  expect(instance?.tags.get("Name")).toBe("from-python");
  expect(instance?.state).toMatch(/shutting-down|terminated/);
});
