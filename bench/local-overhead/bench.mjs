#!/usr/bin/env node
// Overhead of supervision: wall time of `runctl local --python P noop.py` against `P noop.py`
// (the same interpreter, chosen explicitly so both sides start the same Python), in the same
// script, alternating, medians of N runs. The figure is the ratio and the added milliseconds.
// Usage: node bench/local-overhead/bench.mjs [--runs N] [--python /usr/bin/python3] [--json]
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const runJs = join(root, "packages", "cli", "bin", "run.js");
const noop = join(here, "noop.py");

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    python: { type: "string", default: "/usr/bin/python3" },
    json: { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1)
  throw new Error(`--runs must be a positive integer, got ${values.runs}`);
if (!existsSync(join(root, "packages", "cli", "dist"))) {
  process.stderr.write("local-overhead: packages/cli/dist is missing: run npm run build first\n");
  process.exit(1);
}

// NODE_EXTRA_CA_CERTS costs every Node start ~60 ms here and is not runctl's cost.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const work = mkdtempSync(join(tmpdir(), "runctl-bench-local-"));

const commands = {
  baseline: [values.python, [noop]],
  runctl: [process.execPath, [runJs, "local", "--quiet", "--python", values.python, noop]],
};

function timeOnce([cmd, args]) {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return ms;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

try {
  timeOnce(commands.baseline);
  timeOnce(commands.runctl);
  const samples = { baseline: [], runctl: [] };
  for (let i = 0; i < runs; i++) {
    samples.baseline.push(timeOnce(commands.baseline));
    samples.runctl.push(timeOnce(commands.runctl));
  }
  const result = {
    runs,
    python: values.python,
    baseline_median_ms: median(samples.baseline),
    runctl_median_ms: median(samples.runctl),
  };
  result.ratio = result.runctl_median_ms / result.baseline_median_ms;
  result.overhead_ms = result.runctl_median_ms - result.baseline_median_ms;
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      `local-overhead: ${runs} runs each, ${values.python}\n` +
        `baseline  median ${result.baseline_median_ms.toFixed(1)} ms   (python noop.py)\n` +
        `runctl    median ${result.runctl_median_ms.toFixed(1)} ms   (runctl local noop.py: run dir, git/pip capture, supervision)\n` +
        `ratio     ${result.ratio.toFixed(2)}x, overhead ${result.overhead_ms.toFixed(0)} ms\n`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
