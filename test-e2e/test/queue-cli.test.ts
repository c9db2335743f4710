/**
 * The job-queue commands as a user runs them, against a real `runctl server`
 * and `runctl worker`: submit and wait, cancel a running job, retry it, sweep.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JobServerProcess, startJobServer, startWorker, type WorkerProcess } from "../src/job-server.ts";
import { runctlJson, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";

let ws: Workspace;
let server: JobServerProcess;
let worker: WorkerProcess;

beforeAll(async () => {
  ws = await workspace();
  server = await startJobServer(ws, join(ws.home, "server"));
  ws.env.RUNCTL_SERVER_URL = server.url;
  worker = startWorker(ws, server.url, join(ws.home, "worker"), ["--poll", "0.2", "--grace", "2"]);
});
afterAll(async () => {
  worker?.child.kill("SIGKILL");
  await worker?.result;
  await server?.stop("SIGKILL");
});

interface Job {
  id: number;
  status: string;
  exit_code: number | null;
  retry_of: number | null;
  runs: string[];
}

describe("job-queue commands", () => {
  it("submit --wait follows the job and exits with its exit code", async () => {
    const r = await runctlJson(
      ["submit", "--name", "three", "--wait", "--", "sh", "-c", "echo out; exit 3"],
      ws,
    );
    expect(r.code, r.stderr).toBe(3);
    expect(r.doc).toMatchObject({ success: true, job: { status: "failed", exit_code: 3 } });
  });

  it("cancel stops a running job's process; retry queues it again, linked", async () => {
    const marker = join(ws.home, "pid");
    const sub = await runctlJson(["submit", "--", "sh", "-c", `echo $$ > ${marker}; exec sleep 60`], ws);
    const id = (sub.doc as unknown as { job_id: number }).job_id;
    await waitFor(
      async () => (await readFile(marker, "utf8").catch(() => "")).trim() !== "",
      "the job to start",
    );
    const pid = Number((await readFile(marker, "utf8")).trim());
    const cancelled = await runctlJson(["cancel", String(id), "--wait"], ws);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.doc).toMatchObject({
      success: true,
      job_id: id,
      previous_status: "running",
      status: "cancelled",
    });
    expect(() => process.kill(pid, 0)).toThrow();

    const again = await runctlJson(["cancel", String(id)], ws);
    expect(again.code).toBe(1);
    expect(again.doc).toMatchObject({ success: false, error: { code: "job_finished" } });

    const retried = await runctlJson(["retry", String(id)], ws);
    expect(retried.doc).toMatchObject({ success: true, retry_of: id });
    const newId = (retried.doc as unknown as { job_id: number }).job_id;
    const shown = await runctlJson(["job", String(newId)], ws);
    expect((shown.doc as unknown as { job: Job }).job.retry_of).toBe(id);
    await runctlJson(["cancel", String(newId), "--wait"], ws);
    const listed = await runctlJson(["jobs", "--status", "cancelled"], ws);
    const ids = (listed.doc as unknown as { jobs: Job[] }).jobs.map((j) => j.id);
    expect(ids).toEqual(expect.arrayContaining([id, newId]));
  });

  it("sweep queues one job per combination and they run", async () => {
    await writeFile(
      join(ws.project, "sweep.yaml"),
      'name: s\nprogram: [sh, -c, "exit 0"]\nparameters:\n  lr: {values: [0.1, 0.01]}\n  seed: {values: [1, 2]}\n',
    );
    // `sh -c "exit 0" --lr 0.1 …`: the flags land in $0 and $1…, harmless for sh.
    const r = await runctlJson(["sweep", "sweep.yaml"], ws);
    expect(r.code, r.stderr).toBe(0);
    const submitted = (r.doc as unknown as { submitted: number[] }).submitted;
    expect(submitted).toHaveLength(4);
    await waitFor(async () => {
      const done = await runctlJson(["jobs", "--status", "completed", "--limit", "100"], ws);
      const ids = new Set((done.doc as unknown as { jobs: Job[] }).jobs.map((j) => j.id));
      return submitted.every((id) => ids.has(id));
    }, "the sweep's jobs to complete");
  });

  it("a bad server URL and an unreachable server are told apart", async () => {
    const bad = await runctlJson(["jobs", "--server", "not a url"], ws);
    expect(bad.doc).toMatchObject({ success: false, error: { code: "bad_server_url" } });
    const down = await runctlJson(["jobs", "--server", "http://127.0.0.1:9"], ws);
    expect(down.code).toBe(2);
    expect(down.doc).toMatchObject({ success: false, error: { code: "server_unreachable" } });
  });
});
