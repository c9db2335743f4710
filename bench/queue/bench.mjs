#!/usr/bin/env node
// The job queue's speed: claims per second with 8 worker processes claiming over HTTP from a
// `runctl server`, and submit→running latency (server timestamps: created_at → started_at) while
// jobs arrive at a steady rate. Baseline, in the same run: the same QueueStore (the same claim
// query, the same SQLite file settings) called in-process, without HTTP. The figures are ratios.
// Usage: node bench/queue/bench.mjs [--jobs 2000] [--workers 8] [--latency-jobs 500] [--rate 100]
//          [--idle-ms 20] [--json]
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const trackerDist = join(root, "packages", "tracker", "dist");
const serverDist = join(root, "packages", "queue-server", "dist");
const runctlBin = join(root, "packages", "cli", "bin", "run.js");

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "2000" },
    workers: { type: "string", default: "8" },
    "latency-jobs": { type: "string", default: "500" },
    rate: { type: "string", default: "100" },
    "idle-ms": { type: "string", default: "20" },
    json: { type: "boolean", default: false },
  },
});
const jobs = Number(values.jobs);
const workers = Number(values.workers);
const latencyJobs = Number(values["latency-jobs"]);
const rate = Number(values.rate);
for (const [k, v] of Object.entries({ jobs, workers, latencyJobs, rate })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k}: ${v}`);
}
if (!existsSync(join(serverDist, "queue-store.js"))) {
  process.stderr.write("queue bench: build first (npm run build)\n");
  process.exit(1);
}
const { QueueClient } = await import(pathToFileURL(join(trackerDist, "mod.js")).href);
const { QueueStore } = await import(pathToFileURL(join(serverDist, "mod.js")).href);
const log = (line) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};
const tmp = mkdtempSync(join(tmpdir(), "runctl-bench-queue-"));
const spec = (i) => ({ command_argv: ["true"], workdir: "/tmp", name: `b-${i}` });
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

// --- baseline: the store in-process ---
function baseline() {
  const store = new QueueStore(join(tmp, "baseline"));
  try {
    store.registerWorker({ worker_id: "w", hostname: "bench" });
    for (let i = 0; i < jobs; i++) store.createJob(spec(i));
    const t0 = process.hrtime.bigint();
    let claimed = 0;
    for (;;) {
      const job = store.claimJob({ worker_id: "w", lease_seconds: 60 });
      if (!job) break;
      store.complete(job.id, { worker_id: "w", attempt: job.attempt, exit_code: 0 });
      claimed++;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const latencies = [];
    for (let i = 0; i < latencyJobs; i++) {
      const s = process.hrtime.bigint();
      store.createJob(spec(i));
      const job = store.claimJob({ worker_id: "w", lease_seconds: 60 });
      latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
      store.complete(job.id, { worker_id: "w", attempt: job.attempt, exit_code: 0 });
    }
    latencies.sort((a, b) => a - b);
    return {
      claimsPerSecond: claimed / seconds,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
    };
  } finally {
    store.close();
  }
}

// --- the server, over HTTP, with worker processes ---
async function startServer() {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(
    process.execPath,
    [runctlBin, "server", "--port", "0", "--data-dir", join(tmp, "server")],
    {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  for (let i = 0; i < 300 && !/listening on (\S+)/.test(stderr); i++) await sleep(50);
  const url = /listening on (\S+)/.exec(stderr)?.[1];
  if (!url) throw new Error(`runctl server did not start:\n${stderr}`);
  return { url, child };
}

function startClaimers(url) {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return Array.from({ length: workers }, (_, i) => {
    const child = spawn(
      process.execPath,
      [join(here, "claimer.mjs"), trackerDist, url, `bench-${i}`, values["idle-ms"]],
      { env, stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    const exited = new Promise((r) => child.on("close", () => r(Number(out.trim()) || 0)));
    return { child, exited };
  });
}

async function untilCompleted(client, n) {
  for (;;) {
    const s = await client.getStatus();
    if (s.completed >= n) return;
    await sleep(20);
  }
}

async function overHttp() {
  const server = await startServer();
  const client = new QueueClient({ url: server.url });
  try {
    for (let i = 0; i < jobs; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, jobs - i) }, (_, k) => client.submitJob(spec(i + k))),
      );
    }
    const claimers = startClaimers(server.url);
    const t0 = process.hrtime.bigint();
    await untilCompleted(client, jobs);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

    // Latency: jobs arrive one by one at --rate per second while the workers poll.
    const ids = [];
    const start = Date.now();
    for (let i = 0; i < latencyJobs; i++) {
      const due = start + (i * 1000) / rate;
      if (due > Date.now()) await sleep(due - Date.now());
      ids.push((await client.submitJob(spec(i))).job_id);
    }
    await untilCompleted(client, jobs + latencyJobs);
    for (const c of claimers) c.child.kill("SIGTERM");
    const perWorker = await Promise.all(claimers.map((c) => c.exited));
    const latencies = [];
    for (const id of ids) {
      const job = await client.getJob(id);
      latencies.push(Date.parse(job.started_at) - Date.parse(job.created_at));
    }
    latencies.sort((a, b) => a - b);
    return {
      claimsPerSecond: jobs / seconds,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      perWorker,
    };
  } finally {
    server.child.kill("SIGTERM");
  }
}

try {
  const base = baseline();
  log(
    `baseline (QueueStore in-process): ${base.claimsPerSecond.toFixed(0)} claims/s (claim+complete); submit→claimed p50 ${base.p50.toFixed(3)} ms, p99 ${base.p99.toFixed(3)} ms`,
  );
  const http = await overHttp();
  log(
    `runctl server, ${workers} worker processes over HTTP: ${http.claimsPerSecond.toFixed(0)} claims/s (claim+complete; per worker ${http.perWorker.join(" ")})`,
  );
  log(
    `submit→running at ${rate} jobs/s (server timestamps, ms resolution): p50 ${http.p50} ms, p99 ${http.p99} ms`,
  );
  log(`ratio: claims/s ${(base.claimsPerSecond / http.claimsPerSecond).toFixed(1)}x below in-process`);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ baseline: base, http, workers, jobs, latencyJobs, rate }, null, 2)}\n`,
    );
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
