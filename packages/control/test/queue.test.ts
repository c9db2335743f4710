// FileQueue on real files: publishing, reading from a cursor, acks, controls.
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { START_CURSOR, UserError } from "@runctl/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileQueue, MAX_COMMAND_BYTES } from "../src/mod.ts";
import { tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
let n = 0;
beforeAll(async () => {
  root = await tempDir("queue");
});
afterAll(async () => {
  await root.cleanup();
});
function freshQueue(): FileQueue {
  const dir = join(root.path, `q${n++}`);
  mkdirSync(dir);
  return new FileQueue(dir);
}

describe("publish", () => {
  it("fills id and ts, appends one line per command and returns its seq", async () => {
    const queue = freshQueue();
    const before = Date.now() / 1000;
    const a = await queue.publish({ path: "optimizer.lr.multiplier", args: [0.5] });
    const b = await queue.publish({ id: "fixed", ts: 12.5, op: "set", path: "x", kwargs: { k: 1 } });
    expect(a.seq).toBe(0);
    expect(b.seq).toBe(1);
    expect(a.command.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.command.ts).toBeGreaterThanOrEqual(before);
    expect(a.command).toMatchObject({ op: "set", path: "optimizer.lr.multiplier", args: [0.5], kwargs: {} });
    expect(b.command).toMatchObject({ id: "fixed", ts: 12.5, args: [], kwargs: { k: 1 } });
    const lines = readFileSync(queue.commandsPath, "utf8").split("\n");
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[0] as string)).toEqual(a.command);
    expect(JSON.parse(lines[1] as string)).toEqual(b.command);
  });

  it("counts lines already in the file, blank ones included, written by anyone", async () => {
    const queue = freshQueue();
    await queue.publish({ path: "x" });
    appendFileSync(queue.commandsPath, '{"id":"by-hand","path":"x"}\n\n');
    expect((await new FileQueue(queue.dir).publish({ path: "y" })).seq).toBe(3);
    expect((await queue.publish({ path: "z" })).seq).toBe(4);
  });

  it("ends a dead writer's torn line instead of gluing the command onto it", async () => {
    const queue = freshQueue();
    await queue.publish({ path: "x" });
    appendFileSync(queue.commandsPath, '{"id":"torn","pa');
    const { seq, command } = await queue.publish({ path: "y" });
    expect(seq).toBe(2);
    const page = await queue.read();
    expect(page.entries.map((e) => e.kind)).toEqual(["command", "malformed", "command"]);
    expect(page.entries[1]).toMatchObject({ seq: 1, id: "torn", op: "invalid" });
    expect(page.entries[2]).toMatchObject({ seq: 2, command: { id: command.id } });
  });

  it("refuses a line over 64 KiB with payload_too_large, and writes nothing", async () => {
    const queue = freshQueue();
    const error = await queue.publish({ path: "x", args: ["y".repeat(MAX_COMMAND_BYTES)] }).catch((e) => e);
    expect(error).toBeInstanceOf(UserError);
    expect(error).toMatchObject({ code: "payload_too_large" });
    expect(error.hint).toBeTruthy();
    // Exactly at the limit, newline included, is fine.
    const base = JSON.stringify({ id: "i", ts: 1, op: "set", path: "x", args: [""], kwargs: {} }).length;
    const ok = await queue.publish({
      id: "i",
      ts: 1,
      path: "x",
      args: ["y".repeat(MAX_COMMAND_BYTES - base - 1)],
    });
    expect(ok.seq).toBe(0);
    expect(readFileSync(queue.commandsPath).length).toBe(MAX_COMMAND_BYTES);
    await expect(
      queue.publish({ path: "x", args: ["y".repeat(MAX_COMMAND_BYTES - base)] }),
    ).rejects.toMatchObject({
      code: "payload_too_large",
    });
  });

  it("refuses a command that does not validate", async () => {
    const queue = freshQueue();
    // @ts-expect-error: path is required
    const error = await queue.publish({ args: [1] }).catch((e) => e);
    expect(error).toMatchObject({ code: "invalid_command" });
  });
});

describe("read", () => {
  it("returns complete lines from a cursor, with seq counting every line", async () => {
    const queue = freshQueue();
    expect(await queue.read()).toEqual({ entries: [], cursor: START_CURSOR });
    const lines = [
      '{"id":"a","path":"p","args":[1]}',
      "",
      "not json",
      "[1,2]",
      '{"id":"b","path":"p","args":"nope"}',
      '{"id":"c","path":"p","kwargs":[]}',
      '{"op":"signal","args":["SIGTERM"],"extra":true}',
      '{"id":"d","op":5,"path":7}',
      '{"id":"e","path":"p","args":[NaN]}',
      '{"id":"g","path":"p","value":0.5,"args":null}',
      '{"id":"h","path":"p","value":0.5}',
    ];
    writeFileSync(queue.commandsPath, `${lines.join("\n")}\n{"id":"f","path"`);
    const page = await queue.read();
    expect(page.cursor.seq).toBe(11);
    const command = (seq: number, fields: Record<string, unknown>) => ({
      kind: "command",
      seq,
      command: { ts: 0, op: "set", args: [], kwargs: {}, ...fields },
    });
    const rejected = (seq: number, fields: Record<string, unknown>) => ({
      kind: "malformed",
      seq,
      op: "invalid",
      path: null,
      fromObject: false,
      ...fields,
    });
    expect(page.entries).toEqual([
      command(0, { id: "a", path: "p", args: [1] }),
      rejected(2, { id: "seq-2", reason: expect.stringMatching(/^malformed command: .+/) }),
      rejected(3, { id: "seq-3", reason: "malformed command: not a JSON object" }),
      rejected(4, { id: "b", op: "set", path: "p", reason: "args must be a list", fromObject: true }),
      rejected(5, { id: "c", op: "set", path: "p", reason: "kwargs must be an object", fromObject: true }),
      command(6, { id: "seq-6", op: "signal", path: null, args: ["SIGTERM"], extra: true }),
      command(7, { id: "d", op: "5", path: null }),
      rejected(8, { id: "e", reason: expect.stringMatching(/^malformed command: /) }),
      rejected(9, { id: "g", op: "set", path: "p", reason: "args must be a list", fromObject: true }),
      command(10, { id: "h", path: "p", value: 0.5, args: [0.5] }),
    ]);

    // The torn tail is not consumed; once complete it is the next entry.
    expect((await queue.read(page.cursor)).entries).toEqual([]);
    appendFileSync(queue.commandsPath, ':"p"}\n');
    const next = await queue.read(page.cursor);
    expect(next.entries).toEqual([command(11, { id: "f", path: "p" })]);
    expect(next.cursor).toEqual({ seq: 12, offset: readFileSync(queue.commandsPath).length });
  });

  it("reads a replaced or truncated file from the start, with a warning", async () => {
    const queue = freshQueue();
    writeFileSync(queue.commandsPath, '{"id":"a","path":"p"}\n{"id":"b","path":"p"}\n');
    const { cursor } = await queue.read();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on("warning", onWarning);
    try {
      writeFileSync(queue.commandsPath, '{"id":"c","path":"p"}\n');
      const page = await queue.read(cursor);
      expect(page.entries.map((e) => e.kind === "command" && e.command.id)).toEqual(["c"]);
      expect(page.cursor.seq).toBe(1);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([expect.stringContaining("no longer matches the cursor")]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("reads an id out of a line that is not JSON, and rejects bytes that are not UTF-8", async () => {
    const queue = freshQueue();
    writeFileSync(
      queue.commandsPath,
      Buffer.concat([Buffer.from('{"id": "x\\"y", oops\n'), Buffer.from([0xff, 0x0a])]),
    );
    const { entries } = await queue.read();
    expect(entries).toEqual([
      expect.objectContaining({ kind: "malformed", id: 'x"y' }),
      expect.objectContaining({ kind: "malformed", id: "seq-1", reason: "malformed command: invalid UTF-8" }),
    ]);
  });
});

describe("acks, controls, history", () => {
  it("appends acks and filters them by command id", async () => {
    const queue = freshQueue();
    const { command } = await queue.publish({ path: "x" });
    await queue.appendAck({
      id: command.id,
      ts: 1,
      path: "x",
      op: "set",
      status: "applied",
      rank: 0,
      seq: 0,
    });
    await queue.appendAck({
      id: command.id,
      ts: 2,
      path: "x",
      op: "set",
      status: "applied",
      rank: 1,
      seq: 0,
    });
    await queue.appendAck({ id: "other", ts: 3, path: null, op: "signal", status: "applied", rank: -1 });
    appendFileSync(queue.acksPath, "garbage\n");
    await queue.close();
    expect((await queue.readAcks()).map((a) => a.rank)).toEqual([0, 1, -1]);
    expect((await queue.readAcks({ commandId: command.id })).map((a) => a.rank)).toEqual([0, 1]);
    const history = await queue.history();
    expect(history).toHaveLength(1);
    expect(history[0]?.acks.map((a) => a.rank)).toEqual([0, 1]);
    // @ts-expect-error: status must be one of the three
    await expect(queue.appendAck({ id: "x", ts: 1, path: "x", op: "set", status: "done" })).rejects.toThrow();
  });

  it("writes controls.json atomically and reads it back", async () => {
    const queue = freshQueue();
    expect(await queue.readControls()).toBeNull();
    await queue.writeControls([{ path: "a", description: "A", value: 1 }, { path: "b" }]);
    expect(await queue.readControls()).toEqual([{ path: "a", description: "A", value: 1 }, { path: "b" }]);
    const file = JSON.parse(readFileSync(queue.controlsPath, "utf8"));
    expect(file.pid).toBe(process.pid);
    expect(new Date(file.updated_at).getTime()).not.toBeNaN();
    writeFileSync(queue.controlsPath, "{");
    await expect(queue.readControls()).rejects.toMatchObject({ code: "controls_corrupt" });
  });
});
