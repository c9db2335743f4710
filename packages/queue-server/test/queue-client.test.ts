// The TypeScript queue client against a real job server on loopback.
import { createServer, type Server, type Socket } from "node:net";
import {
  JobWaitTimeoutError,
  QueueClient,
  QueueServerError,
  QueueUnreachableError,
  SERVER_UNREACHABLE_HINT,
} from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startQueueServer } from "../src/mod.ts";
import { tempDir } from "./helpers.ts";

type Started = Awaited<ReturnType<typeof startQueueServer>>;

let root: { path: string; cleanup: () => Promise<void> };
let server: Started;
let client: QueueClient;
let dirCount = 0;

beforeAll(async () => {
  root = await tempDir("queue-client");
  server = await startQueueServer({ dataDir: `${root.path}/server`, port: 0 });
  client = new QueueClient({ url: server.url });
});
afterAll(async () => {
  await server?.close();
  await root.cleanup();
});

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** fetch that counts its calls. */
function countingFetch(): { fetch: typeof fetch; calls: () => number } {
  let calls = 0;
  return {
    fetch: (input, init) => {
      calls++;
      return fetch(input, init);
    },
    calls: () => calls,
  };
}

function job(name: string, extra: Record<string, unknown> = {}) {
  return { command_argv: ["true"], workdir: root.path, name, ...extra };
}

/** Plays a worker by hand: registers, claims the next job (which must be `jobId`). */
async function claimAs(workerId: string, jobId: number) {
  await client.registerWorker({ worker_id: workerId, hostname: "test-host", max_jobs: 1 });
  const claimed = await client.claimJob({ worker_id: workerId, lease_seconds: 60 });
  expect(claimed?.id).toBe(jobId);
  return claimed as NonNullable<typeof claimed>;
}

describe("QueueClient", () => {
  it("submits, reads, lists and reports status and health", async () => {
    const created = await client.submitJob(job("first", { tags: ["a"], config: { lr: 0.1 } }));
    expect(created).toMatchObject({ created: true, run_id: `job-${created.job_id}` });
    const got = await client.getJob(created.job_id);
    expect(got).toMatchObject({
      id: created.job_id,
      status: "queued",
      name: "first",
      tags: ["a"],
      attempt: 1,
    });
    const listed = await client.listJobs({ status: "queued" });
    expect(listed.map((j) => j.id)).toContain(created.job_id);
    expect((await client.getStatus()).queued).toBeGreaterThanOrEqual(1);
    expect((await client.health()).status).toBe("ok");
    // A URL naming the API root works the same.
    const viaApiRoot = new QueueClient({ url: `${server.url}/api/v1/` });
    expect((await viaApiRoot.getJob(created.job_id)).id).toBe(created.job_id);
    const cancelled = await client.cancelJob(created.job_id);
    expect(cancelled).toMatchObject({ previous_status: "queued" });
    await expect(client.cancelJob(created.job_id)).rejects.toMatchObject({
      code: "job_finished",
      status: 409,
    });
    const retried = await client.retryJob(created.job_id);
    expect(retried).toMatchObject({ retry_of: created.job_id, created: true });
    const swept = await client.cancelQueued();
    expect(swept.cancelled).toContain(retried.job_id);
  });

  it("tells a missing job (404 job_not_found) from an unreachable server", async () => {
    const missing = await client.getJob(999_999).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(QueueServerError);
    expect(missing).toMatchObject({ code: "job_not_found", status: 404, kind: "user" });

    const gone = new QueueClient({
      url: `http://127.0.0.1:${await closedPort()}`,
      retries: 1,
      retryDelayMs: 10,
    });
    const error = await gone.getJob(1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueUnreachableError);
    expect(error).not.toBeInstanceOf(QueueServerError);
    expect(error).toMatchObject({
      code: "server_unreachable",
      hint: SERVER_UNREACHABLE_HINT,
      kind: "provider",
    });
    expect((error as Error).message).toContain("ECONNREFUSED");
  });

  it("resends idempotent calls after connection errors, but never a claim", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const reads = countingFetch();
    await expect(
      new QueueClient({ url, fetch: reads.fetch, retries: 2, retryDelayMs: 5 }).getStatus(),
    ).rejects.toBeInstanceOf(QueueUnreachableError);
    expect(reads.calls()).toBe(3);
    const claims = countingFetch();
    await expect(
      new QueueClient({ url, fetch: claims.fetch, retries: 2, retryDelayMs: 5 }).claimJob({ worker_id: "w" }),
    ).rejects.toBeInstanceOf(QueueUnreachableError);
    expect(claims.calls()).toBe(1);
  });

  it("calls a server that accepts but never answers unreachable after the timeout", async () => {
    const held: Socket[] = [];
    const silent: Server = createServer((socket) => {
      held.push(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const port = (silent.address() as { port: number }).port;
      const slow = new QueueClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 200, retries: 0 });
      const error = await slow.health().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(QueueUnreachableError);
      expect((error as Error).message).toContain("no answer within");
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("resubmits with the same idempotency key when the answer was lost, queueing the job once", async () => {
    const keyed = await client.submitJob(job("keyed", { idempotency_key: "key-1" }));
    const again = await client.submitJob(job("keyed", { idempotency_key: "key-1" }));
    expect(again).toMatchObject({ job_id: keyed.job_id, created: false });

    // The first answer is lost after the server has queued the job: the client resends the same body.
    let dropped = 0;
    const lossy: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (init?.method === "POST" && dropped === 0) {
        dropped++;
        await res.arrayBuffer();
        throw new TypeError("fetch failed", {
          cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }),
        });
      }
      return res;
    };
    const before = (await client.listJobs({ status: "all", limit: 1000 })).length;
    const lossyClient = new QueueClient({ url: server.url, fetch: lossy, retryDelayMs: 5 });
    const created = await lossyClient.submitJob(job("lost-answer"));
    expect(dropped).toBe(1);
    expect(created.created).toBe(false);
    const after = await client.listJobs({ status: "all", limit: 1000 });
    expect(after.length).toBe(before + 1);
    expect(after.filter((j) => j.name === "lost-answer")).toHaveLength(1);
    await client.cancelJob(created.job_id);
  });

  it("waitForJob gives up with wait_timeout, and returns the job once a worker finished it", async () => {
    const created = await client.submitJob(job("waited", { priority: 1000 }));
    const error = await client
      .waitForJob(created.job_id, { pollMs: 20, timeoutMs: 100 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobWaitTimeoutError);
    expect(error).toMatchObject({ code: "wait_timeout", job: { id: created.job_id, status: "queued" } });

    const claimed = await claimAs("waiter-worker", created.job_id);
    const seen: string[] = [];
    const waiting = client.waitForJob(created.job_id, { pollMs: 20, onPoll: (j) => seen.push(j.status) });
    await client.completeJob(created.job_id, {
      worker_id: "waiter-worker",
      attempt: claimed.attempt,
      exit_code: 0,
      run_id: claimed.run_id,
    });
    const done = await waiting;
    expect(done).toMatchObject({ status: "completed", exit_code: 0 });
    expect(seen.at(-1)).toBe("completed");

    const aborted = new AbortController();
    const pending = client.submitAndWait(job("aborted"), { pollMs: 20, signal: aborted.signal });
    aborted.abort(new Error("stop waiting"));
    await expect(pending).rejects.toThrow("stop waiting");
  });

  it("fences worker calls by attempt: heartbeat, repeated complete, lease_lost", async () => {
    const created = await client.submitJob(job("fenced", { priority: 1000 }));
    const claimed = await claimAs("fence-worker", created.job_id);
    const beat = await client.heartbeat(created.job_id, {
      worker_id: "fence-worker",
      attempt: claimed.attempt,
      lease_seconds: 30,
    });
    expect(beat).toMatchObject({ success: true, cancel_requested: false });
    await client.cancelJob(created.job_id);
    expect(
      (await client.heartbeat(created.job_id, { worker_id: "fence-worker", attempt: claimed.attempt }))
        .cancel_requested,
    ).toBe(true);
    const stale = await client
      .heartbeat(created.job_id, { worker_id: "fence-worker", attempt: claimed.attempt + 1 })
      .catch((e: unknown) => e);
    expect(stale).toMatchObject({ code: "lease_lost", status: 409 });
    const report = {
      worker_id: "fence-worker",
      attempt: claimed.attempt,
      exit_code: 143,
      reason: "cancelled" as const,
    };
    await client.completeJob(created.job_id, report);
    // The same report again (its answer lost): accepted, nothing changes.
    await client.completeJob(created.job_id, report);
    expect((await client.getJob(created.job_id)).status).toBe("cancelled");
    await expect(
      client.failJob(created.job_id, {
        worker_id: "other-worker",
        attempt: claimed.attempt,
        error_message: "late",
      }),
    ).rejects.toMatchObject({ code: "lease_lost" });
    const workers = await client.getWorkers();
    expect(workers.map((w) => w.id)).toContain("fence-worker");
    await client.unregisterWorker("fence-worker");
    expect((await client.getWorkers()).map((w) => w.id)).not.toContain("fence-worker");
  });

  it("uploads run files by offset and whole, and reads them back: listing, metrics, Range", async () => {
    const created = await client.submitJob(job("files", { priority: 1000 }));
    const claimed = await claimAs("files-worker", created.job_id);
    const runId = claimed.run_id as string;
    const owner = { workerId: "files-worker", attempt: claimed.attempt };
    const enc = new TextEncoder();
    await client.uploadFile(runId, "output.log", enc.encode("hello "), { ...owner, offset: 0 });
    const grown = await client.uploadFile(runId, "output.log", enc.encode("world\n"), {
      ...owner,
      offset: 6,
    });
    expect(grown).toEqual({ path: "output.log", size: 12 });
    const gap = await client
      .uploadFile(runId, "output.log", enc.encode("x"), { ...owner, offset: 100 })
      .catch((e: unknown) => e);
    expect(gap).toMatchObject({ code: "upload_gap", status: 409 });
    const lines = [0, 1, 2].map((i) =>
      JSON.stringify({ _idx: i, _timestamp: new Date().toISOString(), loss: 1 / (i + 1) }),
    );
    await client.uploadFile(runId, "metrics.jsonl", enc.encode(`${lines.join("\n")}\n`), {
      ...owner,
      offset: 0,
    });
    const weird = "artifacts/my model #1?.txt";
    await client.uploadFile(runId, weird, enc.encode("weights"), owner);
    await expect(
      client.uploadFile(runId, "output.log", enc.encode("!"), {
        workerId: "intruder",
        attempt: claimed.attempt,
      }),
    ).rejects.toMatchObject({ code: "lease_lost" });

    const listed = await client.listArtifacts(runId);
    expect(listed.map((a) => a.path).sort()).toEqual([weird, "metrics.jsonl", "output.log"].sort());
    expect(await (await client.getArtifact(runId, "output.log")).text()).toBe("hello world\n");
    expect(await (await client.getArtifact(runId, weird)).text()).toBe("weights");
    const part = await client.getArtifact(runId, "output.log", { range: { start: 6, end: 10 } });
    expect(part.status).toBe(206);
    expect(await part.text()).toBe("world");
    const tail = await client.getArtifact(runId, "output.log", { range: { start: 6 } });
    expect(await tail.text()).toBe("world\n");
    // Streamed: read the body as a web stream.
    const streamed = await client.getArtifact(runId, "output.log");
    const chunks: Uint8Array[] = [];
    for await (const chunk of streamed.body as ReadableStream<Uint8Array>) chunks.push(chunk);
    expect(Buffer.concat(chunks).toString()).toBe("hello world\n");
    await expect(client.getArtifact(runId, "nope.txt")).rejects.toMatchObject({ code: "artifact_not_found" });
    await expect(client.getArtifact(runId, "../escape")).rejects.toMatchObject({ code: "bad_path" });
    // Encoded on the way, so the server sees (and refuses) the name itself.
    await expect(client.getArtifact(runId, "a\\..\\b")).rejects.toMatchObject({
      code: "bad_path",
      status: 400,
    });

    const metrics = await client.getMetrics(runId, { since: 1 });
    expect(metrics.metrics.map((m) => m.loss)).toEqual([1 / 2, 1 / 3]);
    expect(metrics.cursor).toBe(3);
    const run = await client.getRun(runId);
    expect(run).toMatchObject({ id: runId, job_id: created.job_id, status: "running" });
    expect((await client.getRuns({ jobId: created.job_id })).map((r) => r.id)).toEqual([runId]);
    await client.completeJob(created.job_id, {
      worker_id: "files-worker",
      attempt: claimed.attempt,
      exit_code: 0,
    });
  });

  it("sends the token, and names the server's refusal without one", async () => {
    const guarded = await startQueueServer({
      dataDir: `${root.path}/guarded-${dirCount++}`,
      port: 0,
      token: "s3cret",
    });
    try {
      const anonymous = new QueueClient({ url: guarded.url });
      const refused = await anonymous.getStatus().catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(QueueServerError);
      expect(refused).toMatchObject({ code: "unauthorized", status: 401 });
      expect((await anonymous.health()).status).toBe("ok");
      const trusted = new QueueClient({ url: guarded.url, token: "s3cret" });
      expect((await trusted.getStatus()).queued).toBe(0);
    } finally {
      await guarded.close();
    }
  });

  it("refuses a bad URL and bad request bodies before sending anything", () => {
    expect(() => new QueueClient({ url: "not a url" })).toThrow(
      expect.objectContaining({ code: "bad_server_url" }),
    );
    expect(() => new QueueClient({ url: "ftp://host" })).toThrow(
      expect.objectContaining({ code: "bad_server_url" }),
    );
    return expect(client.submitJob({ command_argv: [], workdir: "/" })).rejects.toMatchObject({
      code: "invalid_request",
    });
  });
});
