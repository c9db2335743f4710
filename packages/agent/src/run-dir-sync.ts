/**
 * The engine of run sync (core's RunSyncTarget): walks a run directory and
 * sends what changed since the last pass. Files that only grow (`*.jsonl`,
 * `output.log`) send their new bytes at the offset the target holds; every
 * other file (meta.json, config.json, git.json, artifacts/…) is replaced whole
 * when its size or mtime changed. Writers' temporary and lock files are
 * skipped: they are half-written or meaningless elsewhere.
 */
import type { Dirent, Stats } from "node:fs";
import { lstat, open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { growsOnly, RUN_SYNC_PRIVATE_DIR, RunSyncGapError, type RunSyncTarget } from "@runctl/core";

/** Bytes per append; also what a target's request carries at most. */
export const SYNC_CHUNK_BYTES = 16 * 1024 * 1024;

export interface RunDirSyncOptions {
  /**
   * A file the target refused for a reason of its own (not transient), or
   * that could not be read here: it is skipped until it changes.
   */
  onFileError?: (path: string, error: Error) => void;
  /** Only the files this accepts are sent (telemetry wants the output and metrics, not checkpoints). */
  only?: (path: string) => boolean;
}

interface Sent {
  /** Append-only files: bytes the target has. Whole files: the size that was sent. */
  bytes: number;
  mtimeMs: number;
}

export class RunDirSync {
  readonly #dir: string;
  readonly #target: RunSyncTarget;
  readonly #options: RunDirSyncOptions;
  readonly #sent = new Map<string, Sent>();
  #pass: Promise<void> = Promise.resolve();

  constructor(runDir: string, target: RunSyncTarget, options: RunDirSyncOptions = {}) {
    this.#dir = runDir;
    this.#target = target;
    this.#options = options;
  }

  /**
   * Continues from what the target already holds (an agent restarted
   * mid-run): append-only files resume at the target's length, so nothing
   * is stored twice.
   */
  async resume(): Promise<void> {
    for (const [path, bytes] of Object.entries(await this.#target.heldBytes())) {
      this.#sent.set(path, { bytes, mtimeMs: -1 });
    }
  }

  /**
   * Sends what changed since the last pass. Passes never overlap: a call
   * made during one runs after it, so the final pass sees every byte.
   * Throws the target's transient errors (try again later: what was sent
   * stays sent); any other trouble with one file goes to `onFileError`.
   */
  sync(): Promise<void> {
    const next = this.#pass.catch(() => undefined).then(() => this.#syncOnce());
    this.#pass = next;
    return next;
  }

  async #syncOnce(): Promise<void> {
    for (const file of await listFiles(this.#dir, "")) {
      if (this.#options.only && !this.#options.only(file.path)) continue;
      try {
        if (growsOnly(file.path)) await this.#sendGrowth(file.path, file.stats);
        else await this.#sendWhole(file.path, file.stats);
      } catch (error) {
        if (isVanished(error)) continue;
        if (this.#target.isTransient(error)) throw error;
        this.#sent.set(file.path, { bytes: file.stats.size, mtimeMs: file.stats.mtimeMs });
        this.#options.onFileError?.(file.path, error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  async #sendGrowth(path: string, stats: Stats): Promise<void> {
    const known = this.#sent.get(path);
    // Shorter than what was sent: the file was replaced, so start over.
    let offset = known && known.bytes <= stats.size ? known.bytes : 0;
    if (offset === stats.size && known) return;
    if (stats.size === 0) {
      // An empty log still belongs in the listing (a job that printed nothing).
      await this.#target.append(path, 0, new Uint8Array(0));
      this.#sent.set(path, { bytes: 0, mtimeMs: stats.mtimeMs });
      return;
    }
    const handle = await open(join(this.#dir, path), "r");
    try {
      while (offset < stats.size) {
        const chunk = await readChunk(handle, offset, Math.min(SYNC_CHUNK_BYTES, stats.size - offset));
        if (chunk.byteLength === 0) break;
        try {
          await this.#target.append(path, offset, chunk);
        } catch (error) {
          if (!(error instanceof RunSyncGapError) || error.held >= offset) throw error;
          // The target has less than we thought (it lost its tail): resend from there.
          offset = error.held;
          continue;
        }
        offset += chunk.byteLength;
        this.#sent.set(path, { bytes: offset, mtimeMs: stats.mtimeMs });
      }
    } finally {
      await handle.close();
    }
  }

  async #sendWhole(path: string, listed: Stats): Promise<void> {
    const known = this.#sent.get(path);
    if (known && known.bytes === listed.size && known.mtimeMs === listed.mtimeMs) return;
    const handle = await open(join(this.#dir, path), "r");
    let stats: Stats;
    try {
      // The size of the file opened, not of the one listed: a writer that replaced it in between
      // (an atomic rename: meta.json at every update) left a file of another size, and sending
      // the listed size of it would cut it short (seen in CI as a truncated meta.json).
      stats = await handle.stat();
      await this.#target.replace(path, stats.size, (offset, length) => readChunk(handle, offset, length));
    } finally {
      await handle.close();
    }
    // The stats from before the read: a change made while reading shows as a new mtime next pass.
    this.#sent.set(path, { bytes: stats.size, mtimeMs: stats.mtimeMs });
  }
}

/**
 * Writers' internals: `<file>.lock` mutexes, hidden `.<name>.<pid>.<rand>.tmp`
 * files of atomic rewrites, `.runctl-tmp-` artifact copies in progress, and
 * the control queue's per-rank cursors (where the local ranks are, nothing
 * anyone reads from the server), and the agent's private area (`.sync/`:
 * what a sync target remembers of the store).
 */
function isInternal(name: string, dir: string): boolean {
  return (
    name.endsWith(".lock") ||
    (name.startsWith(".") && name.endsWith(".tmp")) ||
    name.startsWith(".runctl-tmp-") ||
    (dir === "" && name === RUN_SYNC_PRIVATE_DIR) ||
    (dir === "control" && /^cursor\.rank\d+\.json$/.test(name))
  );
}

interface LocalFile {
  path: string;
  stats: Stats;
}

async function listFiles(root: string, prefix: string): Promise<LocalFile[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(prefix ? join(root, prefix) : root, { withFileTypes: true });
  } catch (error) {
    if (isVanished(error)) return [];
    throw error;
  }
  const out: LocalFile[] = [];
  for (const entry of entries) {
    if (isInternal(entry.name, prefix)) continue;
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      out.push(...(await listFiles(root, path)));
      continue;
    }
    // Regular files only: a symlink could point anywhere on the worker's disk.
    if (!entry.isFile()) continue;
    try {
      out.push({ path, stats: await lstat(join(root, path)) });
    } catch (error) {
      if (!isVanished(error)) throw error;
    }
  }
  return out;
}

async function readChunk(
  handle: Awaited<ReturnType<typeof open>>,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

function isVanished(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
