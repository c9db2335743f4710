/**
 * A lock on a directory (a checkpoint directory), so two runs never write the
 * same checkpoints. The lock is `<dir>/.runctl.lock` holding
 * `{pid, hostname, run_id, acquired_at}`.
 *
 * - Creation is exclusive and the content is complete from the first instant:
 *   the JSON is written to a private temp file and hard-linked into place
 *   (`link` fails if the name exists, like `wx`, but nobody can observe an
 *   empty lock file and mistake it for garbage).
 * - A lock whose holder is a dead pid on this host, or whose content is
 *   unreadable, is stale and taken over with a warning. Takeover renames the
 *   stale file to a unique name first and checks it moved the very file it
 *   judged (same inode, same bytes); if it moved a fresh lock instead (another
 *   process won the takeover a moment earlier), it links it back. Of two
 *   processes racing for one stale lock exactly one wins.
 * - Locks held on another host cannot be checked and count as held.
 *
 * Synchronous so that `release()` works from exit handlers.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fstatSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname as osHostname } from "node:os";
import { join, resolve } from "node:path";
import { UserError } from "@runctl/core";
import { isErrno } from "@runctl/core/internal";
import { z } from "zod";
import { isPidAlive } from "./liveness.ts";

export const LOCK_FILE = ".runctl.lock";

export const LockInfo = z
  .object({
    pid: z.number().int().positive(),
    hostname: z.string(),
    run_id: z.string().nullable(),
    acquired_at: z.string(),
  })
  .passthrough();
export type LockInfo = z.infer<typeof LockInfo>;

export interface AcquireLockOptions {
  /** The run that will write into the directory; named to whoever finds it locked. */
  runId?: string | null;
  /** Default: this process (tests and supervisors acting for a child may override). */
  pid?: number;
  hostname?: string;
  isAlive?: (pid: number) => boolean;
}

export interface DirLock {
  /** Path of the lock file. */
  readonly path: string;
  readonly info: LockInfo;
  /** Set when a stale lock was taken over: say so to the user. */
  readonly warning: string | undefined;
  /** Removes the lock if it is still ours; returns whether it did. */
  release(): boolean;
}

// A lock file written without `link` support may be observed half-written;
// younger than this, unreadable content is treated as held rather than stale.
const UNREADABLE_GRACE_MS = 2_000;
const MAX_ROUNDS = 8;

// Lock files this process holds: with pid namespaces (containers) a stale lock
// from a previous incarnation can carry our own pid, and must not look alive.
const heldHere = new Set<string>();

interface Observed {
  raw: Buffer;
  ino: number;
  dev: number;
  mtimeMs: number;
}

type Verdict =
  | { kind: "missing" }
  | { kind: "held"; info: LockInfo | undefined; why?: string }
  | { kind: "stale"; observed: Observed; reason: string };

export function acquireLock(dir: string, options: AcquireLockOptions = {}): DirLock {
  const root = resolve(dir);
  mkdirSync(root, { recursive: true });
  const path = join(root, LOCK_FILE);
  const hostname = options.hostname ?? osHostname();
  const isAlive = options.isAlive ?? isPidAlive;
  const info: LockInfo = {
    pid: options.pid ?? process.pid,
    hostname,
    run_id: options.runId ?? null,
    acquired_at: new Date().toISOString(),
  };
  const bytes = Buffer.from(`${JSON.stringify(info)}\n`, "utf8");
  let warning: string | undefined;

  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (createExclusive(path, bytes)) {
      heldHere.add(path);
      return new HeldLock(path, info, bytes, warning);
    }
    const verdict = judge(path, hostname, isAlive);
    if (verdict.kind === "missing") continue;
    if (verdict.kind === "held") throw lockedError(root, path, verdict.info, verdict.why);
    if (takeOver(path, verdict.observed)) {
      warning = `Took over a stale lock on ${root} (${verdict.reason}).`;
    }
  }
  throw new UserError(`Could not lock ${root}: other processes keep replacing ${LOCK_FILE}`, {
    code: "checkpoint_dir_lock_contended",
    hint: "Several runs are starting on this directory at once; start one at a time or give each its own checkpoint directory.",
    details: { lock_file: path },
  });
}

class HeldLock implements DirLock {
  readonly path: string;
  readonly info: LockInfo;
  readonly warning: string | undefined;
  readonly #bytes: Buffer;

  constructor(path: string, info: LockInfo, bytes: Buffer, warning: string | undefined) {
    this.path = path;
    this.info = info;
    this.#bytes = bytes;
    this.warning = warning;
  }

  release(): boolean {
    if (!heldHere.has(this.path)) return false;
    heldHere.delete(this.path);
    const observed = observe(this.path);
    // Someone judged us stale and took over (we were presumed dead): theirs now.
    if (observed === undefined || !observed.raw.equals(this.#bytes)) return false;
    try {
      unlinkSync(this.path);
      return true;
    } catch (error) {
      if (isErrno(error, "ENOENT")) return false;
      throw error;
    }
  }
}

function createExclusive(path: string, bytes: Buffer): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeDurably(tmp, bytes, "wx");
  try {
    linkSync(tmp, path);
    return true;
  } catch (error) {
    if (isErrno(error, "EEXIST")) return false;
    // File systems without hard links: plain exclusive create.
    if (isErrno(error, "EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EMLINK"))
      return createWithOpen(path, bytes);
    throw error;
  } finally {
    unlinkSync(tmp);
  }
}

function createWithOpen(path: string, bytes: Buffer): boolean {
  try {
    writeDurably(path, bytes, "wx");
    return true;
  } catch (error) {
    if (isErrno(error, "EEXIST")) return false;
    throw error;
  }
}

function writeDurably(path: string, bytes: Buffer, flag: string): void {
  const fd = openSync(path, flag, 0o644);
  try {
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Content and identity from one descriptor, so they belong to the same file. */
function observe(path: string): Observed | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    throw error;
  }
  try {
    const st = fstatSync(fd);
    return { raw: readFileSync(fd), ino: st.ino, dev: st.dev, mtimeMs: st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

function judge(path: string, hostname: string, isAlive: (pid: number) => boolean): Verdict {
  const observed = observe(path);
  if (observed === undefined) return { kind: "missing" };
  let parsed: ReturnType<typeof LockInfo.safeParse> | undefined;
  try {
    parsed = LockInfo.safeParse(JSON.parse(observed.raw.toString("utf8")));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) {
    if (Date.now() - observed.mtimeMs < UNREADABLE_GRACE_MS) {
      return { kind: "held", info: undefined, why: "its lock file is being written" };
    }
    return { kind: "stale", observed, reason: "the lock file was unreadable" };
  }
  const holder = parsed.data;
  if (holder.hostname !== hostname) return { kind: "held", info: holder };
  if (holder.pid === process.pid) {
    if (heldHere.has(path)) return { kind: "held", info: holder, why: "this process already holds it" };
    return { kind: "stale", observed, reason: `pid ${holder.pid} was a previous process with our pid` };
  }
  if (isAlive(holder.pid)) return { kind: "held", info: holder };
  return {
    kind: "stale",
    observed,
    reason: `held by${holder.run_id ? ` run ${holder.run_id},` : ""} pid ${holder.pid}, which is no longer running`,
  };
}

/** Removes the stale lock we observed, and only that one; true if it did. */
function takeOver(path: string, stale: Observed): boolean {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if (isErrno(error, "ENOENT")) return false; // someone else moved it first
    throw error;
  }
  const moved = observe(aside);
  if (moved && moved.ino === stale.ino && moved.dev === stale.dev && moved.raw.equals(stale.raw)) {
    unlinkSync(aside);
    return true;
  }
  // We moved a fresh lock of a faster process: put it back where it belongs.
  try {
    linkSync(aside, path);
  } catch (error) {
    // A third process locked in the instant the name was free; it holds the
    // lock now, and the displaced file must not linger as a second one.
    if (!isErrno(error, "EEXIST")) throw error;
  }
  unlinkSync(aside);
  return false;
}

function lockedError(dir: string, path: string, holder: LockInfo | undefined, why?: string): UserError {
  const who = holder
    ? `run ${holder.run_id ?? "(unnamed)"} (pid ${holder.pid} on ${holder.hostname})`
    : "another process";
  return new UserError(`Checkpoint directory ${dir} is locked by ${who}${why ? `: ${why}` : ""}`, {
    code: "checkpoint_dir_locked",
    hint: `Wait for that run to finish or stop it (\`runctl runs\` lists runs), or use another checkpoint directory. If no such process is alive, delete ${path}.`,
    details: { dir, lock_file: path, holder: holder ?? null },
  });
}
