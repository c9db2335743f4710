/**
 * JSON Lines files shared by concurrent writers and live readers.
 *
 * Writers: every line is one `write` on an `O_APPEND` descriptor, so lines from
 * several processes (ranks, the supervisor, the Python client) never
 * interleave on a local file system. Readers: only complete lines (ending in
 * `\n`) count; a torn last line is left for the next read, and lines that do
 * not parse as a JSON object are skipped and counted, never thrown.
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { isErrno } from "./errno.ts";
import { parseJsonLenient } from "./lenient-json.ts";

export type JsonRecord = Record<string, unknown>;

export interface JsonlPage {
  records: JsonRecord[];
  /** Byte offset just past the last complete line read; pass back as `since`. */
  offset: number;
  /** Complete lines that were not a JSON object. */
  skipped: number;
}

const CHUNK_BYTES = 1 << 20;
const NEWLINE = 0x0a;

/** Appends lines to one file through a descriptor kept open between writes. */
export class JsonlAppender {
  readonly path: string;
  #fd: number | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /** Serializes `record` and appends it as one line. */
  append(record: unknown): void {
    this.appendLine(JSON.stringify(record));
  }

  /** Appends `line` (which must not contain a newline) plus `\n` with a single write. */
  appendLine(line: string): void {
    const buf = Buffer.from(`${line}\n`, "utf8");
    this.#fd ??= openSync(this.path, "a", 0o644);
    let written = writeSync(this.#fd, buf, 0, buf.length);
    // A short write only happens when the disk is full or similar; finishing the
    // line keeps the file parseable for readers, which is the best left to do.
    while (written < buf.length) written += writeSync(this.#fd, buf, written, buf.length - written);
  }

  /** Closes the descriptor; a later append reopens it. */
  close(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    closeSync(fd);
  }
}

/**
 * Parses the complete lines of `buf`, calling `onRecord` for each JSON object.
 * Returns how many bytes were consumed (through the last newline).
 */
export function parseJsonlLines(
  buf: Buffer,
  onRecord: (record: JsonRecord) => void,
): { consumed: number; skipped: number } {
  let start = 0;
  let skipped = 0;
  for (;;) {
    const nl = buf.indexOf(NEWLINE, start);
    if (nl < 0) break;
    const line = buf.toString("utf8", start, nl).trim();
    start = nl + 1;
    if (line === "") continue;
    const record = parseLine(line);
    if (record === undefined) skipped++;
    else onRecord(record);
  }
  return { consumed: start, skipped };
}

function parseLine(line: string): JsonRecord | undefined {
  let value: unknown;
  try {
    value = parseJsonLenient(line);
  } catch {
    return undefined;
  }
  return isRecord(value) ? value : undefined;
}

function isRecord(value: unknown): value is JsonRecord {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses chunks of a JSONL file as they are read: complete lines become
 * records, a partial last line is carried into the next chunk and, at the
 * end, left unconsumed (a torn line is waited for, never parsed).
 */
class LineAccumulator {
  #carry: Buffer = Buffer.alloc(0);
  #offset: number;
  #skipped = 0;

  constructor(
    readonly records: JsonRecord[],
    since: number,
  ) {
    this.#offset = since;
  }

  feed(bytes: Buffer): void {
    const view = this.#carry.length > 0 ? Buffer.concat([this.#carry, bytes]) : bytes;
    const result = parseJsonlLines(view, (r) => this.records.push(r));
    this.#skipped += result.skipped;
    this.#offset += result.consumed;
    // Copy: the caller reuses its read buffer for the next chunk.
    this.#carry = Buffer.from(view.subarray(result.consumed));
  }

  page(): JsonlPage {
    return { records: this.records, offset: this.#offset, skipped: this.#skipped };
  }
}

/**
 * Reads the complete lines from byte `since` (a previous `offset`) on. A
 * missing file reads as empty; a file shorter than `since` (replaced or
 * truncated) returns nothing, so a caller that sees no progress for long may
 * start again from 0.
 */
export async function readJsonl(path: string, options: { since?: number } = {}): Promise<JsonlPage> {
  const since = options.since ?? 0;
  const records: JsonRecord[] = [];
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { records, offset: since, skipped: 0 };
    throw error;
  }
  const lines = new LineAccumulator(records, since);
  try {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    let position = since;
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      lines.feed(chunk.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return lines.page();
}

/** Synchronous full read, for writers that must know a file's contents before appending. */
export function readJsonlSync(path: string): JsonlPage {
  const records: JsonRecord[] = [];
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { records, offset: 0, skipped: 0 };
    throw error;
  }
  const lines = new LineAccumulator(records, 0);
  try {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    let position = 0;
    for (;;) {
      const bytesRead = readSync(fd, chunk, 0, CHUNK_BYTES, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      lines.feed(chunk.subarray(0, bytesRead));
    }
  } finally {
    closeSync(fd);
  }
  return lines.page();
}
