/**
 * meta.json on disk: parsing with the schema from core, the errors a reader
 * shows, and the atomic rewrite every writer uses (temp file + fsync + rename),
 * so a reader sees either the old or the new file, even if the writer is
 * SIGKILLed halfway.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { parseAt, RunMeta, UserError } from "@runctl/core";
import { isErrno } from "./errno.ts";
import type { JsonRecord } from "./jsonl.ts";
import { RUN_FILES } from "./layout.ts";
import { parseJsonLenient } from "./lenient-json.ts";

export interface MetaFile {
  /** The object as stored, unknown keys included: what a rewrite merges into. */
  raw: JsonRecord;
  /** `raw` parsed with core's RunMeta (defaults applied). */
  meta: RunMeta;
}

export function metaPathOf(runDir: string): string {
  return join(runDir, RUN_FILES.meta);
}

export function runNotFound(runDir: string, cause?: unknown): UserError {
  return new UserError(`No run at ${runDir} (${RUN_FILES.meta} is missing)`, {
    code: "run_not_found",
    hint: "Run `runctl runs` to list runs; check RUNCTL_RUNS_DIR or `local.runs_dir` if the list is not the one you expect.",
    details: { run_dir: runDir },
    cause,
  });
}

function corrupt(file: string, reason: string, cause?: unknown): UserError {
  return new UserError(`Run metadata ${file} is corrupt: ${reason}`, {
    code: "run_meta_corrupt",
    hint: corruptHint(file),
    details: { file },
    cause,
  });
}

function corruptHint(file: string): string {
  return `runctl left ${file} untouched; repair its JSON by hand or restore it from a synced copy. The run's other files (metrics.jsonl, output.log, artifacts/) are intact.`;
}

/** Parses meta.json text; `file` names the file in errors. */
export function parseMetaText(text: string, file: string): MetaFile {
  let value: unknown;
  try {
    value = parseJsonLenient(text);
  } catch (error) {
    const reason = text.trim() === "" ? "the file is empty" : `not JSON (${(error as Error).message})`;
    throw corrupt(file, reason, error);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw corrupt(file, "not a JSON object");
  }
  const meta = parseAt(RunMeta, value, {
    what: `run metadata ${file}`,
    kind: "user",
    code: "run_meta_corrupt",
    hint: corruptHint(file),
  });
  return { raw: value as JsonRecord, meta };
}

export async function readMetaFile(runDir: string): Promise<MetaFile> {
  const file = metaPathOf(runDir);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if (isErrno(error, "ENOENT", "ENOTDIR")) throw runNotFound(runDir, error);
    if (isErrno(error, "EISDIR")) throw corrupt(file, "it is a directory", error);
    throw error;
  }
  return parseMetaText(text, file);
}

export function readMetaFileSync(runDir: string): MetaFile {
  const file = metaPathOf(runDir);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if (isErrno(error, "ENOENT", "ENOTDIR")) throw runNotFound(runDir, error);
    if (isErrno(error, "EISDIR")) throw corrupt(file, "it is a directory", error);
    throw error;
  }
  return parseMetaText(text, file);
}

/** Replaces `file` with `value` as pretty JSON, atomically (see writeFileAtomicSync). */
export function writeJsonAtomicSync(file: string, value: unknown): void {
  writeFileAtomicSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Replaces `file` with `text` atomically: readers (and a crash at any point)
 * see the old content or the new, never a mix. The temp file is hidden and
 * unique per writer so concurrent writers never share one.
 */
export function writeFileAtomicSync(file: string, text: string): void {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", 0o644);
  try {
    const buf = Buffer.from(text, "utf8");
    let written = 0;
    while (written < buf.length) written += writeSync(fd, buf, written, buf.length - written);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(tmp);
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (error) {
    unlinkSync(tmp);
    throw error;
  }
  syncDirectory(dir);
}

// Makes the rename itself durable. Some file systems refuse fsync on a
// directory; the rename is still atomic there, only less durable on power loss.
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch (error) {
    if (!isErrno(error, "EISDIR", "EINVAL", "EPERM", "EACCES", "ENOTSUP")) throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
