// NatsChannel against a real nats-server with JetStream (one per file, started in beforeAll).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ConfigError, type ControlCursor, type ControlEntry, START_CURSOR, UserError } from "@runctl/core";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectNats,
  followTelemetry,
  loadNatsContext,
  NatsChannel,
  NatsTelemetry,
  natsConnectOptions,
  PROTOCOL_VERSION,
  requestWhenListening,
  resolveNatsSettings,
  runSubjects,
  runToken,
  STREAM_LIMITS,
  streamName,
  type TelemetryStatus,
} from "../src/mod.ts";

// The harness lives in test-e2e, outside this package's tsconfig rootDir, so it is imported at
// run time by a path TypeScript does not follow; these are the parts of its API used here.
interface NatsServer {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}
const HARNESS = "../../../test-e2e/src/nats-server.ts";
const { startNatsServer } = (await import(/* @vite-ignore */ new URL(HARNESS, import.meta.url).href)) as {
  startNatsServer(options?: { args?: readonly string[] }): Promise<NatsServer>;
};

let server: NatsServer;
let nc: NatsConnection;
const extraConnections: NatsConnection[] = [];
let runs = 0;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
});

afterAll(async () => {
  for (const c of extraConnections) await c.close().catch(() => {});
  await nc?.close().catch(() => {});
  await server?.close();
});

/** A run id of its own per test, so tests share the stream but not subjects. */
function newRun(): string {
  runs++;
  return `20261122-210037-${runs.toString(16).padStart(6, "0")}`;
}

async function newConnection(): Promise<NatsConnection> {
  const c = await connectNats({ url: server.url });
  extraConnections.push(c);
  return c;
}

async function readAll(channel: NatsChannel, from: ControlCursor = START_CURSOR) {
  const entries: ControlEntry[] = [];
  let cursor = from;
  for (;;) {
    const page = await channel.read(cursor);
    entries.push(...page.entries);
    if (page.entries.length === 0) return { entries, cursor };
    cursor = page.cursor;
  }
}

function idOf(entry: ControlEntry): string {
  return entry.kind === "command" ? entry.command.id : entry.id;
}

/** The raw body of the last message on `subject`, straight from the stream. */
async function rawLast(subject: string): Promise<Uint8Array> {
  const jsm = await jetstreamManager(nc);
  const m = await jsm.streams.getMessage(streamName("runctl"), { last_by_subj: subject });
  if (m === null) throw new Error(`nothing on ${subject}`);
  return m.data;
}

describe("names", () => {
  it("derives subjects, the stream name and run tokens from the prefix and run id", () => {
    expect(runSubjects("runctl", "20261122-210037-a1b2c3")).toEqual({
      commands: "runctl.ctl.20261122-210037-a1b2c3.cmd",
      acks: "runctl.ctl.20261122-210037-a1b2c3.ack",
      controls: "runctl.ctl.20261122-210037-a1b2c3.controls",
      state: "runctl.ctl.20261122-210037-a1b2c3.state",
    });
    expect(streamName("runctl")).toBe("RUNCTL_CTL");
    expect(streamName("team-a.runctl")).toBe("TEAM_A_RUNCTL_CTL");
    expect(runToken("exp.1 *>%")).toBe("exp%2E1%20%2A%3E%25");
    expect(runToken("é")).toBe("%C3%A9");
    expect(() => runSubjects("bad..prefix", "r")).toThrow(ConfigError);
    expect(() => runSubjects("a.*", "r")).toThrow(ConfigError);
  });
});

describe("stream", () => {
  it("is created with runctl's limits, and re-opening (even concurrently) leaves it as it is", async () => {
    const run = newRun();
    const channels = await Promise.all(
      [0, 1, 2, 3].map(async () => NatsChannel.open(await newConnection(), run, { prefix: "conc.prefix" })),
    );
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info("CONC_PREFIX_CTL");
    expect(info.config).toMatchObject({
      subjects: ["conc.prefix.ctl.>"],
      retention: "limits",
      storage: "file",
      max_age: STREAM_LIMITS.maxAgeMs * 1e6,
      max_msgs_per_subject: 100_000,
      duplicate_window: 120 * 1e9,
      allow_direct: true,
      allow_rollup_hdrs: true,
    });
    for (const c of channels) await c.close();
  });

  it("brings a stream created with other limits up to runctl's", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: "DRIFT_CTL",
      subjects: ["drift.ctl.>"],
      storage: "file",
      max_age: 1e9 * 60,
      duplicate_window: 1e9 * 10,
    });
    const channel = await NatsChannel.open(await newConnection(), newRun(), { prefix: "drift" });
    const info = await jsm.streams.info("DRIFT_CTL");
    expect(info.config.max_age).toBe(STREAM_LIMITS.maxAgeMs * 1e6);
    expect(info.config.duplicate_window).toBe(120 * 1e9);
    expect(info.config.allow_direct).toBe(true);
    await channel.close();
  });

  it("keeps limits larger than runctl's, and refuses a prefix whose stream name another prefix holds", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: "BIG_CTL",
      subjects: ["big.ctl.>"],
      storage: "file",
      max_age: 0,
      max_msgs_per_subject: 1_000_000,
      duplicate_window: 1e9 * 600,
      allow_direct: true,
      allow_rollup_hdrs: true,
    });
    const big = await NatsChannel.open(await newConnection(), newRun(), { prefix: "big" });
    const info = await jsm.streams.info("BIG_CTL");
    expect(info.config).toMatchObject({
      max_age: 0,
      max_msgs_per_subject: 1_000_000,
      duplicate_window: 600e9,
    });
    await big.close();

    // `team.x` and `team-x` both name TEAM_X_CTL: the second must not rewrite the first's subjects.
    const first = await NatsChannel.open(await newConnection(), newRun(), { prefix: "team.x" });
    const second = NatsChannel.open(await newConnection(), newRun(), { prefix: "team-x" });
    await expect(second).rejects.toMatchObject({ code: "nats_stream_conflict" });
    expect((await jsm.streams.info("TEAM_X_CTL")).config.subjects).toEqual(["team.x.ctl.>"]);
    await first.close();
  });
});

describe("publish and read", () => {
  it("numbers commands in one total order and reads them back from the start", async () => {
    const channel = await NatsChannel.open(nc, newRun());
    const before = Date.now() / 1000;
    const a = await channel.publish({ path: "optimizer.lr.multiplier", args: [0.5] });
    const b = await channel.publish({ id: "fixed", ts: 12.5, path: "x", kwargs: { k: 1 } });
    const c = await channel.publish({ op: "set", path: "y", args: [1, "two", null, true] });
    expect([a.seq, b.seq, c.seq]).toEqual([0, 1, 2]);
    expect(a.command.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.command.ts).toBeGreaterThanOrEqual(before);
    expect(b.command).toMatchObject({ id: "fixed", ts: 12.5, op: "set", args: [], kwargs: { k: 1 } });

    const page = await channel.read();
    expect(page.entries).toEqual([
      { kind: "command", seq: 0, command: a.command },
      { kind: "command", seq: 1, command: b.command },
      { kind: "command", seq: 2, command: c.command },
    ]);
    expect(page.cursor.seq).toBe(3);
    // offset is the stream sequence after the last command read
    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams.getMessage(streamName("runctl"), {
      last_by_subj: channel.subjects.commands,
    });
    expect(page.cursor.offset).toBe((last?.seq ?? 0) + 1);

    // Nothing new: the same cursor, no entries.
    expect(await channel.read(page.cursor)).toEqual({ entries: [], cursor: page.cursor });
    await channel.close();
  });

  it("reads on from a saved cursor, on another connection too, and pages", async () => {
    const run = newRun();
    const publisher = await NatsChannel.open(nc, run);
    for (const path of ["a", "b"]) await publisher.publish({ path });
    const first = await publisher.read();
    expect(first.entries.map((e) => e.seq)).toEqual([0, 1]);

    // Traffic of another run in between does not disturb this run's numbering.
    const other = await NatsChannel.open(nc, newRun());
    await other.publish({ path: "elsewhere" });
    for (const path of ["c", "d", "e"]) await publisher.publish({ path });

    const saved = JSON.parse(JSON.stringify(first.cursor)) as ControlCursor;
    const reader = await NatsChannel.open(await newConnection(), run, { pageSize: 2 });
    const replay = await readAll(reader, saved);
    expect(replay.entries.map((e) => [e.seq, e.kind === "command" ? e.command.path : null])).toEqual([
      [2, "c"],
      [3, "d"],
      [4, "e"],
    ]);
    expect(replay.cursor.seq).toBe(5);
    // From the start, paged two at a time, everything once.
    const all = await readAll(reader);
    expect(all.entries.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(all.cursor).toEqual(replay.cursor);
    for (const c of [publisher, other, reader]) await c.close();
  });

  it("refuses invalid and oversized commands like the file queue, and the reserved field v", async () => {
    const channel = await NatsChannel.open(nc, newRun());
    await expect(channel.publish({ path: 5 } as never)).rejects.toMatchObject({ code: "invalid_command" });
    await expect(channel.publish({ path: "x", v: 2 } as never)).rejects.toMatchObject({
      code: "invalid_command",
    });
    await expect(channel.publish({ id: "a\r\nb", path: "x" })).rejects.toBeInstanceOf(UserError);
    await expect(channel.publish({ path: "x", args: ["x".repeat(70_000)] })).rejects.toMatchObject({
      code: "payload_too_large",
    });
    expect((await channel.read()).entries).toEqual([]);
    await channel.close();
  });
});

describe("de-duplication", () => {
  it("stores a command id once and answers a re-publish with the first seq and command", async () => {
    const run = newRun();
    const channel = await NatsChannel.open(nc, run);
    await channel.publish({ path: "before" });
    const first = await channel.publish({ id: "dup-1", path: "x", args: [1] });
    await channel.publish({ path: "after" });
    const again = await channel.publish({ id: "dup-1", path: "x", args: [2] });
    expect(again.seq).toBe(first.seq);
    expect(again.command).toEqual(first.command);
    // Another publisher, with no count of its own yet, gets the same answer.
    const other = await NatsChannel.open(await newConnection(), run);
    expect((await other.publish({ id: "dup-1", path: "x", args: [3] })).seq).toBe(1);
    expect((await other.publish({ path: "last" })).seq).toBe(3);

    const { entries } = await readAll(channel);
    expect(entries.map(idOf).filter((id) => id === "dup-1")).toHaveLength(1);
    expect(entries.map((e) => e.seq)).toEqual([0, 1, 2, 3]);
    await channel.close();
    await other.close();
  });
});

describe("de-duplication across runs", () => {
  it("refuses an id another run used within the window instead of answering with that run's command", async () => {
    const a = await NatsChannel.open(nc, newRun());
    const b = await NatsChannel.open(nc, newRun());
    await a.publish({ id: "shared-id", path: "x", args: [1] });
    await expect(b.publish({ id: "shared-id", path: "y", args: [2] })).rejects.toMatchObject({
      code: "duplicate_id",
    });
    expect((await b.read()).entries).toEqual([]);
    await a.close();
    await b.close();
  });
});

describe("malformed messages", () => {
  it("become MalformedEntry with the file queue's reasons, and keep their place in the order", async () => {
    const channel = await NatsChannel.open(nc, newRun());
    const js = jetstream(nc);
    const subject = channel.subjects.commands;
    const packr = new Packr({ useRecords: false, variableMapSize: true });
    await channel.publish({ id: "ok-0", path: "x" });
    await js.publish(subject, new TextEncoder().encode("not msgpack at all"), { msgID: "raw-1" });
    await js.publish(subject, new Uint8Array([0xc1]));
    await js.publish(subject, packr.pack({ v: 99, id: "future", path: "x" }));
    await js.publish(subject, packr.pack({ id: "nov", path: "x" }));
    await js.publish(subject, packr.pack([1, 2, 3]));
    await js.publish(subject, packr.pack({ v: 1, id: "badargs", path: "x", args: 5 }));
    await js.publish(subject, packr.pack({ v: 1, id: "nopath", args: [] }));
    const last = await channel.publish({ id: "ok-8", path: "y" });
    expect(last.seq).toBe(8);

    const { entries } = await readAll(channel);
    expect(entries.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const [ok0, raw, reserved, future, noVersion, list, badArgs, noPath, ok8] = entries;
    expect(ok0).toMatchObject({ kind: "command", command: { id: "ok-0" } });
    expect(raw).toMatchObject({ kind: "malformed", seq: 1, id: "raw-1", op: "invalid", path: null });
    expect((raw as { reason: string }).reason).toMatch(/^malformed command: ./);
    expect(reserved).toMatchObject({ kind: "malformed", id: "seq-2", op: "invalid" });
    expect((reserved as { reason: string }).reason).toMatch(/^malformed command: /);
    expect(future).toEqual({
      kind: "malformed",
      seq: 3,
      id: "future",
      op: "invalid",
      path: null,
      reason: "malformed command: unsupported protocol version 99",
      fromObject: false,
    });
    expect(noVersion).toMatchObject({ id: "nov", reason: "malformed command: missing protocol version" });
    expect(list).toMatchObject({ id: "seq-5", reason: "malformed command: not a map" });
    expect(badArgs).toMatchObject({
      kind: "malformed",
      id: "badargs",
      op: "set",
      reason: "args must be a list",
    });
    // As in the file queue, a command without a path still reads as a command (the supervisor's `signal`).
    expect(noPath).toMatchObject({ kind: "command", command: { id: "nopath", path: null } });
    expect(ok8).toMatchObject({ kind: "command", seq: 8, command: { id: "ok-8" } });
    await channel.close();
  });
});

describe("acks", () => {
  it("keeps every rank's acks in order, filters by command id, skips non-acks and retried duplicates", async () => {
    const channel = await NatsChannel.open(nc, newRun());
    const a = await channel.publish({ id: "cmd-a", path: "lr", args: [0.1] });
    const b = await channel.publish({ id: "cmd-b", path: "stop" });
    const ts = Date.now() / 1000;
    for (const rank of [0, 1, 2, 3]) {
      await channel.appendAck({
        id: "cmd-a",
        ts: ts + rank,
        path: "lr",
        op: "set",
        status: "applied",
        value: 0.1,
        rank,
        world_size: 4,
        seq: a.seq,
      });
    }
    const rejected = {
      id: "cmd-b",
      ts,
      path: "stop",
      op: "set",
      status: "rejected" as const,
      error: "unknown path: stop",
      rank: 0,
      world_size: 4,
      seq: b.seq,
    };
    await channel.appendAck(rejected);
    await channel.appendAck(rejected); // a retry of the same record: stored once
    await channel.appendAck({
      id: "cmd-b",
      ts,
      path: null,
      op: "signal",
      status: "applied",
      rank: -1,
      seq: b.seq,
    });
    await jetstream(nc).publish(channel.subjects.acks, new TextEncoder().encode("garbage"));

    const all = await channel.readAcks();
    expect(all.map((ack) => [ack.id, ack.rank])).toEqual([
      ["cmd-a", 0],
      ["cmd-a", 1],
      ["cmd-a", 2],
      ["cmd-a", 3],
      ["cmd-b", 0],
      ["cmd-b", -1],
    ]);
    const forA = await channel.readAcks({ commandId: "cmd-a" });
    expect(forA.map((ack) => ack.rank)).toEqual([0, 1, 2, 3]);
    expect(forA[0]).toEqual({
      id: "cmd-a",
      ts,
      path: "lr",
      op: "set",
      status: "applied",
      value: 0.1,
      rank: 0,
      world_size: 4,
      seq: 0,
    });
    expect(await channel.readAcks({ commandId: "nope" })).toEqual([]);
    await expect(channel.appendAck({ id: "x" } as never)).rejects.toThrow();
    await channel.close();
  });

  it("delivers acks live to subscribers", async () => {
    const channel = await NatsChannel.open(nc, newRun());
    const seen: number[] = [];
    const sub = channel.subscribeAcks((ack) => seen.push(ack.rank ?? -2), { commandId: "live" });
    await nc.flush();
    for (const rank of [0, 1]) {
      await channel.appendAck({ id: "live", ts: rank, path: "p", op: "set", status: "applied", rank });
    }
    await channel.appendAck({ id: "other", ts: 0, path: "p", op: "set", status: "applied", rank: 5 });
    for (let i = 0; i < 50 && seen.length < 2; i++) await delay(20);
    expect(seen).toEqual([0, 1]);
    sub.unsubscribe();
    await channel.close();
  });
});

describe("controls", () => {
  it("reads back the last value written, from any client, and keeps one message", async () => {
    const run = newRun();
    const channel = await NatsChannel.open(nc, run);
    expect(await channel.readControls()).toBeNull();
    await channel.writeControls([{ path: "lr", description: "learning rate", value: 0.1 }]);
    await channel.writeControls([
      { path: "lr", description: "learning rate", value: 0.05 },
      { path: "run.stop", schema: { type: "boolean" } },
    ]);
    const reader = await NatsChannel.open(await newConnection(), run);
    expect(await reader.readControls()).toEqual([
      { path: "lr", description: "learning rate", value: 0.05 },
      { path: "run.stop", schema: { type: "boolean" } },
    ]);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(streamName("runctl"), { subjects_filter: channel.subjects.controls });
    expect(info.state.subjects?.[channel.subjects.controls]).toBe(1);
    await expect(channel.writeControls([{ path: "" }])).rejects.toThrow();

    await jetstream(nc).publish(channel.subjects.controls, new Packr({ useRecords: false }).pack({ v: 7 }));
    await expect(reader.readControls()).rejects.toMatchObject({ code: "controls_corrupt" });
    await channel.close();
    await reader.close();
  });
});

describe("values are carried exactly or refused", () => {
  it("keeps a __proto__ key, accepts v as 1.0, and refuses integer keys, integers beyond 2^53 and deep nesting", async () => {
    const run = newRun();
    const channel = await NatsChannel.open(nc, run);
    await channel.publish({ id: "proto", path: "x", kwargs: JSON.parse('{"__proto__": {"p": 1}}') });
    const js = jetstream(nc);
    const subject = runSubjects("runctl", run).commands;
    const raw = new Packr({ useRecords: false, variableMapSize: true });
    const float1 = Buffer.from(raw.pack({ v: 9, id: "float-v", path: "x" }));
    // Rewrite v's value 9 (fixint 0x09) as float64 1.0: what a client with only floats writes.
    const at = float1.indexOf(Buffer.from([0xa1, 0x76, 0x09])) + 2;
    const floatV = Buffer.concat([
      float1.subarray(0, at),
      Buffer.from([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]),
      float1.subarray(at + 1),
    ]);
    await js.publish(subject, floatV, { msgID: "float-v" });
    await js.publish(
      subject,
      raw.pack(
        new Map<unknown, unknown>([
          ["v", 1],
          ["id", "int-key"],
          [1, "x"],
        ]),
      ),
      { msgID: "int-key" },
    );
    await js.publish(subject, raw.pack({ v: 1, id: "big", path: "x", args: [2n ** 62n] }), { msgID: "big" });
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    await js.publish(subject, raw.pack({ v: 1, id: "deep", path: "x", args: [deep] }), { msgID: "deep" });
    const { entries } = await channel.read();
    const [proto, floatEntry, intKey, big, deepEntry] = entries;
    expect(proto?.kind === "command" && Object.hasOwn(proto.command.kwargs, "__proto__")).toBe(true);
    expect(floatEntry).toMatchObject({ kind: "command", command: { id: "float-v" } });
    expect(intKey).toMatchObject({
      kind: "malformed",
      reason: "malformed command: map keys must be strings",
    });
    expect(big).toMatchObject({ kind: "malformed", id: "big" });
    expect(big?.kind === "malformed" && big.reason).toMatch(/beyond 2\^53/);
    expect(deepEntry?.kind === "malformed" && deepEntry.reason).toMatch(/nested more than 64 levels/);
    await channel.close();
  });
});

describe("payloads are standard msgpack", () => {
  it("decode with an independent decoder, which rejects msgpackr's extensions", async () => {
    const channel = await NatsChannel.open(nc, newRun());
    const { command } = await channel.publish({
      id: "std-1",
      ts: 1712345678.25,
      path: "optimizer.lr.multiplier",
      args: [
        0.5,
        -3,
        300,
        70_000,
        2 ** 40,
        "é→",
        "x".repeat(300),
        null,
        true,
        false,
        [1, [2]],
        { n: { m: 1 } },
      ],
      kwargs: { warmup: 100, schedule: "cosine" },
    });
    expect(decodeStandardMsgpack(await rawLast(channel.subjects.commands))).toEqual({
      v: PROTOCOL_VERSION,
      ...command,
    });

    await channel.appendAck({
      id: "std-1",
      ts: 1.5,
      path: "optimizer.lr.multiplier",
      op: "set",
      status: "failed",
      error: "boom",
      rank: 3,
      world_size: 8,
      seq: 0,
    });
    expect(decodeStandardMsgpack(await rawLast(channel.subjects.acks))).toEqual({
      v: 1,
      id: "std-1",
      ts: 1.5,
      path: "optimizer.lr.multiplier",
      op: "set",
      status: "failed",
      error: "boom",
      rank: 3,
      world_size: 8,
      seq: 0,
    });

    await channel.writeControls([{ path: "lr", schema: { type: "number", minimum: 0 }, value: 0.1 }]);
    expect(decodeStandardMsgpack(await rawLast(channel.subjects.controls))).toMatchObject({
      v: 1,
      controls: [{ path: "lr", schema: { type: "number", minimum: 0 }, value: 0.1 }],
      pid: process.pid,
    });

    // The oracle is not lenient: records, bundled strings, dates and binaries are refused.
    const records = new Packr({ useRecords: true }).pack([{ a: 1 }, { a: 2 }]);
    expect(() => decodeStandardMsgpack(records)).toThrow(/outside the protocol/);
    expect(() => decodeStandardMsgpack(new Packr().pack(new Date(0)))).toThrow(/outside the protocol/);
    expect(() => decodeStandardMsgpack(new Packr().pack(new Uint8Array([1])))).toThrow(
      /outside the protocol/,
    );
    await channel.close();
  });
});

describe("concurrent publishers", () => {
  it("1,000 commands from 4 connections form one total order that 2 readers read identically", async () => {
    const run = newRun();
    const publishers = await Promise.all(
      [0, 1, 2, 3].map(async () => NatsChannel.open(await newConnection(), run)),
    );
    const results = await Promise.all(
      publishers.map((channel, p) =>
        Promise.all(
          Array.from({ length: 250 }, (_, i) => channel.publish({ id: `p${p}-${i}`, path: "x", args: [i] })),
        ),
      ),
    );
    const seqOf = new Map(results.flat().map((r) => [r.command.id, r.seq]));
    expect(new Set(seqOf.values()).size).toBe(1000);
    expect(Math.max(...seqOf.values())).toBe(999);

    const readers = await Promise.all([0, 1].map(async () => NatsChannel.open(await newConnection(), run)));
    const [one, two] = await Promise.all(readers.map((r) => readAll(r)));
    const ids = one?.entries.map(idOf) ?? [];
    expect(ids).toHaveLength(1000);
    expect(new Set(ids).size).toBe(1000);
    expect(two?.entries.map(idOf)).toEqual(ids);
    expect(one?.entries.map((e) => e.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // What each publisher was told is where the readers find it.
    for (const entry of one?.entries ?? []) expect(seqOf.get(idOf(entry))).toBe(entry.seq);
    // One channel's publishes keep their call order.
    for (let p = 0; p < 4; p++) {
      const mine = ids.filter((id) => id.startsWith(`p${p}-`));
      expect(mine).toEqual(Array.from({ length: 250 }, (_, i) => `p${p}-${i}`));
    }
    for (const c of [...publishers, ...readers]) await c.close();
  });
});

describe("connection settings", () => {
  let home: string;
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), "runctl-natsctx-"));
    mkdirSync(join(home, "nats", "context"), { recursive: true });
    writeFileSync(join(home, "nats", "context.txt"), "prod\n");
    writeFileSync(
      join(home, "nats", "context", "prod.json"),
      JSON.stringify({
        description: "written by `nats context save`",
        url: "nats://a:4222,nats://b:4222",
        token: "",
        user: "alice",
        password: "pw",
        creds: "",
        ca: "~/ca.pem",
        cert: "",
        key: "",
        nsc: "",
        jetstream_domain: "hub",
      }),
    );
    writeFileSync(join(home, "nats", "context", "broken.json"), JSON.stringify({ url: 5 }));
    writeFileSync(join(home, "nats", "context", "notjson.json"), "{");
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it("reads the nats CLI's selected or named context and lets explicit settings win", async () => {
    const ctx = loadNatsContext(undefined, { configHome: home });
    expect(ctx).toMatchObject({
      name: "prod",
      url: "nats://a:4222,nats://b:4222",
      user: "alice",
      password: "pw",
    });
    expect(ctx.ca).toMatch(/\/ca\.pem$/);
    expect(ctx.ca?.startsWith("~")).toBe(false);
    const resolved = resolveNatsSettings({ context: "prod", user: "bob", pass: "pw2" }, { configHome: home });
    expect(resolved).toMatchObject({
      url: "nats://a:4222,nats://b:4222",
      user: "bob",
      pass: "pw2",
      jsDomain: "hub",
    });
    expect(resolved.tls?.ca).toBe(ctx.ca);
    const opts = await natsConnectOptions({ context: "prod", token: "t0k" }, { configHome: home });
    expect(opts).toMatchObject({
      servers: ["nats://a:4222", "nats://b:4222"],
      user: "alice",
      pass: "pw",
      token: "t0k",
      maxReconnectAttempts: -1,
      tls: { caFile: ctx.ca },
    });
    expect(() => loadNatsContext("broken", { configHome: home })).toThrow(ConfigError);
    expect(() => loadNatsContext("notjson", { configHome: home })).toThrow(ConfigError);
    expect(() => loadNatsContext("missing", { configHome: home })).toThrow(/does not exist/);
    expect(() => loadNatsContext("../etc", { configHome: home })).toThrow(ConfigError);
  });

  it("authenticates with a token and reconnects forever", async () => {
    const guarded = await startNatsServer({ args: ["--auth", "s3cret"] });
    try {
      await expect(connectNats({ url: guarded.url })).rejects.toThrow();
      const authed = await connectNats({ url: guarded.url, token: "s3cret" });
      const channel = await NatsChannel.open(authed, newRun());
      expect((await channel.publish({ path: "x" })).seq).toBe(0);
      await channel.close();
      await authed.close();
    } finally {
      await guarded.close();
    }
  });
});

describe("server restart", () => {
  it("keeps the stream, and commands published during the outage arrive after, in order, once", async () => {
    const run = newRun();
    const publisherConn = await newConnection();
    const publisher = await NatsChannel.open(publisherConn, run);
    const reader = await NatsChannel.open(await newConnection(), run);
    const closedEarly = await NatsChannel.open(publisherConn, newRun());
    for (let i = 0; i < 10; i++) await publisher.publish({ id: `before-${i}`, path: "x" });
    const seen = await readAll(reader);
    expect(seen.entries).toHaveLength(10);

    await server.stop();
    const during = Array.from({ length: 10 }, (_, i) => publisher.publish({ id: `during-${i}`, path: "x" }));
    for (const p of during) p.catch(() => {}); // awaited below; a failure here must not go unhandled
    // A publish waiting for the connection gives up when its channel is closed.
    const abandoned = closedEarly.publish({ path: "x" });
    abandoned.catch(() => {});
    await closedEarly.close();
    await expect(abandoned).rejects.toMatchObject({ code: "nats_publish_failed" });
    // Reads do not wait out a request timeout while the server is away: they fail at once.
    let readError: unknown;
    for (let i = 0; i < 100 && readError === undefined; i++) {
      readError = await reader.read(seen.cursor).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (readError === undefined) await delay(20);
    }
    expect(readError).toMatchObject({ code: "nats_disconnected" });
    await delay(300);
    await server.start();
    const sent = await Promise.all(during);
    expect(sent.map((s) => s.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 10 + i));

    // The reader's cursor from before the restart still points at the right place. (Its own
    // connection may still be reconnecting: until then reads fail fast, and a poller tries again.)
    let after: Awaited<ReturnType<typeof readAll>> | undefined;
    for (let i = 0; i < 200 && after === undefined; i++) {
      after = await readAll(reader, seen.cursor).catch((error: unknown) => {
        expect(error).toMatchObject({ code: "nats_disconnected" });
        return delay(50).then(() => undefined);
      });
    }
    if (after === undefined) throw new Error("the reader never reconnected");
    expect(after.entries.map(idOf)).toEqual(Array.from({ length: 10 }, (_, i) => `during-${i}`));
    const all = await readAll(reader);
    expect(all.entries.map(idOf)).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `before-${i}`),
      ...Array.from({ length: 10 }, (_, i) => `during-${i}`),
    ]);
    expect(all.entries.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await publisher.close();
    await reader.close();
  });
});

// --- test oracle ---

function decodeStandardMsgpack(bytes: Uint8Array): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let pos = 0;
  const take = (n: number): number => {
    if (pos + n > bytes.length) throw new Error(`truncated at byte ${pos}`);
    const at = pos;
    pos += n;
    return at;
  };
  const str = (n: number): string => {
    const at = take(n);
    return utf8.decode(bytes.subarray(at, at + n));
  };
  const array = (n: number): unknown[] => Array.from({ length: n }, () => value());
  const map = (n: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const key = value();
      if (typeof key !== "string") throw new Error(`map key ${String(key)} is not a string`);
      out[key] = value();
    }
    return out;
  };
  function value(): unknown {
    const b = bytes[take(1)] as number;
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0x80 && b <= 0x8f) return map(b & 0x0f);
    if (b >= 0x90 && b <= 0x9f) return array(b & 0x0f);
    if (b >= 0xa0 && b <= 0xbf) return str(b & 0x1f);
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xca:
        return view.getFloat32(take(4));
      case 0xcb:
        return view.getFloat64(take(8));
      case 0xcc:
        return view.getUint8(take(1));
      case 0xcd:
        return view.getUint16(take(2));
      case 0xce:
        return view.getUint32(take(4));
      case 0xcf:
        return Number(view.getBigUint64(take(8)));
      case 0xd0:
        return view.getInt8(take(1));
      case 0xd1:
        return view.getInt16(take(2));
      case 0xd2:
        return view.getInt32(take(4));
      case 0xd3:
        return Number(view.getBigInt64(take(8)));
      case 0xd9:
        return str(view.getUint8(take(1)));
      case 0xda:
        return str(view.getUint16(take(2)));
      case 0xdb:
        return str(view.getUint32(take(4)));
      case 0xdc:
        return array(view.getUint16(take(2)));
      case 0xdd:
        return array(view.getUint32(take(4)));
      case 0xde:
        return map(view.getUint16(take(2)));
      case 0xdf:
        return map(view.getUint32(take(4)));
      default:
        throw new Error(
          `msgpack type byte 0x${b.toString(16)} is outside the protocol (bin, ext or reserved)`,
        );
    }
  }
  const out = value();
  if (pos !== bytes.length) throw new Error(`${bytes.length - pos} trailing bytes`);
  return out;
}

describe("requests to a responder between connections", () => {
  it("are sent again on 'no responders' until one listens, never after a timeout", async () => {
    const responder = await newConnection();
    const asker = await newConnection();
    const subject = `runctl.test.${newRun()}.inbox`;
    // Nobody listens for the first ~600 ms: the request is sent again until somebody does.
    let delivered = 0;
    setTimeout(() => {
      responder.subscribe(subject, {
        callback: (_error, msg) => {
          delivered++;
          msg.respond(`answer ${delivered}`);
        },
      });
    }, 600);
    const reply = await requestWhenListening(asker, subject, "hello", { timeoutMs: 10_000, retryMs: 100 });
    expect(reply.string()).toBe("answer 1");
    expect(delivered).toBe(1);

    // A listener that does not answer: the request times out once and is not repeated.
    const silent = `runctl.test.${newRun()}.silent`;
    let heard = 0;
    responder.subscribe(silent, {
      callback: () => {
        heard++;
      },
    });
    await responder.flush();
    await expect(requestWhenListening(asker, silent, "x", { timeoutMs: 800, retryMs: 100 })).rejects.toThrow(
      /timeout/i,
    );
    expect(heard).toBe(1);

    // Nobody at all: "no responders" once the deadline leaves no room for another try.
    await expect(
      requestWhenListening(asker, `runctl.test.${newRun()}.nobody`, "x", { timeoutMs: 500, retryMs: 100 }),
    ).rejects.toThrow(/no responders/);
  });
});

describe("a run's end as telemetry", () => {
  it("goes out once, after the output, with the final sizes, and waits for a connection that is down", async () => {
    const run = newRun();
    const statuses: TelemetryStatus[] = [];
    const chunks: number[] = [];
    const follower = followTelemetry(await newConnection(), "runctl", run, {
      onStatus: (status) => statuses.push(status),
      onBytes: (_file, offset, data) => chunks.push(offset + data.byteLength),
    });
    const publisherConn = await newConnection();
    await publisherConn.flush();
    const telemetry = new NatsTelemetry(publisherConn, "runctl", run, "vm-1");
    const meta = (status: string) => Buffer.from(JSON.stringify({ status, exit_code: 0 }));
    const replace = (status: string) =>
      telemetry.replace("meta.json", meta(status).byteLength, async () => meta(status));
    await replace("running");
    await telemetry.append("output.log", 0, Buffer.from("x\n"));
    // meta.json says completed before the last output went out: no end yet.
    await replace("completed");
    await telemetry.append("output.log", 2, Buffer.from("y\n"));
    expect(await telemetry.publishEnd("completed", 0)).toBe(true);
    for (let i = 0; i < 100 && statuses.length < 2; i++) await delay(20);
    expect(statuses.map((s) => s.status)).toEqual(["running", "completed"]);
    expect(statuses[1]?.sizes).toEqual({ "output.log": 4 });
    expect(chunks).toEqual([2, 4]);
    follower.stop();

    // With the server down: given up after waitMs, or sent once the connection is back.
    const disconnected = (async () => {
      for await (const status of publisherConn.status()) if (status.type === "disconnect") return;
    })();
    await server.stop();
    await disconnected;
    expect(await telemetry.publishEnd("failed", 1, 200)).toBe(false);
    let settled = false;
    const end = telemetry.publishEnd("failed", 1).then((sent) => {
      settled = true;
      return sent;
    });
    await delay(300);
    expect(settled).toBe(false);
    await server.start();
    expect(await end).toBe(true);
  });
});
