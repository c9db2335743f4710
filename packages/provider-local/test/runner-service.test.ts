// The warm Python executors of Runner services (runner-service.ts) with real
// Python processes and a real file:// store: calls to a stateful instance keep
// their order under concurrency, a cancelled call stops only its process, a
// stateful instance whose process died fails later calls instead of silently
// starting over, and a target that cannot be loaded says so.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pythonClientDir } from "@runctl/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ExecutorSpec, ServicePool } from "../src/runner-service.ts";

const PYTHON = "/usr/bin/python3";
const PREFIX = "runners/t/";
let root: string;
let project: string;
let storeUrl: string;
const pools: ServicePool[] = [];

const MODULE = `
import time

def slow(seconds, marker=None):
    if marker:
        open(marker, "w").close()
    time.sleep(seconds)
    return seconds

class Counter:
    def __init__(self):
        self.n = 0
    def add(self, k):
        time.sleep(0.01 * (5 - k))  # later calls are quicker: only the order of arrival keeps them in line
        self.n += k
        return self.n
    def hold(self, marker):
        open(marker, "w").close()
        time.sleep(60)
`;

/** Runs Python with the project and the client importable; returns its stdout parsed as JSON. */
function python(code: string): unknown {
  const out = spawnSync(PYTHON, ["-c", code], {
    cwd: project,
    env: { ...process.env, PYTHONPATH: [project, pythonClientDir()].join(":") },
    encoding: "utf8",
  });
  if (out.status !== 0) throw new Error(out.stderr);
  return JSON.parse(out.stdout);
}

const PRELUDE = `
import base64, json
from runctl.runner._pickling import dumps, loads
from runctl.runner._store import FileStore
import tmod
`;

function args(...values: Array<number | string>): string {
  return python(
    `${PRELUDE}\nprint(json.dumps(base64.b64encode(dumps((tuple(${JSON.stringify(values)}), {}))[0]).decode()))`,
  ) as string;
}

function results(keys: string[]): unknown[] {
  return python(
    `${PRELUDE}\ns = FileStore(${JSON.stringify(storeUrl)})\nprint(json.dumps([loads(s.get_bytes(${JSON.stringify(PREFIX)} + k), None) for k in ${JSON.stringify(keys)}]))`,
  ) as unknown[];
}

function pool(target: string, stateful: boolean, maxProcesses = 1): ServicePool {
  const spec: ExecutorSpec = {
    python: PYTHON,
    cwd: project,
    env: { PATH: process.env.PATH, PYTHONPATH: [project, pythonClientDir()].join(":") },
    storeUrl,
    prefix: PREFIX,
    target,
    stateful,
    logFile: join(root, "logs", `${target.replace(/\W/g, "_")}.log`),
    graceMs: 2000,
  };
  const p = new ServicePool(spec, maxProcesses);
  pools.push(p);
  return p;
}

/** Resolves once the call has started running in its process (it creates `marker`). */
async function started(marker: string): Promise<void> {
  for (let i = 0; i < 3000 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 10));
  if (!existsSync(marker)) throw new Error(`${marker} never appeared`);
}

const payload = (id: number, argsB64: string) => ({
  args: argsB64,
  result: `objects/${id}.pkl`,
  error: `objects/${id}.err.pkl`,
});

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-runner-service-"));
  project = join(root, "project");
  await mkdir(project);
  await writeFile(join(project, "tmod.py"), MODULE);
  storeUrl = `file://${join(root, "store")}`;
  python(
    `${PRELUDE}\ns = FileStore(${JSON.stringify(storeUrl)})\n` +
      `s.put_bytes("${PREFIX}services/slow.pkl", dumps(tmod.slow)[0])\n` +
      `s.put_bytes("${PREFIX}services/counter.pkl", dumps(tmod.Counter())[0])\n` +
      `s.put_bytes("${PREFIX}services/broken.pkl", b"not a pickle")\nprint(1)`,
  );
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await rm(root, { recursive: true, force: true });
});

describe("ServicePool", () => {
  it("runs a stateful instance's calls one at a time, in the order they arrived", async () => {
    const counter = pool("services/counter.pkl", true, 4);
    const never = new AbortController().signal;
    const calls = await Promise.all([1, 2, 3, 4].map(async (k) => ({ k, a: args(k) }))).then((prepared) =>
      prepared.map(({ k, a }) => counter.call(k, "add", payload(k, a), never)),
    );
    expect(await Promise.all(calls)).toEqual([{ ok: true }, { ok: true }, { ok: true }, { ok: true }]);
    expect(counter.processCount).toBe(1);
    expect(results(["objects/1.pkl", "objects/2.pkl", "objects/3.pkl", "objects/4.pkl"])).toEqual([
      1, 3, 6, 10,
    ]);
  });

  it("stops only the cancelled call's process; the next call gets a fresh one", async () => {
    const slow = pool("services/slow.pkl", false, 1);
    const cancel = new AbortController();
    const never = new AbortController().signal;
    const marker = join(root, "long-started");
    const long = slow.call(10, "__call__", payload(10, args(60, marker)), cancel.signal);
    const short = slow.call(11, "__call__", payload(11, args(0)), never);
    await started(marker);
    cancel.abort();
    expect(await long).toMatchObject({ ok: false, cancelled: true });
    expect(await short).toEqual({ ok: true });
    expect(results(["objects/11.pkl"])).toEqual([0]);
  });

  it("fails a stateful instance's later calls once its process died, instead of starting it over", async () => {
    const counter = pool("services/counter.pkl", true);
    const never = new AbortController().signal;
    expect(await counter.call(20, "add", payload(20, args(1)), never)).toEqual({ ok: true });
    const cancel = new AbortController();
    const marker = join(root, "hold-started");
    const stuck = counter.call(21, "hold", payload(21, args(marker)), cancel.signal);
    await started(marker);
    cancel.abort();
    expect(await stuck).toMatchObject({ ok: false });
    const after = await counter.call(22, "add", payload(22, args(1)), never);
    expect(after).toMatchObject({ ok: false });
    expect((after as { error: string }).error).toMatch(/state is gone/);
  });

  it("reports a target that cannot be loaded on the call", async () => {
    const broken = pool("services/broken.pkl", false);
    const outcome = await broken.call(30, "__call__", payload(30, args(1)), new AbortController().signal);
    expect(outcome).toMatchObject({ ok: false });
    expect((outcome as { error: string }).error).toMatch(/could not be loaded.*UnpicklingError/);
  });
});
