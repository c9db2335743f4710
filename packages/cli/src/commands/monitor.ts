import type { Stats } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { setTimeout as sleep } from "node:timers/promises";
import { Flags } from "@oclif/core";
import { type CheckpointFile, listCheckpoints } from "@runctl/agent/checkpoints";
import { formatBytes, UserError } from "@runctl/core";
import { RunctlCommand } from "../command.ts";
import { fromOclifError } from "../fatal.ts";
import { table } from "../output.ts";

const TAIL_CHUNK_BYTES = 64 * 1024;
// Bounds on what one look at the log may read, so a multi-gigabyte log or a
// burst of output cannot stall the loop or fill memory.
const TAIL_MAX_BYTES = 8 * 1024 * 1024;
const POLL_MAX_BYTES = 16 * 1024 * 1024;
// A "line" that never ends (progress bars redrawn with \r) is cut here rather than buffered forever.
const MAX_LINE_CHARS = 64 * 1024;

type Emit = (event: Record<string, unknown>) => void;

export default class Monitor extends RunctlCommand {
  static override summary =
    "Show the end of a training log and the newest checkpoints; with --follow, keep watching.";
  static override description =
    `Without --follow, prints the last --lines lines of --log and the newest --limit checkpoints in --checkpoint, and exits; --json returns {log: {path, lastLines}, checkpointDir, checkpoints}.

With --follow, keeps printing lines as they are appended to the log (following it across truncation, rotation and re-creation) and announces checkpoint files as they appear or are rewritten, once their size has stopped changing between two polls, until interrupted (Ctrl-C or SIGTERM; exit code 0). Files that do not exist yet are waited for.

--json with --follow prints NDJSON: one JSON object per line, each with "event" and "ts":
  {"event":"snapshot","log":{"path","lastLines"}|null,"checkpointDir","checkpoints":[…]}   first
  {"event":"log","line":"…"}                                  a line appended to the log
  {"event":"log_reset","reason":"truncated|rotated|removed|created"}
  {"event":"checkpoint","change":"new|updated","checkpoint":{path,name,size,mtime,mtimeMs,step}}
  {"success":true,"event":"end","reason":"interrupted","lines":N,"checkpoints":N}   last
An error ends the stream with runctl's error envelope on one line.`;
  static override examples = [
    "<%= config.bin %> monitor --log runs/latest/output.log --checkpoint checkpoints",
    "<%= config.bin %> monitor --log train.log --checkpoint checkpoints --follow",
    "<%= config.bin %> monitor --log train.log --follow --json | jq -c 'select(.event == \"checkpoint\")'",
  ];
  static override flags = {
    log: Flags.string({ description: "Training log file to show and follow." }),
    checkpoint: Flags.string({ description: "Checkpoint directory to watch." }),
    follow: Flags.boolean({ char: "f", description: "Keep watching until interrupted.", default: false }),
    interval: Flags.string({
      description: "Seconds between looks at the log and the checkpoint directory (with --follow).",
      default: "1",
    }),
    lines: Flags.integer({
      char: "n",
      description: "How many log lines to show first.",
      default: 20,
      min: 0,
    }),
    limit: Flags.integer({
      description: "How many of the newest checkpoints to show first.",
      default: 5,
      min: 1,
    }),
  };

  #ndjson = false;

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(Monitor);
    this.#ndjson = flags.follow && this.jsonEnabled();
    const interval = intervalSeconds(flags.interval);
    if (flags.log === undefined && flags.checkpoint === undefined) {
      throw new UserError("Nothing to monitor", {
        code: "monitor_nothing_to_watch",
        hint: "Pass --log <file>, --checkpoint <dir>, or both.",
      });
    }
    const logPath = flags.log === undefined ? undefined : resolve(flags.log);
    const dir = flags.checkpoint === undefined ? undefined : resolve(flags.checkpoint);
    if (!flags.follow) return this.snapshot(logPath, dir, flags.lines, flags.limit);
    return this.follow(logPath, dir, { ...flags, interval });
  }

  private async snapshot(
    logPath: string | undefined,
    dir: string | undefined,
    lines: number,
    limit: number,
  ): Promise<Record<string, unknown>> {
    let log: { path: string; lastLines: string[] } | null = null;
    if (logPath !== undefined) {
      const handle = await openLog(logPath);
      if (handle === null) throw logNotFound(logPath);
      try {
        log = { path: logPath, lastLines: await lastLines(handle, (await handle.stat()).size, lines) };
      } finally {
        await handle.close();
      }
    }
    const checkpoints = dir === undefined ? null : (await listCheckpoints(dir)).slice(0, limit);
    this.printSnapshot(log, dir, checkpoints);
    return { log, checkpointDir: dir ?? null, checkpoints };
  }

  private printSnapshot(
    log: { path: string; lastLines: string[] } | null,
    dir: string | undefined,
    checkpoints: CheckpointFile[] | null,
  ): void {
    if (log !== null) {
      this.log(`==> ${log.path} <==`);
      for (const line of log.lastLines) this.log(line);
    }
    if (dir !== undefined && checkpoints !== null) {
      if (log !== null) this.log("");
      this.log(`==> ${dir} <==`);
      if (checkpoints.length === 0) this.log("(no checkpoints yet)");
      else this.log(table(["STEP", "SIZE", "MODIFIED", "NAME"], checkpoints.map(checkpointRow)));
    }
  }

  private async follow(
    logPath: string | undefined,
    dir: string | undefined,
    flags: { interval: number; lines: number; limit: number },
  ): Promise<Record<string, unknown>> {
    // Installed before anything is printed, so an interrupt at any point ends the watch cleanly.
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.once("SIGINT", interrupt);
    process.once("SIGTERM", interrupt);
    const counts = { lines: 0, checkpoints: 0 };
    const emit: Emit = (event) => {
      if (event.event === "log") counts.lines++;
      if (event.event === "checkpoint") counts.checkpoints++;
      if (this.#ndjson) {
        process.stdout.write(`${JSON.stringify({ ...event, ts: new Date().toISOString() })}\n`);
        return;
      }
      if (event.event === "log") this.log(String(event.line));
      else if (event.event === "log_reset") this.progress(`==> ${logPath} ${String(event.reason)} <==`);
      else if (event.event === "checkpoint") {
        const c = event.checkpoint as CheckpointFile;
        const step = c.step === null ? "" : `step ${c.step}, `;
        this.log(`[checkpoint] ${String(event.change)} ${c.name} (${step}${formatBytes(c.size)})`);
      }
    };
    const tail = logPath === undefined ? undefined : new LogFollower(logPath, emit);
    const watcher = dir === undefined ? undefined : new CheckpointWatcher(dir, emit);
    try {
      const lastLines = tail === undefined ? [] : await tail.start(flags.lines);
      const checkpoints = watcher === undefined ? null : await watcher.start();
      const log = logPath === undefined ? null : { path: logPath, lastLines };
      if (this.#ndjson)
        emit({
          event: "snapshot",
          log,
          checkpointDir: dir ?? null,
          checkpoints: checkpoints?.slice(0, flags.limit) ?? null,
        });
      else this.printSnapshot(log, dir, checkpoints?.slice(0, flags.limit) ?? null);
      if (tail?.waiting) this.progress(`Waiting for ${logPath} to appear…`);
      if (watcher?.waiting) this.progress(`Waiting for ${dir} to appear…`);
      this.progress("Following; press Ctrl-C to stop.");
      while (!stop.signal.aborted) {
        try {
          await sleep(flags.interval * 1000, undefined, { signal: stop.signal });
        } catch {
          break;
        }
        await tail?.poll();
        await watcher?.poll();
      }
      tail?.flush();
    } finally {
      process.off("SIGINT", interrupt);
      process.off("SIGTERM", interrupt);
      await tail?.close();
    }
    return { event: "end", reason: "interrupted", ...counts };
  }

  // With --follow --json every line of stdout is one JSON document, the final envelope included.
  protected override logJson(json: unknown): void {
    if (this.#ndjson) process.stdout.write(`${JSON.stringify(json)}\n`);
    else super.logJson(json);
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<unknown> {
    if (!this.#ndjson) return super.catch(error);
    const err = fromOclifError(error, this.id);
    process.stdout.write(`${JSON.stringify(err.toEnvelope())}\n`);
    process.exitCode = err.exitCode;
    return undefined;
  }
}

// Parsed here rather than in an oclif flag parser, which would bury our message in its own.
function intervalSeconds(input: string): number {
  const seconds = Number(input);
  if (input.trim() === "" || !Number.isFinite(seconds) || seconds < 0.05 || seconds > 3600) {
    throw new UserError(`--interval must be a number of seconds between 0.05 and 3600, not "${input}"`, {
      code: "monitor_bad_interval",
      hint: "Pass e.g. --interval 2 or --interval 0.5.",
    });
  }
  return seconds;
}

function checkpointRow(c: CheckpointFile): string[] {
  return [c.step === null ? "-" : String(c.step), formatBytes(c.size), c.mtime, c.name];
}

function logNotFound(path: string): UserError {
  return new UserError(`Log file ${path} does not exist`, {
    code: "log_not_found",
    hint: "Check the path (a run's log is `<run dir>/output.log`), or add --follow to wait for it to appear.",
    details: { path },
  });
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

async function openLog(path: string): Promise<FileHandle | null> {
  try {
    return await open(path, "r");
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
}

/** The last `n` lines of the first `size` bytes, reading backwards so a huge log costs a few chunks. */
async function lastLines(handle: FileHandle, size: number, n: number): Promise<string[]> {
  if (n === 0 || size === 0) return [];
  const chunks: Buffer[] = [];
  let position = size;
  let newlines = 0;
  while (position > 0 && newlines <= n && size - position < TAIL_MAX_BYTES) {
    const length = Math.min(TAIL_CHUNK_BYTES, position);
    position -= length;
    const chunk = Buffer.alloc(length);
    await handle.read(chunk, 0, length, position);
    chunks.unshift(chunk);
    for (const byte of chunk) if (byte === 0x0a) newlines++;
  }
  const lines = Buffer.concat(chunks).toString("utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  // Reading stopped mid-file: the first piece is the tail of an earlier line.
  if (position > 0) lines.shift();
  return lines.slice(-n).map(stripCr);
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/**
 * Follows one log path the way `tail -F` does. It keeps the file open, so
 * lines written just before a rotation are still read from the old file; then
 * it switches to whatever file the path names now. A file that got shorter
 * was truncated (`> log`, copytruncate) and is read again from its start.
 */
class LogFollower {
  readonly #path: string;
  readonly #emit: Emit;
  #handle: FileHandle | null = null;
  #ino = -1;
  #offset = 0;
  #decoder = new StringDecoder("utf8");
  #partial = "";

  constructor(path: string, emit: Emit) {
    this.#path = path;
    this.#emit = emit;
  }

  get waiting(): boolean {
    return this.#handle === null;
  }

  /** Opens the log if it exists and returns its last `n` lines; following starts at its current end. */
  async start(n: number): Promise<string[]> {
    this.#handle = await openLog(this.#path);
    if (this.#handle === null) return [];
    const info = await this.#handle.stat();
    this.#ino = info.ino;
    this.#offset = info.size;
    return lastLines(this.#handle, info.size, n);
  }

  async poll(): Promise<void> {
    const had = this.#handle;
    if (had !== null) await this.#drain(had);
    let current: Stats | null = null;
    try {
      current = await stat(this.#path);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    if (had !== null && (current === null || current.ino !== this.#ino)) {
      // Lines written to the old file after the drain above and before it was
      // rotated are read now; then its last line is ended and it is let go.
      await this.#drain(had);
      this.flush();
      await this.close();
      this.#emit({ event: "log_reset", reason: current === null ? "removed" : "rotated" });
    }
    if (this.#handle === null && current !== null) {
      const handle = await openLog(this.#path);
      if (handle === null) return;
      this.#handle = handle;
      this.#ino = (await handle.stat()).ino;
      this.#offset = 0;
      if (had === null) this.#emit({ event: "log_reset", reason: "created" });
      await this.#drain(handle);
    }
  }

  async #drain(handle: FileHandle): Promise<void> {
    const { size } = await handle.stat();
    if (size < this.#offset) {
      this.flush();
      this.#offset = 0;
      this.#emit({ event: "log_reset", reason: "truncated" });
    }
    const end = Math.min(size, this.#offset + POLL_MAX_BYTES);
    const buffer = Buffer.alloc(Math.min(TAIL_CHUNK_BYTES * 16, Math.max(0, end - this.#offset)));
    while (this.#offset < end) {
      const { bytesRead } = await handle.read(
        buffer,
        0,
        Math.min(buffer.length, end - this.#offset),
        this.#offset,
      );
      if (bytesRead === 0) break;
      this.#offset += bytesRead;
      this.#take(this.#decoder.write(buffer.subarray(0, bytesRead)));
    }
  }

  #take(text: string): void {
    const pieces = (this.#partial + text).split("\n");
    this.#partial = pieces.pop() ?? "";
    for (const line of pieces) this.#emit({ event: "log", line: stripCr(line) });
    while (this.#partial.length > MAX_LINE_CHARS) {
      this.#emit({ event: "log", line: this.#partial.slice(0, MAX_LINE_CHARS) });
      this.#partial = this.#partial.slice(MAX_LINE_CHARS);
    }
  }

  /** Emits a last line that has no newline yet: its file is done, or we are. */
  flush(): void {
    const rest = this.#partial + this.#decoder.end();
    this.#decoder = new StringDecoder("utf8");
    this.#partial = "";
    if (rest !== "") this.#emit({ event: "log", line: stripCr(rest) });
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close();
  }
}

interface Seen {
  size: number;
  mtimeMs: number;
}

const sameFile = (a: Seen | undefined, b: Seen | undefined) =>
  a !== undefined && b !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs;

/**
 * Announces checkpoint files that appear or are rewritten (`last.ckpt`). A
 * file is announced once it looked the same on two polls in a row: torch.save
 * writes for a while, and a half-written checkpoint is not news.
 */
class CheckpointWatcher {
  readonly #dir: string;
  readonly #emit: Emit;
  #previous = new Map<string, Seen>();
  #announced = new Map<string, Seen>();
  waiting = false;

  constructor(dir: string, emit: Emit) {
    this.#dir = dir;
    this.#emit = emit;
  }

  async start(): Promise<CheckpointFile[]> {
    const files = await this.#list();
    for (const f of files) {
      this.#previous.set(f.path, f);
      this.#announced.set(f.path, f);
    }
    return files;
  }

  async poll(): Promise<void> {
    const files = await this.#list();
    const current = new Map<string, Seen>();
    // Oldest first, so announcements come in the order the checkpoints were written.
    for (const file of [...files].reverse()) {
      const seen = { size: file.size, mtimeMs: file.mtimeMs };
      current.set(file.path, seen);
      if (!sameFile(this.#previous.get(file.path), seen)) continue;
      const announced = this.#announced.get(file.path);
      if (sameFile(announced, seen)) continue;
      this.#announced.set(file.path, seen);
      this.#emit({
        event: "checkpoint",
        change: announced === undefined ? "new" : "updated",
        checkpoint: file,
      });
    }
    for (const path of this.#announced.keys()) if (!current.has(path)) this.#announced.delete(path);
    this.#previous = current;
  }

  async #list(): Promise<CheckpointFile[]> {
    try {
      const files = await listCheckpoints(this.#dir);
      this.waiting = false;
      return files;
    } catch (error) {
      if (!(error instanceof UserError) || error.code !== "checkpoint_dir_not_found") throw error;
      this.waiting = true;
      return [];
    }
  }
}
