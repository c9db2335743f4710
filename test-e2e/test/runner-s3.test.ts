/**
 * The Runner with an `s3://` store: the S3 emulator (real wire protocol, SigV4 verified on
 * every request), `runctl server`, one `runctl worker`, and the Python client (standard
 * library S3 client for objects; `runctl bundle --store s3://…` for the bundle, fetched by
 * the worker through the store registry). Nothing is left in the bucket after close().
 */
import { spawn } from "node:child_process";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type JobServerProcess, startJobServer, startWorker, type WorkerProcess } from "../src/job-server.ts";
import { RUNCTL_BIN, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";
import { type S3Emulator, startS3Emulator } from "../src/s3-emulator.ts";

const require = createRequire(import.meta.url);
const CLIENT = dirname(require.resolve("@runctl/client-python/package.json"));
const FIXTURES = fileURLToPath(new URL("../fixtures/runner/", import.meta.url));
const PYTHON = "/usr/bin/python3";
const KEY = { accessKeyId: "AKIDRUNNER", secretAccessKey: "runner-secret" };
const BUCKET = "runner-bucket";

let s3: S3Emulator;
let s3Dir: string;
let ws: Workspace;
let server: JobServerProcess;
let worker: WorkerProcess;
const checks = new Map<string, Record<string, unknown>>();
let stderr = "";

beforeAll(async () => {
  s3Dir = await mkdtemp(join(tmpdir(), "runctl-runner-s3-"));
  s3 = await startS3Emulator({ dataDir: s3Dir, credentials: [KEY], buckets: [BUCKET] });
  ws = await workspace({
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
    RUNCTL_S3_FORCE_PATH_STYLE: "true",
    RUNCTL_LOCAL_PYTHON: PYTHON,
    RUNCTL_RUNNER_STORE: `s3://${BUCKET}/team`,
    RUNCTL_BIN: `${process.execPath} ${RUNCTL_BIN}`,
    PYTHONPATH: CLIENT,
  });
  await copyFile(join(FIXTURES, "runner_mod.py"), join(ws.project, "runner_mod.py"));
  server = await startJobServer(ws, join(ws.home, "server"));
  ws.env.RUNCTL_SERVER_URL = server.url;
  worker = startWorker(ws, server.url, join(ws.home, "worker"), ["--max-jobs", "2", "--poll", "100ms"]);
  await waitFor(() => worker.log().includes("registered"), "the worker to register");
  const child = spawn(PYTHON, [join(FIXTURES, "runner_s3_scenario.py")], {
    cwd: ws.project,
    env: ws.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  await new Promise((resolve) => child.on("close", resolve));
  for (const line of stdout.split("\n").filter((l) => l.trim())) {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    checks.set(String(parsed.check), parsed);
  }
}, 120_000);

afterAll(async () => {
  worker?.child.kill("SIGKILL");
  await server?.stop("SIGTERM").catch(() => undefined);
  await s3?.stop();
  await rm(s3Dir, { recursive: true, force: true });
});

function check(name: string): Record<string, unknown> {
  const found = checks.get(name);
  if (!found) throw new Error(`no "${name}" check:\n${stderr}\n--- worker\n${worker.log().slice(-3000)}`);
  return found;
}

it("runs calls with objects, references and errors in an s3:// store", () => {
  expect(check("calls")).toMatchObject({
    values: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81],
    length: 100_000,
    total: 499_500,
    raised: ["over s3", true],
    bundle: true,
  });
  expect(Number(check("calls").objects)).toBeGreaterThan(10);
});

it("leaves nothing in the bucket after close()", () => {
  expect(check("closed").left).toEqual([]);
});
