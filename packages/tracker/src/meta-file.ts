/**
 * meta.json on disk: parsing with the schema from core, the errors a reader
 * shows, and the atomic rewrite every writer uses (temp file + fsync + rename),
 * so a reader sees either the old or the new file, even if the writer is
 * SIGKILLed halfway.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAt, RunMeta, UserError } from "@runctl/core";
import type { JsonRecord } from "@runctl/core/internal";
import { isErrno, parseJsonLenient } from "@runctl/core/internal";
import { RUN_FILES } from "./layout.ts";

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
