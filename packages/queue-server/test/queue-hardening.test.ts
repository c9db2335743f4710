// The job server against hostile input (the hardening issue): deeply nested
// JSON, oversized configs and listings, reused idempotency keys, repeated GPU
// ids, over-long upload names. Real server on loopback, real HTTP.
import { join } from "node:path";
import { MAX_JSON_DEPTH } from "@runctl/core";
import { ErrorResponse, JobListResponse, MAX_JOB_CONFIG_BYTES, QueueClient } from "@runctl/tracker";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LIST_PAGE_BYTES } from "../src/mod.ts";
import { tempDir } from "./helpers.ts";
import { startTestServer, type TestServer } from "./queue-helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
let dirCount = 0;
const servers: TestServer[] = [];

async function server(): Promise<TestServer> {
  dirCount += 1;
  const s = await startTestServer(join(root.path, `s${dirCount}`));
  servers.push(s);
  return s;
}

beforeAll(async () => {
  root = await tempDir("queue-hardening");
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

/** `{"a":{"a":…}}` nested `depth` levels, as text (JSON.stringify itself would recurse). */
function nestedText(depth: number): string {
  return `${'{"a":'.repeat(depth - 1)}{}${"}".repeat(depth - 1)}`;
}

function errorOf(answer: { status: number; json: unknown }): {
  status: number;
  code: string;
  detail: string;
} {
  const body = ErrorResponse.parse(answer.json);
  return { status: answer.status, code: body.error_code ?? "", detail: body.detail };
}

describe("JSON depth", () => {
  it("refuses bodies nested past the limit with 422 json_too_deep naming it, however deep, and keeps serving", async () => {
    const s = await server();
    for (const depth of [1000, 3000, 100_000]) {
      const body = `{"command_argv":["x"],"workdir":"/w","config":${nestedText(depth)}}`;
      const answer = await s.api("POST", "/api/v1/jobs", {
        body,
        headers: { "content-type": "application/json" },
      });
      const error = errorOf(answer);
      expect(error).toMatchObject({ status: 422, code: "json_too_deep" });
      expect(error.detail).toContain(`${MAX_JSON_DEPTH} levels`);
    }
    // A string full of brackets is not nesting.
    const brackets = await s.api("POST", "/api/v1/jobs", {
      json: spec({ config: { s: "[[[{{{".repeat(100) } }),
    });
    expect(brackets.status).toBe(200);
    // Exactly at the limit is fine: the body object is level 1, config level 2.
    const atLimit = `{"command_argv":["x"],"workdir":"/w","config":${nestedText(MAX_JSON_DEPTH - 1)}}`;
    const ok = await s.api("POST", "/api/v1/jobs", {
      body: atLimit,
      headers: { "content-type": "application/json" },
    });
    expect(ok.status).toBe(200);
    expect(s.logs.filter((l) => l.includes("RangeError"))).toEqual([]);
    const listed = await s.api("GET", "/api/v1/jobs?status=all");
    expect(listed.status).toBe(200);
    expect(JobListResponse.parse(listed.json).jobs).toHaveLength(2);
  });

  it("repairs a config stored too deep by an older server when it starts: dropped, and a queued job fails saying why", async () => {
    const dataDir = join(root.path, "legacy");
    const first = await startTestServer(dataDir);
    const queued = (await first.api("POST", "/api/v1/jobs", { json: spec({ name: "q" }) })).json
      .job_id as number;
    const done = (await first.api("POST", "/api/v1/jobs", { json: spec({ name: "d" }) })).json
      .job_id as number;
    await first.server.close();
    const db = new Database(join(dataDir, "queue.db"));
    db.prepare("UPDATE jobs SET config = ? WHERE id IN (?, ?)").run(nestedText(3000), queued, done);
    db.prepare("UPDATE jobs SET status = 'completed' WHERE id = ?").run(done);
    db.close();
    const s = await startTestServer(dataDir);
    servers.push(s);
    const jobs = JobListResponse.parse((await s.api("GET", "/api/v1/jobs?status=all")).json).jobs;
    expect(jobs.map((j) => [j.id, j.status, j.config ?? null])).toEqual([
      [done, "completed", null],
      [queued, "failed", null],
    ]);
    expect(jobs[1]?.error_message).toContain(`nested more than ${MAX_JSON_DEPTH} levels deep`);
    expect(s.logs.filter((l) => l.includes("was dropped"))).toHaveLength(2);
    expect((await s.api("POST", "/api/v1/jobs/claim", { json: { worker_id: "w1" } })).json).toEqual({
      job: null,
    });
  });
});

describe("sizes", () => {
  it("refuses a config over 256 KiB with 422 naming the limit", async () => {
    const s = await server();
    const answer = await s.api("POST", "/api/v1/jobs", {
      json: spec({ config: { blob: "y".repeat(MAX_JOB_CONFIG_BYTES) } }),
    });
    const error = errorOf(answer);
    expect(error).toMatchObject({ status: 422, code: "invalid_body" });
    expect(error.detail).toContain(`${MAX_JOB_CONFIG_BYTES} bytes (256 KiB)`);
  });

  it("pages a listing by bytes (next_offset) and the client follows the pages to the limit", async () => {
    const s = await server();
    const blob = "y".repeat(MAX_JOB_CONFIG_BYTES - 100);
    const count = Math.ceil((2 * LIST_PAGE_BYTES) / blob.length) + 2;
    for (let i = 0; i < count; i++) {
      expect(
        (await s.api("POST", "/api/v1/jobs", { json: spec({ name: `j${i}`, config: { blob } }) })).status,
      ).toBe(200);
    }
    const first = JobListResponse.parse((await s.api("GET", "/api/v1/jobs?status=all&limit=1000")).json);
    expect(first.jobs.length).toBeLessThan(count);
    expect(first.jobs.length * blob.length).toBeLessThanOrEqual(LIST_PAGE_BYTES);
    expect(first.next_offset).toBe(first.jobs.length);
    const jobs = await new QueueClient({ url: s.url }).listJobs({ status: "all", limit: 1000 });
    expect(jobs.map((j) => j.name)).toEqual(Array.from({ length: count }, (_, i) => `j${count - 1 - i}`));
    const limited = await new QueueClient({ url: s.url }).listJobs({ status: "all", limit: 3 });
    expect(limited).toHaveLength(3);
  });

  it("answers 400 bad_path (not 500) for an upload whose file name is too long for the file system", async () => {
    const s = await server();
    const jobId = (await s.api("POST", "/api/v1/jobs", { json: spec() })).json.job_id as number;
    expect((await s.api("POST", "/api/v1/jobs/claim", { json: { worker_id: "w1" } })).json.job.id).toBe(
      jobId,
    );
    const query = "worker_id=w1&attempt=1";
    const long = await s.api("PUT", `/api/v1/runs/job-${jobId}/files/${"n".repeat(5000)}?${query}`, {
      body: "x",
    });
    expect(errorOf(long)).toMatchObject({ status: 400, code: "bad_path" });
    const deep = `${"d/".repeat(3000)}f`;
    const tooDeep = await s.api("PUT", `/api/v1/runs/job-${jobId}/files/${deep}?${query}`, { body: "x" });
    expect(errorOf(tooDeep)).toMatchObject({ status: 400, code: "bad_path" });
    expect(s.logs).toEqual([]);
  });
});

describe("idempotency and GPU ids", () => {
  it("answers 409 idempotency_conflict when a key is reused with a different body, and the old job for the same body", async () => {
    const s = await server();
    const first = await s.api("POST", "/api/v1/jobs", { json: spec({ idempotency_key: "k", name: "a" }) });
    expect(first.status).toBe(200);
    const same = await s.api("POST", "/api/v1/jobs", { json: spec({ idempotency_key: "k", name: "a" }) });
    expect(same.json).toMatchObject({ job_id: first.json.job_id, created: false });
    const other = await s.api("POST", "/api/v1/jobs", {
      json: spec({ idempotency_key: "k", name: "a", command_argv: ["rm", "-rf", "/"] }),
    });
    const error = errorOf(other);
    expect(error).toMatchObject({ status: 409, code: "idempotency_conflict" });
    expect(error.detail).toContain("command_argv");
    const listed = JobListResponse.parse((await s.api("GET", "/api/v1/jobs?status=all")).json);
    expect(listed.jobs).toHaveLength(1);
  });

  it("refuses claims and registrations that repeat a GPU id", async () => {
    const s = await server();
    await s.api("POST", "/api/v1/jobs", { json: spec({ gpus: 2 }) });
    const claim = await s.api("POST", "/api/v1/jobs/claim", { json: { worker_id: "w1", free_gpus: [0, 0] } });
    const error = errorOf(claim);
    expect(error).toMatchObject({ status: 422, code: "invalid_body" });
    expect(error.detail).toContain("free_gpus");
    const reg = await s.api("POST", "/api/v1/workers/register", {
      json: { worker_id: "w1", hostname: "h", gpu_ids: [1, 1] },
    });
    expect(errorOf(reg)).toMatchObject({ status: 422, code: "invalid_body" });
    // Nothing was claimed by the refused claim.
    const job = JobListResponse.parse((await s.api("GET", "/api/v1/jobs?status=all")).json).jobs[0];
    expect(job?.status).toBe("queued");
  });
});
