// EC2 emulator instances that boot, as the documented command runs them (`main.js --machines
// bare-host`), driven with the AWS SDK: the user-data runs with the instance's own IMDS endpoint
// (an IMDSv2 call from inside answers the instance's id), `shutdown -h now` from inside stops or
// terminates the instance per its InstanceInitiatedShutdownBehavior, and terminating the instance
// from outside takes every process of its machine down.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  type ShutdownBehavior,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, expect, it } from "vitest";
import { waitFor } from "../src/runctl-cli.ts";

const MAIN = fileURLToPath(new URL("../dist/ec2-emulator/main.js", import.meta.url));
let emulator: ChildProcess;
let client: EC2Client;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "runctl-ec2-machines-"));
  emulator = spawn(
    process.execPath,
    [MAIN, "--port", "0", "--transition-ms", "0", "--machines", "bare-host"],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  const endpoint = await new Promise<string>((resolve, reject) => {
    emulator.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m?.[1]) resolve(m[1]);
    });
    emulator.once("exit", (code) => reject(new Error(`ec2-emulator exited ${code}: ${stderr}`)));
  });
  client = new EC2Client({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDRUNCTLEMULATOR", secretAccessKey: "runctl-emulator-secret" },
  });
});

afterAll(async () => {
  client?.destroy();
  if (emulator && emulator.exitCode === null) {
    const exited = new Promise((resolve) => emulator.once("exit", resolve));
    emulator.kill("SIGTERM");
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

async function launch(userData: string, behavior: ShutdownBehavior): Promise<string> {
  const out = await client.send(
    new RunInstancesCommand({
      ImageId: "ami-0a1b2c3d4e5f60701",
      InstanceType: "t3.micro",
      MinCount: 1,
      MaxCount: 1,
      UserData: Buffer.from(userData).toString("base64"),
      InstanceInitiatedShutdownBehavior: behavior,
      MetadataOptions: { HttpTokens: "required" },
    }),
  );
  return out.Instances?.[0]?.InstanceId as string;
}

async function state(id: string): Promise<string | undefined> {
  const out = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
}

/** Running, not gone and not a zombie waiting for its reaper. */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return stat !== "" && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

it("user-data runs with the instance's IMDS; its shutdown stops or terminates the instance per its behaviour", async () => {
  const script = (name: string) => `#!/bin/sh
E=\${AWS_EC2_METADATA_SERVICE_ENDPOINT%/}
T=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$E/latest/api/token")
curl -sf -H "X-aws-ec2-metadata-token: $T" "$E/latest/meta-data/instance-id" >'${dir}/${name}.id'
shutdown -h now
`;
  const stopped = await launch(script("stop"), "stop");
  const terminated = await launch(script("terminate"), "terminate");
  await waitFor(async () => (await state(stopped)) === "stopped", `${stopped} to stop itself`, 60_000);
  await waitFor(
    async () => (await state(terminated)) === "terminated",
    `${terminated} to terminate itself`,
    60_000,
  );
  expect(await readFile(join(dir, "stop.id"), "utf8")).toBe(stopped);
  expect(await readFile(join(dir, "terminate.id"), "utf8")).toBe(terminated);
});

it("terminating an instance from outside kills every process of its machine", async () => {
  const pidFile = join(dir, "sleeper.pid");
  const id = await launch(`#!/bin/sh\nsleep 600 &\necho $! >'${pidFile}'\nwait\n`, "stop");
  await waitFor(
    async () => (await readFile(pidFile, "utf8").catch(() => "")).trim() !== "",
    "the machine to boot",
    60_000,
  );
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  expect(await alive(pid)).toBe(true);
  await client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
  await waitFor(async () => (await state(id)) === "terminated", `${id} to terminate`, 60_000);
  expect(await alive(pid)).toBe(false);
});
