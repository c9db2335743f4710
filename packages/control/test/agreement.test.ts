// The multi-rank agreement: 4 ranks in this process joined by an in-memory
// collective (a stand-in for the transport, e.g. torch.distributed; the
// controllers under test are real and read real queue files).
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Collective, FileQueue, RuntimeController } from "../src/mod.ts";
import { tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  root = await tempDir("agreement");
});
afterAll(async () => {
  await root.cleanup();
});

/**
 * Broadcast from rank 0 to `size` ranks. Each rank's i-th collective call meets
 * the others' i-th call; a rank calling a different collective than rank 0 did
 * at that position is an error (it would deadlock or corrupt a real transport).
 * Values travel as JSON, like bytes on a wire.
 */
class MemoryGroup {
  readonly ops: string[][];
  #slots = new Map<number, { kind: string; json: Promise<string>; resolve: (json: string) => void }>();

  constructor(readonly size: number) {
    this.ops = Array.from({ length: size }, () => []);
  }

  member(rank: number): Collective {
    const call = async <T>(kind: string, value: T): Promise<T> => {
      const ops = this.ops[rank] as string[];
      const slot = this.#slot(ops.length);
      ops.push(kind);
      if (rank === 0) {
        slot.kind = kind;
        slot.resolve(JSON.stringify(value));
      }
      const json = await slot.json;
      if (slot.kind !== kind) throw new Error(`rank ${rank} called ${kind} where rank 0 called ${slot.kind}`);
      return JSON.parse(json) as T;
    };
    return {
      broadcast: (values) => call("broadcast", values),
      broadcastObject: (value) => call("broadcastObject", value),
    };
  }

  #slot(i: number) {
    let slot = this.#slots.get(i);
    if (slot === undefined) {
      let resolve!: (json: string) => void;
      const json = new Promise<string>((r) => {
        resolve = r;
      });
      slot = { kind: "", json, resolve };
      this.#slots.set(i, slot);
    }
    return slot;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));
}

const RANKS = 4;

function makeRanks(dir: string, group: MemoryGroup) {
  return Array.from({ length: RANKS }, (_, rank) => {
    const ctl = new RuntimeController<{ rank: number }>({
      queueDir: dir,
      rank,
      worldSize: RANKS,
      collective: group.member(rank),
      env: {},
    });
    const applied: string[] = [];
    ctl.register("x", (ctx, v: string) => {
      expect(ctx.rank).toBe(rank);
      applied.push(v);
    });
    return { ctl, applied };
  });
}

it("ranks at different speeds apply the same commands at the same call index", async () => {
  const dir = join(root.path, "lockstep");
  const group = new MemoryGroup(RANKS);
  const ranks = makeRanks(dir, group);
  // A rank's view of the file may lag; rank 0's read is the one that counts.
  const queue = new FileQueue(dir);
  const published: string[] = [];
  let publishing = true;
  const publisher = (async () => {
    for (let i = 0; i < 40; i++) {
      published.push((await queue.publish({ path: "x", args: [`v${i}`] })).command.id);
      await sleep(i % 3);
    }
    await queue.publish({ path: "run.stop" }); // every rank leaves the loop at the same call
    publishing = false;
  })();

  const logs = await Promise.all(
    ranks.map(async ({ ctl }, rank) => {
      const log: Array<[number, string[]]> = [];
      let call = 0;
      while (!ctl.stopRequested) {
        await sleep((call * (rank + 1)) % 4); // each rank its own wall-clock pace
        const acks = await ctl.pollAndApply({ rank }, 0.003);
        if (acks.length > 0) log.push([call, acks.map((a) => a.id)]);
        call++;
      }
      return { log, calls: call };
    }),
  );
  await publisher;
  expect(publishing).toBe(false);

  const reference = logs[0];
  expect(reference?.log.length).toBeGreaterThan(1); // commands arrived over several polls
  for (const other of logs) {
    expect(other.calls).toBe(reference?.calls);
    expect(other.log).toEqual(reference?.log);
  }
  const appliedIds = reference?.log.flatMap(([, ids]) => ids) ?? [];
  expect(appliedIds.slice(0, -1)).toEqual(published);
  for (const { applied } of ranks) expect(applied).toEqual(published.map((_, i) => `v${i}`));
  for (let r = 1; r < RANKS; r++) expect(group.ops[r]).toEqual(group.ops[0]);
  for (const { ctl } of ranks) expect(ctl.stateDict()).toEqual(ranks[0]?.ctl.stateDict());

  const acks = await queue.readAcks();
  for (const id of published) {
    expect(
      acks
        .filter((a) => a.id === id)
        .map((a) => a.rank)
        .sort(),
    ).toEqual([0, 1, 2, 3]);
  }
});

it("between poll points no rank touches the queue directory or a collective", async () => {
  const dir = join(root.path, "quiet");
  const group = new MemoryGroup(RANKS);
  const ranks = makeRanks(dir, group);
  const queue = new FileQueue(dir);
  await queue.publish({ path: "x", args: ["before"] });

  const callAll = (n: number) =>
    Promise.all(
      ranks.map(async ({ ctl }, rank) => {
        const acks = [];
        for (let i = 0; i < n; i++) acks.push(...(await ctl.pollAndApply({ rank }, 3600)));
        return acks;
      }),
    );

  // Call 0 polls and applies. Calls are fast and everyS is an hour, so k doubles at
  // every poll: call until the gap to the next poll point is wide.
  const first = await callAll(1);
  for (const acks of first) expect(acks.map((a) => a.status)).toEqual(["applied"]);
  while ((ranks[0]?.ctl.schedule.nextPoll ?? 0) - (ranks[0]?.ctl.schedule.calls ?? 0) < 500) {
    for (const acks of await callAll(1)) expect(acks).toEqual([]);
  }
  const { calls, nextPoll } = ranks[0]?.ctl.schedule ?? { calls: 0, nextPoll: 0 };
  for (const { ctl } of ranks) expect(ctl.schedule).toEqual({ calls, nextPoll });
  const opsAtPoll = group.ops.map((ops) => ops.length);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on("warning", onWarning);

  // Replace the queue directory by a plain file: any read, ack or cursor write would now
  // fail with ENOTDIR, on any rank, root or not.
  const aside = `${dir}.aside`;
  renameSync(dir, aside);
  writeFileSync(dir, "not a directory");
  try {
    for (const acks of await callAll((nextPoll ?? 0) - calls)) expect(acks).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off("warning", onWarning);
    rmSync(dir);
    renameSync(aside, dir);
  }
  expect(warnings).toEqual([]);
  expect(group.ops.map((ops) => ops.length)).toEqual(opsAtPoll);
  for (const { ctl } of ranks) expect(ctl.schedule.calls).toBe(nextPoll);

  // The next call is a poll point again: the command published meanwhile applies there on every rank.
  await queue.publish({ path: "x", args: ["after"] });
  for (const acks of await callAll(1)) expect(acks.map((a) => a.status)).toEqual(["applied"]);
  for (const { applied } of ranks) expect(applied).toEqual(["before", "after"]);
});

it("the replaced directory is noticed at a poll point: rank 0 warns and releases the other ranks", async () => {
  const dir = join(root.path, "replaced");
  const group = new MemoryGroup(2);
  const [zero, one] = [0, 1].map(
    (rank) =>
      new RuntimeController({ queueDir: dir, rank, worldSize: 2, collective: group.member(rank), env: {} }),
  );
  await new FileQueue(dir).publish({ path: "run.stop" });
  rmSync(dir, { recursive: true });
  writeFileSync(dir, "not a directory");
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on("warning", onWarning);
  try {
    expect(await Promise.all([zero?.pollAndApply(null, 0), one?.pollAndApply(null, 0)])).toEqual([[], []]);
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off("warning", onWarning);
  }
  expect(warnings).toEqual([expect.stringContaining("ENOTDIR")]);
  expect(group.ops).toEqual([["broadcast"], ["broadcast"]]);
  // A rank on its own has nobody to release: the error is the caller's.
  const solo = new RuntimeController({ queueDir: `${dir}.solo`, env: {} });
  rmSync(`${dir}.solo`, { recursive: true });
  writeFileSync(`${dir}.solo`, "not a directory");
  await expect(solo.pollAndApply(null, 0)).rejects.toMatchObject({ code: "ENOTDIR" });
});
