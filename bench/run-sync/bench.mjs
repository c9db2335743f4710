#!/usr/bin/env node
// Run sync of a growing run directory to S3: through a presigned POST policy (PostPolicyRunSync:
// plain fetch + FormData, a state file rewritten after every acknowledged POST; what a remote
// agent holds) against the SDK with a key (StoreRunSync over S3ArtifactStore), both driven by
// the agent's RunDirSync, in this process, against the S3 emulator (its own process).
// Each run: --passes passes, each appending --lines metric lines and one output line, meta.json
// rewritten every 20th pass; runs alternate and each goes to a fresh prefix. Reported: median
// time per pass of each and the ratio POST ÷ SDK; both copies are read back and compared with
// the run directory byte for byte.
// Usage: node bench/run-sync/bench.mjs [--passes 200] [--lines 50] [--runs 3] [--json]
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const emulatorMain = join(root, "test-e2e", "dist", "s3-emulator", "main.js");
for (const built of ["core", "agent", "s3"].map((p) => join(root, "packages", p, "dist", "mod.js"))) {
  if (!existsSync(built) || !existsSync(emulatorMain)) {
    process.stderr.write("run-sync bench: build first (npm run build)\n");
    process.exit(1);
  }
}
const { PostPolicyRunSync, postSyncStateFile, readStoredRunFile, StoreRunSync } = await import(
  "@runctl/core"
);
const { RunDirSync } = await import("@runctl/agent");
const { S3ArtifactStore } = await import("@runctl/s3");

const { values } = parseArgs({
  options: {
    passes: { type: "string", default: "200" },
    lines: { type: "string", default: "50" },
    runs: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
  },
});
const opt = { passes: Number(values.passes), lines: Number(values.lines), runs: Number(values.runs) };
for (const [k, v] of Object.entries(opt)) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k}: ${v}`);
}
const log = (line) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const tmp = await mkdtemp(join(tmpdir(), "runctl-bench-run-sync-"));
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
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const store = S3ArtifactStore.fromUrl("s3://bench/root", {
  endpoint,
  region: "us-east-1",
  forcePathStyle: true,
  partSizeBytes: 16 * 1024 * 1024,
  concurrency: 4,
  credentials: { accessKeyId: "AKIDRUNCTLEMULATOR", secretAccessKey: "runctl-emulator-secret" },
});

let step = 0;
async function grow(runDir, pass) {
  let metrics = "";
  for (let i = 0; i < opt.lines; i++, step++) {
    metrics += `${JSON.stringify({ _idx: step, _timestamp: 1_700_000_000 + step / 10, loss: 1 / (step + 1), lr: 0.01 })}\n`;
  }
  await appendFile(join(runDir, "metrics.jsonl"), metrics);
  await appendFile(join(runDir, "output.log"), `pass ${pass}: step ${step}\n`);
  if (pass % 20 === 0)
    await writeFile(join(runDir, "meta.json"), `${JSON.stringify({ status: "running", pass })}\n`);
}

/** One run of `kind` into a fresh prefix: ms for all passes, after checking the copy. */
async function runOnce(kind, r) {
  const id = `${kind}-${r}`;
  const runDir = join(tmp, "dirs", id);
  await mkdir(runDir, { recursive: true });
  const target =
    kind === "post"
      ? new PostPolicyRunSync({
          policy: await store.presignPost(`runs/${id}/`, {
            expiresInSeconds: 3600,
            maxBytes: 64 * 1024 * 1024,
          }),
          stateFile: postSyncStateFile(runDir),
        })
      : new StoreRunSync(store, `runs/${id}`);
  const sync = new RunDirSync(runDir, target, {
    onFileError: (path, error) => {
      throw new Error(`${path}: ${error.message}`);
    },
  });
  await sync.resume();
  let ms = 0;
  for (let pass = 0; pass < opt.passes; pass++) {
    await grow(runDir, pass);
    const t0 = process.hrtime.bigint();
    await sync.sync();
    ms += Number(process.hrtime.bigint() - t0) / 1e6;
  }
  for (const file of ["metrics.jsonl", "output.log", "meta.json"]) {
    const stored = await readStoredRunFile(store, `runs/${id}`, file);
    if (!stored?.equals(await readFile(join(runDir, file))))
      throw new Error(`${id}: ${file} differs in the store`);
  }
  return ms;
}

try {
  log(
    `run sync: ${opt.passes} passes × (${opt.lines} metric lines + 1 output line), ${opt.runs} run(s) each`,
  );
  const times = { sdk: [], post: [] };
  // One warm-up of each (connections, JIT) that is not counted.
  await runOnce("sdk", "warm");
  await runOnce("post", "warm");
  for (let r = 0; r < opt.runs; r++) {
    for (const kind of r % 2 === 0 ? ["sdk", "post"] : ["post", "sdk"])
      times[kind].push(await runOnce(kind, r));
    log(
      `  run ${r + 1}: SDK ${(times.sdk.at(-1) / opt.passes).toFixed(2)} ms/pass, POST ${(times.post.at(-1) / opt.passes).toFixed(2)} ms/pass`,
    );
  }
  const sdk = median(times.sdk) / opt.passes;
  const post = median(times.post) / opt.passes;
  log(`  StoreRunSync (SDK, key)        ${sdk.toFixed(2)} ms/pass (median)`);
  log(`  PostPolicyRunSync (POST policy) ${post.toFixed(2)} ms/pass (median)`);
  log(`  ratio POST/SDK ${(post / sdk).toFixed(2)}`);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ passes: opt.passes, lines: opt.lines, sdkMsPerPass: sdk, postMsPerPass: post, ratio: post / sdk })}\n`,
    );
  }
} finally {
  emulator.kill("SIGTERM");
  await rm(tmp, { recursive: true, force: true });
}
