/**
 * Run sync: a run directory mirrored, while it grows, to somewhere other
 * machines can read it (the job server, an artifact store). The agent walks
 * the directory and decides what changed; a target only stores bytes:
 *
 * - append-only files (`*.jsonl`, `output.log`) travel as new bytes at the
 *   offset the target holds, so an agent restarted mid-run continues from the
 *   target's length and no metric is ever stored twice;
 * - every other file is replaced whole, atomically: a reader sees the old or
 *   the new file, and a large one is staged and then committed.
 */
import { Readable } from "node:stream";
import type { ArtifactStore } from "./artifacts.ts";
import { UserError } from "./errors.ts";

/** Reads `length` bytes of the file being sent, from `offset`. */
export type ChunkReader = (offset: number, length: number) => Promise<Uint8Array>;

export interface RunSyncTarget {
  /** Where the copy lives, for messages: `http://host/api/v1/runs/job-3`, `s3://bucket/runs/<id>`. */
  readonly location: string;
  /**
   * Stores `data` at `offset` of the append-only file `path` (relative, `/`
   * separated). Sending an offset the target already holds replaces from
   * there (a retried send is harmless); an offset past its end throws
   * `RunSyncGapError` with the length it holds.
   */
  append(path: string, offset: number, data: Uint8Array): Promise<void>;
  /** Replaces the whole file `path` with `size` bytes; readers never see a mix. */
  replace(path: string, size: number, read: ChunkReader): Promise<void>;
  /** Bytes of each append-only file the target holds: where a restarted agent continues. */
  heldBytes(): Promise<Record<string, number>>;
  /**
   * True for failures to retry later with nothing lost (unreachable, 5xx,
   * throttled, a lost lease the caller must act on); false for a refusal
   * of that one file, which is skipped until it changes.
   */
  isTransient(error: unknown): boolean;
}

/** The target holds fewer bytes than the offset sent: resend from `held`. */
export class RunSyncGapError extends UserError {
  readonly held: number;

  constructor(path: string, held: number, offset: number) {
    super(`${path}: the target holds ${held} bytes, not ${offset}`, {
      code: "sync_gap",
      hint: "The sender resends from the target's length.",
    });
    this.held = held;
  }
}

/** Files that only ever grow: sent by offset. */
export function growsOnly(path: string): boolean {
  return path.endsWith(".jsonl") || path === "output.log";
}

const SEGMENTS = ".segments";
const OFFSET_DIGITS = 16;

/**
 * A run directory in an ArtifactStore under `prefix` (`runs/<run-id>`). Whole
 * files are objects of their own name; an append-only file is a set of
 * segment objects `<path>.segments/<offset>` (16 digits), which
 * `readStoredRunFile` joins back. Objects are written whole (the store's puts
 * are atomic), so a reader never sees a torn segment or file.
 */
export class StoreRunSync implements RunSyncTarget {
  readonly location: string;
  readonly #store: ArtifactStore;
  readonly #prefix: string;
  /** Offset → length of the segments this process knows of, per file. */
  readonly #segments = new Map<string, Map<number, number>>();

  constructor(store: ArtifactStore, prefix: string) {
    this.#store = store;
    this.#prefix = prefix.replace(/\/+$/, "");
    this.location = `${store.url.replace(/\/+$/, "")}/${this.#prefix}`;
  }

  async heldBytes(): Promise<Record<string, number>> {
    const held: Record<string, number> = {};
    for (const [path, segments] of await listSegments(this.#store, this.#prefix)) {
      this.#segments.set(path, new Map(segments.map((s) => [s.offset, s.size])));
      held[path] = contiguousEnd(segments);
    }
    return held;
  }

  async append(path: string, offset: number, data: Uint8Array): Promise<void> {
    const known = this.#segments.get(path) ?? new Map<number, number>();
    const held = contiguousEnd([...known].map(([o, size]) => ({ offset: o, size })));
    if (offset > held) throw new RunSyncGapError(path, held, offset);
    await this.#store.putStream(storedSegmentKey(this.#prefix, path, offset), streamOf(data));
    // A resend from an earlier offset replaces everything after it.
    for (const o of [...known.keys()]) {
      if (o > offset) {
        await this.#store.delete(storedSegmentKey(this.#prefix, path, o));
        known.delete(o);
      }
    }
    known.set(offset, data.byteLength);
    this.#segments.set(path, known);
  }

  async replace(path: string, size: number, read: ChunkReader): Promise<void> {
    await this.#store.putStream(`${this.#prefix}/${path}`, chunkStream(size, read));
  }

  isTransient(error: unknown): boolean {
    const code = (error as { code?: unknown } | undefined)?.code;
    return code === "throttled" || code === "store_unreachable" || code === "ECONNREFUSED";
  }
}

/** The whole of a file of a run directory kept by StoreRunSync: segments joined, or the object itself. */
export async function readStoredRunFile(
  store: ArtifactStore,
  prefix: string,
  path: string,
): Promise<Buffer | null> {
  const base = prefix.replace(/\/+$/, "");
  const segments = (await listSegments(store, base)).get(path);
  if (segments && segments.length > 0) {
    return joinSegments(segments, async (offset) => {
      try {
        return await readAll(await store.getStream(storedSegmentKey(base, path, offset)));
      } catch (error) {
        // Listed, then gone: a writer replaced it (StoreRunSync's resend from an earlier offset).
        if ((error as { code?: unknown } | undefined)?.code === "artifact_not_found") return null;
        throw error;
      }
    });
  }
  if ((await store.head(`${base}/${path}`)) === null) return null;
  return readAll(await store.getStream(`${base}/${path}`));
}

/** Relative paths of the files a stored run directory holds. */
export async function listStoredRunFiles(store: ArtifactStore, prefix: string): Promise<string[]> {
  const base = `${prefix.replace(/\/+$/, "")}/`;
  const files = new Set<string>();
  for (const object of await store.list(base)) {
    const rel = object.key.slice(base.length);
    const cut = rel.indexOf(`${SEGMENTS}/`);
    files.add(cut === -1 ? rel : rel.slice(0, cut));
  }
  return [...files].sort();
}

/**
 * Joins the segments of an append-only file, sorted by offset. Segments may
 * overlap: a writer that cannot delete (a POST policy) and was restarted
 * resends from an earlier offset with another chunking, so `{0:150}` can sit
 * beside an older `{100:50}` and `{150:…}`. The bytes at any offset are the
 * same in every segment that holds them (the file only grows), so each
 * segment that starts at or before the current end contributes its bytes
 * past that end; the join stops at the first real gap, as a reader of a
 * growing file would. A segment wholly covered is not read at all.
 */
export async function joinSegments(
  segments: readonly Segment[],
  read: (offset: number) => Promise<Uint8Array | null>,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let end = 0;
  for (const segment of [...segments].sort((a, b) => a.offset - b.offset)) {
    if (segment.offset > end) break;
    if (segment.offset + segment.size <= end) continue;
    const data = await read(segment.offset);
    // The listed size may be stale (rewritten since): the bytes read decide.
    if (data === null || segment.offset + data.byteLength <= end) continue;
    parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength).subarray(end - segment.offset));
    end = segment.offset + data.byteLength;
  }
  return Buffer.concat(parts);
}

/**
 * The key of the segment of append-only `path` that starts at `offset`, under
 * a run's `prefix`: `<prefix>/<path>.segments/<offset, 16 digits>`. Every
 * writer of a stored run directory uses this layout so that one reader
 * (`readStoredRunFile`) reads them all.
 */
export function storedSegmentKey(prefix: string, path: string, offset: number): string {
  return `${prefix}/${path}${SEGMENTS}/${String(offset).padStart(OFFSET_DIGITS, "0")}`;
}

/** One stored piece of an append-only file: its offset in the file and its length. */
export interface Segment {
  offset: number;
  size: number;
}

async function listSegments(store: ArtifactStore, prefix: string): Promise<Map<string, Segment[]>> {
  const out = new Map<string, Segment[]>();
  const base = `${prefix}/`;
  for (const object of await store.list(base)) {
    const rel = object.key.slice(base.length);
    const cut = rel.lastIndexOf(`${SEGMENTS}/`);
    if (cut === -1) continue;
    const offset = Number(rel.slice(cut + SEGMENTS.length + 1));
    if (!Number.isSafeInteger(offset)) continue;
    const path = rel.slice(0, cut);
    const list = out.get(path) ?? [];
    list.push({ offset, size: object.size });
    out.set(path, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.offset - b.offset);
  return out;
}

function contiguousEnd(segments: Segment[]): number {
  let end = 0;
  for (const s of [...segments].sort((a, b) => a.offset - b.offset)) {
    if (s.offset > end) break;
    end = Math.max(end, s.offset + s.size);
  }
  return end;
}

async function* chunks(size: number, read: ChunkReader): AsyncGenerator<Uint8Array> {
  const step = 8 << 20;
  for (let offset = 0; offset < size; ) {
    const chunk = await read(offset, Math.min(step, size - offset));
    if (chunk.byteLength === 0) break;
    offset += chunk.byteLength;
    yield chunk;
  }
}

function chunkStream(size: number, read: ChunkReader): Readable {
  return Readable.from(chunks(size, read), { objectMode: false });
}

function streamOf(data: Uint8Array): Readable {
  return Readable.from([data], { objectMode: false });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}
