// Several real processes on one run directory: appenders, a polling reader,
// and a meta.json writer killed with SIGKILL mid-rewrite.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readJsonl } from "@runctl/core/internal";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunWriter, readMeta, readMetrics } from "../src/mod.ts";
import { assertDistFresh, startChild, tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  await assertDistFresh();
  root = await tempDir("concurrency");
});
afterAll(async () => {
  await root.cleanup();
});

const LINES = 2000;

describe("concurrent writers and readers", () => {
  it("two processes appending to one metrics.jsonl never interleave lines", async () => {
    const run = RunWriter.create({ runsDir: root.path });
    run.close();
    const children = ["a", "b"].map((tag) => startChild(["append", run.dir, tag, String(LINES)]));
    for (const child of children) {
      expect(await child.line()).toBe("done");
      expect((await child.exited).code).toBe(0);
    }

    const file = join(run.dir, "metrics.jsonl");
    const text = readFileSync(file, "utf8");
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.slice(0, -1).split("\n");
    expect(lines).toHaveLength(2 * LINES);
    const byWriter = new Map<string, Array<{ _idx: number; seq: number; pad: string }>>();
    for (const line of lines) {
      const record = JSON.parse(line); // throws on any interleaved or torn line
      const list = byWriter.get(record.writer) ?? [];
      list.push(record);
      byWriter.set(record.writer, list);
    }
    expect([...byWriter.keys()].sort()).toEqual(["a", "b"]);
    for (const records of byWriter.values()) {
      expect(records.map((r) => r.seq)).toEqual(Array.from({ length: LINES }, (_, i) => i));
      // `_idx` is consecutive per writer; two writers of one file cannot agree on a shared counter.
      const first = records[0]?._idx ?? 0;
      expect(records.map((r) => r._idx)).toEqual(Array.from({ length: LINES }, (_, i) => first + i));
    }
    expect(lines.some((l) => l.length > 4096)).toBe(true);
    expect((await readJsonl(file)).skipped).toBe(0);
  }, 60_000);

  it("a reader polling while a writer appends never throws and its cursor only moves forward", async () => {
    const run = RunWriter.create({ runsDir: root.path });
    run.close();
    const child = startChild(["append", run.dir, "w", String(LINES)]);
    let exited = false;
    void child.exited.then(() => {
      exited = true;
    });

    let cursor = 0;
    const seen: number[] = [];
    let polls = 0;
    for (;;) {
      const wasExited = exited;
      const page = await readMetrics(run.dir, cursor);
      polls++;
      expect(page.cursor).toBeGreaterThanOrEqual(cursor);
      // Everything returned is new, in order, and contiguous with what came before.
      expect(page.records.map((r) => r._idx)).toEqual(
        Array.from({ length: page.cursor - cursor }, (_, i) => cursor + i),
      );
      seen.push(...page.records.map((r) => r._idx));
      cursor = page.cursor;
      if (wasExited) break;
    }
    expect((await child.exited).code).toBe(0);
    expect(polls).toBeGreaterThan(0);
    expect(seen).toEqual(Array.from({ length: LINES }, (_, i) => i));
  }, 60_000);

  it("meta.json stays parseable when its writer is SIGKILLed mid-rewrite", async () => {
    const run = RunWriter.create({ runsDir: root.path });
    // Vary where the kill lands: after a few, or many, concurrent reads.
    for (const readsBeforeKill of [0, 5, 40]) {
      const child = startChild(["meta-loop", run.dir]);
      expect(await child.line()).toBe("ready");
      for (let i = 0; i < readsBeforeKill; i++) {
        const meta = await readMeta(run.dir);
        expect(typeof meta.counter).toBe("number");
      }
      child.proc.kill("SIGKILL");
      expect((await child.exited).signal).toBe("SIGKILL");
      const meta = await readMeta(run.dir);
      expect(meta.id).toBe(run.id);
      expect(meta.counter).toBeGreaterThanOrEqual(20);
    }
    // The writer in this process still works on top of what the killed one left.
    expect(run.finish("cancelled").status).toBe("cancelled");
  }, 60_000);
});
