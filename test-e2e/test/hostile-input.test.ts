// Replays of the hardening issue's attacks on one machine, with real
// processes: the `runctl server` process, the CLI, the Python client.
//  - finding 4: JSON nested thousands of levels deep (new and already stored);
//  - finding 5: one metrics line of 100 MB, read by `show` and by 8 concurrent
//    GET …/metrics;
//  - finding 6: hundreds of jobs with 1 MiB configs listed at once.
// Where memory was the symptom, the processes' peak RSS (VmHWM) is asserted
// against generous bounds; nothing here measures time.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { link, mkdir, open, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JobServerProcess, startJobServer } from "../src/job-server.ts";
import { type CliResult, RUNCTL_BIN, runctlJson, type Workspace, workspace } from "../src/runctl-cli.ts";

const require = createRequire(import.meta.url);
const CLIENT = dirname(require.resolve("@runctl/client-python/package.json"));
const MiB = 1024 * 1024;

let ws: Workspace;
let server: JobServerProcess;
let dataDir: string;

beforeAll(async () => {
  ws = await workspace();
  dataDir = join(ws.home, "queue");
  server = await startJobServer(ws, dataDir);
});
afterAll(async () => {
  await server?.stop();
  await rm(ws.home, { recursive: true, force: true });
});

/** Peak resident set of a live process, in bytes (VmHWM only grows). */
function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

/** Runs the CLI, sampling its peak RSS until it exits (the last sample is within 20 ms of the end). */
function runctlMeasured(args: string[]): Promise<CliResult & { peak: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUNCTL_BIN, ...args], {
      cwd: ws.project,
      env: ws.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let peak = 0;
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setInterval(() => {
      try {
        const now = peakRss(child.pid as number);
        // A zombie (exited, not yet reaped) has no VmHWM line.
        if (Number.isFinite(now)) peak = Math.max(peak, now);
      } catch {
        // exited between two samples
      }
    }, 20);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, stdout, stderr, peak });
    });
  });
}

/**
 * A Python snippet run with the client on the path; it prints one JSON
 * document. Asynchronous on purpose: a blocked event loop would miss the
 * server closing idle keep-alive sockets, and fetch would then reuse a dead one.
 */
function python(code: string, args: string[] = []): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn("/usr/bin/python3", ["-c", code, ...args], {
      env: { PATH: process.env.PATH, PYTHONPATH: CLIENT, RUNCTL_SERVER_URL: server.url },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`python failed (${code}):\n${stdout}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

/** Rewrites stored rows as an older server without the limits would have kept them. */
async function sqlite(sql: string, params: unknown[] = []): Promise<void> {
  await python(
    "import json, sqlite3, sys\n" +
      "db = sqlite3.connect(sys.argv[1], timeout=30)\n" +
      "db.execute(sys.argv[2], json.loads(sys.argv[3]))\n" +
      "db.commit()\nprint('{}')",
    [join(dataDir, "queue.db"), sql, JSON.stringify(params)],
  );
}

async function post(path: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function submit(extra: Record<string, unknown> = {}): Promise<number> {
  const r = await post("/jobs", JSON.stringify({ command_argv: ["true"], workdir: ws.project, ...extra }));
  expect(r.status).toBe(200);
  return r.json.job_id as number;
}

const nested = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${"}".repeat(depth - 1)}`;

describe("finding 4: deeply nested JSON", () => {
  it("is refused at every boundary with the limit named, and a stored one no longer crashes its readers", async () => {
    for (const depth of [1000, 3000, 100_000]) {
      const r = await post("/jobs", `{"command_argv":["true"],"workdir":"/w","config":${nested(depth)}}`);
      expect(r.status).toBe(422);
      expect(r.json).toMatchObject({ error_code: "json_too_deep" });
      expect(r.json.detail).toContain("64 levels");
    }

    const cli = await runctlJson(
      ["submit", "--server", server.url, "--config", nested(3000), "--", "true"],
      ws,
    );
    expect(cli.code).toBe(1);
    expect(cli.doc).toMatchObject({ success: false, error: { code: "bad_run_config" } });
    expect(JSON.stringify(cli.doc)).toContain("nested more than 64 levels");

    const refused = await python(
      "import json, runctl\n" +
        "config = {}\n" +
        "for _ in range(3000): config = {'a': config}\n" +
        "try:\n    runctl.Client().submit_job(['true'], config=config)\n    print(json.dumps(None))\n" +
        "except ValueError as e:\n    print(json.dumps(str(e)))",
    );
    expect(refused).toContain("nested more than 64 levels deep");

    // A job stored by an older server, before the limit: its readers refuse it clearly instead of overflowing.
    const id = await submit({ name: "deep" });
    await sqlite("UPDATE jobs SET config = ? WHERE id = ?", [nested(3000), id]);
    const jobs = await runctlJson(["jobs", "--server", server.url, "--status", "all"], ws);
    expect(jobs.code).toBe(1);
    expect(jobs.doc).toMatchObject({ success: false, error: { code: "json_too_deep" } });
    const watch = await runctlJson(["watch", "--server", server.url, "--once"], ws);
    expect(watch.doc).toMatchObject({ success: false, error: { code: "json_too_deep" } });
    expect(`${watch.stdout}${watch.stderr}`).not.toMatch(/Maximum call stack|RangeError/);
    const fromPython = await python(
      "import json, sys, runctl\n" +
        "try:\n    runctl.Client().get_job(int(sys.argv[1]))\n    print(json.dumps(None))\n" +
        "except runctl.ServerError as e:\n    print(json.dumps({'code': e.code, 'message': str(e)}))",
      [String(id)],
    );
    expect(fromPython).toMatchObject({ code: "json_too_deep" });
    expect(server.log()).not.toMatch(/RangeError|Maximum call stack|\n\s+at /);

    // Started again (an upgrade), the server repairs it: the config is dropped and the queued job fails, saying why.
    await server.stop();
    await server.start();
    expect(server.log()).toContain(
      `job ${id}: its stored config was nested more than 64 levels deep and was dropped`,
    );
    const after = await runctlJson(["job", String(id), "--server", server.url], ws);
    expect(after.doc).toMatchObject({ success: true, job: { status: "failed", config: null } });
    expect(JSON.stringify(after.doc)).toContain("nested more than 64 levels deep");
  });
});

describe("finding 5: one huge metrics line", () => {
  it("is skipped and reported by show and by the server, in bounded memory", async () => {
    const runId = "20261203-000000-5e5e5e";
    const runDir = join(ws.project, "runs", runId);
    await mkdir(runDir, { recursive: true });
    await writeFile(
      join(runDir, "meta.json"),
      JSON.stringify({
        id: runId,
        name: "huge",
        tags: [],
        started_at: "2026-12-03T00:00:00.000Z",
        status: "completed",
      }),
    );
    const metrics = join(runDir, "metrics.jsonl");
    const file = await open(metrics, "w");
    await file.write('{"_idx":0,"_timestamp":"2026-12-03T00:00:00Z","loss":1}\n{"_idx":1,"blob":"');
    const piece = Buffer.alloc(4 * MiB, "x");
    for (let i = 0; i < 25; i++) await file.write(piece);
    await file.write('"}\n{"_idx":2,"_timestamp":"2026-12-03T00:00:02Z","loss":0.5}\n');
    await file.close();

    const show = await runctlMeasured(["show", runId, "--json"]);
    expect(show.code).toBe(0);
    expect(show.peak).toBeGreaterThan(0);
    expect(JSON.parse(show.stdout).metrics).toMatchObject({ count: 2, last: { _idx: 2, loss: 0.5 } });
    expect(show.stderr).toContain("metrics.jsonl: skipped 1 line(s)");
    expect(show.stderr).toContain("longer than 1048576 bytes");
    // Before: 588 MB for this file (the line was re-joined per 1 MiB chunk).
    expect(show.peak).toBeLessThan(300 * MiB);

    // The same file as a run the server holds (the directory is the server's; uploads are tested elsewhere).
    const jobId = await submit({ name: "huge-metrics" });
    const claim = await post("/jobs/claim", JSON.stringify({ worker_id: "w1" }));
    expect((claim.json.job as { id: number }).id).toBe(jobId);
    const serverRun = join(dataDir, "runs", `job-${jobId}`);
    mkdirSync(serverRun, { recursive: true });
    await link(metrics, join(serverRun, "metrics.jsonl"));
    const answers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await fetch(`${server.url}/api/v1/runs/job-${jobId}/metrics`);
        return { status: res.status, body: (await res.json()) as { count: number; skipped: number } };
      }),
    );
    for (const a of answers) expect(a).toMatchObject({ status: 200, body: { count: 2, skipped: 1 } });
    const fromPython = await python(
      "import json, sys, runctl\nprint(json.dumps([m['_idx'] for m in runctl.Client().get_metrics(sys.argv[1])]))",
      [`job-${jobId}`],
    );
    expect(fromPython).toEqual([0, 2]);
    // Before: 1.5 GB for 8 readers of a 60 MB line.
    expect(peakRss(server.child.pid as number)).toBeLessThan(400 * MiB);
  });
});

describe("finding 6: listing many large jobs", () => {
  it("refuses configs over 256 KiB and lists legacy 1 MiB configs in pages, in bounded memory", async () => {
    const big = await post(
      "/jobs",
      JSON.stringify({ command_argv: ["true"], workdir: "/w", config: { blob: "y".repeat(MiB - 200) } }),
    );
    expect(big.status).toBe(422);
    expect(big.json.detail).toContain("262144 bytes (256 KiB)");

    const count = 150;
    for (let i = 0; i < count; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, (_, k) => submit({ name: `big-${i + k}`, tags: ["big"] })),
      );
    }
    // Stored before the cap: 1 MiB of config each, 150 MiB in all.
    await sqlite(
      "UPDATE jobs SET config = json_object('blob', substr(hex(zeroblob(524288)), 1, 1048000)) WHERE name LIKE 'big-%'",
    );

    const res = await fetch(`${server.url}/api/v1/jobs?status=all&limit=1000`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as { jobs: unknown[]; next_offset: number | null };
    expect(page.jobs.length).toBeGreaterThan(0);
    expect(page.jobs.length).toBeLessThan(count);
    expect(page.next_offset).toBe(page.jobs.length);

    const listed = await runctlMeasured([
      "jobs",
      "--server",
      server.url,
      "--status",
      "all",
      "--limit",
      "1000",
    ]);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split("\n").filter((l) => / big-\d+ /.test(l))).toHaveLength(count);
    // Python follows the pages too (a page holds about 4 of these jobs).
    const fromPython = await python(
      "import json, runctl\nprint(json.dumps([j['name'] for j in runctl.Client().list_jobs(status='all', limit=20)]))",
    );
    // The 20 newest (submitted 10 at a time, so in any order within a batch).
    expect((fromPython as string[]).sort()).toEqual(
      Array.from({ length: 20 }, (_, i) => `big-${count - 20 + i}`).sort(),
    );
    // Before: one response of all of them, about 3 MB of server memory per job (600 jobs: 1.9 GB, then a
    // 500 past V8's string limit); now pages of 4 MiB.
    expect(peakRss(server.child.pid as number)).toBeLessThan(400 * MiB);
    expect(server.log()).not.toMatch(/RangeError|Invalid string length/);
  });
});
