// One launch path: the same script launched four ways — `runctl local` in the
// foreground, `runctl local --detach`, `LocalProvider.launch` from code, and a
// job run by `runctl worker` — leaves the same run-directory layout, written by
// the same agent.
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { RunDirSync } from "@runctl/agent";
import { FileArtifactStore, type RunMeta, StoreRunSync, TERMINAL_STATUSES } from "@runctl/core";
import { LocalProvider } from "@runctl/provider-local";
import { readMeta, readMetrics } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { startJobServer, startWorker } from "../src/job-server.ts";
import { runctl, runctlJson, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";

const PYTHON = "/usr/bin/python3";
const RunOut = z.object({ run: z.object({ id: z.string(), dir: z.string() }) });
const SCRIPT = `import runctl
run = runctl.init(config={"lr": 0.1})
for step in range(3):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
run.save_artifact(__file__, name="script.py")
print("trained")
run.finish()
`;

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace();
  await writeFile(join(ws.project, "train.py"), SCRIPT);
});

async function layout(runDir: string): Promise<string[]> {
  const files = await readdir(runDir, { recursive: true, withFileTypes: true });
  return files
    .filter((f) => f.isFile())
    .map((f) => relative(runDir, join(f.parentPath, f.name)))
    .filter((p) => !p.startsWith("control/cursor."))
    .sort();
}

async function ended(runDir: string): Promise<RunMeta> {
  let meta: RunMeta | undefined;
  await waitFor(async () => {
    meta = await readMeta(runDir);
    return TERMINAL_STATUSES.has(meta.status);
  }, `the run in ${runDir} to end`);
  return meta as RunMeta;
}

describe("the four launch paths", () => {
  const dirs: Record<string, string> = {};
  const server: { stop?: () => Promise<unknown> } = {};
  afterAll(async () => {
    await server.stop?.();
  });

  it("foreground: runctl local", async () => {
    const r = await runctlJson(["local", "--python", PYTHON, "train.py"], ws);
    expect(r.code, r.stderr).toBe(0);
    dirs.foreground = RunOut.parse(r.doc).run.dir;
  });

  it("detached: runctl local --detach", async () => {
    const r = await runctlJson(["local", "--detach", "--python", PYTHON, "train.py"], ws);
    expect(r.code, r.stderr).toBe(0);
    dirs.detached = RunOut.parse(r.doc).run.dir;
    await ended(dirs.detached);
  });

  it("from code: LocalProvider.launch", async () => {
    const provider = new LocalProvider({
      runsDir: join(ws.project, "runs"),
      checkpointDir: join(ws.project, "checkpoints"),
      cwd: ws.project,
      env: ws.env,
    });
    const placement = await provider.launch({
      instanceType: "local",
      command: ["train.py"],
      providerOptions: { python: PYTHON },
    });
    dirs.provider = join(ws.project, "runs", placement.resourceId);
    await ended(dirs.provider);
  });

  it("a queue job: runctl worker", async () => {
    const jobServer = await startJobServer(ws, join(ws.home, "server"));
    server.stop = () => jobServer.stop("SIGTERM");
    // Queued before the worker starts: a worker told to exit when idle leaves at its first empty claim.
    const queued = await runctlJson(["submit", "--server", jobServer.url, "--", PYTHON, "train.py"], ws);
    expect(queued.code, queued.stderr).toBe(0);
    const worker = startWorker(ws, jobServer.url, join(ws.home, "worker"), [
      "--exit-when-idle",
      "--poll",
      "0.1",
    ]);
    await worker.result;
    const runs = await readdir(join(ws.home, "worker", "runs"));
    expect(runs).toHaveLength(1);
    dirs.queue = join(ws.home, "worker", "runs", runs[0] as string);

    // Read back from a machine that only knows the server's URL: another directory, no runs.
    const laptop = {
      ...ws,
      project: join(ws.home, "laptop"),
      env: { ...ws.env, RUNCTL_SERVER_URL: jobServer.url },
    };
    await mkdir(laptop.project);
    const shown = await runctlJson(["show", runs[0] as string], laptop);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.doc).toMatchObject({ run: { id: runs[0], status: "completed" }, config: { lr: 0.1 } });
    const logs = await runctlJson(["logs", runs[0] as string], laptop);
    expect(logs.doc).toMatchObject({ success: true, output: expect.stringContaining("trained") });
  });

  it("a run synced to an artifact store reads back with --from", async () => {
    const store = new FileArtifactStore(join(ws.home, "store"));
    const id = relative(join(ws.project, "runs"), dirs.foreground as string);
    await new RunDirSync(dirs.foreground as string, new StoreRunSync(store, `runs/${id}`)).sync();
    const shown = await runctlJson(["show", id.slice(0, 15), "--from", store.url], ws);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.doc).toMatchObject({ run: { id, status: "completed" }, metrics: { count: 3 } });
  });

  it("all four leave the same files, written by the agent", async () => {
    expect(Object.keys(dirs).sort()).toEqual(["detached", "foreground", "provider", "queue"]);
    const layouts = await Promise.all(Object.values(dirs).map(layout));
    for (const files of layouts) expect(files).toEqual(layouts[0]);
    expect(layouts[0]).toEqual(
      expect.arrayContaining([
        "meta.json",
        "config.json",
        "metrics.jsonl",
        "system.jsonl",
        "output.log",
        "requirements.txt",
        "artifacts/script.py",
      ]),
    );
    for (const dir of Object.values(dirs)) {
      const meta = await readMeta(dir);
      expect(meta).toMatchObject({ status: "completed", exit_code: 0, writer: "supervisor", world_size: 1 });
      expect(meta.control).toMatchObject({ kind: "file" });
      expect((await readMetrics(dir)).records.map((m) => m.loss)).toEqual([1, 0.5, 1 / 3]);
    }
  });

  it("a second attempt of a live run is refused", async () => {
    const slow = join(ws.project, "slow.py");
    await writeFile(slow, "import time\ntime.sleep(30)\n");
    const started = await runctlJson(["local", "--detach", "--python", PYTHON, "slow.py"], ws);
    const id = RunOut.parse(started.doc).run.id;
    const again = await runctlJson(["local", "--run", id, "--python", PYTHON, "slow.py"], ws);
    expect(again.code).toBe(1);
    expect(again.doc).toMatchObject({ success: false, error: { code: "run_live" } });
    await runctl(["stop", id], ws);
    const meta = await ended(join(ws.project, "runs", id));
    expect(meta.status).toBe("cancelled");
    expect(meta.attempts).toHaveLength(1);
  });
});
