// ControlBridge between a real nats-server (JetStream) and a real file queue, with a plain NATS
// client as the hostile publisher and a TypeScript RuntimeController as the rank.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import type { Ack } from "@runctl/core";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlBridge, FileQueue, NatsChannel, RuntimeController, runSubjects } from "../src/mod.ts";
import { tempDir } from "./helpers.ts";

interface NatsServer {
  url: string;
  close(): Promise<void>;
}
const HARNESS = "../../../test-e2e/src/nats-server.ts";
const { startNatsServer } = (await import(/* @vite-ignore */ new URL(HARNESS, import.meta.url).href)) as {
  startNatsServer(): Promise<NatsServer>;
};

let server: NatsServer;
let nc: NatsConnection;
let root: { path: string; cleanup: () => Promise<void> };
let runs = 0;
const packr = new Packr({ useRecords: false, variableMapSize: true });

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  root = await tempDir("bridge");
});
afterAll(async () => {
  await nc?.close();
  await server?.close();
  await root?.cleanup();
});

function newRun(): string {
  runs++;
  return `20261203-080000-${runs.toString(16).padStart(6, "0")}`;
}

/** A plain JetStream publish of any body, as a client in another language would send it. */
async function rawPublish(runId: string, body: unknown, msgId?: string): Promise<void> {
  const h = headers();
  if (msgId !== undefined) h.set("Nats-Msg-Id", msgId);
  await jetstream(nc).publish(runSubjects("runctl", runId).commands, packr.pack(body), { headers: h });
}

function fileLines(queue: FileQueue): string[] {
  try {
    return readFileSync(queue.commandsPath, "utf8").split("\n").slice(0, -1);
  } catch {
    return [];
  }
}

async function until<T>(what: string, get: () => Promise<T> | T, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await get();
    if (done(value)) return value;
    await delay(25);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function natsAcks(channel: NatsChannel): Promise<Ack[]> {
  return await channel.readAcks();
}

describe("the bridge", () => {
  it("rejects an oversized command with an ack and delivers the commands around it exactly once, across a restart", async () => {
    const run = newRun();
    const queue = new FileQueue(join(root.path, run));
    const channel = await NatsChannel.open(nc, run);
    await channel.publish({ id: "before", path: "x", args: [1] });
    await rawPublish(run, { v: 1, id: "huge", ts: 1, path: "x", args: ["y".repeat(70_000)] }, "huge");
    await channel.publish({ id: "after", path: "x", args: [2] });

    const bridge = new ControlBridge({ remote: channel, local: queue }).start();
    await until(
      "three lines",
      () => fileLines(queue),
      (lines) => lines.length >= 3,
    );
    const acks = await until(
      "the bridge's ack",
      () => natsAcks(channel),
      (a) => a.length >= 1,
    );
    // More passes (the safety net) and a restarted bridge must not append anything again.
    await bridge.sync();
    await bridge.sync();
    await bridge.stop();
    const again = new ControlBridge({ remote: channel, local: queue });
    await again.sync();
    await again.stop();

    const lines = fileLines(queue);
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[0] ?? "")).toMatchObject({ id: "before", args: [1] });
    expect(lines[1]).toBe(""); // the rejected message's seq, so file seqs stay NATS seqs
    expect(JSON.parse(lines[2] ?? "")).toMatchObject({ id: "after", args: [2] });
    expect(acks).toMatchObject([{ id: "huge", status: "rejected", rank: -1, seq: 1, path: "x" }]);
    expect(acks[0]?.error).toMatch(/^payload_too_large: /);
    expect((await natsAcks(channel)).filter((a) => a.id === "huge")).toHaveLength(1);
    await channel.close();
  });

  it("refuses bad ids, carries the rest verbatim (no path stays no path), and ranks ack what they read", async () => {
    const run = newRun();
    const queue = new FileQueue(join(root.path, run));
    const channel = await NatsChannel.open(nc, run);
    await rawPublish(run, { v: 1, id: "i".repeat(1025), path: "x" });
    await rawPublish(run, { v: 1, id: "bell\u0007", path: "x" });
    await rawPublish(run, { v: 1, id: "no-path", args: [] }, "no-path");
    await rawPublish(run, { v: 1, path: "x", args: [3] }, "from-header");
    await rawPublish(run, { v: 1, id: "proto", path: "x", kwargs: { ["__proto__"]: 1 } }, "proto");
    await rawPublish(
      run,
      new Map<unknown, unknown>([
        ["v", 1],
        ["id", "intkey"],
        [7, 1],
      ]),
      "intkey",
    );
    await rawPublish(run, { v: 1, id: "big-int", path: "x", args: [2n ** 60n] }, "big-int");
    await rawPublish(run, { v: 1, id: "not-a-list", path: "x", args: "nope" }, "not-a-list");

    const bridge = new ControlBridge({ remote: channel, local: queue }).start();
    const seen: unknown[] = [];
    const rank = new RuntimeController({ queueDir: queue.dir, env: {} });
    rank.register("x", (_ctx, ...args: unknown[]) => {
      seen.push(args);
    });
    const acks = await until(
      "an ack for every message",
      async () => {
        await rank.pollAndApply(null, 0);
        return await natsAcks(channel);
      },
      (a) => a.length >= 8,
    );
    await bridge.stop();
    await rank.close();

    const by = (id: string) => acks.find((a) => a.id === id);
    expect(acks.filter((a) => a.rank === -1).map((a) => a.seq)).toEqual([0, 1, 5, 6]);
    expect(acks.find((a) => a.seq === 0)).toMatchObject({ id: "seq-0", status: "rejected", op: "invalid" });
    expect(acks.find((a) => a.seq === 0)?.error).toMatch(/id must be 1–1024 characters/);
    expect(acks.find((a) => a.seq === 1)?.error).toMatch(/id must be 1–1024 characters/);
    expect(by("intkey")?.error).toMatch(/map keys must be strings/);
    expect(by("big-int")?.error).toMatch(/beyond 2\^53/);
    // What reached the ranks: the map itself, the id taken from the header when the map has none.
    expect(by("no-path")).toMatchObject({
      status: "rejected",
      path: null,
      error: "unknown path: null",
      rank: 0,
    });
    expect(by("from-header")).toMatchObject({ status: "applied", seq: 3, rank: 0, world_size: 1 });
    expect(by("proto")).toMatchObject({ status: "applied", seq: 4 });
    // A map the ranks reject themselves reaches them, so every rank answers as the docs say.
    expect(by("not-a-list")).toMatchObject({
      status: "rejected",
      error: "args must be a list",
      rank: 0,
      seq: 7,
    });
    const lines = fileLines(queue);
    expect(lines).toHaveLength(8);
    expect(JSON.parse(lines[2] ?? "")).toEqual({ id: "no-path", args: [] });
    expect(JSON.parse(lines[4] ?? "")).toEqual({ id: "proto", path: "x", kwargs: { ["__proto__"]: 1 } });
    expect(Object.hasOwn(JSON.parse(lines[4] ?? "").kwargs, "__proto__")).toBe(true);
    expect([lines[0], lines[1], lines[5], lines[6]]).toEqual(["", "", "", ""]);
    await channel.close();
  });

  it("appends a command as it arrives and republishes acks as they are written, with no poll in between", async () => {
    const run = newRun();
    const queue = new FileQueue(join(root.path, run));
    const channel = await NatsChannel.open(nc, run);
    // A safety net far beyond the test's waits: only events can carry the command and its ack.
    const bridge = new ControlBridge({ remote: channel, local: queue, safetyIntervalMs: 3_600_000 }).start();
    await until(
      "running",
      () => channel.readState(),
      (s) => s?.state === "running",
    );
    const sent = await channel.publish({ id: "live", path: "x", args: [5] });
    const page = await until(
      "the command in the file",
      () => queue.read(),
      (p) => p.entries.length === 1,
    );
    expect(page.entries[0]).toMatchObject({ kind: "command", seq: sent.seq, command: { id: "live" } });
    await queue.appendAck({
      id: "live",
      ts: 1,
      path: "x",
      op: "set",
      status: "applied",
      rank: 0,
      world_size: 1,
      seq: 0,
    });
    const acks = await until(
      "the ack on NATS",
      () => natsAcks(channel),
      (a) => a.length === 1,
    );
    expect(acks).toMatchObject([{ id: "live", rank: 0, seq: sent.seq }]);
    await bridge.stop();
    await channel.close();
  });

  it("says the run has ended when it stops, and running when it starts", async () => {
    const run = newRun();
    const channel = await NatsChannel.open(nc, run);
    expect(await channel.readState()).toBeNull();
    const bridge = new ControlBridge({ remote: channel, local: new FileQueue(join(root.path, run)) }).start();
    await until(
      "running",
      () => channel.readState(),
      (s) => s?.state === "running",
    );
    await bridge.stop();
    expect((await channel.readState())?.state).toBe("ended");
    await channel.close();
  });
});
