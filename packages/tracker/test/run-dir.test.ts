import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isRunctlError } from "@runctl/core";
import { readJsonl } from "@runctl/core/internal";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  listArtifacts,
  newRunId,
  RUN_ID_PATTERN,
  RunWriter,
  readMeta,
  readMetrics,
  readSystem,
  runIdTime,
} from "../src/mod.ts";
import { tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  root = await tempDir("rundir");
});
afterAll(async () => {
  await root.cleanup();
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isRunctlError(error) ? error.code : `not a RunctlError: ${String(error)}`;
  }
  return undefined;
}

describe("run ids", () => {
  it("encode the UTC creation time and sort by it", () => {
    const a = newRunId(new Date("2026-11-22T20:15:00.123Z"));
    const b = newRunId(new Date("2026-11-22T20:15:01.000Z"));
    expect(a).toMatch(RUN_ID_PATTERN);
    expect(a.startsWith("20261122-201500-")).toBe(true);
    expect(a < b).toBe(true);
    expect(runIdTime(a)?.toISOString()).toBe("2026-11-22T20:15:00.000Z");
    expect(runIdTime("not-a-runctl-id")).toBeUndefined();
  });
});

describe("RunWriter round trip", () => {
  it("writes the spec's layout and reads it back", async () => {
    const w = RunWriter.create({
      runsDir: root.path,
      config: { lr: 0.01, layers: [1, 2] },
      tags: ["baseline"],
      command: ["python", "scripts/train.py", "--epochs", "3"],
    });
    expect(w.id).toMatch(RUN_ID_PATTERN);
    expect((await readdir(w.dir)).sort()).toEqual(["artifacts", "config.json", "meta.json", "metrics.jsonl"]);
    expect(JSON.parse(readFileSync(join(w.dir, "config.json"), "utf8"))).toEqual({
      lr: 0.01,
      layers: [1, 2],
    });

    const created = await readMeta(w.dir);
    expect(created).toMatchObject({
      id: w.id,
      name: "train",
      tags: ["baseline"],
      status: "running",
      finished_at: null,
      pid: process.pid,
      writer: "supervisor",
      command: ["python", "scripts/train.py", "--epochs", "3"],
      attempts: [{ number: 1, status: "running", finished_at: null, exit_code: null }],
    });
    expect(created.heartbeat_at).toBe(created.started_at);

    expect(w.appendMetrics({ loss: 1.5 }, 0)).toMatchObject({ _idx: 0, step: 0, loss: 1.5 });
    expect(w.appendMetrics({ loss: 1.25, step: 1 })).toMatchObject({ _idx: 1, step: 1 });
    expect(w.appendMetrics({ acc: 0.5 })).not.toHaveProperty("step");
    w.appendSystem({ cpu_percent: 12.5, memory_used_gb: 3 });
    w.setSummary({ best_loss: 1.25 });
    w.setSummary({ epochs: 3 });
    const src = join(root.path, "weights.bin");
    await writeFile(src, Buffer.alloc(1000, 7));
    const info = await w.saveArtifact(src, "ckpt/final.bin");
    expect(info).toMatchObject({ path: "ckpt/final.bin", size: 1000 });
    const done = w.finish("completed", { exitCode: 0 });

    expect(done).toMatchObject({
      status: "completed",
      exit_code: 0,
      error: null,
      summary: { best_loss: 1.25, epochs: 3 },
    });
    const read = await readMeta(w.dir);
    expect(read).toEqual(done);
    expect(read.finished_at).not.toBeNull();
    expect(read.attempts?.[0]).toMatchObject({
      status: "completed",
      exit_code: 0,
      finished_at: read.finished_at,
    });

    const metrics = await readMetrics(w.dir);
    expect(metrics.records.map((r) => r._idx)).toEqual([0, 1, 2]);
    expect(metrics.cursor).toBe(3);
    expect(typeof metrics.records[0]?._timestamp).toBe("string");
    expect(await readMetrics(w.dir, 2)).toMatchObject({ records: [{ _idx: 2, acc: 0.5 }], cursor: 3 });
    expect(await readMetrics(w.dir, 3)).toEqual({ records: [], cursor: 3, skipped: 0, skips: [] });

    const system = await readSystem(w.dir);
    expect(system.records).toHaveLength(1);
    expect(system.records[0]).toMatchObject({ cpu_percent: 12.5 });
    expect(await listArtifacts(w.dir)).toEqual([info]);
  });

  it("finish records further keys in the same write, never over the status it sets", () => {
    const w = RunWriter.create({ runsDir: root.path, name: "captured" });
    const meta = w.finish("completed", {
      exitCode: 0,
      meta: { git_file: "git.json", requirements_file: "requirements.txt", status: "running" },
    });
    expect(meta).toMatchObject({
      status: "completed",
      exit_code: 0,
      git_file: "git.json",
      requirements_file: "requirements.txt",
    });
    expect(JSON.parse(readFileSync(join(w.dir, "meta.json"), "utf8"))).toMatchObject({
      status: "completed",
      git_file: "git.json",
    });
  });

  it("preserves keys it does not know through every rewrite", async () => {
    const w = RunWriter.create({ runsDir: root.path, name: "keep", meta: { placement_hint: { zone: "a" } } });
    const file = join(w.dir, "meta.json");
    const onDisk = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...onDisk, whirr_only: { nested: [1, "two"] }, future_key: 42 }));

    w.heartbeat();
    w.setSummary({ loss: 0.1 });
    w.updateMeta({ tags: ["x"] });
    w.finish("failed", { exitCode: 3, error: "boom" });

    const raw = JSON.parse(readFileSync(file, "utf8"));
    expect(raw).toMatchObject({
      whirr_only: { nested: [1, "two"] },
      future_key: 42,
      placement_hint: { zone: "a" },
      status: "failed",
      error: "boom",
      tags: ["x"],
    });
    expect(await readMeta(w.dir)).toMatchObject({ whirr_only: { nested: [1, "two"] }, future_key: 42 });
  });

  it("reopens a run for a new attempt and continues _idx from the file", async () => {
    const first = RunWriter.create({ runsDir: root.path, name: "resume" });
    for (let i = 0; i < 5; i++) first.appendMetrics({ loss: i }, i);
    first.close(); // the process died: status stays "running"

    const again = RunWriter.open(first.dir);
    const attempt = again.startAttempt({ writer: "python" });
    expect(attempt.number).toBe(2);
    expect(again.appendMetrics({ loss: 9 }, 5)._idx).toBe(5);
    again.finish("completed", { exitCode: 0 });

    const meta = await readMeta(first.dir);
    expect(meta.attempts).toHaveLength(2);
    expect(meta.attempts?.[0]).toMatchObject({ number: 1, status: "failed" });
    expect(meta.attempts?.[0]?.error).toMatch(/^lost: /);
    expect(meta.attempts?.[1]).toMatchObject({ number: 2, status: "completed", exit_code: 0 });
    expect(meta).toMatchObject({ status: "completed", writer: "python" });
    expect((await readMetrics(first.dir)).records.map((r) => r._idx)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("refuses bad input with coded errors", async () => {
    const w = RunWriter.create({ runsDir: root.path });
    expect(codeOf(() => w.appendMetrics({ _idx: 3 }))).toBe("metrics_reserved_key");
    expect(codeOf(() => w.appendMetrics({ loss: 1 }, 1.5))).toBe("metrics_bad_step");
    expect(codeOf(() => w.appendMetrics({ big: 1n }))).toBe("not_json");
    expect(codeOf(() => w.finish("running"))).toBe("run_bad_status");
    expect(codeOf(() => RunWriter.create({ runsDir: root.path, id: "../escape" }))).toBe("run_bad_id");
    expect(codeOf(() => RunWriter.create({ runsDir: root.path, id: w.id }))).toBe("run_exists");
    expect(codeOf(() => w.updateMeta({ status: "exploded" as never }))).toBe("run_meta_invalid");
    // A failed append consumes no index.
    expect(w.appendMetrics({ ok: 1 })._idx).toBe(0);

    const src = join(root.path, "a.txt");
    await writeFile(src, "a");
    for (const name of ["../a.txt", "/etc/passwd", "x/../../a.txt", "a\\..\\b", "", "x//y", "."]) {
      await expect(w.saveArtifact(src, name), name).rejects.toMatchObject({ code: "artifact_bad_name" });
    }
    await expect(w.saveArtifact(join(root.path, "missing"))).rejects.toMatchObject({
      code: "artifact_source_missing",
    });
    expect(await listArtifacts(w.dir)).toEqual([]);
  });

  it("saves directories and replaces an artifact of the same name", async () => {
    const w = RunWriter.create({ runsDir: root.path });
    const src = join(root.path, "ckpt-dir");
    await mkdir(join(src, "sub"), { recursive: true });
    await writeFile(join(src, "a.bin"), "12345");
    await writeFile(join(src, "sub", "b.bin"), "678");
    expect(await w.saveArtifact(src, "model")).toMatchObject({ path: "model", size: 8 });
    await writeFile(join(root.path, "model.txt"), "now a file");
    await w.saveArtifact(join(root.path, "model.txt"), "model");
    expect((await listArtifacts(w.dir)).map((a) => [a.path, a.size])).toEqual([["model", 10]]);
  });
});

describe("JSONL readers", () => {
  it("skip a torn last line until it is completed, and skip garbage lines", async () => {
    const w = RunWriter.create({ runsDir: root.path });
    const file = join(w.dir, "metrics.jsonl");
    w.appendMetrics({ loss: 1 });
    appendFileSync(file, "this is not json\n[1,2]\n\n");
    const torn = JSON.stringify({ _idx: 1, _timestamp: new Date().toISOString(), loss: 0.5 });
    appendFileSync(file, torn.slice(0, 20));

    const before = await readMetrics(w.dir);
    expect(before.records.map((r) => r._idx)).toEqual([0]);
    expect(before.cursor).toBe(1);
    const page = await readJsonl(file);
    expect(page.skipped).toBe(2);
    expect(page.offset).toBe(readFileSync(file).length - 20);

    appendFileSync(file, `${torn.slice(20)}\n`);
    const after = await readMetrics(w.dir, before.cursor);
    expect(after.records).toEqual([JSON.parse(torn)]);
    expect(after.cursor).toBe(2);
    const tail = await readJsonl(file, { since: page.offset });
    expect(tail.records).toEqual([JSON.parse(torn)]);
  });

  it("read Python's NaN and Infinity tokens instead of dropping the line", async () => {
    const w = RunWriter.create({ runsDir: root.path });
    appendFileSync(
      join(w.dir, "metrics.jsonl"),
      '{"_idx": 0, "_timestamp": "2026-01-01T00:00:00Z", "loss": NaN, "g": -Infinity, "note": "NaN stays text"}\n',
    );
    const [record] = (await readMetrics(w.dir)).records;
    expect(record?.loss).toBeNaN();
    expect(record?.g).toBe(Number.NEGATIVE_INFINITY);
    expect(record?.note).toBe("NaN stays text");
  });

  it("treat a missing file as empty", async () => {
    expect(await readMetrics(join(root.path, "no-such-run"))).toEqual({
      records: [],
      cursor: 0,
      skipped: 0,
      skips: [],
    });
    expect(await readJsonl(join(root.path, "nope.jsonl"), { since: 10 })).toEqual({
      records: [],
      offset: 10,
      skipped: 0,
      skips: [],
    });
  });
});
