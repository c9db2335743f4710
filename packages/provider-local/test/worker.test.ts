// The queue worker against a real job server on loopback, running real
// commands (sh, Debian's /usr/bin/python3) under the real supervisor.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { livingMembers } from "@runctl/agent";
import { type QueueServer, startQueueServer } from "@runctl/queue-server";
import { type JobCreate, QueueClient, RunWriter } from "@runctl/tracker";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { QueueWorker, type QueueWorkerOptions, type WorkerEvent } from "../src/mod.ts";
import { recordUnreported } from "../src/worker-recovery.ts";

const PYTHON = "/usr/bin/python3";
// The agent's fixtures: the scripts a worker runs are the agent's to run.
const fixture = (name: string) =>
  fileURLToPath(new URL(`../../agent/test/fixtures/${name}`, import.meta.url));

let root: string;
let server: QueueServer;
let client: QueueClient;
const workers: QueueWorker[] = [];
let count = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-worker-"));
  server = await startQueueServer({ dataDir: join(root, "server"), port: 0, log: () => undefined });
  client = new QueueClient({ url: server.url });
});
afterEach(async () => {
  // Whatever a test left behind must not claim the next test's jobs.
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await client.cancelQueued();
});
afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

interface Started {
  worker: QueueWorker;
  events: WorkerEvent[];
  dataDir: string;
}

async function startWorker(options: Partial<QueueWorkerOptions> = {}): Promise<Started> {
  const events: WorkerEvent[] = [];
  const dataDir = join(root, `worker-${count++}`);
  const worker = new QueueWorker({
    client,
    dataDir,
    pollMs: 50,
    uploadIntervalMs: 100,
    graceMs: 2000,
    leaseSeconds: 30,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    onEvent: (event) => events.push(event),
    ...options,
  });
  await worker.start();
  workers.push(worker);
  return { worker, events, dataDir };
}

/** A fresh working directory for a job. */
async function workdir(): Promise<string> {
  const dir = join(root, `wd-${count++}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

async function submit(spec: Partial<JobCreate> & { command_argv: string[] }): Promise<number> {
  const created = await client.submitJob({ workdir: await workdir(), ...spec });
  return created.job_id;
}

function sh(script: string): string[] {
  return ["/bin/sh", "-c", script];
}

/** Polls until `probe` gives a value (the test timeout catches a hang). */
async function until<T>(probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The pid a job's command wrote (its process group id: each rank leads its own group). */
async function pidFrom(file: string): Promise<number> {
  return until(async () => {
    if (!existsSync(file)) return undefined;
    const text = await readFile(file, "utf8");
    return text.endsWith("\n") ? Number(text.trim()) : undefined;
  });
}

async function serverText(runId: string, path: string): Promise<string> {
  return (await client.getArtifact(runId, path)).text();
}

describe("QueueWorker", () => {
  it("refuses to start when the server cannot be reached", async () => {
    const probe = await startQueueServer({ dataDir: join(root, "probe"), port: 0, log: () => undefined });
    const url = probe.url;
    await probe.close();
    const worker = new QueueWorker({
      client: new QueueClient({ url, retries: 0 }),
      dataDir: join(root, "unreachable"),
    });
    await expect(worker.start()).rejects.toMatchObject({ code: "server_unreachable" });
    await worker.done;
  });

  it("runs a tracked Python job and uploads its run directory to the server", async () => {
    const { dataDir, events } = await startWorker();
    const id = await submit({
      command_argv: [PYTHON, fixture("train_stdlib.py"), "--epochs", "3"],
      name: "stdlib",
      tags: ["queue"],
      config: { lr: 0.1 },
    });
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job).toMatchObject({ status: "completed", exit_code: 0, attempt: 1, runs: [`job-${id}`] });
    const runId = `job-${id}`;
    const files = (await client.listArtifacts(runId)).map((a) => a.path);
    expect(files).toEqual(
      expect.arrayContaining(["meta.json", "config.json", "metrics.jsonl", "output.log"]),
    );
    expect(files.some((f) => f.endsWith(".lock") || f.endsWith(".tmp"))).toBe(false);
    // The final upload came before the report: the server's copy is the finished run.
    const meta = JSON.parse(await serverText(runId, "meta.json")) as Record<string, unknown>;
    expect(meta).toMatchObject({
      id: runId,
      name: "stdlib",
      tags: ["queue"],
      status: "completed",
      exit_code: 0,
    });
    expect(JSON.parse(await serverText(runId, "config.json"))).toMatchObject({ lr: 0.1 });
    const metrics = await client.getMetrics(runId);
    expect(metrics.metrics.map((m) => m.loss)).toEqual([0.5, 0.25, 0.125]);
    const run = await client.getRun(runId);
    expect(run).toMatchObject({ status: "completed", summary: { final_loss: 0.125 } });
    const log = await serverText(runId, "output.log");
    expect(log).toContain("epoch 2 loss 0.125");
    const env = JSON.parse(/^env (.*)$/m.exec(log)?.[1] ?? "{}") as Record<string, string>;
    expect(env).toMatchObject({
      RUNCTL_RUN_ID: runId,
      RUNCTL_RUN_DIR: join(dataDir, "runs", runId),
      WHIRR_RUN_ID: runId,
      TRAINCTL_CHECKPOINT_DIR: join(dataDir, "checkpoints", `job-${id}`),
    });
    expect(await readdir(join(dataDir, "checkpoints", `job-${id}`))).toContain("ckpt_0002.pt");
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["registered", "claimed", "finished"]));
    expect(events.find((e) => e.type === "finished")).toMatchObject({ exitCode: 0, reason: "exited" });
  });

  it("sets the job's variables and reports a failing command with its exit code and last lines", async () => {
    await startWorker();
    const id = await submit({
      command_argv: sh(
        'echo "job=$RUNCTL_JOB_ID attempt=$RUNCTL_JOB_ATTEMPT run=$RUNCTL_RUN_ID"; echo boom >&2; exit 3',
      ),
    });
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job).toMatchObject({ status: "failed", exit_code: 3 });
    expect(job.error_message).toContain("boom");
    expect(await serverText(`job-${id}`, "output.log")).toContain(`job=${id} attempt=1 run=job-${id}`);
  });

  it("reports a working directory missing on the worker as a clear failure", async () => {
    const { events } = await startWorker();
    const id = await submit({ command_argv: ["true"], workdir: join(root, "no-such-dir") });
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job.status).toBe("failed");
    expect(job.error_message).toContain(`${join(root, "no-such-dir")} does not exist on worker`);
    expect(events.some((e) => e.type === "error" && e.message.includes("could not start"))).toBe(true);
  });

  it("runs the automatic retry of a failed attempt as a new attempt", async () => {
    await startWorker();
    const id = await submit({
      command_argv: sh('echo "attempt $RUNCTL_JOB_ATTEMPT"; [ "$RUNCTL_JOB_ATTEMPT" = 2 ]'),
      max_retries: 1,
      retry_backoff_seconds: 0,
    });
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job).toMatchObject({ status: "completed", attempt: 2, runs: [`job-${id}`, `job-${id}-2`] });
    expect((await client.getRun(`job-${id}`)).status).toBe("failed");
    expect(await serverText(`job-${id}-2`, "output.log")).toContain("attempt 2");
  });

  it("stops an attempt at its timeout and reports it as timed out", async () => {
    const { events } = await startWorker();
    const dir = await workdir();
    const id = await submit({
      command_argv: sh("echo $$ > pid; exec sleep 60"),
      workdir: dir,
      timeout_seconds: 1,
    });
    const pgid = await pidFrom(join(dir, "pid"));
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job.status).toBe("failed");
    expect(job.error_message).toContain("timed out");
    expect(livingMembers(pgid)).toEqual([]);
    expect(events.find((e) => e.type === "finished")).toMatchObject({ reason: "timeout" });
  });

  it("cancels a running job: its process group is gone and the job ends cancelled", async () => {
    const { events } = await startWorker({ leaseSeconds: 3 });
    const dir = await workdir();
    const id = await submit({ command_argv: sh("sleep 60 & echo $$ > pid; wait"), workdir: dir });
    const pgid = await pidFrom(join(dir, "pid"));
    expect(livingMembers(pgid).length).toBeGreaterThan(0);
    expect(await client.cancelJob(id)).toMatchObject({ previous_status: "running" });
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job.status).toBe("cancelled");
    expect(livingMembers(pgid)).toEqual([]);
    expect(events.find((e) => e.type === "cancelled")).toMatchObject({ reason: "cancelled" });
    expect((await client.getRun(`job-${id}`)).status).toBe("cancelled");
  });

  it("kills its copy when the lease is lost and never reports that attempt", async () => {
    const { events } = await startWorker({ leaseSeconds: 3 });
    const dir = await workdir();
    const id = await submit({
      command_argv: sh(
        'if [ "$RUNCTL_JOB_ATTEMPT" = 1 ]; then sleep 60 & echo $$ > pid; wait; fi; echo second',
      ),
      workdir: dir,
    });
    const pgid = await pidFrom(join(dir, "pid"));
    // The server decides the lease is over (as if heartbeats had not arrived): attempt 2 is queued.
    // Any renewal ends within 3 s of now; the requeued attempt is claimable from that `now` on.
    const lost = server.store.requeueExpired(new Date(Date.now() + 4_000));
    expect(lost).toEqual([expect.objectContaining({ job_id: id, attempt: 1, status: "queued" })]);
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job).toMatchObject({ status: "completed", attempt: 2 });
    expect(livingMembers(pgid)).toEqual([]);
    expect((await client.getRun(`job-${id}`)).status).toBe("lost");
    const mine = events.filter((e) => e.job?.id === id);
    expect(mine.some((e) => e.type === "lease_lost" && e.job?.attempt === 1)).toBe(true);
    expect(mine.filter((e) => e.type === "finished").map((e) => e.job?.attempt)).toEqual([2]);
  });

  it("keeps its job running through a server restart and reports it afterwards", async () => {
    const { events } = await startWorker({ leaseSeconds: 3 });
    const dir = await workdir();
    const id = await submit({
      command_argv: sh("echo $$ > pid; while [ ! -e go ]; do sleep 0.05; done; echo after restart"),
      workdir: dir,
    });
    const pgid = await pidFrom(join(dir, "pid"));
    const port = server.port;
    await server.close();
    // Down long enough for a heartbeat to fail, not for the lease to end by the worker's clock.
    await until(() =>
      events.some((e) => e.type === "error" && e.message.includes("heartbeat")) ? true : undefined,
    );
    server = await startQueueServer({ dataDir: join(root, "server"), port, log: () => undefined });
    await writeFile(join(dir, "go"), "");
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job).toMatchObject({ status: "completed", attempt: 1 });
    expect(livingMembers(pgid)).toEqual([]);
    expect(await serverText(`job-${id}`, "output.log")).toContain("after restart");
    expect(events.some((e) => e.type === "lease_lost")).toBe(false);
  });

  it("refuses a second worker on a data directory a living worker holds", async () => {
    const { dataDir } = await startWorker();
    const second = new QueueWorker({ client, dataDir, env: {} });
    await expect(second.start()).rejects.toMatchObject({ code: "worker_data_dir_in_use" });
  });

  it("reports a job that ended while the server was down for longer than the lease, so it does not run again", async () => {
    const { events } = await startWorker({ leaseSeconds: 2 });
    const dir = await workdir();
    const id = await submit({
      command_argv: sh("echo run >> runs; while [ ! -e go ]; do sleep 0.05; done"),
      workdir: dir,
    });
    await until(async () => ((await readFile(join(dir, "runs"), "utf8").catch(() => "")) ? true : undefined));
    const port = server.port;
    await server.close();
    await writeFile(join(dir, "go"), ""); // the job ends while nobody can be told
    await new Promise((r) => setTimeout(r, 3000)); // longer than the lease by the worker's clock
    server = await startQueueServer({ dataDir: join(root, "server"), port, log: () => undefined });
    const job = await client.waitForJob(id, { pollMs: 50 });
    expect(job).toMatchObject({ status: "completed", attempt: 1 });
    expect(await readFile(join(dir, "runs"), "utf8")).toBe("run\n");
    expect(events.some((e) => e.type === "lease_lost")).toBe(false);
  });

  it("stops its copy once the lease has certainly expired by its own clock (server away too long)", async () => {
    const { events } = await startWorker({ leaseSeconds: 2 });
    const dir = await workdir();
    const id = await submit({ command_argv: sh("sleep 60 & echo $$ > pid; wait"), workdir: dir });
    const pgid = await pidFrom(join(dir, "pid"));
    const port = server.port;
    await server.close();
    try {
      const lost = await until(() => events.find((e) => e.type === "lease_lost"));
      expect(lost.message).toContain("no heartbeat answered");
      await until(() => (livingMembers(pgid).length === 0 ? true : undefined));
    } finally {
      server = await startQueueServer({ dataDir: join(root, "server"), port, log: () => undefined });
    }
    expect(events.some((e) => e.type === "finished" || e.type === "cancelled")).toBe(false);
    await client.cancelJob(id);
  });

  it("drain() lets the running job finish, claims nothing more, and unregisters", async () => {
    const { worker } = await startWorker();
    const dir = await workdir();
    const first = await submit({
      command_argv: sh("touch started; while [ ! -e go ]; do sleep 0.05; done; echo finished"),
      workdir: dir,
    });
    await until(() => (existsSync(join(dir, "started")) ? true : undefined));
    const draining = worker.drain();
    const second = await submit({ command_argv: ["true"] });
    expect((await client.getWorkers()).map((w) => w.id)).toContain(worker.id);
    await writeFile(join(dir, "go"), "");
    await draining;
    expect(await client.getJob(first)).toMatchObject({ status: "completed" });
    expect(await client.getJob(second)).toMatchObject({ status: "queued" });
    expect((await client.getWorkers()).map((w) => w.id)).not.toContain(worker.id);
  });

  it("exitWhenIdle: works through the queue, then unregisters and ends", async () => {
    const dir = await workdir();
    const ids = [await submit({ command_argv: sh("echo one > one"), workdir: dir })];
    ids.push(await submit({ command_argv: sh("echo two > two"), workdir: dir }));
    const { worker } = await startWorker({ exitWhenIdle: true });
    await worker.done;
    for (const id of ids) expect((await client.getJob(id)).status).toBe("completed");
    expect((await client.getWorkers()).map((w) => w.id)).not.toContain(worker.id);
  });

  it("stop() stops the running job and hands its attempt back to the queue", async () => {
    const { worker, events } = await startWorker();
    const dir = await workdir();
    const id = await submit({ command_argv: sh("sleep 60 & echo $$ > pid; wait"), workdir: dir });
    const pgid = await pidFrom(join(dir, "pid"));
    await worker.stop();
    expect(livingMembers(pgid)).toEqual([]);
    const job = await client.getJob(id);
    // Handed back: queued again as a new attempt, no failure recorded.
    expect(job).toMatchObject({ status: "queued", attempt: 2 });
    expect((await client.getRun(`job-${id}`)).status).toBe("lost");
    expect(events.some((e) => e.type === "finished" || e.type === "cancelled")).toBe(false);
    expect(events.at(-1)?.type).toBe("unregistered");
  });

  it("gives each job GPUs of its own from the worker's free set, and none to a job that asked for none", async () => {
    const { events } = await startWorker({ gpus: [0, 1], maxJobs: 2 });
    const dir = await workdir();
    // Each job waits for the other, so both must hold their GPU at the same time.
    const both = sh(
      'echo "$CUDA_VISIBLE_DEVICES" > "gpu-$RUNCTL_JOB_ID"; while [ "$(ls | grep -c "^gpu-")" -lt 2 ]; do sleep 0.05; done',
    );
    const a = await submit({ command_argv: both, workdir: dir, gpus: 1 });
    const b = await submit({ command_argv: both, workdir: dir, gpus: 1 });
    expect((await client.waitForJob(a, { pollMs: 50 })).status).toBe("completed");
    expect((await client.waitForJob(b, { pollMs: 50 })).status).toBe("completed");
    const given = [
      await readFile(join(dir, `gpu-${a}`), "utf8"),
      await readFile(join(dir, `gpu-${b}`), "utf8"),
    ];
    expect(given.map((g) => g.trim()).sort()).toEqual(["0", "1"]);
    const claims = events.filter((e) => e.type === "claimed" && (e.job?.id === a || e.job?.id === b));
    expect(claims).toHaveLength(2);

    const none = await submit({
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template
      command_argv: sh('echo "[${CUDA_VISIBLE_DEVICES-unset}]" > none'),
      workdir: dir,
    });
    expect((await client.waitForJob(none, { pollMs: 50 })).status).toBe("completed");
    expect(await readFile(join(dir, "none"), "utf8")).toBe("[]\n");
  });

  it("reports the ending a killed worker left unreported, as that worker, when the next one starts on its data dir", async () => {
    // The killed worker: it held attempt 1 of two jobs. One job's process had exited 0 (its run directory says
    // so) but the worker died before telling the server; the other was still running when it died.
    const dataDir = join(root, `worker-${count++}`);
    await client.registerWorker({ worker_id: "killed-worker", hostname: "here" });
    const ended = await submit({ command_argv: sh("true") });
    const cut = await submit({ command_argv: sh("true") });
    // Killed between the process's exit and meta.json: only the record knows how it ended.
    const exited = await submit({ command_argv: sh("exit 4") });
    for (const id of [ended, cut, exited]) {
      const job = await client.claimJob({ worker_id: "killed-worker", lease_seconds: 60 });
      expect(job?.id).toBe(id);
      recordUnreported(dataDir, {
        job_id: id,
        attempt: 1,
        worker_id: "killed-worker",
        run_id: `job-${id}`,
        ...(id === exited ? { ended: { status: "failed", exit_code: 4, error: "exit 4" } } : {}),
      });
    }
    const runsDir = join(dataDir, "runs");
    RunWriter.create({ runsDir, id: `job-${ended}`, command: ["true"] }).finish("completed", { exitCode: 0 });
    RunWriter.create({ runsDir, id: `job-${cut}`, command: ["true"] }); // still "running"
    RunWriter.create({ runsDir, id: `job-${exited}`, command: ["sh"] }); // still "running"

    const { events } = await startWorker({ dataDir });
    const done = await client.getJob(ended);
    expect(done).toMatchObject({ status: "completed", attempt: 1, worker_id: "killed-worker", exit_code: 0 });
    expect((await client.listArtifacts(`job-${ended}`)).map((a) => a.path)).toContain("meta.json");
    expect(events.some((e) => e.type === "finished" && e.message.includes("reported now"))).toBe(true);
    expect(await client.getJob(exited)).toMatchObject({ status: "failed", attempt: 1, exit_code: 4 });
    // Nothing to say about the one that never ended: its lease will expire and it runs again.
    expect((await client.getJob(cut)).status).toBe("running");
    expect(await readdir(join(dataDir, "unreported"))).toEqual([]);
    await client.unregisterWorker("killed-worker");
  });
});
