#!/usr/bin/env node
// CLI start-up cost: CPU time and wall time of `runctl --version`, `runctl --help` (the fast path,
// no @oclif/core) and `runctl providers --help` (a full oclif start) against `node -e 0`, measured
// in the same script, so the figures that matter are ratios, not milliseconds that depend on the
// machine. `--oclif` also times `--version` / `--help` through oclif (RUNCTL_NO_FAST_PATH=1): the
// "before" figures of the fast path.
// Usage: node bench/cli-startup.mjs [--runs N] [--json] [--oclif]
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
      oclif: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }));
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
if (options.help) {
  process.stdout.write("usage: node bench/cli-startup.mjs [--runs N] [--json] [--oclif]\n");
  process.exit(0);
}
const runs = Number(options.runs);
if (!Number.isInteger(runs) || runs < 1) fail(`--runs must be a positive integer, got ${options.runs}`);

for (const path of [runJs, distDir]) {
  if (!existsSync(path)) fail(`${relative(root, path)} is missing: run npm run build first`);
}

// NODE_EXTRA_CA_CERTS makes every Node process parse a CA bundle (~60 ms here), which would drown
// the difference being measured; it affects every command equally, so dropping it is fair.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
delete env.RUNCTL_NO_FAST_PATH;
// A fresh data dir: no user plugins, as after `npm i -g runctl`.
const home = mkdtempSync(join(tmpdir(), "runctl-bench-"));
env.XDG_DATA_HOME = join(home, "data");
env.XDG_CONFIG_HOME = join(home, "config");
env.XDG_CACHE_HOME = join(home, "cache");

// CPU time is the child's own getrusage at exit (user + system), written by a preload to fd 3; the
// preload is loaded by every command, the baseline included.
const preload = join(home, "cpu.cjs");
writeFileSync(
  preload,
  'process.on("exit",()=>{const u=process.cpuUsage();require("node:fs").writeSync(3,String((u.user+u.system)/1000))});\n',
);

const commands = {
  baseline: { label: "node -e 0", args: ["-e", "0"] },
  version: { label: "runctl --version", args: [runJs, "--version"] },
  help: { label: "runctl --help", args: [runJs, "--help"] },
  commandHelp: { label: "runctl providers --help", args: [runJs, "providers", "--help"] },
};
if (options.oclif) {
  commands.oclifVersion = { label: "runctl --version (oclif)", args: [runJs, "--version"], oclif: true };
  commands.oclifHelp = { label: "runctl --help (oclif)", args: [runJs, "--help"], oclif: true };
}
const names = Object.keys(commands);

function timeOnce(name) {
  const { args, oclif } = commands[name];
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, ["-r", preload, ...args], {
    cwd: root,
    env: oclif ? { ...env, RUNCTL_NO_FAST_PATH: "1" } : env,
    stdio: ["ignore", "pipe", "pipe", "pipe"],
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.error) fail(`${commands[name].label}: ${result.error.message}`);
  if (result.status !== 0) {
    fail(`${commands[name].label} exited with ${result.status ?? result.signal}\n${result.stderr}`);
  }
  return { ms, cpu: Number(result.output[3]?.toString()), stdout: result.stdout.toString().trim() };
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

try {
  for (let i = 0; i < WARMUPS; i++) for (const name of names) timeOnce(name);

  // Interleaved so that drift (thermal, other load) hits every command alike.
  const wall = Object.fromEntries(names.map((n) => [n, []]));
  const cpu = Object.fromEntries(names.map((n) => [n, []]));
  let version = "";
  for (let i = 0; i < runs; i++) {
    for (const name of names) {
      const r = timeOnce(name);
      wall[name].push(r.ms);
      cpu[name].push(r.cpu);
      if (name === "version") version = r.stdout;
    }
  }

  const round = (n) => Math.round(n * 100) / 100;
  const roundStats = (s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round(v)]));
  const stats = Object.fromEntries(
    names.map((n) => [n, { wall: summarize(wall[n]), cpu: summarize(cpu[n]) }]),
  );
  const base = stats.baseline;
  const ratios = (n) => ({
    cpu: stats[n].cpu.median / base.cpu.median,
    wall: stats[n].wall.median / base.wall.median,
  });

  if (options.json) {
    const report = {
      bench: "cli-startup",
      node: process.version,
      runs,
      warmups: WARMUPS,
      cliVersion: version,
      commands: Object.fromEntries(
        names.map((n) => [
          n,
          {
            command: commands[n].label,
            wallMs: roundStats(stats[n].wall),
            cpuMs: roundStats(stats[n].cpu),
            ratio: n === "baseline" ? undefined : roundStats(ratios(n)),
          },
        ]),
      ),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const lines = [
      `cli-startup: ${runs} runs each after ${WARMUPS} warm-ups, node ${process.version}, ${version}`,
    ];
    for (const n of names) {
      const s = stats[n];
      const r =
        n === "baseline"
          ? ""
          : `   ratio cpu ${ratios(n).cpu.toFixed(2)}x wall ${ratios(n).wall.toFixed(2)}x`;
      lines.push(
        `${commands[n].label.padEnd(28)} cpu ${s.cpu.median.toFixed(1).padStart(6)} ms   wall ${s.wall.median.toFixed(1).padStart(6)} ms (p90 ${s.wall.p90.toFixed(1)})${r}`,
      );
    }
    lines.push("ratios are medians against node -e 0; goal: --version and --help <= 3x CPU", "");
    process.stdout.write(lines.join("\n"));
  }
} finally {
  rmSync(home, { recursive: true, force: true });
}
