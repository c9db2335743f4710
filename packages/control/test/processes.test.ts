// 4 publisher processes and 4 consumer ranks (also processes, each its own
// RuntimeController without a collective, each polling at its own pace) on one queue.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { assertDistFresh, type Child, readLines, startChild, tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
const children: Child[] = [];
beforeAll(async () => {
  await assertDistFresh();
  root = await tempDir("processes");
});
afterAll(async () => {
  for (const child of children) child.proc.kill("SIGKILL");
  await root.cleanup();
});

const PUBLISHERS = 4;
const PER_PUBLISHER = 250;
const TOTAL = PUBLISHERS * PER_PUBLISHER;
const RANKS = 4;

interface Published {
  tag: string;
  published: Array<{ seq: number; id: string; i: number }>;
}
interface Consumed {
  rank: number;
  ids: string[];
  applied: string[];
  statuses: string[];
}

it("1,000 commands from 4 publisher processes are applied once, in one order, by 4 rank processes", async () => {
  const dir = join(root.path, "queue");
  const consumers = Array.from({ length: RANKS }, (_, rank) =>
    startChild(["consume", dir, String(rank), String(RANKS), String(TOTAL), String(rank)]),
  );
  children.push(...consumers);
  for (const consumer of consumers) expect(await consumer.line()).toBe("ready");

  const publishers = Array.from({ length: PUBLISHERS }, (_, p) =>
    startChild(["publish", dir, `p${p}`, String(PER_PUBLISHER)]),
  );
  children.push(...publishers);
  const published: Published[] = [];
  for (const publisher of publishers) {
    published.push(JSON.parse(await publisher.line()) as Published);
    expect((await publisher.exited).code).toBe(0);
  }

  // Every publish got a distinct seq, and seq is the line's position in the file.
  const lines = readFileSync(join(dir, "commands.jsonl"), "utf8").split("\n");
  expect(lines.pop()).toBe("");
  expect(lines).toHaveLength(TOTAL);
  const fileIds = lines.map((l) => (JSON.parse(l) as { id: string }).id);
  const bySeq = new Map<number, string>();
  for (const { published: list } of published) for (const p of list) bySeq.set(p.seq, p.id);
  expect([...bySeq.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: TOTAL }, (_, i) => i));
  expect(fileIds).toEqual(Array.from({ length: TOTAL }, (_, seq) => bySeq.get(seq)));
  // Each publisher's own commands stay in the order it published them.
  for (const { published: list } of published) {
    const seqs = list.map((p) => p.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  }

  for (const consumer of consumers) consumer.proc.stdin?.end();
  const consumed: Consumed[] = [];
  for (const consumer of consumers) {
    consumed.push(JSON.parse(await consumer.line()) as Consumed);
    expect((await consumer.exited).code).toBe(0);
  }

  const argsInFileOrder = lines.map((l) => {
    const { args } = JSON.parse(l) as { args: [string, number] };
    return `${args[0]}:${args[1]}`;
  });
  for (const c of consumed) {
    expect(c.statuses).toEqual(["applied"]);
    expect(c.ids).toEqual(fileIds); // every command, once, in the file's order
    expect(c.applied).toEqual(argsInFileOrder); // and apply really ran with the command's args
  }

  const acks = readLines(join(dir, "acks.jsonl"));
  expect(acks).toHaveLength(TOTAL * RANKS);
  const ranksById = new Map<string, number[]>();
  for (const ack of acks) {
    expect(ack.status).toBe("applied");
    expect(ack.world_size).toBe(RANKS);
    expect(fileIds[ack.seq as number]).toBe(ack.id);
    const list = ranksById.get(ack.id as string) ?? [];
    list.push(ack.rank as number);
    ranksById.set(ack.id as string, list);
  }
  for (const id of fileIds) expect(ranksById.get(id)?.sort()).toEqual([0, 1, 2, 3]);

  for (let rank = 0; rank < RANKS; rank++) {
    const cursor = JSON.parse(readFileSync(join(dir, `cursor.rank${rank}.json`), "utf8"));
    expect(cursor.seq).toBe(TOTAL);
    expect(cursor.offset).toBe(Buffer.byteLength(`${lines.join("\n")}\n`));
  }
}, 120_000);
