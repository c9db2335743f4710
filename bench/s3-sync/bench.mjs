#!/usr/bin/env node
// `runctl s3 sync` against the plain SDK, both talking to the S3 emulator (its own process):
//  1. upload throughput: `runctl s3 sync DIR s3://…` (hashing, listing, comparing, metadata,
//     progress) against plain-upload.mjs (a bare loop of PutObject / lib-storage multipart with
//     the same SDK, client settings, concurrency and part size) on the same files, alternating
//     runs, each into a fresh prefix; ratio = sync MB/s ÷ plain MB/s (goal ≥ 0.9);
//  2. a no-change re-sync of --resync-files small files against the bare listing of the same
//     prefix (plain-upload.mjs --list): ratio = re-sync time ÷ listing time.
// Both sides are child processes, so both pay Node's start-up; runctl also pays oclif's.
// Usage: node bench/s3-sync/bench.mjs [--small 1000] [--small-kb 16] [--large 2] [--large-mb 64]
//          [--concurrency 8] [--part-mb 16] [--runs 3] [--resync-files 10000] [--json]
import { spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const runctlBin = join(root, "packages", "cli", "bin", "run.js");
const emulatorMain = join(root, "test-e2e", "dist", "s3-emulator", "main.js");

const { values } = parseArgs({
  options: {
    small: { type: "string", default: "1000" },
    "small-kb": { type: "string", default: "16" },
    large: { type: "string", default: "2" },
    "large-mb": { type: "string", default: "64" },
    concurrency: { type: "string", default: "8" },
    "part-mb": { type: "string", default: "16" },
    runs: { type: "string", default: "3" },
    "resync-files": { type: "string", default: "10000" },
    json: { type: "boolean", default: false },
  },
});
const opt = Object.fromEntries(
  Object.entries(values)
    .filter(([k]) => k !== "json")
    .map(([k, v]) => [k, Number(v)]),
);
for (const [k, v] of Object.entries(opt)) {
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${k}: ${v}`);
}
if (!existsSync(join(root, "packages", "s3", "dist", "mod.js")) || !existsSync(emulatorMain)) {
  process.stderr.write("s3-sync bench: build first (npm run build)\n");
  process.exit(1);
}
const log = (line) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const tmp = await mkdtemp(join(tmpdir(), "runctl-bench-s3-"));
const KEY = { AWS_ACCESS_KEY_ID: "AKIDRUNCTLEMULATOR", AWS_SECRET_ACCESS_KEY: "runctl-emulator-secret" };

function run(cmd, args, env) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolvePromise(stdout) : reject(new Error(`${args.join(" ")} exit ${code}\n${stderr}`)),
    );
  });
}

async function timed(cmd, args, env) {
  const t0 = process.hrtime.bigint();
  const out = await run(cmd, args, env);
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, out };
}

const emulator = spawn(
  process.execPath,
  [emulatorMain, "--port", "0", "--data", join(tmp, "s3"), "--bucket", "bench"],
  {
    stdio: ["ignore", "ignore", "pipe"],
  },
);
const endpoint = await new Promise((resolvePromise, reject) => {
  let text = "";
  emulator.stderr.on("data", (d) => {
    text += d;
    const m = /listening on (http:\/\/\S+)/.exec(text);
    if (m) resolvePromise(m[1]);
  });
  emulator.on("exit", (code) => reject(new Error(`emulator exited ${code}: ${text}`)));
});
const env = {
  PATH: process.env.PATH,
  HOME: join(tmp, "home"),
  ...KEY,
  AWS_ENDPOINT_URL_S3: endpoint,
  AWS_REGION: "us-east-1",
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  RUNCTL_S3_FORCE_PATH_STYLE: "true",
  RUNCTL_S3_PART_SIZE_MB: String(opt["part-mb"]),
  RUNCTL_S3_CONCURRENCY: String(opt.concurrency),
};
await mkdir(env.HOME, { recursive: true });

try {
  // --- 1. upload throughput ---
  const data = join(tmp, "data");
  await mkdir(join(data, "small"), { recursive: true });
  const block = Buffer.alloc(opt["small-kb"] * 1024);
  for (let i = 0; i < opt.small; i++) {
    randomFillSync(block);
    await writeFile(join(data, "small", `f-${String(i).padStart(6, "0")}.bin`), block);
  }
  const mib = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < opt.large; i++) {
    const handle = await open(join(data, `large-${i}.bin`), "w");
    for (let m = 0; m < opt["large-mb"]; m++) {
      randomFillSync(mib);
      await handle.write(mib);
    }
    await handle.close();
  }
  const totalBytes = opt.small * opt["small-kb"] * 1024 + opt.large * opt["large-mb"] * 1024 * 1024;
  log(
    `upload: ${opt.small} × ${opt["small-kb"]} KiB + ${opt.large} × ${opt["large-mb"]} MiB = ${(totalBytes / 1024 / 1024).toFixed(1)} MiB, concurrency ${opt.concurrency}, parts ${opt["part-mb"]} MiB, ${opt.runs} run(s) each`,
  );
  const plainMs = [];
  const syncMs = [];
  // --small 0 --large 0 skips this part (to measure the re-sync alone).
  for (let r = 0; r < (totalBytes > 0 ? opt.runs : 0); r++) {
    const plain = await timed(
      process.execPath,
      [
        join(here, "plain-upload.mjs"),
        data,
        `s3://bench/plain-${r}/`,
        String(opt.concurrency),
        String(opt["part-mb"]),
      ],
      env,
    );
    plainMs.push(plain.ms);
    const sync = await timed(
      process.execPath,
      [runctlBin, "s3", "sync", data, `s3://bench/sync-${r}/`, "--json"],
      env,
    );
    const summary = JSON.parse(sync.out).sync;
    if (summary.files.sent !== opt.small + opt.large)
      throw new Error(`sync sent ${summary.files.sent} files`);
    syncMs.push(sync.ms);
    log(
      `  run ${r + 1}: plain ${(plain.ms / 1000).toFixed(2)} s, runctl s3 sync ${(sync.ms / 1000).toFixed(2)} s`,
    );
  }
  const mbps = (ms) => totalBytes / 1024 / 1024 / (ms / 1000);
  const plainRate = totalBytes > 0 ? mbps(median(plainMs)) : undefined;
  const syncRate = totalBytes > 0 ? mbps(median(syncMs)) : undefined;
  const uploadRatio = totalBytes > 0 ? syncRate / plainRate : undefined;
  if (totalBytes > 0) {
    log(`  plain loop      ${plainRate.toFixed(1)} MiB/s (median)`);
    log(`  runctl s3 sync  ${syncRate.toFixed(1)} MiB/s (median)`);
    log(`  ratio sync/plain ${uploadRatio.toFixed(2)} (goal ≥ 0.9)`);
  }

  // --- 2. no-change re-sync of many files vs the bare listing ---
  let resync;
  if (opt["resync-files"] > 0) {
    const many = join(tmp, "many");
    for (let d = 0; d < Math.ceil(opt["resync-files"] / 500); d++) {
      await mkdir(join(many, `d${d}`), { recursive: true });
      await Promise.all(
        Array.from({ length: Math.min(500, opt["resync-files"] - d * 500) }, (_, i) =>
          writeFile(join(many, `d${d}`, `f${i}.txt`), `file ${d}/${i}\n`),
        ),
      );
    }
    await run(process.execPath, [runctlBin, "s3", "sync", many, "s3://bench/many/", "--json"], env);
    const listMs = [];
    const resyncMs = [];
    for (let r = 0; r < opt.runs; r++) {
      const list = await timed(
        process.execPath,
        [join(here, "plain-upload.mjs"), "--list", "s3://bench/many/"],
        env,
      );
      if (JSON.parse(list.out).objects !== opt["resync-files"]) throw new Error(`listing found ${list.out}`);
      listMs.push(list.ms);
      const again = await timed(
        process.execPath,
        [runctlBin, "s3", "sync", many, "s3://bench/many/", "--json"],
        env,
      );
      const summary = JSON.parse(again.out).sync;
      if (summary.files.sent !== 0) throw new Error(`the re-sync sent ${summary.files.sent} files`);
      resyncMs.push(again.ms);
    }
    resync = { files: opt["resync-files"], listMs: median(listMs), resyncMs: median(resyncMs) };
    resync.ratio = resync.resyncMs / resync.listMs;
    log(`no-change re-sync of ${resync.files} files:`);
    log(`  bare listing (plain SDK, own process)  ${(resync.listMs / 1000).toFixed(2)} s (median)`);
    log(`  runctl s3 sync (nothing to send)       ${(resync.resyncMs / 1000).toFixed(2)} s (median)`);
    log(`  ratio re-sync/listing ${resync.ratio.toFixed(2)}`);
  }
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({
        upload: {
          bytes: totalBytes,
          plainMs: median(plainMs),
          syncMs: median(syncMs),
          plainMiBps: plainRate,
          syncMiBps: syncRate,
          ratio: uploadRatio,
        },
        resync,
      })}\n`,
    );
  }
} finally {
  emulator.kill("SIGTERM");
  await rm(tmp, { recursive: true, force: true });
}
