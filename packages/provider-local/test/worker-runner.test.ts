// A QueueWorker running Runner tasks, in-process beside a real job server:
// the bundle is fetched from a file:// store and unpacked once, calls run in
// warm Python processes, and a worker handing out GPUs gives each task's
// process its own CUDA_VISIBLE_DEVICES (none to a service that asked for none),
// as it does for jobs. The Python client's side (pickles) is played by
// Python itself; the whole path with runctl.Runner is test-e2e/test/runner.test.ts.
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pythonClientDir } from "@runctl/agent";
import { buildBundle, FileArtifactStore } from "@runctl/core";
import { type QueueServer, startQueueServer } from "@runctl/queue-server";
import { QueueClient, TasksCreateResponse } from "@runctl/tracker";
import { afterAll, beforeAll, expect, it } from "vitest";
import { QueueWorker } from "../src/mod.ts";

const PYTHON = "/usr/bin/python3";
let root: string;
let server: QueueServer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-worker-runner-"));
  server = await startQueueServer({ dataDir: join(root, "server"), log: () => undefined });
});
afterAll(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

function python(code: string, cwd: string): unknown {
  const out = spawnSync(PYTHON, ["-c", code], {
    cwd,
    env: { ...process.env, PYTHONPATH: [cwd, pythonClientDir()].join(":") },
    encoding: "utf8",
  });
  if (out.status !== 0) throw new Error(out.stderr);
  return JSON.parse(out.stdout);
}

async function api(path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(JSON.stringify(json));
  return json;
}

it("runs tasks from the runner's bundle, each process with the GPUs the worker gave its task", async () => {
  const project = join(root, "project");
  await mkdir(project);
  await writeFile(
    join(project, "gmod.py"),
    "import os\n\ndef gpus(_):\n    return os.environ.get('CUDA_VISIBLE_DEVICES'), os.getcwd()\n\ndef pid(_):\n    return os.getpid()\n",
  );
  await writeFile(join(project, ".runctlignore"), "ignored.txt\n");
  await writeFile(join(project, "ignored.txt"), "x");
  const storeUrl = `file://${join(root, "store")}`;
  const store = FileArtifactStore.fromUrl(new URL(storeUrl));
  const bundle = await buildBundle(project, { cacheDir: join(root, "cache") });
  await store.putFile(`bundles/${bundle.key}.tar.gz`, bundle.archivePath);
  const prefix = "runners/g/";
  const made = python(
    `import base64, json
from runctl.runner._pickling import dumps
from runctl.runner._store import FileStore
import gmod
FileStore(${JSON.stringify(storeUrl)}).put_bytes("${prefix}services/g.pkl", dumps(gmod.gpus)[0])
print(json.dumps(base64.b64encode(dumps(((0,), {}))[0]).decode()))`,
    project,
  ) as string;
  await api("/runners", { name: "g", bundle_key: bundle.key, store_url: storeUrl, owner: "owner-0001" });
  for (const [id, gpus] of [
    ["one", 1],
    ["none", 0],
  ] as const) {
    await api("/runners/g/services", { id, target: "services/g.pkl", label: "gmod.gpus", gpus });
  }
  const task = (service: string, i: number) => ({
    service,
    method: "__call__",
    payload: { args: made, result: `objects/${service}-${i}.pkl`, error: `objects/${service}-${i}.err.pkl` },
  });
  const created = TasksCreateResponse.parse(
    await api("/runners/g/tasks", {
      tasks: [task("one", 0), task("one", 1), task("none", 0), task("one", 2)],
    }),
  );
  const client = new QueueClient({ url: server.url });
  const worker = new QueueWorker({
    client,
    dataDir: join(root, "worker"),
    gpus: [0, 1],
    maxJobs: 3,
    pollMs: 50,
    exitWhenIdle: true,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    runner: { python: PYTHON },
  });
  await worker.start();
  await worker.done;
  for (const { job_id } of created.tasks) expect((await client.getJob(job_id)).status).toBe("completed");
  const results = python(
    `import json
from runctl.runner._pickling import loads
from runctl.runner._store import FileStore
s = FileStore(${JSON.stringify(storeUrl)})
print(json.dumps({k: loads(s.get_bytes("${prefix}objects/" + k + ".pkl"), None) for k in ["one-0", "one-1", "one-2", "none-0"]}))`,
    project,
  ) as Record<string, [string | null, string]>;
  const unpacked = join(root, "worker", "runner", "bundles", bundle.key);
  for (const key of ["one-0", "one-1", "one-2"]) {
    expect(["0", "1"]).toContain(results[key]?.[0]);
    expect(results[key]?.[1]).toBe(unpacked);
  }
  expect(results["none-0"]?.[0]).toBe("");
  // The ignored file stayed behind (__pycache__ is Python's, written on import).
  expect((await readdir(unpacked)).filter((n) => n !== "__pycache__").sort()).toEqual([
    ".runctlignore",
    "gmod.py",
  ]);
  // Unpacked once, not per task or per process.
  expect(
    (await readdir(join(root, "worker", "runner", "bundles"))).filter((n) => !n.startsWith(".")),
  ).toEqual([bundle.key]);
});

it("stops a closed runner's executors when it next looks the runner up", async () => {
  const project = join(root, "project");
  const storeUrl = `file://${join(root, "store")}`;
  const bundle = await buildBundle(project, { cacheDir: join(root, "cache") });
  await FileArtifactStore.fromUrl(new URL(storeUrl)).putFile(
    `bundles/${bundle.key}.tar.gz`,
    bundle.archivePath,
  );
  const made = python(
    `import base64, json
from runctl.runner._pickling import dumps
from runctl.runner._store import FileStore
import gmod
FileStore(${JSON.stringify(storeUrl)}).put_bytes("runners/r/services/p.pkl", dumps(gmod.pid)[0])
print(json.dumps(base64.b64encode(dumps(((0,), {}))[0]).decode()))`,
    project,
  ) as string;
  await api("/runners", { name: "r", bundle_key: bundle.key, store_url: storeUrl, owner: "owner-0002" });
  await api("/runners/r/services", { id: "p", target: "services/p.pkl" });
  const created = TasksCreateResponse.parse(
    await api("/runners/r/tasks", {
      tasks: [
        {
          service: "p",
          method: "__call__",
          payload: { args: made, result: "objects/p.pkl", error: "objects/p.err.pkl" },
        },
      ],
    }),
  );
  const client = new QueueClient({ url: server.url });
  const worker = new QueueWorker({
    client,
    dataDir: join(root, "worker-reap"),
    pollMs: 50,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    runner: { python: PYTHON, reapIntervalMs: 100 },
  });
  await worker.start();
  try {
    const jobId = created.tasks[0]?.job_id as number;
    await client.waitForJob(jobId, { timeoutMs: 30_000, pollMs: 50 });
    const pid = python(
      `import json
from runctl.runner._pickling import loads
from runctl.runner._store import FileStore
print(json.dumps(loads(FileStore(${JSON.stringify(storeUrl)}).get_bytes("runners/r/objects/p.pkl"), None)))`,
      project,
    ) as number;
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive()).toBe(true);
    await api("/runners/r/close", { owner: "owner-0002" });
    for (let i = 0; i < 300 && alive(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive()).toBe(false);
  } finally {
    await worker.drain();
  }
});
