import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import {
  type Ack,
  type AckFilter,
  type CommandDraft,
  type ControlChannel,
  type ControlCursor,
  ControlDescriptor,
  type ControlEntry,
  type ControlPage,
  type SequencedCommand,
  START_CURSOR,
  UserError,
} from "@runctl/core";
import {
  JsonlAppender,
  parseJsonLenient,
  readJsonl,
  withFileMutexSync,
  writeFileAtomicSync,
} from "@runctl/core/internal";
import { z } from "zod";
import { AckRecord } from "./ack.ts";
import { commandFromDraft, commandLine } from "./command-draft.ts";
import { parseCommandLine } from "./command-line.ts";
import { ControlState } from "./cursor.ts";
import { type HistoryItem, readHistory } from "./history.ts";
import { cursorFileName, QUEUE_FILES } from "./layout.ts";

const NEWLINE = 0x0a;
/** Bytes read per step; a page ends at the last complete line of what was read. */
const READ_CHUNK = 1 << 20;
/** A page stops growing past this many bytes; the rest comes with the next read. */
const PAGE_BYTES = 8 << 20;

const ControlsFile = z
  .object({
    controls: z.array(z.object(ControlDescriptor.shape)),
    updated_at: z.string().optional(),
    pid: z.number().optional(),
  })
  .loose();

interface LineCount {
  ino: number;
  /** Byte offset just past the last newline counted. */
  offset: number;
  lines: number;
}

export class FileQueue implements ControlChannel {
  readonly dir: string;
  readonly commandsPath: string;
  readonly acksPath: string;
  readonly controlsPath: string;
  #acks: JsonlAppender;
  #counted: LineCount | undefined;

  /** Files are created on first write; a missing directory reads as empty. */
  constructor(dir: string) {
    this.dir = dir;
    this.commandsPath = join(dir, QUEUE_FILES.commands);
    this.acksPath = join(dir, QUEUE_FILES.acks);
    this.controlsPath = join(dir, QUEUE_FILES.controls);
    this.#acks = new JsonlAppender(this.acksPath);
  }

  /** The queue of a run started by runctl: `<runDir>/control`. */
  static forRunDir(runDir: string): FileQueue {
    return new FileQueue(join(runDir, "control"));
  }

  async publish(draft: CommandDraft): Promise<SequencedCommand> {
    return this.publishSync(draft);
  }

  /**
   * Validates the command, fills `id` (a UUID) and `ts` when missing, and appends
   * it as one line. Throws UserError `invalid_command` or `payload_too_large`.
   */
  publishSync(draft: CommandDraft): SequencedCommand {
    const command = commandFromDraft(draft);
    return { seq: this.appendLineSync(commandLine(command)), command };
  }

  /**
   * Appends one line (without its newline) under the writers' mutex and
   * returns its seq. The caller has checked it: a command line of at most
   * 64 KiB, or `""` (a blank line takes a seq and yields nothing, which is how
   * the bridge keeps file seqs equal to NATS seqs for messages it answers itself).
   */
  appendLineSync(line: string): number {
    mkdirSync(this.dir, { recursive: true });
    return withFileMutexSync(this.commandsPath, () => {
      const { lines, torn } = this.#countLines();
      const appender = new JsonlAppender(this.commandsPath);
      try {
        // Under the lock nobody following the protocol is mid-write: a last line
        // without its newline belongs to a writer that died. End it (consumers
        // ack it rejected) rather than glue this command onto it.
        if (torn) appender.appendLine("");
        appender.appendLine(line);
      } finally {
        appender.close();
      }
      return torn ? lines + 1 : lines;
    });
  }

  async read(cursor: ControlCursor = START_CURSOR): Promise<ControlPage> {
    return this.readSync(cursor);
  }

  /**
   * Entries of the complete lines from `cursor` on. A torn last line is not
   * consumed. A cursor that no longer fits the file (the byte before its offset
   * is not a newline: the file was replaced or truncated) reads from the start,
   * with a warning; consumers skip the ids they already applied.
   */
  readSync(from: ControlCursor = START_CURSOR): ControlPage {
    let fd: number;
    try {
      fd = openSync(this.commandsPath, "r");
    } catch (error) {
      if (isErrno(error, "ENOENT")) return { entries: [], cursor: from };
      throw error;
    }
    try {
      const size = fstatSync(fd).size;
      let cursor = from;
      if (cursor.offset > 0 && !endsLineAt(fd, cursor.offset, size)) {
        process.emitWarning(
          `${this.commandsPath} no longer matches the cursor (seq ${cursor.seq} at byte ${cursor.offset}): ` +
            "the file was replaced or truncated; reading it from the start, skipping the ids already applied",
          { code: "RUNCTL_CONTROL_CURSOR_RESET" },
        );
        cursor = START_CURSOR;
      }
      if (size <= cursor.offset) return { entries: [], cursor };
      const buf = readCompleteLines(fd, cursor.offset, size);
      const entries: ControlEntry[] = [];
      let seq = cursor.seq;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(NEWLINE, start);
        if (nl < 0) break;
        const entry = parseCommandLine(buf.subarray(start, nl), seq);
        if (entry !== undefined) entries.push(entry);
        seq++;
        start = nl + 1;
      }
      return { entries, cursor: { seq, offset: cursor.offset + start } };
    } finally {
      closeSync(fd);
    }
  }

  async appendAck(ack: Ack): Promise<void> {
    this.appendAckSync(ack);
  }

  appendAckSync(ack: Ack): void {
    const record = AckRecord.parse(ack);
    mkdirSync(this.dir, { recursive: true });
    this.#acks.append(record);
  }

  /** Acks in file order; lines that are not acks are skipped. */
  async readAcks(filter: AckFilter = {}): Promise<Ack[]> {
    const page = await readJsonl(this.acksPath);
    const acks: Ack[] = [];
    for (const record of page.records) {
      const parsed = AckRecord.safeParse(record);
      if (!parsed.success) continue;
      if (filter.commandId !== undefined && parsed.data.id !== filter.commandId) continue;
      acks.push(parsed.data);
    }
    return acks;
  }

  async writeControls(controls: ControlDescriptor[]): Promise<void> {
    this.writeControlsSync(controls);
  }

  /** Rewrites `controls.json` atomically (temp file + rename). */
  writeControlsSync(controls: ControlDescriptor[]): void {
    const parsed = controls.map((c) => ControlDescriptor.parse(c));
    mkdirSync(this.dir, { recursive: true });
    const file = { controls: parsed, updated_at: new Date().toISOString(), pid: process.pid };
    writeFileAtomicSync(this.controlsPath, `${JSON.stringify(file, null, 2)}\n`);
  }

  async readControls(): Promise<ControlDescriptor[] | null> {
    const text = readTextOrNull(this.controlsPath);
    if (text === null) return null;
    const parsed = ControlsFile.safeParse(safeJson(text));
    if (!parsed.success) {
      throw new UserError(`${this.controlsPath} is not a controls file`, {
        code: "controls_corrupt",
        hint: "It is rewritten whenever the training script registers a control; restart the run or delete it.",
      });
    }
    return parsed.data.controls;
  }

  /** Every entry from the start, each with its acks. */
  async history(): Promise<HistoryItem[]> {
    return readHistory(this);
  }

  /** Rank `rank`'s persisted consumer state, or null when it has none. */
  readState(rank: number): ControlState | null {
    const path = join(this.dir, cursorFileName(rank));
    const text = readTextOrNull(path);
    if (text === null) return null;
    const parsed = ControlState.safeParse(safeJson(text));
    if (!parsed.success) {
      throw new UserError(`${path} is not a control cursor`, {
        code: "cursor_corrupt",
        hint: "Delete it to have this rank start from the first command, or restore a saved stateDict().",
      });
    }
    return parsed.data;
  }

  writeState(rank: number, state: ControlState): void {
    mkdirSync(this.dir, { recursive: true });
    writeFileAtomicSync(join(this.dir, cursorFileName(rank)), `${JSON.stringify(state)}\n`);
  }

  async close(): Promise<void> {
    this.#acks.close();
  }

  /** Complete lines in `commands.jsonl`, and whether a torn line follows them. */
  #countLines(): { lines: number; torn: boolean } {
    let fd: number;
    try {
      fd = openSync(this.commandsPath, "r");
    } catch (error) {
      if (isErrno(error, "ENOENT")) return { lines: 0, torn: false };
      throw error;
    }
    try {
      const { ino, size } = fstatSync(fd);
      const known = this.#counted;
      const count =
        known !== undefined && known.ino === ino && known.offset <= size
          ? { ...known }
          : { ino, offset: 0, lines: 0 };
      const chunk = Buffer.allocUnsafe(READ_CHUNK);
      let position = count.offset;
      while (position < size) {
        const n = readSync(fd, chunk, 0, Math.min(READ_CHUNK, size - position), position);
        if (n === 0) break;
        const view = chunk.subarray(0, n);
        for (let i = view.indexOf(NEWLINE); i >= 0; i = view.indexOf(NEWLINE, i + 1)) {
          count.lines++;
          count.offset = position + i + 1;
        }
        position += n;
      }
      this.#counted = count;
      return { lines: count.lines, torn: count.offset < position };
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Bytes from `offset` through the last newline before `size`, read in chunks;
 * stops once PAGE_BYTES are held and a newline has been seen.
 */
function readCompleteLines(fd: number, offset: number, size: number): Buffer {
  const parts: Buffer[] = [];
  let held = 0;
  let lastNewline = -1;
  let position = offset;
  while (position < size) {
    const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - position));
    const n = readSync(fd, chunk, 0, chunk.length, position);
    if (n === 0) break;
    const nl = chunk.subarray(0, n).lastIndexOf(NEWLINE);
    if (nl >= 0) lastNewline = held + nl;
    parts.push(chunk.subarray(0, n));
    held += n;
    position += n;
    if (held >= PAGE_BYTES && lastNewline >= 0) break;
  }
  return Buffer.concat(parts, held).subarray(0, lastNewline + 1);
}

/** Whether byte `offset - 1` exists and is a newline. */
function endsLineAt(fd: number, offset: number, size: number): boolean {
  if (offset > size) return false;
  const byte = Buffer.alloc(1);
  return readSync(fd, byte, 0, 1, offset - 1) === 1 && byte[0] === NEWLINE;
}

function readTextOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return null;
    throw error;
  }
}

function safeJson(text: string): unknown {
  try {
    return parseJsonLenient(text);
  } catch {
    return undefined;
  }
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
