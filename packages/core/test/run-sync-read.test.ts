// Reading a stored append-only file back from its segments, when the segments overlap: a
// writer that cannot delete (a POST policy) and was restarted resends from an earlier offset
// with another chunking, and the reader must still see each byte exactly once.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileArtifactStore, readStoredRunFile, StoreRunSync } from "../src/mod.ts";

let root: string;
let store: FileArtifactStore;
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-run-sync-read-"));
  store = new FileArtifactStore(root);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** 100 metric lines: numbered, so a duplicate or a hole is visible. */
const FILE = Buffer.from(
  Array.from({ length: 100 }, (_, i) => `{"_idx":${i},"loss":${(1 / (i + 1)).toFixed(6)}}\n`).join(""),
);

/** Stores the segments `[offset, length]` of FILE under a fresh run prefix, in the order given. */
async function stored(segments: Array<[number, number]>): Promise<string> {
  const prefix = `runs/r${n++}`;
  for (const [offset, length] of segments) {
    const key = `${prefix}/metrics.jsonl.segments/${String(offset).padStart(16, "0")}`;
    await store.putStream(key, Readable.from([FILE.subarray(offset, offset + length)]));
  }
  return prefix;
}

describe("readStoredRunFile joins segments", () => {
  it("back to back", async () => {
    const prefix = await stored([
      [0, 1000],
      [1000, 1000],
      [2000, FILE.length - 2000],
    ]);
    expect((await readStoredRunFile(store, prefix, "metrics.jsonl"))?.equals(FILE)).toBe(true);
  });

  it("overlapping: a resend from 0 beside an older, differently chunked tail", async () => {
    // {0:150} sent last, beside {100:50} and {150:…} from the first agent.
    const prefix = await stored([
      [100, 50],
      [150, FILE.length - 150],
      [0, 150],
    ]);
    const read = await readStoredRunFile(store, prefix, "metrics.jsonl");
    expect(read?.equals(FILE)).toBe(true);
    const lines = read?.toString("utf8").trimEnd().split("\n") ?? [];
    expect(lines.map((l) => (JSON.parse(l) as { _idx: number })._idx)).toEqual([...Array(100).keys()]);
  });

  it("a later segment that starts inside an earlier one and reaches past it", async () => {
    const prefix = await stored([
      [0, 700],
      [300, 900],
      [500, 200],
      [1200, FILE.length - 1200],
    ]);
    expect((await readStoredRunFile(store, prefix, "metrics.jsonl"))?.equals(FILE)).toBe(true);
  });

  it("a resend that covers everything makes older segments irrelevant", async () => {
    const prefix = await stored([
      [0, 100],
      [100, 100],
      [0, FILE.length],
    ]);
    expect((await readStoredRunFile(store, prefix, "metrics.jsonl"))?.equals(FILE)).toBe(true);
  });

  it("stops at a real gap, even when a segment past it exists", async () => {
    const prefix = await stored([
      [0, 100],
      [50, 100],
      [400, 200],
    ]);
    expect((await readStoredRunFile(store, prefix, "metrics.jsonl"))?.equals(FILE.subarray(0, 150))).toBe(
      true,
    );
  });

  it("an empty file (one empty segment) reads as empty, not missing", async () => {
    const prefix = await stored([[0, 0]]);
    expect((await readStoredRunFile(store, prefix, "metrics.jsonl"))?.length).toBe(0);
  });

  it("what StoreRunSync writes, after a resend from an earlier offset, reads back whole", async () => {
    const sync = new StoreRunSync(store, `runs/r${n++}`);
    await sync.append("metrics.jsonl", 0, FILE.subarray(0, 1000));
    await sync.append("metrics.jsonl", 1000, FILE.subarray(1000, 2000));
    await sync.append("metrics.jsonl", 500, FILE.subarray(500));
    const prefix = sync.location.slice(store.url.replace(/\/+$/, "").length + 1);
    expect((await readStoredRunFile(store, prefix, "metrics.jsonl"))?.equals(FILE)).toBe(true);
  });
});
