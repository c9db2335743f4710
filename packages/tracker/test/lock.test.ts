import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { isRunctlError } from "@runctl/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireLock, LOCK_FILE } from "../src/mod.ts";
import { assertDistFresh, deadPid, startChild, tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  await assertDistFresh();
  root = await tempDir("lock");
});
afterAll(async () => {
  await root.cleanup();
});

let n = 0;
const freshDir = () => join(root.path, `ckpt-${n++}`);

function refusal(fn: () => unknown): { code: string; message: string; hint: string | undefined } {
  try {
    fn();
  } catch (error) {
    if (isRunctlError(error)) return { code: error.code, message: error.message, hint: error.hint };
    throw error;
  }
  throw new Error("expected the lock to be refused");
}

interface ChildResult {
  won: boolean;
  pid: number;
  warning?: string | null;
  code?: string;
}

describe("acquireLock", () => {
  it("writes the holder and releases only its own lock", () => {
    const dir = freshDir();
    const lock = acquireLock(dir, { runId: "run-1" });
    const path = join(dir, LOCK_FILE);
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({
      pid: process.pid,
      hostname: hostname(),
      run_id: "run-1",
    });
    expect(lock.warning).toBeUndefined();
    expect(refusal(() => acquireLock(dir, { runId: "run-2" })).code).toBe("checkpoint_dir_locked");
    expect(lock.release()).toBe(true);
    expect(existsSync(path)).toBe(false);

    const again = acquireLock(dir, { runId: "run-3" });
    // Someone replaced the lock behind our back: release must leave theirs alone.
    writeFileSync(path, JSON.stringify({ pid: 1, hostname: "other", run_id: "theirs", acquired_at: "x" }));
    expect(again.release()).toBe(false);
    expect(JSON.parse(readFileSync(path, "utf8")).run_id).toBe("theirs");
  });

  it("refuses a lock held by a live process, naming its run and pid", async () => {
    const dir = freshDir();
    const holder = startChild(["lock", dir, "run-live", "-"]);
    const held = JSON.parse(await holder.line()) as ChildResult;
    expect(held.won).toBe(true);

    const error = refusal(() => acquireLock(dir, { runId: "run-me" }));
    expect(error.code).toBe("checkpoint_dir_locked");
    expect(error.message).toContain("run-live");
    expect(error.message).toContain(String(holder.pid));
    expect(error.hint).toContain(LOCK_FILE);

    holder.proc.stdin?.end();
    expect((await holder.exited).code).toBe(0);
    // Its release removed the file: a plain acquire, no warning.
    const lock = acquireLock(dir, { runId: "run-me" });
    expect(lock.warning).toBeUndefined();
    lock.release();
  }, 30_000);

  it("takes over a lock whose holder was killed, with a warning", async () => {
    const dir = freshDir();
    const holder = startChild(["lock", dir, "run-dead", "-"]);
    expect((JSON.parse(await holder.line()) as ChildResult).won).toBe(true);
    holder.proc.kill("SIGKILL");
    await holder.exited;

    const lock = acquireLock(dir, { runId: "run-new" });
    expect(lock.warning).toContain(String(holder.pid));
    expect(lock.warning).toContain("run-dead");
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"))).toMatchObject({
      pid: process.pid,
      run_id: "run-new",
    });
    expect(lock.release()).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  }, 30_000);

  it("takes over an unreadable lock file unless it may still be being written", () => {
    const dir = freshDir();
    const path = join(dir, LOCK_FILE);
    acquireLock(dir).release();
    writeFileSync(path, "{ half a lo");
    expect(refusal(() => acquireLock(dir)).code).toBe("checkpoint_dir_locked");
    const old = new Date(Date.now() - 60_000);
    utimesSync(path, old, old);
    const lock = acquireLock(dir);
    expect(lock.warning).toContain("unreadable");
    lock.release();
  });

  it("takes over a lock carrying our own pid that this process does not hold (a previous incarnation)", () => {
    const dir = freshDir();
    acquireLock(dir).release();
    const stale = {
      pid: process.pid,
      hostname: hostname(),
      run_id: "before-restart",
      acquired_at: "2026-01-01T00:00:00Z",
    };
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify(stale));
    const lock = acquireLock(dir, { runId: "after-restart" });
    expect(lock.warning).toBeDefined();
    lock.release();
  });

  it("lets exactly one of two processes racing for a stale lock win", async () => {
    const races = 100;
    const arena = join(root.path, "race");
    const dead = await deadPid();
    for (let i = 0; i < races; i++) {
      const dir = join(arena, `d${i}`);
      acquireLock(dir).release();
      const stale = {
        pid: dead,
        hostname: hostname(),
        run_id: "crashed",
        acquired_at: "2026-01-01T00:00:00Z",
      };
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify(stale));
    }
    const racers = [
      startChild(["lock-many", arena, String(races), "a", "b"]),
      startChild(["lock-many", arena, String(races), "b", "a"]),
    ];
    const [a, b] = (await Promise.all(racers.map((r) => r.line()))).map(
      (l) => JSON.parse(l) as { pid: number; results: ChildResult[] },
    );
    for (let i = 0; i < races; i++) {
      const ra = a?.results[i];
      const rb = b?.results[i];
      expect([ra?.won, rb?.won].filter(Boolean), `race ${i}`).toHaveLength(1);
      const loser = ra?.won ? rb : ra;
      expect(loser?.code, `race ${i}`).toBe("checkpoint_dir_locked");
      const holder = JSON.parse(readFileSync(join(arena, `d${i}`, LOCK_FILE), "utf8"));
      expect(holder.pid, `race ${i}`).toBe(ra?.won ? a?.pid : b?.pid);
    }
    for (const r of racers) r.proc.stdin?.end();
    for (const r of racers) expect((await r.exited).code).toBe(0);
    // Winners released on exit; no temp or set-aside files are left behind.
    for (let i = 0; i < races; i++) expect(readdirSync(join(arena, `d${i}`))).toEqual([]);
  }, 60_000);
});
