/**
 * A queue worker's run directory, mirrored to the job server while the job
 * runs (docs/job-queue.md, "Uploads"), so nobody needs the worker's disk.
 *
 * Files that only grow (`*.jsonl`, `output.log`) send their new bytes at
 * the offset the server already has; every other file (meta.json,
 * config.json, git.json, artifacts/…) is sent whole when its size or mtime
 * changed. Big files go in chunks of at most 16 MiB. Writers' temporary and
 * lock files are skipped: they are half-written or meaningless elsewhere.
 */
import { randomBytes } from "node:crypto";
import type { Dirent, Stats } from "node:fs";
import { lstat, open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { type QueueClient, QueueServerError, QueueUnreachableError } from "@runctl/tracker";

/** Bytes per PUT; the server takes up to 64 MiB per request. */
export const UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024;

export interface RunUploadTarget {
  client: QueueClient;
  runId: string;
  workerId: string;
  attempt: number;
  /**
   * A file the server refused for a reason of its own (not the lease), or
   * that could not be read here: it is skipped until it changes.
   */
  onFileError?: (path: string, error: Error) => void;
}

interface Sent {
  /** Append-only files: bytes the server has. Whole files: the size that was sent. */
  bytes: number;
  mtimeMs: number;
}

export class RunDirUpload {
  readonly #dir: string;
  readonly #target: RunUploadTarget;
  readonly #sent = new Map<string, Sent>();
  #pass: Promise<void> = Promise.resolve();

  constructor(runDir: string, target: RunUploadTarget) {
    this.#dir = runDir;
    this.#target = target;
  }

  /**
   * Sends what changed since the last pass. Passes never overlap: a call
   * made during one runs after it, so the final pass sees every byte.
   * Throws QueueServerError `lease_lost` (stop the job), and connection
   * errors and 5xx answers (try again later: what was sent stays sent);
   * any other trouble with one file goes to `onFileError`.
   */
  sync(): Promise<void> {
    const next = this.#pass.catch(() => undefined).then(() => this.#syncOnce());
    this.#pass = next;
    return next;
  }

  async #syncOnce(): Promise<void> {
    for (const file of await listFiles(this.#dir, "")) {
      try {
        if (growsOnly(file.path)) await this.#sendGrowth(file.path, file.stats);
        else await this.#sendWhole(file.path, file.stats);
      } catch (error) {
        if (isVanished(error)) continue;
        if (isTransient(error)) throw error;
        this.#sent.set(file.path, { bytes: file.stats.size, mtimeMs: file.stats.mtimeMs });
        this.#target.onFileError?.(file.path, error instanceof Error ? error : new Error(String(error)));
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
      await this.#put(path, new Uint8Array(0), 0);
      this.#sent.set(path, { bytes: 0, mtimeMs: stats.mtimeMs });
      return;
    }
    const handle = await open(join(this.#dir, path), "r");
    try {
      while (offset < stats.size) {
        const chunk = await readChunk(handle, offset, Math.min(UPLOAD_CHUNK_BYTES, stats.size - offset));
        if (chunk.byteLength === 0) break;
        try {
          await this.#put(path, chunk, offset);
        } catch (error) {
          const serverSize = gapSize(error);
          if (serverSize === undefined || serverSize >= offset) throw error;
          // The server has less than we thought (it lost its tail): resend from there.
          offset = serverSize;
          continue;
        }
        offset += chunk.byteLength;
        this.#sent.set(path, { bytes: offset, mtimeMs: stats.mtimeMs });
      }
    } finally {
      await handle.close();
    }
  }

  async #sendWhole(path: string, stats: Stats): Promise<void> {
    const known = this.#sent.get(path);
    if (known && known.bytes === stats.size && known.mtimeMs === stats.mtimeMs) return;
    const handle = await open(join(this.#dir, path), "r");
    try {
      if (stats.size <= UPLOAD_CHUNK_BYTES) {
        await this.#put(path, await readChunk(handle, 0, stats.size), undefined);
      } else {
        // Staged: the chunks go to a hidden part file on the server, the commit puts the whole
        // file in place, so nobody downloads half a checkpoint.
        const part = randomBytes(8).toString("hex");
        for (let offset = 0; offset < stats.size; ) {
          const chunk = await readChunk(handle, offset, Math.min(UPLOAD_CHUNK_BYTES, stats.size - offset));
          if (chunk.byteLength === 0) break;
          await this.#put(path, chunk, offset, part);
          offset += chunk.byteLength;
        }
        await this.#put(path, new Uint8Array(0), undefined, part, true);
      }
    } finally {
      await handle.close();
    }
    // The stats from before the read: a change made while reading shows as a new mtime next pass.
    this.#sent.set(path, { bytes: stats.size, mtimeMs: stats.mtimeMs });
  }

  async #put(
    path: string,
    bytes: Uint8Array,
    offset: number | undefined,
    part?: string,
    commit = false,
  ): Promise<void> {
    const { client, runId, workerId, attempt } = this.#target;
    await client.uploadFile(runId, path, bytes, {
      workerId,
      attempt,
      ...(offset === undefined ? {} : { offset }),
      ...(part === undefined ? {} : { part }),
      ...(commit ? { commit } : {}),
    });
  }
}

/** `metrics.jsonl`, `system.jsonl`, `output.log`, the control queue's logs: appended to, never rewritten. */
function growsOnly(path: string): boolean {
  return path.endsWith(".jsonl") || path === "output.log";
}

/**
 * Writers' internals: `<file>.lock` mutexes, hidden `.<name>.<pid>.<rand>.tmp`
 * files of atomic rewrites, `.runctl-tmp-` artifact copies in progress, and
 * the control queue's per-rank cursors (where the local ranks are, nothing
 * anyone reads from the server).
 */
function isInternal(name: string, dir: string): boolean {
  return (
    name.endsWith(".lock") ||
    (name.startsWith(".") && name.endsWith(".tmp")) ||
    name.startsWith(".runctl-tmp-") ||
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

/** The server's size from a 409 `upload_gap` (its `detail` names it). */
function gapSize(error: unknown): number | undefined {
  if (!(error instanceof QueueServerError) || error.code !== "upload_gap") return undefined;
  const numbers = error.message.match(/\d+/g);
  const last = numbers?.at(-1);
  return last === undefined ? 0 : Number(last);
}

/** Lease lost (stop the job), or worth trying again later: the server is away or failing. */
function isTransient(error: unknown): boolean {
  if (error instanceof QueueUnreachableError) return true;
  return error instanceof QueueServerError && (error.code === "lease_lost" || error.status >= 500);
}

function isVanished(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
