#!/usr/bin/env node
// `runctl aws create` against the least a launch can be, both against the EC2 emulator (its own
// process, instant transitions): the API calls one create makes (from the emulator's call log)
// against the 1 RunInstances a launch needs when everything is known in advance, and the wall
// time of `runctl aws create TYPE --spot --json` against bare-launch.mjs (one RunInstances with
// the same SDK). Both are child processes, so both pay Node's start-up; runctl also pays oclif's
// and the provider's look-ups (zones, spot prices, image, security group, this launch's machine).
// Boot is excluded: the emulator's instances are running at once and run nothing.
// Usage: node bench/aws-launch/bench.mjs [--runs 5] [--type g5.xlarge] [--json]
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const runctlBin = join(root, "packages", "cli", "bin", "run.js");
const emulatorMain = join(root, "test-e2e", "dist", "ec2-emulator", "main.js");
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    type: { type: "string", default: "g5.xlarge" },
    json: { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs ${values.runs}`);
if (!existsSync(emulatorMain) || !existsSync(join(root, "packages", "provider-aws", "dist", "mod.js"))) {
  process.stderr.write("aws-launch bench: build first (npm run build)\n");
  process.exit(1);
}
const log = (line) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const emulator = spawn(process.execPath, [emulatorMain, "--port", "0", "--transition-ms", "0"], {
  stdio: ["ignore", "ignore", "pipe"],
});
const endpoint = await new Promise((resolvePromise, reject) => {
  let err = "";
  emulator.stderr.on("data", (d) => {
    err += d;
    const m = /listening on (http:\/\/\S+)/.exec(err);
    if (m) resolvePromise(m[1]);
  });
  emulator.on("exit", (code) => reject(new Error(`ec2-emulator exited ${code}: ${err}`)));
});
const home = await mkdtemp(join(tmpdir(), "runctl-bench-aws-"));
const env = {
  PATH: process.env.PATH,
  HOME: home,
  XDG_CONFIG_HOME: join(home, ".config"),
  XDG_DATA_HOME: join(home, ".local/share"),
  AWS_ACCESS_KEY_ID: "AKIDRUNCTLEMULATOR",
  AWS_SECRET_ACCESS_KEY: "runctl-emulator-secret",
  AWS_ENDPOINT_URL_EC2: endpoint,
  AWS_REGION: "us-east-1",
};

function run(args) {
  return new Promise((resolvePromise, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { env, cwd: home, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code) =>
      code === 0
        ? resolvePromise({ ms: Number(process.hrtime.bigint() - t0) / 1e6, stdout })
        : reject(new Error(`${args.join(" ")} exit ${code}\n${stderr}`)),
    );
  });
}
const calls = async () => (await fetch(`${endpoint}/__emulator/calls`)).json();
const instances = async () => (await fetch(`${endpoint}/__emulator/instances`)).json();

try {
  const createMs = [];
  const bareMs = [];
  const perCreate = [];
  let baseline;
  for (let i = 0; i < runs; i++) {
    const before = (await calls()).length;
    const created = await run([
      runctlBin,
      "aws",
      "create",
      values.type,
      "--spot",
      "--json",
      "--idempotency-key",
      `bench-${i}`,
    ]);
    perCreate.push((await calls()).slice(before).map((c) => c.action));
    createMs.push(created.ms);
    if (baseline === undefined) {
      const id = JSON.parse(created.stdout).placement.resourceId;
      const made = (await instances()).find((x) => x.instanceId === id);
      baseline = { zone: made.zone, group: made.securityGroupIds[0] };
    }
    const bare = await run([
      join(here, "bare-launch.mjs"),
      "ami-0a1b2c3d4e5f60702",
      baseline.group,
      baseline.zone,
      values.type,
    ]);
    bareMs.push(bare.ms);
  }
  const first = perCreate[0];
  const later = perCreate.at(-1);
  const result = {
    runs,
    callsFirstCreate: first.length,
    callsLaterCreate: later.length,
    callsMinimum: 1,
    firstCreate: first,
    createMedianMs: Math.round(median(createMs)),
    bareMedianMs: Math.round(median(bareMs)),
  };
  result.ratio = Number((result.createMedianMs / result.bareMedianMs).toFixed(2));
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  log(
    `calls per create: first ${result.callsFirstCreate} (${first.join(", ")}), later ${result.callsLaterCreate}; minimum 1`,
  );
  log(
    `wall: runctl aws create ${result.createMedianMs} ms, bare RunInstances ${result.bareMedianMs} ms (median of ${runs}); ratio ${result.ratio}`,
  );
} finally {
  emulator.kill("SIGTERM");
}
