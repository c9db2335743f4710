#!/usr/bin/env node
// CLI start-up cost: wall time of `node packages/cli/bin/run.js --version` against `node -e 0`
// measured in the same script, so the figure that matters is the ratio, not milliseconds that
// depend on the machine. Usage: node bench/cli-startup.mjs [--runs N] [--json]
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const WARMUPS = 2;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const runJs = join(root, "packages", "cli", "bin", "run.js");
const distDir = join(root, "packages", "cli", "dist");

function fail(message) {
  process.stderr.write(`cli-startup: ${message}\n`);
  process.exit(1);
}

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      runs: { type: "string", default: "15" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }));
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
if (options.help) {
  process.stdout.write("usage: node bench/cli-startup.mjs [--runs N] [--json]\n");
  process.exit(0);
}
const runs = Number(options.runs);
if (!Number.isInteger(runs) || runs < 1) fail(`--runs must be a positive integer, got ${options.runs}`);

for (const path of [runJs, distDir]) {
  if (!existsSync(path)) fail(`${relative(root, path)} is missing: run npm run build first`);
}

// NODE_EXTRA_CA_CERTS makes every Node start parse a CA bundle (~60 ms here), which would drown
// the difference being measured; it affects both commands equally, so dropping it is fair.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;

const commands = {
  baseline: { label: "node -e 0", args: ["-e", "0"] },
  cli: { label: "node packages/cli/bin/run.js --version", args: [runJs, "--version"] },
};

function timeOnce(name) {
  const { args } = commands[name];
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.error) fail(`${commands[name].label}: ${result.error.message}`);
  if (result.status !== 0) {
    fail(`${commands[name].label} exited with ${result.status ?? result.signal}\n${result.stderr}`);
  }
  return { ms, stdout: result.stdout.toString().trim() };
}

function percentile(sorted, p) {
  // Nearest-rank: a value that was actually observed.
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, p90: percentile(sorted, 90), min: sorted[0], max: sorted[sorted.length - 1] };
}

for (let i = 0; i < WARMUPS; i++) {
  timeOnce("baseline");
  timeOnce("cli");
}

// Interleaved so that drift (thermal, other load) hits both commands alike.
const samples = { baseline: [], cli: [] };
let version = "";
for (let i = 0; i < runs; i++) {
  samples.baseline.push(timeOnce("baseline").ms);
  const cli = timeOnce("cli");
  samples.cli.push(cli.ms);
  version = cli.stdout;
}

const baseline = summarize(samples.baseline);
const cli = summarize(samples.cli);
const ratio = cli.median / baseline.median;
const round = (n) => Math.round(n * 100) / 100;
const roundStats = (s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round(v)]));

if (options.json) {
  const report = {
    bench: "cli-startup",
    node: process.version,
    runs,
    warmups: WARMUPS,
    cliVersion: version,
    baseline: { command: commands.baseline.label, ms: roundStats(baseline) },
    cli: { command: commands.cli.label, ms: roundStats(cli) },
    ratio: round(ratio),
    overheadMs: round(cli.median - baseline.median),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} else {
  const row = (name, s) =>
    `${name.padEnd(10)} median ${s.median.toFixed(1).padStart(7)} ms   p90 ${s.p90.toFixed(1).padStart(7)} ms   (${commands[name].label})`;
  process.stdout.write(
    [
      `cli-startup: ${runs} runs each after ${WARMUPS} warm-ups, node ${process.version}, ${version}`,
      row("baseline", baseline),
      row("cli", cli),
      `ratio      ${ratio.toFixed(2)}x (cli median / baseline median), overhead ${(cli.median - baseline.median).toFixed(1)} ms`,
      "",
    ].join("\n"),
  );
}
