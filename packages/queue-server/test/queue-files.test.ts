// Run files on the job server: uploads by the attempt's worker, run details
// from the uploaded meta.json, metrics, the artifact list and downloads
// (ranges), and every way of asking for a file outside the run directory.
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FileUploadResponse, RunArtifactsResponse, RunMetricsResponse, RunResponse } from "@runctl/tracker";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers.ts";
import { rawRequest, startTestServer, type TestServer } from "./queue-helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
let dirCount = 0;
const servers: TestServer[] = [];
const SECRET = "TOP-SECRET-never-served-7f3a";

beforeAll(async () => {
  root = await tempDir("queue-files");
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.server.close();
});
afterAll(async () => {
  await root.cleanup();
});

interface Running {
  s: TestServer;
  jobId: number;
  runId: string;
  runDir: string;
  upload(path: string, body: string | Uint8Array, query?: string): ReturnType<TestServer["api"]>;
}

/** A server with one job claimed by worker w1 (attempt 1). */
async function runningJob(options: Parameters<typeof startTestServer>[1] = {}): Promise<Running> {
  dirCount += 1;
  const dataDir = join(root.path, `d${dirCount}`);
  const s = await startTestServer(dataDir, options);
  servers.push(s);
  const created = await s.api("POST", "/api/v1/jobs", {
    json: {
      command_argv: ["python", "t.py"],
      workdir: "/w",
      name: "files",
      tags: ["queue"],
      config: { lr: 1 },
    },
  });
  const jobId = created.json.job_id as number;
  await s.api("POST", "/api/v1/workers/register", { json: { worker_id: "w1", hostname: "host-1" } });
  expect((await s.api("POST", "/api/v1/jobs/claim", { json: { worker_id: "w1" } })).json.job.id).toBe(jobId);
  const runId = `job-${jobId}`;
  writeFileSync(join(dataDir, "secret.txt"), SECRET);
  writeFileSync(join(dataDir, "runs", "secret.txt"), SECRET);
  return {
    s,
    jobId,
    runId,
    runDir: join(dataDir, "runs", runId),
    upload: (path, body, query = "worker_id=w1&attempt=1") =>
      s.api("PUT", `/api/v1/runs/${runId}/files/${path}?${query}`, { body }),
  };
}

const BYTES = Uint8Array.from({ length: 100 }, (_, i) => i);

describe("uploads", () => {
  it("writes at an offset (resending a chunk is harmless) and refuses a gap with the current size", async () => {
    const { upload, runDir } = await runningJob();
    expect(
      FileUploadResponse.parse((await upload("output.log", "hello", "worker_id=w1&attempt=1&offset=0")).json),
    ).toEqual({
      path: "output.log",
      size: 5,
    });
    expect((await upload("output.log", " world", "worker_id=w1&attempt=1&offset=5")).json.size).toBe(11);
    expect((await upload("output.log", " world", "worker_id=w1&attempt=1&offset=5")).json.size).toBe(11);
    expect(readFileSync(join(runDir, "output.log"), "utf8")).toBe("hello world");
    const gap = await upload("output.log", "!", "worker_id=w1&attempt=1&offset=20");
    expect(gap.status).toBe(409);
    expect(gap.json).toMatchObject({ error_code: "upload_gap", size: 11 });
    expect(gap.json.detail).toContain("11");
    // Cutting back: a shorter resend from an earlier offset leaves exactly what was sent.
    expect((await upload("output.log", "HE", "worker_id=w1&attempt=1&offset=0")).json.size).toBe(2);
    expect(readFileSync(join(runDir, "output.log"), "utf8")).toBe("HE");
  });

  it("replaces a file atomically without an offset, creating directories, leaving no temp files", async () => {
    const { upload, runDir } = await runningJob();
    expect((await upload("artifacts/ckpt/model.bin", "v1")).status).toBe(200);
    expect((await upload("artifacts/ckpt/model.bin", "version-2")).json).toEqual({
      path: "artifacts/ckpt/model.bin",
      size: 9,
    });
    expect(readFileSync(join(runDir, "artifacts", "ckpt", "model.bin"), "utf8")).toBe("version-2");
    expect(readdirSync(join(runDir, "artifacts", "ckpt"))).toEqual(["model.bin"]);
  });

  it("stages a large file's chunks out of sight and puts the whole file in place on commit", async () => {
    const { s, upload, runDir, runId } = await runningJob();
    expect((await upload("artifacts/model.pt", "old")).status).toBe(200);
    const q = "worker_id=w1&attempt=1&part=0123abcd";
    expect((await upload("artifacts/model.pt", "AAAA", `${q}&offset=0`)).json.size).toBe(4);
    expect((await upload("artifacts/model.pt", "BBBB", `${q}&offset=4`)).json.size).toBe(8);
    // Until the commit, readers see the previous file and the listing shows no part file.
    expect(readFileSync(join(runDir, "artifacts", "model.pt"), "utf8")).toBe("old");
    const listed = await s.api("GET", `/api/v1/runs/${runId}/artifacts`);
    expect(listed.json.artifacts.map((a: { path: string }) => a.path)).toEqual(["artifacts/model.pt"]);
    expect((await upload("artifacts/model.pt", "", `${q}&commit=1`)).json).toEqual({
      path: "artifacts/model.pt",
      size: 8,
    });
    expect(readFileSync(join(runDir, "artifacts", "model.pt"), "utf8")).toBe("AAAABBBB");
    expect(readdirSync(join(runDir, "artifacts"))).toEqual(["model.pt"]);
    // A commit with nothing staged, and a part without offset or commit, are refused.
    expect((await upload("artifacts/model.pt", "", `${q}&commit=1`)).json).toMatchObject({
      error_code: "upload_gap",
    });
    expect((await upload("artifacts/model.pt", "x", q)).json).toMatchObject({ error_code: "bad_request" });
    expect(
      (await upload("artifacts/model.pt", "x", "worker_id=w1&attempt=1&part=nothex!&offset=0")).status,
    ).toBe(400);
  });

  it("accepts only the worker holding the run's current attempt", async () => {
    const { s, upload, jobId, runId } = await runningJob();
    const refused = async (query: string, status: number, code: string) => {
      const answer = await upload("output.log", "x", query);
      expect({ status: answer.status, code: answer.json.error_code }).toEqual({ status, code });
    };
    await refused("worker_id=w2&attempt=1", 409, "lease_lost");
    await refused("worker_id=w1&attempt=2", 409, "lease_lost");
    await refused("attempt=1", 400, "bad_request");
    await refused("worker_id=w1&offset=-1", 400, "bad_request");
    const unknown = await s.api("PUT", "/api/v1/runs/job-999/files/output.log?worker_id=w1", { body: "x" });
    expect(unknown.json.error_code).toBe("run_not_found");
    await s.api("POST", `/api/v1/jobs/${jobId}/complete`, {
      json: { worker_id: "w1", attempt: 1, exit_code: 0 },
    });
    await refused("worker_id=w1&attempt=1", 409, "lease_lost");
    expect(existsSync(join(s.server.store.dataDir, "runs", runId, "output.log"))).toBe(false);
  });

  it("refuses a request without a body (411), over the limit (413), and paths that escape or collide", async () => {
    const { s, upload, runId, runDir } = await runningJob({ maxUploadBytes: 1024 });
    const noBody = await rawRequest(
      s.server.port,
      `PUT /api/v1/runs/${runId}/files/output.log?worker_id=w1 HTTP/1.1`,
    );
    expect(noBody.status).toBe(411);
    expect(JSON.parse(noBody.body.toString()).error_code).toBe("length_required");

    const big = await upload("big.bin", new Uint8Array(4096));
    expect({ status: big.status, code: big.json.error_code }).toEqual({
      status: 413,
      code: "body_too_large",
    });
    const chunk = "y".repeat(512);
    const chunked = await rawRequest(
      s.server.port,
      `PUT /api/v1/runs/${runId}/files/stream.bin?worker_id=w1 HTTP/1.1\r\nTransfer-Encoding: chunked`,
      `${Array.from({ length: 8 }, () => `200\r\n${chunk}\r\n`).join("")}0\r\n\r\n`,
    );
    expect(chunked.status).toBe(413);
    expect(existsSync(join(runDir, "big.bin")) || existsSync(join(runDir, "stream.bin"))).toBe(false);
    expect(readdirSync(runDir)).toEqual([]); // no temp file left behind

    // Raw requests: fetch would collapse `..` and `%2e%2e` before sending.
    for (const path of [
      "../../escape.txt",
      "..%2f..%2fescape.txt",
      "%2e%2e/escape.txt",
      "a/./b",
      "%2fescape.txt",
      "a%5cb",
      "a%00b",
    ]) {
      const answer = await rawRequest(
        s.server.port,
        `PUT /api/v1/runs/${runId}/files/${path}?worker_id=w1 HTTP/1.1\r\nContent-Length: 1`,
        "x",
      );
      const code = JSON.parse(answer.body.toString()).error_code;
      expect({ path, status: answer.status, code }).toEqual({ path, status: 400, code: "bad_path" });
    }
    expect(existsSync(join(s.server.store.dataDir, "escape.txt"))).toBe(false);
    expect(existsSync(join(s.server.store.dataDir, "runs", "escape.txt"))).toBe(false);

    expect((await upload("file", "x")).status).toBe(200);
    const underFile = await upload("file/child", "x");
    expect({ status: underFile.status, code: underFile.json.error_code }).toEqual({
      status: 400,
      code: "bad_path",
    });
    expect((await s.api("GET", "/health")).status).toBe(200);
  });
});

describe("run details and metrics", () => {
  it("reads summary, tags and duration from the uploaded meta.json and survives a torn one", async () => {
    const { s, upload, runId } = await runningJob();
    const before = RunResponse.parse((await s.api("GET", `/api/v1/runs/${runId}`)).json);
    expect(before).toMatchObject({
      id: runId,
      status: "running",
      name: "files",
      summary: null,
      config: { lr: 1 },
      hostname: "host-1",
    });

    const meta = {
      id: runId,
      name: "files",
      tags: ["from-script"],
      started_at: "2030-01-01T00:00:00.000Z",
      finished_at: "2030-01-01T00:01:30.000Z",
      status: "completed",
      summary: { loss: 0.25, best: "NaN-free" },
    };
    expect((await upload("meta.json", JSON.stringify(meta))).status).toBe(200);
    expect((await upload("config.json", JSON.stringify({ lr: 0.5, layers: 4 }))).status).toBe(200);
    const after = RunResponse.parse((await s.api("GET", `/api/v1/runs/${runId}`)).json);
    expect(after).toMatchObject({
      summary: { loss: 0.25, best: "NaN-free" },
      tags: ["queue", "from-script"],
      duration_seconds: 90,
      config: { lr: 0.5, layers: 4 },
      status: "running", // the queue's word, not the file's
    });

    expect((await upload("meta.json", '{"id": "job-1", "summ')).status).toBe(200);
    const torn = await s.api("GET", `/api/v1/runs/${runId}`);
    expect(torn.status).toBe(200);
    expect(torn.json.summary).toBeNull();
    expect((await s.api("GET", "/api/v1/runs/job-404")).json.error_code).toBe("run_not_found");
    expect((await rawRequest(s.server.port, "GET /api/v1/runs/.. HTTP/1.1")).status).toBe(400);
  });

  it("serves metrics from a cursor", async () => {
    const { s, upload, runId } = await runningJob();
    const lines = [0, 1, 2].map((i) =>
      JSON.stringify({ _idx: i, _timestamp: 1.5 + i, step: i, loss: 1 / (i + 1) }),
    );
    await upload("metrics.jsonl", `${lines.join("\n")}\n{"_idx": 3, "torn`, "worker_id=w1&offset=0");
    const all = RunMetricsResponse.parse((await s.api("GET", `/api/v1/runs/${runId}/metrics`)).json);
    expect(all).toMatchObject({ count: 3, cursor: 3 });
    const newer = RunMetricsResponse.parse(
      (await s.api("GET", `/api/v1/runs/${runId}/metrics?since=2`)).json,
    );
    expect(newer.metrics).toEqual([{ _idx: 2, _timestamp: 3.5, step: 2, loss: 1 / 3 }]);
    expect((await s.api("GET", `/api/v1/runs/${runId}/metrics?since=x`)).json.error_code).toBe("bad_request");
  });
});

describe("artifacts", () => {
  async function withFiles() {
    const running = await runningJob();
    const { upload } = running;
    await upload("artifacts/model.bin", BYTES);
    await upload("output.log", "line\n");
    await upload("metrics.jsonl", '{"_idx":0,"_timestamp":1}\n');
    await upload("artifacts/nested/deep/notes.txt", "n");
    return running;
  }

  it("lists every file of the run directory, sorted, without following symlinks", async () => {
    const { s, runId, runDir } = await withFiles();
    symlinkSync(join(runDir, "..", "..", "secret.txt"), join(runDir, "artifacts", "link.txt"));
    symlinkSync(join(runDir, "..", ".."), join(runDir, "artifacts", "dirlink"));
    const listed = RunArtifactsResponse.parse((await s.api("GET", `/api/v1/runs/${runId}/artifacts`)).json);
    expect(listed.artifacts.map((a) => [a.path, a.size])).toEqual([
      ["artifacts/model.bin", 100],
      ["artifacts/nested/deep/notes.txt", 1],
      ["metrics.jsonl", 26],
      ["output.log", 5],
    ]);
    expect(listed.count).toBe(4);
    expect(Number.isNaN(Date.parse(listed.artifacts[0]?.modified ?? ""))).toBe(false);
  });

  it("streams a file with its type, length and disposition, and serves single byte ranges", async () => {
    const { s, runId } = await withFiles();
    const base = `/api/v1/runs/${runId}/artifacts`;
    const whole = await fetch(`${s.url}${base}/artifacts/model.bin`);
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer())).toEqual(Buffer.from(BYTES));
    expect(
      Object.fromEntries(
        ["content-type", "content-length", "accept-ranges", "content-disposition"].map((h) => [
          h,
          whole.headers.get(h),
        ]),
      ),
    ).toEqual({
      "content-type": "application/octet-stream",
      "content-length": "100",
      "accept-ranges": "bytes",
      "content-disposition": `attachment; filename="model.bin"; filename*=UTF-8''model.bin`,
    });
    expect((await fetch(`${s.url}${base}/output.log`)).headers.get("content-type")).toBe(
      "text/plain; charset=utf-8",
    );
    expect((await fetch(`${s.url}${base}/metrics.jsonl`)).headers.get("content-type")).toBe(
      "application/x-ndjson",
    );

    const range = async (header: string) => {
      const res = await fetch(`${s.url}${base}/artifacts/model.bin`, { headers: { range: header } });
      return {
        status: res.status,
        contentRange: res.headers.get("content-range"),
        body: [...new Uint8Array(await res.arrayBuffer())],
      };
    };
    expect(await range("bytes=10-19")).toEqual({
      status: 206,
      contentRange: "bytes 10-19/100",
      body: [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
    });
    expect(await range("bytes=-3")).toEqual({
      status: 206,
      contentRange: "bytes 97-99/100",
      body: [97, 98, 99],
    });
    expect(await range("bytes=98-")).toEqual({
      status: 206,
      contentRange: "bytes 98-99/100",
      body: [98, 99],
    });
    expect(await range("bytes=95-1000")).toMatchObject({ status: 206, contentRange: "bytes 95-99/100" });
    const unsatisfiable = await range("bytes=100-");
    expect({ status: unsatisfiable.status, contentRange: unsatisfiable.contentRange }).toEqual({
      status: 416,
      contentRange: "bytes */100",
    });
    expect((await range("bytes=0-1,5-6")).status).toBe(200);
    expect((await range("bytes=0-1,5-6")).body).toHaveLength(100);
    expect((await fetch(`${s.url}${base}/artifacts/missing.bin`)).status).toBe(404);
    expect((await fetch(`${s.url}${base}/artifacts`)).status).toBe(404); // a directory is not a file
  });

  it("never serves a file outside the run directory, however the path is spelled", async () => {
    const { s, runId, runDir } = await withFiles();
    mkdirSync(join(runDir, "sub"), { recursive: true });
    symlinkSync(join(runDir, "..", "..", "secret.txt"), join(runDir, "sub", "link.txt"));
    symlinkSync(join(runDir, "..", ".."), join(runDir, "sub", "dirlink"));
    const base = `/api/v1/runs/${runId}/artifacts`;
    const paths = [
      `${base}/../../secret.txt`,
      `${base}/../../../secret.txt`,
      `${base}/artifacts/../../../secret.txt`,
      `${base}/./output.log`,
      `${base}/..%2f..%2fsecret.txt`,
      `${base}/%2e%2e%2f%2e%2e%2fsecret.txt`,
      `${base}/%2E%2E/%2E%2E/secret.txt`,
      `${base}/%2e%2e%5c%2e%2e%5csecret.txt`,
      `${base}/%2f${encodeURIComponent(join(root.path))}%2fsecret.txt`,
      `${base}/output.log%00.txt`,
      `${base}/artifacts//model.bin`,
      `${base}/%252e%252e%252f%252e%252e%252fsecret.txt`,
      `${base}/sub/link.txt`,
      `${base}/sub/dirlink/secret.txt`,
      "/api/v1/runs/..%2f..%2f/artifacts/secret.txt",
      "/api/v1/runs/../artifacts/secret.txt",
      "/api/v1/runs/%2e%2e/artifacts/secret.txt",
    ];
    for (const path of paths) {
      const answer = await rawRequest(s.server.port, `GET ${path} HTTP/1.1`);
      expect({ path, status: answer.status >= 400 && answer.status < 500 }).toEqual({ path, status: true });
      expect(answer.body.toString("latin1")).not.toContain(SECRET);
    }
    const raw = await rawRequest(s.server.port, `GET ${base}/../../secret.txt HTTP/1.1`);
    expect({ status: raw.status, code: JSON.parse(raw.body.toString()).error_code }).toEqual({
      status: 400,
      code: "bad_path",
    });
    const encoded = await rawRequest(s.server.port, `GET ${base}/%2e%2e%2f%2e%2e%2fsecret.txt HTTP/1.1`);
    expect(encoded.status).toBe(400);
    const escapingLink = await rawRequest(s.server.port, `GET ${base}/sub/link.txt HTTP/1.1`);
    expect(escapingLink.status).toBe(404);
    // A file inside the run directory is still served through the raw path.
    expect((await rawRequest(s.server.port, `GET ${base}/output.log HTTP/1.1`)).body.toString()).toBe(
      "line\n",
    );
  });
});
