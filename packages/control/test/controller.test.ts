// RuntimeController on one rank, on real queue files: check order and messages,
// validators, standard controls, torn lines, restarts and duplicate ids.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Ack } from "@runctl/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APPLIED_IDS_KEPT, FileQueue, RuntimeController, Validated } from "../src/mod.ts";
import { readLines, tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
let n = 0;
beforeAll(async () => {
  root = await tempDir("controller");
});
afterAll(async () => {
  await root.cleanup();
});
function freshDir(): string {
  return join(root.path, `q${n++}`);
}

/** One call with everyS = 0, which makes every call a poll point. */
async function poll<C>(ctl: RuntimeController<C>, ctx: C): Promise<Ack[]> {
  return ctl.pollAndApply(ctx, 0);
}

describe("torn lines", () => {
  it("a half-written command is neither applied nor rejected until it is complete, then applied once", async () => {
    const dir = freshDir();
    const applied: number[] = [];
    const ctl = new RuntimeController({ queueDir: dir, env: {} });
    ctl.register("x", (_ctx, v: number) => {
      applied.push(v);
    });
    const line = JSON.stringify({ id: "c1", ts: 1, op: "set", path: "x", args: [7], kwargs: {} });
    appendFileSync(join(dir, "commands.jsonl"), line.slice(0, 20));
    expect(await poll(ctl, null)).toEqual([]);
    expect(await poll(ctl, null)).toEqual([]);
    expect(applied).toEqual([]);
    expect(readLines(join(dir, "acks.jsonl"))).toEqual([]);

    appendFileSync(join(dir, "commands.jsonl"), `${line.slice(20)}\n`);
    const acks = await poll(ctl, null);
    expect(acks).toMatchObject([{ id: "c1", status: "applied", value: 7, seq: 0, rank: 0, world_size: 1 }]);
    expect(await poll(ctl, null)).toEqual([]);
    expect(applied).toEqual([7]);
    expect(readLines(join(dir, "acks.jsonl"))).toHaveLength(1);
  });
});

describe("bad input", () => {
  it("acks every kind of bad command as docs/control.md says, and keeps applying later ones", async () => {
    const dir = freshDir();
    const ctl = new RuntimeController({ queueDir: dir, env: {} });
    const seen: unknown[] = [];
    ctl.register(
      "pos",
      (_ctx, v: number) => {
        seen.push(v);
      },
      (v) => {
        const x = Number(v);
        if (!(x > 0)) throw new Error(`must be > 0, got ${String(v)}`);
        return x;
      },
    );
    ctl.register("boom", () => {
      throw new Error("apply blew up");
    });
    const file = join(dir, "commands.jsonl");
    const q = new FileQueue(dir);
    await q.publish({ id: "unknown", path: "x", args: [1] });
    await q.publish({ id: "invalid", path: "pos", args: [-1] });
    appendFileSync(file, '{"id": "broken", "path": \n');
    appendFileSync(file, '{"id":"args","path":"pos","args":{"a":1}}\n');
    appendFileSync(file, '{"id":"kwargs","path":"pos","args":[1],"kwargs":[1]}\n');
    await q.publish({ id: "op", op: "delete", path: "pos", args: [1] });
    await q.publish({ id: "apply", path: "boom" });
    appendFileSync(file, '{"id":"nopath","args":[1]}\n');
    appendFileSync(file, '{"id":"opnum","op":3,"path":"pos"}\n');
    appendFileSync(file, '{"id":"nullargs","path":"pos","args":null}\n');
    appendFileSync(file, '{"op":"signal","args":["SIGTERM"]}\n'); // the supervisor's: no ack from ranks
    await q.publish({ id: "ok", path: "pos", args: ["2.5"] });
    appendFileSync(file, '{"id":"legacy","path":"pos","value":4}\n'); // runtimectl's first format

    const acks = await poll(ctl, null);
    const brief = acks.map((a) => ({ id: a.id, status: a.status, error: a.error, op: a.op, path: a.path }));
    expect(brief).toEqual([
      { id: "unknown", status: "rejected", error: "unknown path: x", op: "set", path: "x" },
      { id: "invalid", status: "failed", error: "must be > 0, got -1", op: "set", path: "pos" },
      {
        id: "broken",
        status: "rejected",
        error: expect.stringMatching(/^malformed command: /),
        op: "invalid",
        path: null,
      },
      { id: "args", status: "rejected", error: "args must be a list", op: "set", path: "pos" },
      { id: "kwargs", status: "rejected", error: "kwargs must be an object", op: "set", path: "pos" },
      { id: "op", status: "rejected", error: "unsupported op: delete", op: "delete", path: "pos" },
      { id: "apply", status: "failed", error: "apply blew up", op: "set", path: "boom" },
      { id: "nopath", status: "rejected", error: "unknown path: null", op: "set", path: null },
      { id: "opnum", status: "rejected", error: "unsupported op: 3", op: "3", path: "pos" },
      { id: "nullargs", status: "rejected", error: "args must be a list", op: "set", path: "pos" },
      { id: "ok", status: "applied", error: undefined, op: "set", path: "pos" },
      { id: "legacy", status: "applied", error: undefined, op: "set", path: "pos" },
    ]);
    expect(acks.map((a) => a.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
    expect(acks.map((a) => a.rank)).toEqual(acks.map(() => 0));
    expect(acks[10]?.value).toBe(2.5);
    expect(seen).toEqual([2.5, 4]);
    expect(readLines(join(dir, "acks.jsonl"))).toEqual(JSON.parse(JSON.stringify(acks)));

    // The loop keeps running: later commands still apply.
    await q.publish({ id: "later", path: "pos", args: [3] });
    expect((await poll(ctl, null)).map((a) => [a.id, a.status])).toEqual([["later", "applied"]]);
    expect(seen).toEqual([2.5, 4, 3]);
  });

  it("refuses to poll before a queue is configured", async () => {
    const ctl = new RuntimeController({ env: {} });
    await expect(ctl.pollAndApply(null)).rejects.toMatchObject({ code: "control_not_configured" });
  });
});

describe("validators and apply", () => {
  it("tells one value, several args and args+kwargs apart", async () => {
    const dir = freshDir();
    const calls: unknown[][] = [];
    const ctx = { tag: "ctx" };
    const ctl = new RuntimeController<typeof ctx>({ queueDir: dir, env: {} });
    const record = (c: typeof ctx, ...rest: unknown[]) => {
      calls.push([c.tag, ...rest]);
    };
    ctl.register("plain", record);
    ctl.register("one", record, (v) => [Number(v), "as one array value"]);
    ctl.register("args", record, (a, b) => Validated.args(Number(a), Number(b)));
    ctl.register("call", record, (a, kwargs) =>
      Validated.call([String(a)], { ...(kwargs as object), extra: 1 }),
    );
    ctl.register("check", record, async (a) => {
      if (a === "bad") throw new Error("bad value");
    });
    for (const [path, args, kwargs] of [
      ["plain", [1, 2], { k: "v" }],
      ["plain", ["solo"], {}],
      ["one", ["4"], {}],
      ["args", ["1", "2"], { dropped: true }],
      ["call", [5], { k: 2 }],
      ["check", ["fine", 2], { z: 0 }],
      ["check", ["bad"], {}],
    ] as const) {
      await RuntimeController.enqueue(dir, path, [...args], { ...kwargs });
    }
    const acks = await poll(ctl, ctx);
    expect(acks.map((a) => [a.status, a.value, a.error])).toEqual([
      ["applied", { args: [1, 2], kwargs: { k: "v" } }, undefined],
      ["applied", "solo", undefined],
      ["applied", [4, "as one array value"], undefined],
      ["applied", [1, 2], undefined],
      ["applied", { args: ["5"], kwargs: { k: 2, extra: 1 } }, undefined],
      ["applied", { args: ["fine", 2], kwargs: { z: 0 } }, undefined],
      ["failed", undefined, "bad value"],
    ]);
    expect(calls).toEqual([
      ["ctx", 1, 2, { k: "v" }],
      ["ctx", "solo", {}],
      ["ctx", [4, "as one array value"], {}],
      ["ctx", 1, 2, {}],
      ["ctx", "5", { k: 2, extra: 1 }],
      ["ctx", "fine", 2, { z: 0 }],
    ]);
  });

  it("keeps the first control of a path unless overwrite is set, and leaves a value out of the ack when it is not JSON", async () => {
    const dir = freshDir();
    const ctl = new RuntimeController({ queueDir: dir, env: {} });
    const hits: string[] = [];
    ctl.register("p", () => hits.push("first"));
    ctl.register("p", () => hits.push("second"));
    await RuntimeController.enqueue(dir, "p", [1]);
    await poll(ctl, null);
    ctl.register(
      "p",
      () => hits.push("third"),
      () => Number.NaN,
      { overwrite: true },
    );
    await RuntimeController.enqueue(dir, "p", [1]);
    const [ack] = await poll(ctl, null);
    expect(hits).toEqual(["first", "third"]);
    expect(ack?.status).toBe("applied");
    expect(ack && "value" in ack).toBe(false); // NaN is not JSON
    await RuntimeController.enqueue(dir, "p");
    ctl.register("p", () => {}, undefined, { overwrite: true });
    const [noArgs] = await poll(ctl, null);
    expect(noArgs && "value" in noArgs).toBe(false); // no arguments, no value
  });
});

describe("standard controls and controls.json", () => {
  it("run.stop sets stopRequested; checkpoint.save calls the hook, or fails without one", async () => {
    const dir = freshDir();
    const ctl = new RuntimeController<{ step: number }>({ queueDir: dir, env: {} });
    await RuntimeController.enqueue(dir, "checkpoint.save", ["early"]);
    const [noHook] = await poll(ctl, { step: 1 });
    expect(noHook).toMatchObject({ status: "failed", error: expect.stringContaining("onCheckpoint") });

    const saved: unknown[][] = [];
    ctl.onCheckpoint(async (ctx, ...rest) => {
      saved.push([ctx.step, ...rest]);
    });
    await RuntimeController.enqueue(dir, "checkpoint.save", ["tag"], { keep: true });
    await RuntimeController.enqueue(dir, "run.stop");
    expect(ctl.stopRequested).toBe(false);
    const acks = await poll(ctl, { step: 2 });
    expect(acks.map((a) => [a.path, a.status])).toEqual([
      ["checkpoint.save", "applied"],
      ["run.stop", "applied"],
    ]);
    expect(saved).toEqual([[2, "tag", { keep: true }]]);
    expect(ctl.stopRequested).toBe(true);
    const controls = await new FileQueue(dir).readControls();
    expect(controls).toContainEqual(expect.objectContaining({ path: "run.stop", value: true }));
  });

  it("rank 0 describes the registered controls; other ranks write no controls.json", async () => {
    const dir = freshDir();
    const other = new RuntimeController({ queueDir: dir, rank: 1, worldSize: 2, env: {} });
    other.register("x", () => {});
    expect(existsSync(join(dir, "controls.json"))).toBe(false);

    let lr = 0.1;
    const ctl = new RuntimeController({ env: { RUNCTL_CONTROL_DIR: dir, RANK: "0", WORLD_SIZE: "2" } });
    expect([ctl.rank, ctl.worldSize, ctl.queueDir]).toEqual([0, 2, dir]);
    ctl.register(
      "optimizer.lr",
      (_ctx, v: number) => {
        lr = v;
      },
      undefined,
      { description: "learning rate", schema: { type: "number" }, value: () => lr },
    );
    expect(await new FileQueue(dir).readControls()).toEqual([
      expect.objectContaining({ path: "run.stop", value: false }),
      expect.objectContaining({ path: "checkpoint.save" }),
      { path: "optimizer.lr", description: "learning rate", schema: { type: "number" }, value: 0.1 },
    ]);
    await RuntimeController.enqueue(dir, "optimizer.lr", [0.05]);
    await poll(ctl, null);
    expect(await new FileQueue(dir).readControls()).toContainEqual(
      expect.objectContaining({ path: "optimizer.lr", value: 0.05 }),
    );
  });
});

describe("restart and duplicates", () => {
  it("a controller restored from stateDict() or from its cursor file does not re-apply old commands", async () => {
    const dir = freshDir();
    const applied: string[] = [];
    const make = (opts: { queueDir?: string } = {}) => {
      const ctl = new RuntimeController({ ...opts, env: {} });
      ctl.register("x", (_ctx, v: string) => {
        applied.push(v);
      });
      return ctl;
    };
    const first = make({ queueDir: dir });
    for (const v of ["a", "b", "c"]) await RuntimeController.enqueue(dir, "x", [v]);
    await poll(first, null);
    const saved = first.stateDict();
    expect(saved).toMatchObject({ seq: 3, applied_ids: expect.any(Array) });
    expect(JSON.parse(readFileSync(join(dir, "cursor.rank0.json"), "utf8"))).toEqual(saved);
    await first.close();

    for (const v of ["d", "e"]) await RuntimeController.enqueue(dir, "x", [v]);

    // From a checkpointed state dict (loaded before configure: it wins over the cursor file).
    applied.length = 0;
    const fromState = make();
    fromState.loadStateDict(JSON.parse(JSON.stringify(saved)));
    fromState.configure(dir);
    await poll(fromState, null);
    expect(applied).toEqual(["d", "e"]);

    // From the persisted cursor file alone (now past "e").
    applied.length = 0;
    await RuntimeController.enqueue(dir, "x", ["f"]);
    const fromFile = make({ queueDir: dir });
    await poll(fromFile, null);
    expect(applied).toEqual(["f"]);

    // An older state dict still skips what it applied, by id, even though its cursor is behind.
    applied.length = 0;
    const behind = make();
    behind.loadStateDict({ ...saved, seq: 0, offset: 0 });
    behind.configure(dir);
    await poll(behind, null);
    expect(applied).toEqual(["d", "e", "f"]);

    expect(() => make().loadStateDict({ seq: "x" })).toThrow(
      expect.objectContaining({ code: "invalid_control_state" }),
    );
  });

  it("a command id seen again (a publisher's retry) is applied once and acked once", async () => {
    const dir = freshDir();
    const ctl = new RuntimeController({ queueDir: dir, env: {} });
    const applied: number[] = [];
    ctl.register("x", (_ctx, v: number) => {
      applied.push(v);
    });
    const q = new FileQueue(dir);
    await q.publish({ id: "same", path: "x", args: [1] });
    await q.publish({ id: "same", path: "x", args: [1] });
    expect((await poll(ctl, null)).map((a) => a.id)).toEqual(["same"]);
    await q.publish({ id: "same", path: "x", args: [1] });
    await q.publish({ id: "other", path: "x", args: [2] });
    expect((await poll(ctl, null)).map((a) => a.id)).toEqual(["other"]);
    expect(applied).toEqual([1, 2]);
    expect(readLines(join(dir, "acks.jsonl")).map((a) => a.id)).toEqual(["same", "other"]);
    expect(ctl.stateDict().seq).toBe(4);

    // A publisher that died mid-line and retried: the fragment is rejected, the retry applies.
    appendFileSync(join(dir, "commands.jsonl"), '{"id":"retry","ts":1,"path":"x","ar');
    await q.publish({ id: "retry", path: "x", args: [3] });
    const acks = await poll(ctl, null);
    expect(acks.map((a) => [a.id, a.status])).toEqual([
      ["retry", "rejected"],
      ["retry", "applied"],
    ]);
    expect(applied).toEqual([1, 2, 3]);
  });

  it(`remembers the last ${APPLIED_IDS_KEPT} applied ids`, async () => {
    const dir = freshDir();
    const ctl = new RuntimeController({ queueDir: dir, env: {} });
    ctl.register("x", () => {});
    const q = new FileQueue(dir);
    for (let i = 0; i < APPLIED_IDS_KEPT + 10; i++) await q.publish({ id: `c${i}`, path: "x" });
    await poll(ctl, null);
    const ids = ctl.stateDict().applied_ids;
    expect(ids).toHaveLength(APPLIED_IDS_KEPT);
    expect(ids[0]).toBe("c10");
    expect(ids.at(-1)).toBe(`c${APPLIED_IDS_KEPT + 9}`);
  });
});
