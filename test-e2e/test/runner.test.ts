/**
 * The Runner (docs/runner.md) with real processes: `runctl server`, two
 * `runctl worker`s running tasks in warm Python executors, and the Python
 * client (fixtures/runner/runner_scenario.py) packaging a project, mapping,
 * chaining futures, using a stateful instance, closing, reusing a name, and
 * SIGKILLing a worker mid-task. The script prints one JSON check per line.
 */
import { spawn } from "node:child_process";
import { copyFile, mkdir, readdir, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JobServerProcess, startJobServer, startWorker, type WorkerProcess } from "../src/job-server.ts";
import { RUNCTL_BIN, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";

const require = createRequire(import.meta.url);
const CLIENT = dirname(require.resolve("@runctl/client-python/package.json"));
const FIXTURES = fileURLToPath(new URL("../fixtures/runner/", import.meta.url));
const PYTHON = "/usr/bin/python3";

let ws: Workspace;
let server: JobServerProcess;
const workers: WorkerProcess[] = [];
const checks = new Map<string, Record<string, unknown>>();
const scenario = { code: null as number | null, stderr: "" };

function check(name: string): Record<string, unknown> {
  const found = checks.get(name);
  if (!found) {
    const logs = workers.map((w, i) => `--- worker ${i}\n${w.log().slice(-3000)}`).join("\n");
    throw new Error(`no "${name}" check (exit ${scenario.code}):\n${scenario.stderr}\n${logs}`);
  }
  return found;
}

beforeAll(async () => {
  ws = await workspace();
  const store = join(ws.home, "store");
  ws.env = {
    ...ws.env,
    RUNCTL_LOCAL_PYTHON: PYTHON,
    RUNCTL_RUNNER_STORE: `file://${store}`,
    RUNCTL_BIN: `${process.execPath} ${RUNCTL_BIN}`,
    PYTHONPATH: CLIENT,
  };
  await copyFile(join(FIXTURES, "runner_mod.py"), join(ws.project, "runner_mod.py"));
  await writeFile(join(ws.project, ".runctlignore"), "secret.txt\n");
  await writeFile(join(ws.project, "secret.txt"), "not for the workers\n");
  await writeFile(join(ws.project, "data.txt"), "data\n");
  server = await startJobServer(ws, join(ws.home, "server"));
  ws.env.RUNCTL_SERVER_URL = server.url;
  for (const n of [1, 2]) {
    workers.push(
      startWorker(ws, server.url, join(ws.home, `worker-${n}`), [
        "--max-jobs",
        "2",
        "--poll",
        "100ms",
        "--lease",
        "2",
      ]),
    );
  }
  await waitFor(() => workers.every((w) => w.log().includes("registered")), "both workers to register");
  const markers = join(ws.home, "markers");
  await mkdir(markers);
  const child = spawn(PYTHON, [join(FIXTURES, "runner_scenario.py"), markers], {
    cwd: ws.project,
    env: ws.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    scenario.stderr += d.toString();
  });
  scenario.code = await new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  if (process.env.RUNNER_TEST_DUMP) console.log(stdout);
  for (const line of stdout.split("\n")) {
    if (!line.trim()) continue;
    const parsed = JSON.parse(line) as Record<string, unknown>;
    checks.set(String(parsed.check), parsed);
  }
}, 240_000);

afterAll(async () => {
  for (const w of workers) w.child.kill("SIGKILL");
  await server?.stop("SIGTERM").catch(() => undefined);
});

describe("runctl.Runner against runctl server and two runctl workers", () => {
  it("packages and uploads the tree once per content key", () => {
    expect(check("open")).toMatchObject({ owned: true, uploaded: true });
    expect(check("reuse")).toMatchObject({ owned: false, uploaded: false });
    const changed = check("changed");
    expect(changed).toMatchObject({ uploaded: true, differs: true });
  });

  it("maps a function over 200 inputs", () => {
    expect(check("map")).toMatchObject({ ok: true, count: 200 });
  });

  it("resolves a future passed as an argument on the worker, never in the client", () => {
    const chained = check("chained");
    expect(chained.value).toBe(1_000_000);
    expect(chained.big_stored).toBe(true);
    expect(chained.big_fetched).toBe(false);
    expect(chained.fetched).toBe(1);
  });

  it("keeps a stateful instance in one process across 10 calls", () => {
    const stateful = check("stateful");
    expect(stateful.counts).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(stateful.processes).toBe(1);
  });

  it("re-raises a task's exception with its remote traceback", () => {
    const raised = check("exception");
    expect(raised).toMatchObject({ raised: "ValueError", message: "bad input", cause: "RemoteTraceback" });
    expect(raised.traceback).toMatch(/runner_mod\.py.*in boom/s);
  });

  it("ships the project without its ignored files", () => {
    expect(check("files")).toMatchObject({ ignored: false, shipped: true });
  });

  it("refuses a lambda with the fix", () => {
    expect(String(check("lambda").error)).toMatch(/lambda.*module level/);
  });

  it("yields futures in completion order with select", () => {
    expect(check("select")).toMatchObject({ ids: true });
  });

  it("leaves a reused runner alone when the reusing session closes", () => {
    expect(check("reuse")).toMatchObject({ value: 49, first_still_works: true, left_active: 0 });
    expect(Number(check("reuse").first_objects)).toBeGreaterThan(0);
    expect(check("fail_if_exists")).toMatchObject({ refused: true });
  });

  it("close() leaves no object, bundle or queued task of its own", async () => {
    const closed = check("close");
    expect(closed).toMatchObject({ objects: 0, bundle: false, queued: 0, runner_gone: true });
    expect(closed.pending_states).not.toContain("queued");
    // Every runner of the scenario uploaded its own bundle (the changed tree twice: after a close) and deleted it.
    expect(await readdir(join(ws.home, "store", "bundles"))).toEqual([]);
  });

  it("passes its own self-check, python -m runctl.runner.e2e --json", async () => {
    const child = spawn(PYTHON, ["-m", "runctl.runner.e2e", "--json", "--timeout", "60"], {
      cwd: ws.home,
      env: ws.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    const result = JSON.parse(out) as { ok: boolean; checks: Array<{ check: string; ok: boolean }> };
    expect(
      result.checks.map((c) => [c.check, c.ok]),
      err,
    ).toEqual([
      ["function service", true],
      ["chained futures", true],
      ["stateful instance", true],
      ["exception", true],
    ]);
    expect(result.ok).toBe(true);
    expect(code).toBe(0);
  }, 120_000);

  it("runs a task again elsewhere when its worker is SIGKILLed, and resolves it once", () => {
    const killed = check("sigkill");
    expect(killed.ran_on).not.toBe(killed.killed);
    expect(killed.attempts).toBe(2);
    expect((killed.started as string[]).length).toBe(2);
    expect(scenario.code).toBe(0);
  });
});
