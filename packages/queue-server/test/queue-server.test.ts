// The job server over real HTTP on loopback: whirr-shaped job lifecycle,
// queue order, GPU fitting, fencing, cancel/retry, and the refusals (auth,
// limits, bad bodies, unknown routes), plus processes claiming concurrently.
import { join } from "node:path";
import {
  CancelQueuedResponse,
  ErrorResponse,
  HeartbeatResponse,
  JobCancelResponse,
  JobClaimResponse,
  JobCreateResponse,
  JobListResponse,
  JobResponse,
  JobRetryResponse,
  MessageResponse,
  RunListResponse,
  StatusResponse,
  WorkerListResponse,
} from "@runctl/tracker";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isLoopbackHost, startQueueServer } from "../src/mod.ts";
import { assertDistFresh, tempDir } from "./helpers.ts";
import { rawRequest, startClaimer, startTestServer, type TestServer } from "./queue-helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
let dirCount = 0;
const servers: TestServer[] = [];

async function server(options: Parameters<typeof startTestServer>[1] = {}): Promise<TestServer> {
  dirCount += 1;
  const s = await startTestServer(join(root.path, `s${dirCount}`), options);
  servers.push(s);
  return s;
}

beforeAll(async () => {
  root = await tempDir("queue-server");
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.server.close();
});
afterAll(async () => {
  await root.cleanup();
});

const spec = (extra: Record<string, unknown> = {}) => ({
  command_argv: ["python", "train.py"],
  workdir: "/w",
  ...extra,
});

async function submit(s: TestServer, extra: Record<string, unknown> = {}): Promise<number> {
  const answer = await s.api("POST", "/api/v1/jobs", { json: spec(extra) });
  expect(answer.status).toBe(200);
  return JobCreateResponse.parse(answer.json).job_id;
}

async function claim(s: TestServer, body: Record<string, unknown>) {
  const answer = await s.api("POST", "/api/v1/jobs/claim", { json: body });
  expect(answer.status).toBe(200);
  return JobClaimResponse.parse(answer.json).job;
}

function expectError(answer: { status: number; json: unknown }, status: number, code: string): void {
  expect({ status: answer.status, code: ErrorResponse.parse(answer.json).error_code }).toEqual({
    status,
    code,
  });
}

describe("job lifecycle", () => {
  it("runs whirr's submit → register → claim → heartbeat → complete with whirr's shapes", async () => {
    const s = await server();
    const created = await s.api("POST", "/api/v1/jobs", {
      json: {
        command_argv: ["python", "train.py", "--lr", "0.1"],
        workdir: "/src",
        name: "lr-0.1",
        config: { lr: 0.1 },
        tags: ["sweep"],
      },
    });
    expect(created.status).toBe(200);
    const c = JobCreateResponse.parse(created.json);
    expect(c).toMatchObject({ run_id: `job-${c.job_id}`, created: true });
    expect(c.run_dir).toBe(join(s.server.store.dataDir, "runs", `job-${c.job_id}`));

    const reg = await s.api("POST", "/api/v1/workers/register", {
      json: { worker_id: "gpu-box-1", hostname: "gpu-box", gpu_ids: [0] },
    });
    expect(MessageResponse.parse(reg.json).success).toBe(true);

    const job = await claim(s, { worker_id: "gpu-box-1", gpu_id: 0, lease_seconds: 60 });
    expect(job).toMatchObject({
      id: c.job_id,
      status: "running",
      attempt: 1,
      worker_id: "gpu-box-1",
      name: "lr-0.1",
      config: { lr: 0.1 },
      tags: ["sweep"],
      command_argv: ["python", "train.py", "--lr", "0.1"],
      run_id: `job-${c.job_id}`,
      runs: [`job-${c.job_id}`],
    });

    // whirr's worker sends no attempt: it is fenced by worker id alone.
    const beat = await s.api("POST", `/api/v1/jobs/${c.job_id}/heartbeat`, {
      json: { worker_id: "gpu-box-1", lease_seconds: 60 },
    });
    expect(HeartbeatResponse.parse(beat.json)).toMatchObject({ success: true, cancel_requested: false });

    const workers = WorkerListResponse.parse((await s.api("GET", "/api/v1/workers")).json).workers;
    expect(workers).toEqual([
      expect.objectContaining({
        id: "gpu-box-1",
        hostname: "gpu-box",
        gpu_id: 0,
        status: "busy",
        current_job_id: c.job_id,
      }),
    ]);

    const done = await s.api("POST", `/api/v1/jobs/${c.job_id}/complete`, {
      json: { worker_id: "gpu-box-1", exit_code: 0, run_id: `job-${c.job_id}` },
    });
    expect(done.status).toBe(200);
    expect(MessageResponse.parse(done.json).message).toContain("completed");

    const final = JobResponse.parse((await s.api("GET", `/api/v1/jobs/${c.job_id}`)).json);
    expect(final).toMatchObject({ status: "completed", exit_code: 0, worker_id: "gpu-box-1" });
    expect(final.finished_at).toBeTruthy();
    const runs = RunListResponse.parse((await s.api("GET", "/api/v1/runs")).json).runs;
    expect(runs).toEqual([
      expect.objectContaining({
        id: `job-${c.job_id}`,
        job_id: c.job_id,
        status: "completed",
        hostname: "gpu-box",
        exit_code: 0,
      }),
    ]);
    expect((await s.api("GET", "/api/v1/runs?tag=sweep")).json.runs).toHaveLength(1);
    expect((await s.api("GET", "/api/v1/runs?tag=other")).json.runs).toHaveLength(0);
    expect((await s.api("GET", "/api/v1/runs?status=running")).json.runs).toHaveLength(0);
    expect(StatusResponse.parse((await s.api("GET", "/api/v1/status")).json)).toMatchObject({
      queued: 0,
      running: 0,
      completed: 1,
      workers_online: 1,
      workers_total: 1,
    });
    expect((await s.api("GET", "/health")).json).toMatchObject({ status: "ok" });
  });

  it("hands out the highest priority first, FIFO among equals", async () => {
    const s = await server();
    const a = await submit(s);
    const b = await submit(s);
    const c = await submit(s, { priority: 5 });
    const d = await submit(s);
    const e = await submit(s, { priority: 5 });
    const f = await submit(s, { priority: -1 });
    const order: number[] = [];
    for (;;) {
      const job = await claim(s, { worker_id: "w1" });
      if (!job) break;
      order.push(job.id);
    }
    expect(order).toEqual([c, e, a, b, d, f]);
  });

  it("fits jobs to the worker's free GPUs and skips (not blocks on) a job that does not fit", async () => {
    const s = await server();
    const big = await submit(s, { gpus: 2 });
    const small = await submit(s, { gpus: 1 });
    const cpu = await submit(s);
    expect(await claim(s, { worker_id: "one-gpu", free_gpus: [3] })).toMatchObject({
      id: small,
      assigned_gpus: [3],
    });
    expect(await claim(s, { worker_id: "no-gpu" })).toMatchObject({ id: cpu, assigned_gpus: [] });
    expect(await claim(s, { worker_id: "one-gpu", gpu_id: 5 })).toBeNull();
    expect(await claim(s, { worker_id: "three-gpus", free_gpus: [5, 2, 7] })).toMatchObject({
      id: big,
      assigned_gpus: [5, 2],
    });
  });

  it("returns the existing job for a repeated idempotency key", async () => {
    const s = await server();
    const first = JobCreateResponse.parse(
      (await s.api("POST", "/api/v1/jobs", { json: spec({ idempotency_key: "k-1" }) })).json,
    );
    const again = JobCreateResponse.parse(
      (await s.api("POST", "/api/v1/jobs", { json: spec({ idempotency_key: "k-1" }) })).json,
    );
    const other = JobCreateResponse.parse(
      (await s.api("POST", "/api/v1/jobs", { json: spec({ idempotency_key: "k-2" }) })).json,
    );
    expect(first.created).toBe(true);
    expect(again).toMatchObject({ job_id: first.job_id, run_id: first.run_id, created: false });
    expect(other.job_id).not.toBe(first.job_id);
    expect(JobListResponse.parse((await s.api("GET", "/api/v1/jobs?status=all")).json).jobs).toHaveLength(2);
  });

  it("filters GET /jobs by every status, newest first, with limit and offset", async () => {
    const s = await server();
    const completed = await submit(s);
    const failed = await submit(s);
    const running = await submit(s);
    const cancelled = await submit(s);
    const queued = await submit(s);
    for (const id of [completed, failed, running]) {
      expect((await claim(s, { worker_id: "w1" }))?.id).toBe(id);
    }
    await s.api("POST", `/api/v1/jobs/${completed}/complete`, {
      json: { worker_id: "w1", attempt: 1, exit_code: 0 },
    });
    await s.api("POST", `/api/v1/jobs/${failed}/fail`, {
      json: { worker_id: "w1", attempt: 1, error_message: "boom" },
    });
    await s.api("POST", `/api/v1/jobs/${cancelled}/cancel`);
    const ids = async (query: string) =>
      JobListResponse.parse((await s.api("GET", `/api/v1/jobs${query}`)).json).jobs.map((j) => j.id);
    expect(await ids("?status=queued")).toEqual([queued]);
    expect(await ids("?status=running")).toEqual([running]);
    expect(await ids("?status=completed")).toEqual([completed]);
    expect(await ids("?status=failed")).toEqual([failed]);
    expect(await ids("?status=cancelled")).toEqual([cancelled]);
    expect(await ids("?status=active")).toEqual([queued, running]);
    expect(await ids("")).toEqual([queued, running]);
    expect(await ids("?status=all")).toEqual([queued, cancelled, running, failed, completed]);
    expect(await ids("?status=all&limit=2&offset=1")).toEqual([cancelled, running]);
    expectError(await s.api("GET", "/api/v1/jobs?status=lost"), 400, "bad_request");
    expectError(await s.api("GET", "/api/v1/jobs?limit=0"), 400, "bad_request");
    expectError(await s.api("GET", "/api/v1/jobs?limit=1001"), 400, "bad_request");
  });
});

describe("leases and fencing over HTTP", () => {
  it("requeues an expired lease with attempt + 1 and refuses the old worker with 409 lease_lost", async () => {
    const s = await server();
    const id = await submit(s);
    await claim(s, { worker_id: "w1", lease_seconds: 5 });
    s.advance(6);
    expect(await claim(s, { worker_id: "w2", lease_seconds: 60 })).toMatchObject({
      id,
      attempt: 2,
      run_id: `job-${id}-2`,
    });

    expectError(
      await s.api("POST", `/api/v1/jobs/${id}/heartbeat`, { json: { worker_id: "w1", attempt: 1 } }),
      409,
      "lease_lost",
    );
    expectError(
      await s.api("POST", `/api/v1/jobs/${id}/complete`, {
        json: { worker_id: "w1", attempt: 1, exit_code: 0 },
      }),
      409,
      "lease_lost",
    );
    expectError(
      await s.api("POST", "/api/v1/jobs/999/heartbeat", { json: { worker_id: "w1" } }),
      404,
      "job_not_found",
    );
    const runs = RunListResponse.parse((await s.api("GET", `/api/v1/runs?job_id=${id}`)).json).runs;
    expect(runs.map((r) => [r.id, r.status, r.worker_id])).toEqual([
      [`job-${id}-2`, "running", "w2"],
      [`job-${id}`, "lost", "w1"],
    ]);
    expect((await s.api("GET", "/api/v1/runs?status=lost")).json.runs).toHaveLength(1);

    const report = { json: { worker_id: "w2", attempt: 2, exit_code: 0 } };
    expect((await s.api("POST", `/api/v1/jobs/${id}/complete`, report)).status).toBe(200);
    // Resent after a lost answer: the recorded outcome again.
    const again = await s.api("POST", `/api/v1/jobs/${id}/complete`, report);
    expect(again.status).toBe(200);
    expect(again.json.message).toContain("already reported: completed");
    expect(JobResponse.parse((await s.api("GET", `/api/v1/jobs/${id}`)).json)).toMatchObject({
      status: "completed",
      attempt: 2,
      runs: [`job-${id}`, `job-${id}-2`],
    });
  });

  it("gives running jobs a fresh lease period when the server restarts", async () => {
    dirCount += 1;
    const dataDir = join(root.path, `s${dirCount}`);
    const before = await startTestServer(dataDir);
    const id = JobCreateResponse.parse(
      (await before.api("POST", "/api/v1/jobs", { json: spec() })).json,
    ).job_id;
    await before.api("POST", "/api/v1/jobs/claim", { json: { worker_id: "w1", lease_seconds: 10 } });
    await before.server.close();

    // Back after an outage longer than the lease: the worker that kept running may heartbeat again.
    const after = await startTestServer(dataDir, { now: () => new Date(Date.now() + 60_000) });
    servers.push(after);
    const beat = await after.api("POST", `/api/v1/jobs/${id}/heartbeat`, {
      json: { worker_id: "w1", attempt: 1, lease_seconds: 10 },
    });
    expect(beat.status).toBe(200);
    expect(JobResponse.parse((await after.api("GET", `/api/v1/jobs/${id}`)).json)).toMatchObject({
      status: "running",
      attempt: 1,
    });
  });

  it("makes a retry claimable only after its backoff", async () => {
    const s = await server();
    const id = await submit(s, { max_retries: 1, retry_backoff_seconds: 30 });
    await claim(s, { worker_id: "w1" });
    await s.api("POST", `/api/v1/jobs/${id}/complete`, {
      json: { worker_id: "w1", attempt: 1, exit_code: 3 },
    });
    expect(JobResponse.parse((await s.api("GET", `/api/v1/jobs/${id}`)).json)).toMatchObject({
      status: "queued",
      attempt: 2,
    });
    expect(await claim(s, { worker_id: "w1" })).toBeNull();
    s.advance(31);
    expect(await claim(s, { worker_id: "w1" })).toMatchObject({ id, attempt: 2 });
  });
});

describe("cancel and retry", () => {
  it("cancels queued jobs at once, running ones through the worker, and refuses finished ones", async () => {
    const s = await server();
    const running = await submit(s);
    const queued = await submit(s);
    await claim(s, { worker_id: "w1" });

    const q = JobCancelResponse.parse((await s.api("POST", `/api/v1/jobs/${queued}/cancel`)).json);
    expect(q).toMatchObject({ previous_status: "queued", status: "cancelled" });
    const r = JobCancelResponse.parse((await s.api("POST", `/api/v1/jobs/${running}/cancel`)).json);
    expect(r).toMatchObject({ previous_status: "running", status: "running" });

    const beat = HeartbeatResponse.parse(
      (await s.api("POST", `/api/v1/jobs/${running}/heartbeat`, { json: { worker_id: "w1", attempt: 1 } }))
        .json,
    );
    expect(beat.cancel_requested).toBe(true);
    await s.api("POST", `/api/v1/jobs/${running}/fail`, {
      json: { worker_id: "w1", attempt: 1, error_message: "stopped", reason: "cancelled" },
    });
    expect((await s.api("GET", `/api/v1/jobs/${running}`)).json.status).toBe("cancelled");
    expectError(await s.api("POST", `/api/v1/jobs/${running}/cancel`), 409, "job_finished");
    expectError(await s.api("POST", "/api/v1/jobs/424242/cancel"), 404, "job_not_found");
    expectError(await s.api("GET", "/api/v1/jobs/424242"), 404, "job_not_found");
  });

  it("cancel-queued cancels every queued job and names them", async () => {
    const s = await server();
    const running = await submit(s);
    const a = await submit(s);
    const b = await submit(s);
    await claim(s, { worker_id: "w1" });
    const answer = CancelQueuedResponse.parse((await s.api("POST", "/api/v1/jobs/cancel-queued")).json);
    expect(answer.cancelled).toEqual([a, b]);
    expect((await s.api("GET", `/api/v1/jobs/${running}`)).json.status).toBe("running");
  });

  it("retries a finished job as a new linked job and refuses an unfinished one", async () => {
    const s = await server();
    const id = await submit(s, { name: "again", tags: ["t"] });
    expectError(await s.api("POST", `/api/v1/jobs/${id}/retry`), 409, "job_not_finished");
    await s.api("POST", `/api/v1/jobs/${id}/cancel`);
    const retry = JobRetryResponse.parse((await s.api("POST", `/api/v1/jobs/${id}/retry`)).json);
    expect(retry).toMatchObject({ retry_of: id, run_id: `job-${retry.job_id}`, created: true });
    expect(JobResponse.parse((await s.api("GET", `/api/v1/jobs/${retry.job_id}`)).json)).toMatchObject({
      status: "queued",
      name: "again",
      tags: ["t"],
      retry_of: id,
    });
  });

  it("takes back the jobs of a worker that unregisters", async () => {
    const s = await server();
    const id = await submit(s);
    await s.api("POST", "/api/v1/workers/register", { json: { worker_id: "w1", hostname: "h" } });
    await claim(s, { worker_id: "w1" });
    const answer = await s.api("POST", "/api/v1/workers/unregister", { json: { worker_id: "w1" } });
    expect(answer.status).toBe(200);
    expect(JobResponse.parse((await s.api("GET", `/api/v1/jobs/${id}`)).json)).toMatchObject({
      status: "queued",
      attempt: 2,
    });
    expect(WorkerListResponse.parse((await s.api("GET", "/api/v1/workers")).json).workers).toEqual([]);
  });
});

describe("refusals", () => {
  it("requires the bearer token on /api/v1 (not /health) when one is set", async () => {
    const s = await server({ token: "s3cret-token" });
    const missing = await s.api("GET", "/api/v1/status");
    expectError(missing, 401, "unauthorized");
    expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expectError(await s.api("GET", "/api/v1/status", { token: "s3cret-tokem" }), 401, "unauthorized");
    expectError(
      await s.api("GET", "/api/v1/status", { token: "s3cret-token-and-more" }),
      401,
      "unauthorized",
    );
    expectError(
      await s.api("GET", "/api/v1/status", { headers: { authorization: "Basic czNjcmV0LXRva2Vu" } }),
      401,
      "unauthorized",
    );
    expect((await s.api("GET", "/api/v1/status", { token: "s3cret-token" })).status).toBe(200);
    expect((await s.api("GET", "/health")).status).toBe(200);
  });

  it("refuses to listen beyond loopback without a token", async () => {
    for (const host of ["0.0.0.0", "::", "192.0.2.1"]) {
      await expect(startQueueServer({ dataDir: join(root.path, "never"), host })).rejects.toMatchObject({
        code: "token_required",
      });
    }
    expect(
      ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"].every(isLoopbackHost),
    ).toBe(true);
    expect(["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "127.0.0.1.example.com"].some(isLoopbackHost)).toBe(
      false,
    );
  });

  it("refuses oversized, malformed, mistyped and invalid bodies and keeps serving", async () => {
    const s = await server();
    const big = JSON.stringify({ ...spec(), name: "x".repeat(2 * 1024 * 1024) });
    expectError(
      await s.api("POST", "/api/v1/jobs", { body: big, headers: { "content-type": "application/json" } }),
      413,
      "body_too_large",
    );
    expect((await s.api("GET", "/health")).status).toBe(200);

    // Chunked (no Content-Length): cut off by counting while streaming.
    const chunk = "x".repeat(64 * 1024);
    const frames = `${Array.from({ length: 40 }, () => `${(chunk.length).toString(16)}\r\n${chunk}\r\n`).join("")}0\r\n\r\n`;
    const chunked = await rawRequest(
      s.server.port,
      "POST /api/v1/jobs HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
      frames,
    );
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body.toString()).error_code).toBe("body_too_large");
    expect((await s.api("GET", "/health")).status).toBe(200);

    expectError(
      await s.api("POST", "/api/v1/jobs", {
        body: "{not json",
        headers: { "content-type": "application/json" },
      }),
      400,
      "bad_json",
    );
    expectError(
      await s.api("POST", "/api/v1/jobs/claim", {
        body: "",
        headers: { "content-type": "application/json" },
      }),
      400,
      "bad_json",
    );
    expectError(
      await s.api("POST", "/api/v1/jobs", {
        body: JSON.stringify(spec()),
        headers: { "content-type": "text/plain" },
      }),
      415,
      "unsupported_media_type",
    );

    const invalid = await s.api("POST", "/api/v1/jobs", {
      json: { command_argv: "python train.py", priority: 1.5, colour: "red" },
    });
    expectError(invalid, 422, "invalid_body");
    for (const field of ["command_argv", "workdir", "priority", "colour"])
      expect(invalid.json.detail).toContain(field);
    expectError(
      await s.api("POST", "/api/v1/jobs/claim", { json: { worker_id: "../evil" } }),
      422,
      "invalid_body",
    );
    expect((await s.api("POST", "/api/v1/jobs", { json: spec() })).status).toBe(200);
  });

  it("answers unknown routes 404 and wrong methods 405", async () => {
    const s = await server();
    expectError(await s.api("GET", "/api/v1/nothing-here"), 404, "not_found");
    expectError(await s.api("GET", "/api/v1/jobs/abc"), 404, "not_found");
    const wrong = await s.api("DELETE", "/api/v1/jobs/1");
    expectError(wrong, 405, "method_not_allowed");
    expect(wrong.headers.get("allow")).toBe("GET");
    expectError(await s.api("GET", "/api/v1/jobs/claim"), 405, "method_not_allowed");
  });

  it("answers 500 for a failing handler, logs it, and keeps serving", async () => {
    const s = await server();
    s.server.store.close(); // every store call now throws
    expectError(await s.api("GET", "/api/v1/status"), 500, "internal");
    expect(s.logs.join("\n")).toContain("GET /api/v1/status");
    expect((await s.api("GET", "/health")).status).toBe(200);
  });
});

describe("several processes claiming from one server", () => {
  beforeAll(async () => {
    await assertDistFresh();
  });

  it("hands every job out exactly once", async () => {
    const s = await server();
    const ids: number[] = [];
    for (let i = 0; i < 150; i++) ids.push(await submit(s));
    const children = ["c1", "c2", "c3", "c4"].map((w) => startClaimer(["http", s.url, w]));
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.go();
    const claimed = (await Promise.all(children.map((c) => c.claimed))).flat();
    expect(claimed.sort((a, b) => a - b)).toEqual(ids);
    expect(StatusResponse.parse((await s.api("GET", "/api/v1/status")).json)).toMatchObject({
      completed: 150,
      queued: 0,
    });
  });
});
