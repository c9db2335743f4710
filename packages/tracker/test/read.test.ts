import { readFileSync, writeFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { type RunMeta, UserError } from "@runctl/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CORRUPT_META_ERROR,
  effectiveStatus,
  listRuns,
  RunWriter,
  readMeta,
  resolveRun,
  resolveRunsDir,
  withEffectiveStatus,
} from "../src/mod.ts";
import { deadPid, tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  root = await tempDir("read");
});
afterAll(async () => {
  await root.cleanup();
});

async function caught(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof UserError) return error;
    throw error;
  }
  throw new Error("expected a UserError");
}

describe("readMeta", () => {
  it("reports a missing run as run_not_found", async () => {
    const error = await caught(readMeta(join(root.path, "nothing-here")));
    expect(error.code).toBe("run_not_found");
    expect(error.hint).toContain("runctl runs");
  });

  it("reports corrupt meta.json as run_meta_corrupt and leaves the file byte-identical", async () => {
    const cases = {
      truncated: '{"id": "x", "name": "x", "status": "runn',
      empty: "",
      "wrong type": JSON.stringify({ id: "x", name: "x", started_at: "t", status: "exploded" }),
      "not an object": "[1, 2, 3]",
    };
    for (const [label, content] of Object.entries(cases)) {
      const dir = join(root.path, `corrupt-${label.replace(" ", "-")}`);
      await mkdir(dir, { recursive: true });
      const file = join(dir, "meta.json");
      writeFileSync(file, content);
      const before = readFileSync(file);
      const error = await caught(readMeta(dir));
      expect(error.code, label).toBe("run_meta_corrupt");
      expect(error.message, label).toContain(file);
      expect(error.hint, label).toBeTruthy();
      expect(readFileSync(file).equals(before), label).toBe(true);
      await rm(dir, { recursive: true });
    }
  });
});

describe("effectiveStatus", () => {
  const base = {
    id: "r",
    name: "r",
    tags: [],
    started_at: "2026-01-01T00:00:00.000Z",
    status: "running",
    config_file: "config.json",
    metrics_file: "metrics.jsonl",
    artifacts_dir: "artifacts",
  } satisfies RunMeta;
  const now = new Date("2026-01-01T01:00:00.000Z");

  it("reports a run whose writer pid is dead on this host as lost", async () => {
    const meta: RunMeta = {
      ...base,
      pid: await deadPid(),
      hostname: hostname(),
      heartbeat_at: now.toISOString(),
    };
    const result = effectiveStatus(meta, { now });
    expect(result.status).toBe("failed");
    expect(result.lost).toBe(true);
    expect(result.error).toMatch(/^lost: /);
    expect(withEffectiveStatus(meta, { now })).toMatchObject({ status: "failed", pid: meta.pid });
  });

  it("reports a stale heartbeat as lost, even for a live pid on another host", () => {
    const meta: RunMeta = {
      ...base,
      pid: process.pid,
      hostname: "elsewhere",
      heartbeat_at: new Date(now.getTime() - 61_000).toISOString(),
    };
    const result = effectiveStatus(meta, { now });
    expect(result).toMatchObject({ status: "failed", lost: true });
    expect(result.error).toMatch(/^lost: no heartbeat/);
  });

  it("keeps live, fresh and terminal runs as recorded", async () => {
    const fresh = new Date(now.getTime() - 5_000).toISOString();
    expect(
      effectiveStatus({ ...base, pid: process.pid, hostname: hostname(), heartbeat_at: fresh }, { now }),
    ).toEqual({
      status: "running",
      error: null,
      lost: false,
    });
    // Another host's pid is not ours to check.
    expect(
      effectiveStatus({ ...base, pid: await deadPid(), hostname: "elsewhere", heartbeat_at: fresh }, { now })
        .lost,
    ).toBe(false);
    const old = new Date(0).toISOString();
    expect(
      effectiveStatus(
        { ...base, status: "completed", pid: await deadPid(), hostname: hostname(), heartbeat_at: old },
        { now },
      ),
    ).toMatchObject({ status: "completed", lost: false });
  });
});

describe("listRuns and resolveRun", () => {
  let runsDir: string;
  const ids = [
    "20260101-000000-aaaaaa",
    "20260101-000000-aaabbb",
    "20260102-120000-cccccc",
    "20260103-000000-dddddd",
  ] as const;

  beforeAll(async () => {
    runsDir = join(root.path, "runs");
    const a = RunWriter.create({
      runsDir,
      id: ids[0],
      tags: ["sweep"],
      now: new Date("2026-01-01T00:00:00Z"),
    });
    a.finish("completed", { exitCode: 0 });
    const b = RunWriter.create({
      runsDir,
      id: ids[1],
      tags: ["sweep", "best"],
      now: new Date("2026-01-01T00:00:00.500Z"),
    });
    b.finish("failed", { exitCode: 1, error: "Traceback…" });
    // Live by pid, with a fresh heartbeat.
    RunWriter.create({ runsDir, id: ids[2], now: new Date("2026-01-02T12:00:00Z") }).heartbeat();
    // A corrupted run must stay visible without breaking the listing.
    await mkdir(join(runsDir, ids[3]));
    writeFileSync(join(runsDir, ids[3], "meta.json"), "{ not json");
    // Not runs: no meta.json, hidden, a plain file.
    await mkdir(join(runsDir, "20260104-000000-eeeeee"));
    await mkdir(join(runsDir, ".trash"));
    writeFileSync(join(runsDir, "notes.txt"), "hi");
  });

  it("lists newest first, corrupted runs as failed", async () => {
    const runs = await listRuns(runsDir);
    expect(runs.map((r) => r.id)).toEqual([ids[3], ids[2], ids[1], ids[0]]);
    const corrupt = runs[0];
    expect(corrupt?.status).toBe("failed");
    expect(corrupt?.error?.startsWith(CORRUPT_META_ERROR)).toBe(true);
    expect(corrupt?.started_at).toBe("2026-01-03T00:00:00.000Z");
    expect(runs[1]?.status).toBe("running");
  });

  it("filters by effective status, tags and count", async () => {
    expect((await listRuns(runsDir, { status: "failed" })).map((r) => r.id)).toEqual([ids[3], ids[1]]);
    expect((await listRuns(runsDir, { status: ["completed", "running"] })).map((r) => r.id)).toEqual([
      ids[2],
      ids[0],
    ]);
    expect((await listRuns(runsDir, { tags: ["sweep", "best"] })).map((r) => r.id)).toEqual([ids[1]]);
    expect((await listRuns(runsDir, { last: 2 })).map((r) => r.id)).toEqual([ids[3], ids[2]]);
    // Judged from another host an hour later, the running one is lost.
    const later = await listRuns(runsDir, { now: new Date(Date.now() + 3_600_000), hostname: "elsewhere" });
    expect(later.find((r) => r.id === ids[2])?.error).toMatch(/^lost: /);
    expect(await listRuns(join(root.path, "no-runs-here"))).toEqual([]);
  });

  it("resolves exact ids and unique prefixes", async () => {
    expect(await resolveRun(runsDir, ids[2])).toEqual({ id: ids[2], dir: join(runsDir, ids[2]) });
    expect((await resolveRun(runsDir, "20260102")).id).toBe(ids[2]);
    expect((await resolveRun(runsDir, "20260101-000000-aaab")).id).toBe(ids[1]);
  });

  it("names the candidates of an ambiguous prefix", async () => {
    const error = await caught(resolveRun(runsDir, "20260101-000000-aaa"));
    expect(error.code).toBe("run_ambiguous");
    expect(error.message).toContain(ids[0]);
    expect(error.message).toContain(ids[1]);
    expect(error.details?.candidates).toEqual([ids[0], ids[1]]);
    expect(error.hint).toBeTruthy();
  });

  it("reports unknown ids (and path tricks) as run_not_found pointing at `runctl runs`", async () => {
    for (const query of ["zzz", "20260104", "../runs", "", ".trash"]) {
      const error = await caught(resolveRun(runsDir, query));
      expect(error.code, query).toBe("run_not_found");
      expect(error.hint, query).toContain("runctl runs");
    }
  });
});

describe("resolveRunsDir", () => {
  it("prefers $RUNCTL_RUNS_DIR, then local.runs_dir under the project, then ./runs", () => {
    const cwd = "/work/proj/sub";
    expect(
      resolveRunsDir({
        env: { RUNCTL_RUNS_DIR: "elsewhere" },
        configRunsDir: "r",
        projectRoot: "/work/proj",
        cwd,
      }),
    ).toBe("/work/proj/sub/elsewhere");
    expect(resolveRunsDir({ env: {}, configRunsDir: "out/runs", projectRoot: "/work/proj", cwd })).toBe(
      "/work/proj/out/runs",
    );
    expect(resolveRunsDir({ env: {}, configRunsDir: "/abs/runs", projectRoot: "/work/proj", cwd })).toBe(
      "/abs/runs",
    );
    expect(resolveRunsDir({ env: {}, configRunsDir: "r", cwd })).toBe("/work/proj/sub/r");
    expect(resolveRunsDir({ env: {}, cwd })).toBe("/work/proj/sub/runs");
    expect(resolveRunsDir({ env: { RUNCTL_RUNS_DIR: "" }, projectRoot: "/work/proj", cwd })).toBe(
      "/work/proj/runs",
    );
  });
});
