#!/usr/bin/env node
// Runner tasks per second: a trivial Python function mapped over --tasks inputs with
// runctl.Runner, on `runctl server` and --workers `runctl worker` processes (warm executors),
// and submit→result latency per task (server timestamps: created_at → finished_at). Baseline,
// in the same run and on the same server: bare claims, the same number of worker processes
// claiming and completing queued jobs over HTTP without running anything (bench/queue's
// claimer). The figure that matters is the ratio.
// Usage: node bench/runner/bench.mjs [--tasks 1000] [--workers 2] [--python /usr/bin/python3] [--json]
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const trackerDist = join(root, "packages", "tracker", "dist");
const runctlBin = join(root, "packages", "cli", "bin", "run.js");
const clientDir = join(root, "packages", "client-python");

const { values } = parseArgs({
  options: {
    tasks: { type: "string", default: "1000" },
    workers: { type: "string", default: "2" },
    python: { type: "string", default: "/usr/bin/python3" },
    json: { type: "boolean", default: false },
  },
});
const tasks = Number(values.tasks);
const workers = Number(values.workers);
if (!existsSync(join(trackerDist, "mod.js"))) {
  process.stderr.write("runner bench: build first (npm run build)\n");
  process.exit(1);
}
const { QueueClient } = await import(pathToFileURL(join(trackerDist, "mod.js")).href);
const log = (line) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const tmp = mkdtempSync(join(tmpdir(), "runctl-bench-runner-"));
const env = {
  ...process.env,
  XDG_DATA_HOME: join(tmp, "data"),
  XDG_CACHE_HOME: join(tmp, "cache"),
  RUNCTL_LOCAL_PYTHON: values.python,
  RUNCTL_RUNNER_STORE: `file://${join(tmp, "store")}`,
  RUNCTL_BIN: `${process.execPath} ${runctlBin}`,
  PYTHONPATH: clientDir,
};
delete env.NODE_EXTRA_CA_CERTS;
const children = [];

function start(args, opts = {}) {
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    err += d;
  });
  const exited = new Promise((r) => child.on("close", () => r({ out, err })));
  return { child, exited, err: () => err };
}

async function bareClaims(url, client) {
  for (let i = 0; i < tasks; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, tasks - i) }, (_, k) =>
        client.submitJob({ command_argv: ["true"], workdir: "/tmp", name: `bare-${i + k}` }),
      ),
    );
  }
  const claimers = Array.from({ length: workers }, (_, i) =>
    start([join(here, "..", "queue", "claimer.mjs"), trackerDist, url, `bare-${i}`, "20"]),
  );
  const t0 = process.hrtime.bigint();
  for (;;) {
    if ((await client.getStatus()).completed >= tasks) break;
    await sleep(10);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const c of claimers) c.child.kill("SIGTERM");
  await Promise.all(claimers.map((c) => c.exited));
  return { perSecond: tasks / seconds, seconds };
}

async function runnerTasks(url) {
  const project = join(tmp, "project");
  mkdirSync(project);
  writeFileSync(join(project, "bench_mod.py"), "def noop(x):\n    return x\n");
  copyFileSync(join(here, "tasks.py"), join(project, "tasks.py"));
  for (let i = 0; i < workers; i++) {
    start([runctlBin, "worker", "--server", url, "--data-dir", join(tmp, `worker-${i}`), "--poll", "50ms"]);
  }
  const python = spawn(values.python, [join(project, "tasks.py"), String(tasks)], {
    cwd: project,
    env: { ...env, RUNCTL_SERVER_URL: url },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  python.stdout.on("data", (d) => {
    out += d;
  });
  const code = await new Promise((r) => python.on("close", r));
  if (code !== 0) throw new Error(`tasks.py exited with ${code}`);
  const result = JSON.parse(out.trim().split("\n").pop());
  const latencies = [...result.latencies_ms].sort((a, b) => a - b);
  return {
    perSecond: tasks / result.seconds,
    seconds: result.seconds,
    submitSeconds: result.submit_seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

try {
  const server = start([runctlBin, "server", "--port", "0", "--data-dir", join(tmp, "server")]);
  for (let i = 0; i < 300 && !/listening on (\S+)/.test(server.err()); i++) await sleep(50);
  const url = /listening on (\S+)/.exec(server.err())?.[1];
  if (!url) throw new Error(`runctl server did not start:\n${server.err()}`);
  const client = new QueueClient({ url });
  const bare = await bareClaims(url, client);
  log(`bare claims (${workers} claimer processes, claim+complete over HTTP): ${bare.perSecond.toFixed(0)}/s`);
  const runner = await runnerTasks(url);
  log(
    `runner tasks (${workers} runctl workers, warm executors): ${runner.perSecond.toFixed(0)} tasks/s (${tasks} in ${runner.seconds.toFixed(2)} s, submit ${runner.submitSeconds.toFixed(2)} s)`,
  );
  log(
    `submit→result (server created_at→finished_at): p50 ${runner.p50.toFixed(0)} ms, p99 ${runner.p99.toFixed(0)} ms`,
  );
  log(
    `ratio: bare claims/s ÷ tasks/s = ${(bare.perSecond / runner.perSecond).toFixed(2)}× (${cpus().length} CPUs)`,
  );
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ tasks, workers, bare, runner, cpus: cpus().length }, null, 2)}\n`,
    );
  }
} finally {
  for (const c of children) c.kill("SIGTERM");
  await sleep(500);
  rmSync(tmp, { recursive: true, force: true });
}
