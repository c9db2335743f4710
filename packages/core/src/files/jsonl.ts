/**
 * JSON Lines files shared by concurrent writers and live readers.
 *
 * Writers: every line is one `write` on an `O_APPEND` descriptor, so lines from
 * several processes (ranks, the supervisor, the Python client) never
 * interleave on a local file system. Readers: only complete lines (ending in
 * `\n`) count; a torn last line is left for the next read, and lines that are
 * too long (MAX_JSONL_LINE_BYTES), too deep (MAX_JSON_DEPTH) or not a JSON
 * object are skipped, counted and listed for the caller to report, never thrown.
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { jsonTextDepth, MAX_JSON_DEPTH } from "../json-depth.ts";
import { isErrno } from "./errno.ts";
import { parseJsonLenient } from "./lenient-json.ts";

export type JsonRecord = Record<string, unknown>;

/** Why a complete line was not returned as a record. */
export type JsonlSkipReason = "too_long" | "too_deep" | "not_json" | "not_object";

export interface JsonlSkip {
  /** Byte offset of the line's start in the file. */
  offset: number;
  /** The line's length in bytes, without the newline. */
  bytes: number;
  reason: JsonlSkipReason;
}

export interface JsonlPage {
  records: JsonRecord[];
  /** Byte offset just past the last complete line read; pass back as `since`. */
  offset: number;
  /** Complete lines that were not returned (too long, too deep, not a JSON object). */
  skipped: number;
  /** The first MAX_REPORTED_SKIPS of those lines, for a reader to report. */
  skips: JsonlSkip[];
}

/**
 * The longest line a reader accepts (docs/run-directory.md). A longer one is
 * skipped without ever being held in memory whole, so one hostile or runaway
 * `log()` call cannot make every reader of the run slow and huge.
 */
export const MAX_JSONL_LINE_BYTES = 1024 * 1024;
/** Skips listed one by one in a page; past this only `skipped` counts them. */
export const MAX_REPORTED_SKIPS = 100;

/** Says, for people, why lines of `file` were skipped; undefined when none were. */
export function describeJsonlSkips(
  file: string,
  page: Pick<JsonlPage, "skipped" | "skips">,
): string | undefined {
  if (page.skipped === 0) return undefined;
  const reasons: Record<JsonlSkipReason, string> = {
    too_long: `longer than ${MAX_JSONL_LINE_BYTES} bytes`,
    too_deep: `nested more than ${MAX_JSON_DEPTH} levels`,
    not_json: "not JSON",
    not_object: "not a JSON object",
  };
  const shown = page.skips
    .slice(0, 3)
    .map((s) => `byte ${s.offset} (${s.bytes} bytes, ${reasons[s.reason]})`)
    .join(", ");
  const more = page.skipped > 3 ? ` and ${page.skipped - 3} more` : "";
  return `${file}: skipped ${page.skipped} line(s): ${shown}${more}`;
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
): { consumed: number; skipped: number; skips: JsonlSkip[] } {
  const lines = new LineAccumulator(0, onRecord);
  lines.feed(buf);
  const page = lines.page();
  return { consumed: page.offset, skipped: page.skipped, skips: page.skips };
}

function parseLine(line: string): JsonRecord | JsonlSkipReason {
  // Depth first, on the text: a deep line must not reach JSON.parse, nor the
  // recursive code (schemas, stringify) that would handle its value later.
  if (jsonTextDepth(line, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) return "too_deep";
  let value: unknown;
  try {
    value = parseJsonLenient(line);
  } catch {
    return "not_json";
  }
  return isRecord(value) ? value : "not_object";
}

function isRecord(value: unknown): value is JsonRecord {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses chunks of a JSONL file as they are read, in time linear in the bytes
 * and memory bounded by MAX_JSONL_LINE_BYTES: only the unfinished line is
 * carried between chunks (as a list, joined once when its newline comes, never
 * re-joined per chunk), and a line that grows past the limit is dropped as it
 * streams by and reported when its end is seen. At the end a partial last line
 * is left unconsumed (a torn line is waited for, never parsed).
 */
class LineAccumulator {
  #carry: Buffer[] = [];
  #carryBytes = 0;
  /** The unfinished line passed the limit; its bytes are being dropped. */
  #overlong = false;
  /** File offset of the unfinished line's first byte. */
  #lineStart: number;
  #offset: number;
  #skipped = 0;
  readonly #skips: JsonlSkip[] = [];

  constructor(
    since: number,
    readonly onRecord: (record: JsonRecord) => void,
  ) {
    this.#offset = since;
    this.#lineStart = since;
  }

  feed(bytes: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = bytes.indexOf(NEWLINE, start);
      if (nl < 0) break;
      this.#endLine(bytes.subarray(start, nl));
      start = nl + 1;
      this.#offset = this.#lineStart;
    }
    const rest = bytes.length - start;
    if (rest === 0 || this.#overlong) {
      this.#carryBytes += rest;
      return;
    }
    if (this.#carryBytes + rest > MAX_JSONL_LINE_BYTES) {
      this.#overlong = true;
      this.#carry = [];
      this.#carryBytes += rest;
      return;
    }
    // Copy: the caller reuses its read buffer for the next chunk.
    this.#carry.push(Buffer.from(bytes.subarray(start)));
    this.#carryBytes += rest;
  }

  #endLine(tail: Buffer): void {
    const bytes = this.#carryBytes + tail.length;
    const lineStart = this.#lineStart;
    this.#lineStart += bytes + 1;
    let reason: JsonlSkipReason | undefined;
    if (this.#overlong || bytes > MAX_JSONL_LINE_BYTES) {
      reason = "too_long";
    } else {
      const whole = this.#carry.length > 0 ? Buffer.concat([...this.#carry, tail]) : tail;
      const line = whole.toString("utf8").trim();
      if (line !== "") {
        const parsed = parseLine(line);
        if (typeof parsed === "string") reason = parsed;
        else this.onRecord(parsed);
      }
    }
    this.#carry = [];
    this.#carryBytes = 0;
    this.#overlong = false;
    if (reason === undefined) return;
    this.#skipped++;
    if (this.#skips.length < MAX_REPORTED_SKIPS) this.#skips.push({ offset: lineStart, bytes, reason });
  }

  page(records: JsonRecord[] = []): JsonlPage {
    return { records, offset: this.#offset, skipped: this.#skipped, skips: [...this.#skips] };
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
    if (isErrno(error, "ENOENT")) return { records, offset: since, skipped: 0, skips: [] };
    throw error;
  }
  const lines = new LineAccumulator(since, (r) => records.push(r));
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
  return lines.page(records);
}

/** Synchronous full read, for writers that must know a file's contents before appending. */
export function readJsonlSync(path: string): JsonlPage {
  const records: JsonRecord[] = [];
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { records, offset: 0, skipped: 0, skips: [] };
    throw error;
  }
  const lines = new LineAccumulator(0, (r) => records.push(r));
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
  return lines.page(records);
}
