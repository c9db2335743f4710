#!/usr/bin/env node
// Control latency over NATS: from `publish` of a command to its ack from every one of N ranks,
// each rank an independent NatsChannel (own connection) polling `read` in a loop and acking, all in
// this process, against a real nats-server started here. Beside it, in the same run and on the same
// server, the raw NATS request/reply round trip (`nc.request` to a responder); the figure is the
// ratio of the medians.
// Then the path a Python rank sees: publish → the supervisor's ControlBridge (ordered consumer in,
// fs.watch out) → the node-local file queue → N Python RuntimeControllers (every_s=0) → acks back
// over the bridge, for N in --python-ranks, beside the raw round trip measured in the same run.
// Usage: node bench/control-latency/bench.mjs [--ranks 2,8,32] [--python-ranks 2,8] [--commands 200]
//          [--warmup 20] [--poll-ms 0] [--python /usr/bin/python3] [--py-step-ms 1] [--json]
import { spawn } from "node:child_process";
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { setTimeout as sleep, setImmediate as yieldLoop } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const controlDist = join(root, "packages", "control", "dist");

const { values } = parseArgs({
  options: {
    ranks: { type: "string", default: "2,8,32" },
    "python-ranks": { type: "string", default: "2,8" },
    python: { type: "string", default: "/usr/bin/python3" },
    "py-step-ms": { type: "string", default: "1" },
    commands: { type: "string", default: "200" },
    warmup: { type: "string", default: "20" },
    "poll-ms": { type: "string", default: "0" },
    json: { type: "boolean", default: false },
  },
});
const rankCounts = values.ranks === "" ? [] : values.ranks.split(",").map(Number);
const pythonRankCounts = values["python-ranks"] === "" ? [] : values["python-ranks"].split(",").map(Number);
const pyStepMs = Number(values["py-step-ms"]);
if (!pythonRankCounts.every((n) => Number.isInteger(n) && n > 0)) {
  throw new Error(`--python-ranks: ${values["python-ranks"]}`);
}
if (!(pyStepMs >= 0)) throw new Error(`--py-step-ms: ${values["py-step-ms"]}`);
const commands = Number(values.commands);
const warmup = Number(values.warmup);
if (!rankCounts.every((n) => Number.isInteger(n) && n > 0)) throw new Error(`--ranks: ${values.ranks}`);
if (!Number.isInteger(commands) || commands < 1) throw new Error(`--commands: ${values.commands}`);
if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`--warmup: ${values.warmup}`);
const pollMs = Number(values["poll-ms"]);
if (!(pollMs >= 0)) throw new Error(`--poll-ms: ${values["poll-ms"]}`);

const built = join(controlDist, "nats", "channel.js");
const source = join(root, "packages", "control", "src", "nats", "channel.ts");
if (!existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs) {
  process.stderr.write(
    "control-latency: packages/control/dist is missing or stale: run `npx tsc -p packages/control/tsconfig.build.json`\n",
  );
  process.exit(1);
}
const { ControlBridge, FileQueue, NatsChannel, connectNats } = await import(
  pathToFileURL(join(controlDist, "mod.js")).href
);
const pythonClient = join(root, "packages", "client-python");

const log = (line) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};

// --- a nats-server with JetStream on a free loopback port (test-e2e/src/nats-server.ts, in short) ---

function natsServerBin() {
  // Same choice as test-e2e/src/nats-server.ts: $NATS_SERVER_BIN, PATH, then Debian's location.
  const { NATS_SERVER_BIN: fromEnv, PATH = "" } = process.env;
  if (fromEnv) return fromEnv;
  for (const dir of PATH.split(delimiter)) {
    try {
      accessSync(join(dir, "nats-server"), constants.X_OK);
      return join(dir, "nats-server");
    } catch {}
  }
  return "/usr/sbin/nats-server";
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function greeting(port) {
  return new Promise((ok, fail) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    let text = "";
    socket.setTimeout(1000, () => {
      socket.destroy();
      fail(new Error("no INFO"));
    });
    socket.on("data", (d) => {
      text += d;
      if (text.includes("\r\n")) {
        socket.destroy();
        ok(text.slice(0, text.indexOf("\r\n")));
      }
    });
    socket.on("error", fail);
  });
}

async function startNatsServer() {
  const dir = mkdtempSync(join(tmpdir(), "runctl-bench-nats-"));
  const port = await freePort();
  const child = spawn(
    natsServerBin(),
    ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", join(dir, "store")],
    {
      stdio: "ignore",
    },
  );
  let exited = false;
  const exit = new Promise((ok) => child.once("exit", ok));
  exit.then(() => {
    exited = true;
  });
  process.once("exit", () => exited || child.kill("SIGKILL"));
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      await exit;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(50)) {
    if (exited) break;
    const info = await greeting(port).catch(() => "");
    if (/"jetstream"\s*:\s*true/.test(info)) {
      const version = /"version"\s*:\s*"([^"]+)"/.exec(info)?.[1] ?? "?";
      return { url: `nats://127.0.0.1:${port}`, version, stop };
    }
  }
  await stop();
  throw new Error(`nats-server (${natsServerBin()}) did not start with JetStream`);
}

// --- statistics ---

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const summary = (xs) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99), n: xs.length });
const ms = (x) => `${x.toFixed(3)} ms`;
const now = () => performance.now();

// --- raw request/reply ---

/** A responder and a requester on their own connections; `once()` times one round trip. */
async function echo(url) {
  const responder = await connectNats({ url });
  const requester = await connectNats({ url });
  const sub = responder.subscribe("bench.echo", { callback: (_err, m) => m.respond(m.data) });
  await responder.flush();
  const payload = new Uint8Array(160).fill(7); // about the size of a command
  return {
    async once() {
      const t0 = now();
      await requester.request("bench.echo", payload, { timeout: 5_000 });
      return now() - t0;
    },
    async close() {
      sub.unsubscribe();
      await requester.close();
      await responder.close();
    },
  };
}

async function rawRoundTrip(url) {
  const e = await echo(url);
  const samples = [];
  for (let i = 0; i < warmup + commands; i++) {
    const t = await e.once();
    if (i >= warmup) samples.push(t);
  }
  await e.close();
  return samples;
}

// --- publish → acks from N ranks ---

async function controlRoundTrip(url, ranks, runId) {
  let stopping = false;
  const rankLoops = [];
  const rankChannels = [];
  for (let rank = 0; rank < ranks; rank++) {
    const channel = await NatsChannel.connect({ url }, runId);
    rankChannels.push(channel);
    rankLoops.push(
      (async () => {
        let cursor = { seq: 0, offset: 0 };
        while (!stopping) {
          const page = await channel.read(cursor);
          for (const entry of page.entries) {
            if (entry.kind !== "command") continue;
            await channel.appendAck({
              id: entry.command.id,
              ts: Date.now() / 1000,
              path: entry.command.path,
              op: entry.command.op,
              status: "applied",
              value: entry.command.args[0],
              rank,
              world_size: ranks,
              seq: entry.seq,
            });
          }
          cursor = page.cursor;
          // Back-to-back polls by default (yielding to the event loop), else a pause after an empty one.
          if (page.entries.length === 0) await (pollMs > 0 ? sleep(pollMs) : yieldLoop());
        }
      })(),
    );
  }

  const publisher = await NatsChannel.connect({ url }, runId);
  const waiting = new Map(); // id → { ranks: Set, done }
  const sub = publisher.subscribeAcks((ack) => {
    const w = waiting.get(ack.id);
    if (w === undefined) return;
    w.ranks.add(ack.rank);
    if (w.ranks.size === ranks) w.done();
  });
  await publisher.nc.flush();

  // The raw round trip again, interleaved with the commands, so both see the same load.
  const e = await echo(url);
  const rawLoaded = [];
  const total = [];
  const publishOnly = [];
  for (let i = 0; i < warmup + commands; i++) {
    const raw = await e.once();
    const id = `bench-${ranks}-${i}`;
    const acked = new Promise((done) => waiting.set(id, { ranks: new Set(), done }));
    const t0 = now();
    await publisher.publish({ id, path: "optimizer.lr.multiplier", args: [0.5] });
    const t1 = now();
    await acked;
    const t2 = now();
    waiting.delete(id);
    if (i >= warmup) {
      rawLoaded.push(raw);
      publishOnly.push(t1 - t0);
      total.push(t2 - t0);
    }
  }

  await e.close();
  sub.unsubscribe();
  stopping = true;
  await Promise.all(rankLoops);
  for (const c of rankChannels) await c.close();
  await publisher.close();
  return { total, publishOnly, rawLoaded };
}

// --- publish → acks from N Python ranks behind the bridge ---

// One rank: a RuntimeController on the queue directory, on its own (no process group), polling
// with every_s=0 between steps of --py-step-ms, until run.stop.
const PY_RANK = `
import os, sys, time
import runctl
queue, rank, world, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
ctl = runctl.RuntimeController(queue, rank=rank, world_size=world)
ctl.register("optimizer.lr.multiplier", lambda ctx, v: None)
ctl.poll_and_apply(ctx=None, every_s=0)
open(os.path.join(queue, "ready.%d" % rank), "w").close()
while not ctl.stop_requested:
    ctl.poll_and_apply(ctx=None, every_s=0)
    if step > 0:
        time.sleep(step)
`;

// Rank processes still running when the benchmark exits (an error) are killed with it.
const children = new Set();
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

async function pythonRoundTrip(url, ranks, runId) {
  const dir = mkdtempSync(join(tmpdir(), "runctl-bench-queue-"));
  const script = join(dir, "rank.py");
  writeFileSync(script, PY_RANK);
  const queueDir = join(dir, "control");
  mkdirSync(queueDir);
  const bridgeChannel = await NatsChannel.connect({ url }, runId);
  const bridge = new ControlBridge({ remote: bridgeChannel, local: new FileQueue(queueDir) }).start();
  const procs = [];
  for (let rank = 0; rank < ranks; rank++) {
    const child = spawn(
      values.python,
      [script, queueDir, String(rank), String(ranks), String(pyStepMs / 1000)],
      {
        stdio: ["ignore", "ignore", "inherit"],
        env: { ...process.env, PYTHONPATH: pythonClient },
      },
    );
    procs.push(new Promise((ok) => child.once("exit", ok)));
    children.add(child);
    child.once("exit", () => children.delete(child));
  }
  for (let rank = 0; rank < ranks; rank++) {
    while (!existsSync(join(queueDir, `ready.${rank}`))) await sleep(20);
  }

  const publisher = await NatsChannel.connect({ url }, runId);
  const waiting = new Map();
  const sub = publisher.subscribeAcks((ack) => {
    const w = waiting.get(ack.id);
    if (w === undefined) return;
    w.ranks.add(ack.rank);
    // Wall clocks of one machine: the command's ts → the rank's ack ts → this delivery.
    w.inbound = Math.max(w.inbound, ack.ts * 1000 - w.sentAt);
    w.outbound = Math.max(w.outbound, Date.now() - ack.ts * 1000);
    if (w.ranks.size === ranks) w.done();
  });
  await publisher.nc.flush();
  const e = await echo(url);
  const rawLoaded = [];
  const total = [];
  const inbound = [];
  const outbound = [];
  for (let i = 0; i < warmup + commands; i++) {
    const raw = await e.once();
    const id = `py-${ranks}-${i}`;
    const sentAt = Date.now();
    const w = { ranks: new Set(), sentAt, inbound: 0, outbound: 0 };
    const acked = new Promise((done) => {
      w.done = done;
      waiting.set(id, w);
    });
    const t0 = now();
    await publisher.publish({ id, ts: sentAt / 1000, path: "optimizer.lr.multiplier", args: [0.5] });
    await acked;
    const t1 = now();
    waiting.delete(id);
    if (i >= warmup) {
      rawLoaded.push(raw);
      total.push(t1 - t0);
      inbound.push(w.inbound);
      outbound.push(w.outbound);
    }
  }
  await e.close();
  await publisher.publish({ path: "run.stop" });
  await Promise.all(procs);
  sub.unsubscribe();
  await bridge.stop();
  await bridgeChannel.close();
  await publisher.close();
  rmSync(dir, { recursive: true, force: true });
  return { total, rawLoaded, inbound, outbound };
}

// --- run ---

const server = await startNatsServer();
const results = {
  nats_server: server.version,
  commands,
  warmup,
  poll_ms: pollMs,
  py_step_ms: pyStepMs,
  raw: null,
  runs: [],
  python_runs: [],
};
try {
  log(
    `nats-server ${server.version} at ${server.url}; ${commands} commands after ${warmup} warm-up each; ` +
      `ranks poll ${pollMs > 0 ? `every ${pollMs} ms when idle` : "back to back"}`,
  );
  results.raw = summary(await rawRoundTrip(server.url));
  log(`raw request/reply round trip (idle)  p50 ${ms(results.raw.p50)}  p99 ${ms(results.raw.p99)}`);
  let runN = 0;
  for (const ranks of rankCounts) {
    const { total, publishOnly, rawLoaded } = await controlRoundTrip(
      server.url,
      ranks,
      `bench-${process.pid}-${runN++}`,
    );
    const t = summary(total);
    const p = summary(publishOnly);
    const r = summary(rawLoaded);
    const run = {
      ranks,
      publish_to_all_acks: t,
      publish_only: p,
      raw_same_load: r,
      ratio_p50: t.p50 / results.raw.p50,
      ratio_p99: t.p99 / results.raw.p99,
      ratio_p50_same_load: t.p50 / r.p50,
    };
    results.runs.push(run);
    log(
      `N=${String(ranks).padStart(2)}  publish → all acks p50 ${ms(t.p50)} p99 ${ms(t.p99)} | publish alone p50 ${ms(p.p50)} | ` +
        `raw under the same load p50 ${ms(r.p50)} p99 ${ms(r.p99)} | ratio p50 ${run.ratio_p50.toFixed(1)}x ` +
        `(p99 ${run.ratio_p99.toFixed(1)}x; ${run.ratio_p50_same_load.toFixed(1)}x vs loaded raw)`,
    );
  }
  for (const ranks of pythonRankCounts) {
    const { total, rawLoaded, inbound, outbound } = await pythonRoundTrip(
      server.url,
      ranks,
      `bench-py-${process.pid}-${runN++}`,
    );
    const t = summary(total);
    const r = summary(rawLoaded);
    const inLeg = summary(inbound);
    const outLeg = summary(outbound);
    const run = {
      ranks,
      publish_to_all_acks: t,
      to_last_rank_ack: inLeg,
      ack_back: outLeg,
      raw_same_load: r,
      ratio_p50: t.p50 / results.raw.p50,
      ratio_p99: t.p99 / results.raw.p99,
      ratio_p50_same_load: t.p50 / r.p50,
      ratio_p99_same_load: t.p99 / r.p99,
    };
    results.python_runs.push(run);
    log(
      `Python N=${String(ranks).padStart(2)} behind the bridge  publish → all acks p50 ${ms(t.p50)} p99 ${ms(t.p99)} | ` +
        `raw under the same load p50 ${ms(r.p50)} p99 ${ms(r.p99)} | ratio p50 ${run.ratio_p50.toFixed(1)}x ` +
        `(p99 ${run.ratio_p99.toFixed(1)}x; ${run.ratio_p50_same_load.toFixed(1)}x / ${run.ratio_p99_same_load.toFixed(1)}x vs loaded raw)`,
    );
    log(
      `          legs (wall clock, 1 ms resolution): publish → last rank's ack written p50 ${ms(inLeg.p50)} p99 ${ms(inLeg.p99)} | ` +
        `ack written → delivered p50 ${ms(outLeg.p50)} p99 ${ms(outLeg.p99)}`,
    );
  }
} finally {
  await server.stop();
}
if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
