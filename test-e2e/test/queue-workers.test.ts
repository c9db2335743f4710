/**
 * The job queue with real processes: `runctl server`, eight `runctl worker`s,
 * jobs that are shell scripts writing to a marker file (one line when they
 * start, one when they are done), so "ran once" is checked by what actually
 * ran, not by what the server believes.
 */
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type JobResponse, QueueClient } from "@runctl/tracker";
import { afterEach, describe, expect, it } from "vitest";
import { startJobServer, startWorker, type WorkerProcess } from "../src/job-server.ts";
import { type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";

const WORKERS = 8;
const JOBS = 400;

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
  cleanup = [];
});

interface Marks {
  start: Map<number, string[]>;
  done: Map<number, string[]>;
}

/** `start <job> <attempt> <worker-dir>` / `done …` lines, by job id. */
async function readMarks(file: string): Promise<Marks> {
  const marks: Marks = { start: new Map(), done: new Map() };
  const text = await readFile(file, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const [kind, job, attempt] = line.split(" ");
    if ((kind !== "start" && kind !== "done") || !job) continue;
    const map = marks[kind];
    map.set(Number(job), [...(map.get(Number(job)) ?? []), attempt ?? "?"]);
  }
  return marks;
}

async function jobScript(ws: Workspace, sleepSeconds: number): Promise<{ script: string; marker: string }> {
  const script = join(ws.project, "job.sh");
  const marker = join(ws.home, "marks.log");
  await writeFile(
    script,
    `#!/bin/sh\necho "start $RUNCTL_JOB_ID $RUNCTL_JOB_ATTEMPT" >> "$1"\n${sleepSeconds > 0 ? `sleep ${sleepSeconds}\n` : ""}echo "done $RUNCTL_JOB_ID $RUNCTL_JOB_ATTEMPT" >> "$1"\n`,
  );
  await chmod(script, 0o755);
  return { script, marker };
}

async function submitMany(client: QueueClient, n: number, argv: string[], cwd: string): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, n - i) }, (_, k) =>
        client.submitJob({ command_argv: argv, workdir: cwd, name: `job-${i + k}` }),
      ),
    );
    ids.push(...batch.map((b) => b.job_id));
  }
  return ids;
}

async function allJobs(client: QueueClient): Promise<JobResponse[]> {
  return client.listJobs({ status: "all", limit: 1000 });
}

async function setUp(workerArgs: string[]) {
  const ws = await workspace();
  const server = await startJobServer(ws, join(ws.home, "server"));
  cleanup.push(async () => void (await server.stop("SIGKILL")));
  const client = new QueueClient({ url: server.url });
  const workers: WorkerProcess[] = [];
  const spawnWorker = (i: number) => {
    const w = startWorker(ws, server.url, join(ws.home, `worker-${i}`), workerArgs);
    workers[i] = w;
    cleanup.push(async () => {
      w.child.kill("SIGKILL");
      await w.result;
    });
    return w;
  };
  return { ws, server, client, workers, spawnWorker };
}

async function waitAllFinished(client: QueueClient, n: number, what: string, timeoutMs = 300_000) {
  await waitFor(
    async () => {
      const s = await client.getStatus();
      return s.completed + s.failed + s.cancelled >= n;
    },
    what,
    timeoutMs,
  );
}

describe("runctl worker × 8", () => {
  it(`runs ${JOBS} jobs, each exactly once`, { timeout: 400_000 }, async () => {
    const { ws, client, workers, spawnWorker } = await setUp(["--poll", "0.2", "--lease", "30"]);
    const { script, marker } = await jobScript(ws, 0);
    const ids = await submitMany(client, JOBS, [script, marker], ws.project);
    expect(new Set(ids).size).toBe(JOBS);
    for (let i = 0; i < WORKERS; i++) spawnWorker(i);
    await waitAllFinished(client, JOBS, `${JOBS} jobs to finish`);

    const jobs = await allJobs(client);
    expect(jobs).toHaveLength(JOBS);
    expect(jobs.filter((j) => j.status !== "completed")).toEqual([]);
    expect(jobs.every((j) => j.attempt === 1 && j.runs.length === 1 && j.exit_code === 0)).toBe(true);
    const marks = await readMarks(marker);
    for (const id of ids) {
      expect(marks.start.get(id), `job ${id} starts`).toEqual(["1"]);
      expect(marks.done.get(id), `job ${id} completions`).toEqual(["1"]);
    }
    // Work was spread over the workers, each with its own id.
    const byWorker = new Set(jobs.map((j) => j.worker_id));
    expect(byWorker.size).toBeGreaterThan(1);
    expect((await client.getWorkers()).map((w) => w.id).length).toBe(WORKERS);

    // The run directories reached the server without a shared filesystem.
    const first = jobs.find((j) => j.id === ids[0]) as JobResponse;
    const artifacts = await client.listArtifacts(first.run_id as string);
    expect(artifacts.map((a) => a.path)).toEqual(expect.arrayContaining(["meta.json", "output.log"]));

    // SIGTERM: the workers stop claiming, unregister and exit 0.
    for (const w of workers) w.child.kill("SIGTERM");
    const results = await Promise.all(workers.map((w) => w.result));
    expect(results.map((r) => r.code)).toEqual(new Array(WORKERS).fill(0));
    expect(await client.getWorkers()).toEqual([]);
  });

  it("SIGKILLed workers, restarted: every job completes once, attempts are recorded", {
    timeout: 400_000,
  }, async () => {
    const { ws, client, workers, spawnWorker } = await setUp(["--poll", "0.2", "--lease", "10"]);
    const { script, marker } = await jobScript(ws, 0.3);
    const ids = await submitMany(client, JOBS, [script, marker], ws.project);
    for (let i = 0; i < WORKERS; i++) spawnWorker(i);

    // Kill a random worker every ~1.5 s and start a fresh one in its place (same data dir).
    let kills = 0;
    let finished = false;
    const killedLogs: string[] = [];
    const chaos = (async () => {
      while (!finished) {
        await new Promise((r) => setTimeout(r, 1000 + Math.random() * 1000));
        if (finished) break;
        const i = Math.floor(Math.random() * WORKERS);
        const victim = workers[i] as WorkerProcess;
        victim.child.kill("SIGKILL");
        await victim.result;
        killedLogs.push(victim.log());
        kills++;
        spawnWorker(i);
      }
    })();
    try {
      await waitAllFinished(client, JOBS, `${JOBS} jobs to finish despite the kills`);
    } finally {
      finished = true;
      await chaos;
    }
    expect(kills).toBeGreaterThan(3);
    console.log(`chaos: ${kills} workers killed with SIGKILL`);

    const jobs = await allJobs(client);
    expect(jobs.filter((j) => j.status !== "completed")).toEqual([]);
    const retried = jobs.filter((j) => j.attempt > 1);
    expect(retried.length, "some jobs were running when their worker was killed").toBeGreaterThan(0);
    const marks = await readMarks(marker);
    let ranPastDone = 0;
    for (const job of jobs) {
      // Every attempt has its own run record; exactly one of them completed.
      expect(job.runs).toHaveLength(job.attempt);
      const runs = await client.getRuns({ jobId: job.id, limit: 100 });
      expect(runs.filter((r) => r.status === "completed").map((r) => r.attempt)).toEqual([job.attempt]);
      expect(runs.filter((r) => r.status !== "completed").every((r) => r.status === "lost")).toBe(true);
      // What ran: the completed attempt finished; any other attempt that got as far as
      // writing "done" is one whose worker was killed before it could report (its run is lost).
      const done = marks.done.get(job.id) ?? [];
      expect(done).toContain(String(job.attempt));
      for (const attempt of done.filter((a) => a !== String(job.attempt))) {
        expect(runs.find((r) => String(r.attempt) === attempt)?.status).toBe("lost");
        ranPastDone++;
      }
    }
    const logs = [...killedLogs, ...workers.map((w) => w.log())].join("\n");
    const recovered = logs.match(/reported now/g)?.length ?? 0;
    const tooLate = logs.match(/the lease was gone by then/g)?.length ?? 0;
    console.log(
      `chaos: ${retried.length} jobs needed more than one attempt; ${ranPastDone} killed attempts had already written "done"; ` +
        `endings reported by the restarted worker: ${recovered}, refused as too late: ${tooLate}`,
    );
    expect(ids.length).toBe(JOBS);
  });
});
