// The Python client (runctl.Client) against a live job server. There is no
// `runctl worker` in this scenario: the test plays the worker over raw HTTP
// (register, claim, heartbeat, upload, complete) while one Python script,
// fixtures/queue-python/client_scenario.py, submits, waits, reads and cancels.
// The script prints one JSON object per line: events ask this worker to act,
// checks are the results asserted below.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type QueueServer, startQueueServer } from "@runctl/queue-server";
import {
  HeartbeatResponse,
  JobClaimResponse,
  JobCreateResponse,
  JobResponse,
  RunResponse,
  RunWriter,
  readMetrics,
  StatusResponse,
} from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { freePort } from "../src/ports.ts";

const require = createRequire(import.meta.url);
const CLIENT = dirname(require.resolve("@runctl/client-python/package.json"));
const SCRIPT = fileURLToPath(new URL("../fixtures/queue-python/client_scenario.py", import.meta.url));
const TOKEN = "queue-python-token";
const WORKER = "ts-worker-1";

// Every byte value, so that any text decoding on the way would show.
const BLOB = Buffer.from([...Array(256).keys(), 0, 255, 10, 13, 0]);
const BLOB_PATH = "artifacts/weights v1/model#1.bin";
const SUMMARY = { best_loss: 0.2 };
/** The run directory the worker "ran" for job A, written by the same RunWriter the supervisor uses. */
let runDirA: string | undefined;

const Event = z.strictObject({
  event: z.enum(["complete", "claim", "stop_if_cancelled"]),
  job_id: z.number().int(),
});
const Check = z.looseObject({ check: z.string() });
const Failure = z.looseObject({ raised: z.string().nullable() });
type Failure = z.infer<typeof Failure>;

let server: QueueServer | undefined;
let proxy: DroppingProxy | undefined;
let python: ChildProcess | undefined;
let root: string | undefined;
const checks = new Map<string, Record<string, unknown>>();
const worker = {
  claimed: [] as number[],
  heartbeats: [] as { jobId: number; cancel_requested: boolean }[],
  errors: [] as string[],
};
let stderr = "";
let exitCode: number | null = null;

/** A check the script printed; fails with the script's stderr when it did not get that far. */
function check(name: string): Record<string, unknown> {
  const found = checks.get(name);
  if (!found) throw new Error(`the Python script printed no "${name}" check (exit ${exitCode}):\n${stderr}`);
  return found;
}

function failure(value: unknown): Failure {
  return Failure.parse(value);
}

async function api(method: string, path: string, body?: unknown, query?: Record<string, string>) {
  if (!server) throw new Error("no server");
  const url = new URL(`/api/v1${path}`, server.url);
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
  const isBytes = body instanceof Uint8Array;
  const res = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined
        ? {}
        : { "content-type": isBytes ? "application/octet-stream" : "application/json" }),
    },
    body: body === undefined ? undefined : isBytes ? body : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return JSON.parse(text) as unknown;
}

/** The worker's side of one job: claim it (it must be the one the script named) and renew the lease once. */
async function claim(jobId: number) {
  const { job } = JobClaimResponse.parse(
    await api("POST", "/jobs/claim", { worker_id: WORKER, lease_seconds: 60 }),
  );
  if (!job) throw new Error(`nothing to claim, expected job ${jobId}`);
  worker.claimed.push(job.id);
  if (job.id !== jobId) throw new Error(`claimed job ${job.id}, expected ${jobId}`);
  await heartbeat(jobId, job.attempt);
  return job;
}

async function heartbeat(jobId: number, attempt: number) {
  const beat = HeartbeatResponse.parse(
    await api("POST", `/jobs/${jobId}/heartbeat`, { worker_id: WORKER, attempt, lease_seconds: 60 }),
  );
  worker.heartbeats.push({ jobId, cancel_requested: beat.cancel_requested });
  return beat;
}

async function upload(runId: string, path: string, bytes: Uint8Array, attempt: number) {
  const encoded = path.split("/").map(encodeURIComponent).join("/");
  await api("PUT", `/runs/${encodeURIComponent(runId)}/files/${encoded}`, bytes, {
    worker_id: WORKER,
    attempt: String(attempt),
  });
}

async function act(event: "complete" | "claim" | "stop_if_cancelled", jobId: number) {
  if (event === "complete") {
    const job = await claim(jobId);
    const runId = job.run_id ?? "";
    const writer = RunWriter.create({
      runsDir: join(root ?? "", "worker"),
      id: runId,
      name: job.name ?? undefined,
    });
    for (let step = 0; step < 5; step++) writer.appendMetrics({ loss: 1 / (step + 1) }, step * 10);
    writer.setSummary(SUMMARY);
    writer.finish("completed", { exitCode: 0 });
    writer.close();
    runDirA = writer.dir;
    mkdirSync(dirname(join(writer.dir, BLOB_PATH)), { recursive: true });
    writeFileSync(join(writer.dir, BLOB_PATH), BLOB);
    for (const file of ["metrics.jsonl", "meta.json", BLOB_PATH]) {
      await upload(runId, file, readFileSync(join(writer.dir, file)), job.attempt);
    }
    await api("POST", `/jobs/${jobId}/complete`, {
      worker_id: WORKER,
      attempt: job.attempt,
      exit_code: 0,
      run_id: runId,
    });
  } else if (event === "claim") {
    await claim(jobId);
  } else {
    const job = JobResponse.parse(await api("GET", `/jobs/${jobId}`));
    const beat = await heartbeat(jobId, job.attempt);
    if (!beat.cancel_requested) throw new Error(`job ${jobId}: the heartbeat did not ask to stop`);
    // What a worker reports after stopping the process group for a cancel.
    await api("POST", `/jobs/${jobId}/complete`, {
      worker_id: WORKER,
      attempt: job.attempt,
      exit_code: 143,
      run_id: job.run_id,
      reason: "cancelled",
    });
  }
}

interface DroppingProxy {
  url: string;
  connections: () => number;
  close: () => Promise<void>;
}

/**
 * A TCP proxy to the server that resets its first connection as soon as the
 * server starts answering: the request was handled, the client never hears.
 */
async function droppingProxy(port: number): Promise<DroppingProxy> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const proxyServer: Server = createServer((downstream) => {
    const first = connections++ === 0;
    const upstream = connect(port, "127.0.0.1");
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    downstream.on("error", () => upstream.destroy());
    upstream.on("error", () => downstream.destroy());
    downstream.pipe(upstream);
    if (first) {
      upstream.once("data", () => {
        downstream.resetAndDestroy();
        upstream.destroy();
      });
    } else {
      upstream.pipe(downstream);
    }
  });
  await new Promise<void>((resolve) => proxyServer.listen(0, "127.0.0.1", resolve));
  const address = proxyServer.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return {
    url: `http://127.0.0.1:${address.port}`,
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        proxyServer.close(() => resolve());
      }),
  };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-queue-python-"));
  server = await startQueueServer({ dataDir: join(root, "queue"), port: 0, token: TOKEN });
  proxy = await droppingProxy(server.port);
  const closedUrl = `http://127.0.0.1:${await freePort()}`;
  await api("POST", "/workers/register", { worker_id: WORKER, hostname: "e2e", gpu_ids: [], max_jobs: 1 });

  const child = spawn("/usr/bin/python3", [SCRIPT, closedUrl, proxy.url, root], {
    env: {
      ...process.env,
      PYTHONPATH: CLIENT,
      PYTHONUNBUFFERED: "1",
      RUNCTL_SERVER_URL: server.url,
      RUNCTL_SERVER_TOKEN: TOKEN,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  python = child;
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code));
  });
  // Events are handled one at a time, in the order the script printed them.
  for await (const text of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    const doc: unknown = JSON.parse(text);
    const event = Event.safeParse(doc);
    if (event.success) {
      await act(event.data.event, event.data.job_id).catch((error: unknown) => {
        worker.errors.push(String(error));
        child.kill("SIGTERM");
      });
    } else {
      const line = Check.parse(doc);
      checks.set(line.check, line);
    }
  }
  exitCode = await exited;
});

afterAll(async () => {
  if (python && python.exitCode === null) python.kill("SIGKILL");
  await proxy?.close();
  await server?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe("runctl.Client (Python) against a live job server", () => {
  it("runs the whole scenario, and the test's worker saw what it expected", () => {
    expect(worker.errors).toEqual([]);
    expect(checks.has("end"), stderr).toBe(true);
    expect(exitCode, stderr).toBe(0);
  });

  it("takes the server URL and token from RUNCTL_SERVER_URL / RUNCTL_SERVER_TOKEN", () => {
    expect(check("defaults")).toMatchObject({ server_url: server?.url.replace(/\/$/, ""), has_token: true });
  });

  it("rejects bad inputs with ValueError before sending anything", () => {
    const v = check("validation");
    for (const key of [
      "argv_str",
      "argv_empty",
      "argv_item",
      "tags_str",
      "gpus",
      "config",
      "job_id",
      "artifact_path",
    ]) {
      expect(failure(v[key]), key).toMatchObject({ raised: "ValueError", value_error: true });
    }
    expect(failure(v.argv_str).message).toMatch(/command_argv must be a non-empty list of strings/);
  });

  it("raises ServerUnreachable (a ConnectionError) for a closed port, never None", () => {
    const u = check("unreachable");
    for (const key of ["get_job", "get_run", "submit", "cancel"]) {
      const f = failure(u[key]);
      expect(f, key).toMatchObject({
        raised: "ServerUnreachable",
        connection_error: true,
        timeout_error: false,
      });
      expect(f.message).toMatch(/runctl server/);
      expect(f.message).toMatch(/RUNCTL_SERVER_URL/);
    }
  });

  it("raises ServerError 401 with a wrong token, also from get_job", () => {
    const w = check("wrong_token");
    for (const key of ["get_status", "get_job"]) {
      expect(failure(w[key]), key).toMatchObject({
        raised: "ServerError",
        status: 401,
        code: "unauthorized",
      });
      expect(failure(w[key]).hint, key).toBeTruthy();
    }
  });

  it("answers None for an unknown job or run", () => {
    expect(check("unknown")).toMatchObject({ job: null, run: null });
  });

  it("submits a job that the worker completes; wait_for_job returns it completed", () => {
    const a = check("job_a");
    const created = JobCreateResponse.parse(a.created);
    expect(created.created).toBe(true);
    const final = JobResponse.parse(a.final);
    expect(final).toMatchObject({
      id: created.job_id,
      status: "completed",
      exit_code: 0,
      name: "py-a",
      command_argv: ["python", "train.py", "--lr", "0.1"],
      workdir: root,
      config: { lr: 0.1 },
      tags: ["py", "queue"],
      priority: 5,
      run_id: created.run_id,
    });
    expect(worker.claimed[0]).toBe(created.job_id);
  });

  it("reads metrics (with since), the artifact list and a binary artifact byte for byte", async () => {
    const f = check("files_a");
    const metricsFile = readFileSync(join(runDirA ?? "", "metrics.jsonl"));
    const written = (await readMetrics(runDirA ?? "")).records;
    expect(written.map((m) => m.step)).toEqual([0, 10, 20, 30, 40]);
    expect(f.metrics).toEqual(written);
    expect(f.metrics_since).toEqual(written.filter((m) => m._idx >= 3));
    const listed = z.array(z.object({ path: z.string(), size: z.number() })).parse(f.artifacts);
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: "metrics.jsonl", size: metricsFile.length }),
        expect.objectContaining({ path: BLOB_PATH, size: BLOB.length }),
      ]),
    );
    expect(Buffer.from(z.string().parse(f.blob), "base64").equals(BLOB)).toBe(true);
    expect(failure(f.missing_artifact)).toMatchObject({
      raised: "ServerError",
      status: 404,
      code: "artifact_not_found",
    });
    expect(RunResponse.parse(f.run)).toMatchObject({ status: "completed", summary: SUMMARY });
    expect(failure(f.cancel_finished)).toMatchObject({
      raised: "ServerError",
      status: 409,
      code: "job_finished",
    });
  });

  it("wait_for_job(timeout=0.5) on an unclaimed job raises the builtin TimeoutError; cancel makes it cancelled", () => {
    const b = check("job_b");
    expect(failure(b.timed_out)).toMatchObject({
      raised: "TimeoutError",
      timeout_error: true,
      connection_error: false,
    });
    expect(b.cancel).toMatchObject({ previous_status: "queued", status: "cancelled" });
    expect(JobResponse.parse(b.final).status).toBe("cancelled");
  });

  it("cancel of a running job reaches the worker's heartbeat as cancel_requested", () => {
    const c = check("job_c");
    const running = JobResponse.parse(c.running);
    expect(running.status).toBe("running");
    expect(c.cancel).toMatchObject({ previous_status: "running" });
    expect(worker.heartbeats.filter((h) => h.jobId === running.id)).toEqual([
      { jobId: running.id, cancel_requested: false },
      { jobId: running.id, cancel_requested: true },
    ]);
    expect(JobResponse.parse(c.final).status).toBe("cancelled");
  });

  it("resends a submit whose answer was lost with the same key: one job, created false", () => {
    const d = check("dropped");
    expect(proxy?.connections()).toBeGreaterThanOrEqual(2);
    const created = JobCreateResponse.parse(d.created);
    expect(created.created).toBe(false);
    const jobs = z.array(JobResponse).parse(d.jobs);
    expect(jobs.map((j) => j.id)).toEqual([created.job_id]);
  });

  it("answers the first job for a repeated idempotency key; retry links the new job", () => {
    const q = check("queued");
    const first = JobCreateResponse.parse(q.first);
    const again = JobCreateResponse.parse(q.again);
    expect(first.created).toBe(true);
    expect(again).toMatchObject({ job_id: first.job_id, created: false });
    const jobA = JobCreateResponse.parse(check("job_a").created).job_id;
    expect(q.retry).toMatchObject({ retry_of: jobA });
    const active = z.array(JobResponse).parse(q.active);
    const retryId = JobCreateResponse.parse(q.retry).job_id;
    expect(active.map((j) => j.id)).toEqual(expect.arrayContaining([first.job_id, retryId]));
    expect(active.every((j) => j.status === "queued")).toBe(true);
  });

  it("cancel_all_queued cancels every queued job", () => {
    const c = check("cancel_queued");
    const queued = z.array(JobResponse).parse(check("queued").active);
    const answer = z.object({ cancelled: z.array(z.number()) }).parse(c.answer);
    expect([...answer.cancelled].sort()).toEqual(queued.map((j) => j.id).sort());
    expect(c.active).toEqual([]);
  });

  it("get_status, get_runs, list_jobs and get_workers have the server's shapes", () => {
    const l = check("listings");
    const status = StatusResponse.strict().parse(l.status);
    // Jobs: a completed, b and c cancelled, the dropped submit, the keyed one and the retry cancelled.
    expect(status).toMatchObject({ queued: 0, running: 0, completed: 1, failed: 0, cancelled: 5 });
    expect(status.workers_total).toBe(1);
    const runs = z.array(RunResponse).parse(l.runs);
    const runA = JobResponse.parse(check("job_a").final).run_id;
    expect(runs.map((r) => r.id)).toContain(runA);
    expect(
      z
        .array(RunResponse)
        .parse(l.runs_tagged)
        .map((r) => r.id),
    ).toEqual([runA]);
    expect(z.array(RunResponse).parse(l.runs_completed)).toHaveLength(1);
    const jobs = z.array(JobResponse).parse(l.jobs_all);
    expect(jobs).toHaveLength(6);
    expect(jobs.map((j) => j.id)).toEqual([...jobs.map((j) => j.id)].sort((x, y) => y - x));
    expect(z.array(JobResponse).parse(l.jobs_cancelled)).toHaveLength(5);
    expect(
      z
        .array(z.looseObject({ id: z.string() }))
        .parse(l.workers)
        .map((w) => w.id),
    ).toEqual([WORKER]);
  });
});
