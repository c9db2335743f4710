/**
 * Checkpoint files on this machine: listing a checkpoint directory newest
 * first, the newest one for `--resume auto`, what a file holds, and deleting
 * old ones.
 *
 * A checkpoint file is a regular file ending in `.pt`, `.pth`, `.ckpt`,
 * `.safetensors` or `.bin`, anywhere under the directory except inside hidden
 * directories. Hidden files are skipped (writers use them for saves in
 * progress) and so are symlinks: a link is an alias (`last.pt -> ckpt_9.pt`)
 * that would count one checkpoint twice, and following it could leave the
 * directory. Torch files are identified by their magic bytes and never
 * unpickled: unpickling runs arbitrary code.
 */
import type { Dirent } from "node:fs";
import { lstat, open, readdir, realpath, stat, unlink } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import { UserError } from "@runctl/core";
import { z } from "zod";
import { readSafetensorsHeader, SafetensorsSummary, summarizeSafetensors } from "./safetensors.ts";

export const CHECKPOINT_EXTENSIONS: readonly string[] = Object.freeze([
  ".pt",
  ".pth",
  ".ckpt",
  ".safetensors",
  ".bin",
]);

export const CheckpointFile = z.object({
  /** Absolute path. */
  path: z.string(),
  /** Path relative to the listed directory, `/`-separated. */
  name: z.string(),
  size: z.number().int().nonnegative(),
  /** Modification time, ISO 8601. */
  mtime: z.string(),
  mtimeMs: z.number(),
  /** Training step read from the name (see parseStep), or null when the name has no digits. */
  step: z.number().int().nonnegative().nullable(),
});
export type CheckpointFile = z.infer<typeof CheckpointFile>;

export const CheckpointFormat = z.enum(["safetensors", "torch", "torch (zip)"]);
export type CheckpointFormat = z.infer<typeof CheckpointFormat>;

export const CheckpointInfo = z.object({
  path: z.string(),
  size: z.number().int().nonnegative(),
  mtime: z.string(),
  mtimeMs: z.number(),
  step: z.number().int().nonnegative().nullable(),
  /**
   * `torch (zip)` is the zip container `torch.save` writes since PyTorch 1.6;
   * `torch` is any other file with a torch extension (legacy pickle), which
   * is not inspected further.
   */
  format: CheckpointFormat,
  /** Present for safetensors files only: torch files would have to be unpickled. */
  safetensors: SafetensorsSummary.nullable(),
});
export type CheckpointInfo = z.infer<typeof CheckpointInfo>;

/** How a listing was ordered: by step when every file has one, else by modification time. */
export type CheckpointOrder = "step" | "mtime";

export function isCheckpointName(name: string): boolean {
  return CHECKPOINT_EXTENSIONS.includes(extname(name).toLowerCase());
}

// Sharded weights (`model-00001-of-00004.safetensors`) number shards, not steps.
const SHARD_SUFFIX = /[-_.]?\d+-of-\d+/gi;
const STEP_PATTERN = /step[=_-]?(\d+)/gi;
const DIGITS = /\d+/g;

/**
 * The training step a name announces: the number after the last `step`
 * (`epoch=3-step=1200` → 1200, `global_step500` → 500), else the last group
 * of digits (`ckpt_000120` → 120), ignoring the extension and shard counters
 * (`-00001-of-00004`). Null when there is none or it is too large to be one.
 */
export function parseStep(fileName: string): number | null {
  return stepOfStem(fileName.slice(0, fileName.length - extname(fileName).length));
}

function stepOfStem(name: string): number | null {
  const stem = name.replace(SHARD_SUFFIX, "");
  const steps = [...stem.matchAll(STEP_PATTERN)];
  const digits = steps.length > 0 ? steps[steps.length - 1]?.[1] : stem.match(DIGITS)?.at(-1);
  if (digits === undefined) return null;
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : null;
}

/**
 * A file's step from its own name, else from the nearest enclosing directory
 * under the listed one that names one, so the Hugging Face layout
 * (`checkpoint-500/model.safetensors`) is ordered by step too.
 */
function stepOfRelative(segments: readonly string[]): number | null {
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i] ?? "";
    const step = i === segments.length - 1 ? parseStep(segment) : stepOfStem(segment);
    if (step !== null) return step;
  }
  return null;
}

interface Ordered {
  step: number | null;
  mtimeMs: number;
  name: string;
}

/** The order listings use: by step when every entry has one, else by mtime. */
export function checkpointOrder(entries: readonly Ordered[]): CheckpointOrder {
  return entries.every((e) => e.step !== null) ? "step" : "mtime";
}

/**
 * Newest first. By step when every entry has one: steps say what training
 * produced, while mtimes change when files are copied or synced. Otherwise by
 * mtime, since steps from a few names cannot be compared with files without.
 * Ties fall back to mtime, then name, so the order is stable.
 */
export function sortNewestFirst<T extends Ordered>(entries: readonly T[]): T[] {
  const byStep = checkpointOrder(entries) === "step";
  return [...entries].sort(
    (a, b) =>
      (byStep ? (b.step ?? 0) - (a.step ?? 0) : 0) ||
      b.mtimeMs - a.mtimeMs ||
      (a.name < b.name ? 1 : a.name > b.name ? -1 : 0),
  );
}

function isErrno(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? "");
}

async function requireDirectory(dir: string): Promise<void> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(dir);
  } catch (error) {
    if (!isErrno(error, "ENOENT", "ENOTDIR")) throw error;
    throw new UserError(`Checkpoint directory ${dir} does not exist`, {
      code: "checkpoint_dir_not_found",
      hint: "Pass the directory your training script saves checkpoints to, or set `local.checkpoint_dir` (`runctl config set local.checkpoint_dir <dir>`).",
      details: { dir },
      cause: error,
    });
  }
  if (!info.isDirectory()) {
    throw new UserError(`${dir} is not a directory`, {
      code: "checkpoint_dir_not_a_directory",
      hint: "Pass the directory holding the checkpoints; for one file use `runctl checkpoint info <file>`.",
      details: { dir },
    });
  }
}

interface Found extends CheckpointFile {
  /** Real path of the directory holding the file when it was listed; checked again before deleting. */
  parentReal: string;
}

async function walk(root: string): Promise<Found[]> {
  const found: Found[] = [];
  const visit = async (dir: string, segments: string[]): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      // A subdirectory removed while we walk (a run rotating checkpoints) is not an error.
      if (segments.length > 0 && isErrno(error, "ENOENT", "ENOTDIR")) return;
      throw error;
    }
    const parentReal = await realpath(dir);
    for (const entry of entries) {
      if (entry.name.startsWith(".") || entry.isSymbolicLink()) continue;
      const path = join(dir, entry.name);
      const rel = [...segments, entry.name];
      if (entry.isDirectory()) {
        await visit(path, rel);
        continue;
      }
      if (!entry.isFile() || !isCheckpointName(entry.name)) continue;
      let info: Awaited<ReturnType<typeof lstat>>;
      try {
        info = await lstat(path);
      } catch (error) {
        if (isErrno(error, "ENOENT")) continue;
        throw error;
      }
      if (!info.isFile()) continue;
      found.push({
        path,
        name: rel.join("/"),
        size: info.size,
        mtime: info.mtime.toISOString(),
        mtimeMs: info.mtimeMs,
        step: stepOfRelative(rel),
        parentReal,
      });
    }
  };
  await visit(root, []);
  return found;
}

function publicFile({ parentReal: _, ...file }: Found): CheckpointFile {
  return file;
}

/**
 * Checkpoint files under `dir`, newest first (see sortNewestFirst: by step when
 * every file names one, else by mtime). Throws `checkpoint_dir_not_found` when
 * `dir` does not exist.
 */
export async function listCheckpoints(dir: string): Promise<CheckpointFile[]> {
  const root = resolve(dir);
  await requireDirectory(root);
  return sortNewestFirst(await walk(root)).map(publicFile);
}

/**
 * The newest checkpoint under `dir`, or null when there is none, including
 * when `dir` does not exist yet: that is a first run, not an error, for
 * `--resume auto`.
 */
export async function latestCheckpoint(dir: string): Promise<CheckpointFile | null> {
  try {
    return (await listCheckpoints(dir))[0] ?? null;
  } catch (error) {
    if (error instanceof UserError && error.code === "checkpoint_dir_not_found") return null;
    throw error;
  }
}

const ZIP_MAGIC = Buffer.from([0x50, 0x4b, 0x03, 0x04]);

/** Size, mtime and format of one checkpoint file; tensor statistics for safetensors. */
export async function checkpointInfo(path: string): Promise<CheckpointInfo> {
  const absolute = resolve(path);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(absolute);
  } catch (error) {
    if (!isErrno(error, "ENOENT", "ENOTDIR")) throw error;
    throw new UserError(`Checkpoint ${absolute} does not exist`, {
      code: "checkpoint_not_found",
      hint: "List the available ones with `runctl checkpoint list <dir>`.",
      details: { path: absolute },
      cause: error,
    });
  }
  if (!info.isFile()) {
    throw new UserError(`${absolute} is not a file`, {
      code: "checkpoint_not_a_file",
      hint: "Pass one checkpoint file; for a directory use `runctl checkpoint list <dir>`.",
      details: { path: absolute },
    });
  }
  const extension = extname(absolute).toLowerCase();
  if (!CHECKPOINT_EXTENSIONS.includes(extension)) {
    throw new UserError(`${absolute} does not look like a checkpoint`, {
      code: "checkpoint_unknown_format",
      hint: `runctl reads checkpoints ending in ${CHECKPOINT_EXTENSIONS.join(", ")}.`,
      details: { path: absolute },
    });
  }
  const base = {
    path: absolute,
    size: info.size,
    mtime: info.mtime.toISOString(),
    mtimeMs: info.mtimeMs,
    step: parseStep(basename(absolute)),
  };
  if (extension === ".safetensors") {
    const header = await readSafetensorsHeader(absolute);
    return { ...base, format: "safetensors", safetensors: summarizeSafetensors(header) };
  }
  if (info.size === 0) {
    throw new UserError(`${absolute} is empty`, {
      code: "checkpoint_corrupt",
      hint: "An empty file is a save that never completed; delete it or pick an older checkpoint.",
      details: { path: absolute },
    });
  }
  const magic = await readStart(absolute, ZIP_MAGIC.length);
  const format = magic.equals(ZIP_MAGIC) ? "torch (zip)" : "torch";
  return { ...base, format, safetensors: null };
}

async function readStart(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

export interface CleanupOptions {
  /** How many of the newest checkpoints to keep; at least 1. */
  keepLastN: number;
  /** Report what would be deleted and delete nothing. */
  dryRun?: boolean;
  /**
   * Asked with the plan before anything is deleted (not on a dry run, not when
   * there is nothing to delete); false cancels. It may throw to refuse.
   */
  confirm?: (plan: CleanupPlan) => Promise<boolean>;
}

export interface CleanupPlan {
  dir: string;
  keep: CheckpointFile[];
  delete: CheckpointFile[];
  bytes: number;
}

export const CleanupResult = z.object({
  dir: z.string(),
  dryRun: z.boolean(),
  /** True when `confirm` declined; nothing was deleted. */
  cancelled: z.boolean(),
  kept: z.array(CheckpointFile),
  /** Files deleted, or on a dry run the files that would be. */
  deleted: z.array(CheckpointFile),
  /** Planned deletions left alone because the file changed or vanished after the plan was made. */
  skipped: z.array(z.object({ path: z.string(), reason: z.string() })),
  freedBytes: z.number().int().nonnegative(),
});
export type CleanupResult = z.infer<typeof CleanupResult>;

interface Unit {
  name: string;
  step: number | null;
  mtimeMs: number;
  files: Found[];
}

/**
 * A checkpoint, for retention, is a file directly in `dir` or a whole
 * subdirectory of it: a Hugging Face `checkpoint-500/` holds model, optimizer
 * and scheduler files that only make sense together, so keeping "the last N
 * files" would keep half a checkpoint.
 */
function groupUnits(files: readonly Found[]): Unit[] {
  const units = new Map<string, Found[]>();
  for (const file of files) {
    const top = file.name.split("/")[0] ?? file.name;
    units.set(top, [...(units.get(top) ?? []), file]);
  }
  return [...units].map(([name, members]) => {
    const nested = members.some((f) => f.name.includes("/"));
    const steps = members.map((f) => f.step);
    const ownStep = nested ? stepOfStem(name) : (members[0]?.step ?? null);
    const step = ownStep ?? (steps.every((s) => s !== null) ? Math.max(...(steps as number[])) : null);
    return { name, step, mtimeMs: Math.max(...members.map((f) => f.mtimeMs)), files: members };
  });
}

/**
 * Deletes all but the newest `keepLastN` checkpoints under `dir` (ordered as
 * listCheckpoints orders them, a subdirectory counting as one checkpoint).
 * Deletes checkpoint files only, never follows a symlink, and re-checks every
 * file just before unlinking it: one rewritten since the plan (say `last.ckpt`
 * saved again) or whose directory was swapped for a link is skipped.
 */
export async function cleanupCheckpoints(dir: string, options: CleanupOptions): Promise<CleanupResult> {
  const { keepLastN, dryRun = false } = options;
  if (!Number.isInteger(keepLastN) || keepLastN < 1) {
    throw new UserError(`--keep-last-n must be a whole number of at least 1, not ${keepLastN}`, {
      code: "checkpoint_keep_invalid",
      hint: "Pass --keep-last-n 1 or more: cleanup always keeps the newest checkpoint so a run can resume.",
      details: { keepLastN },
    });
  }
  const root = resolve(dir);
  await requireDirectory(root);
  const units = sortNewestFirst(groupUnits(await walk(root)));
  const keepUnits = units.slice(0, keepLastN);
  const dropUnits = units.slice(keepLastN);
  const keep = sortNewestFirst(keepUnits.flatMap((u) => u.files));
  const drop = sortNewestFirst(dropUnits.flatMap((u) => u.files));
  const plan: CleanupPlan = {
    dir: root,
    keep: keep.map(publicFile),
    delete: drop.map(publicFile),
    bytes: drop.reduce((sum, f) => sum + f.size, 0),
  };
  const result: CleanupResult = {
    dir: root,
    dryRun,
    cancelled: false,
    kept: plan.keep,
    deleted: dryRun ? plan.delete : [],
    skipped: [],
    freedBytes: dryRun ? plan.bytes : 0,
  };
  if (dryRun || drop.length === 0) return result;
  if (options.confirm && !(await options.confirm(plan))) return { ...result, cancelled: true };
  for (const file of drop) {
    const reason = await changedSincePlan(file);
    if (reason !== null) {
      result.skipped.push({ path: file.path, reason });
      continue;
    }
    try {
      await unlink(file.path);
    } catch (error) {
      if (!isErrno(error, "ENOENT")) throw error;
      result.skipped.push({ path: file.path, reason: "vanished before deletion" });
      continue;
    }
    result.deleted.push(publicFile(file));
    result.freedBytes += file.size;
  }
  return result;
}

async function changedSincePlan(file: Found): Promise<string | null> {
  try {
    if ((await realpath(dirname(file.path))) !== file.parentReal)
      return "its directory moved or became a link";
    const now = await lstat(file.path);
    if (!now.isFile()) return "no longer a regular file";
    if (now.size !== file.size || now.mtimeMs !== file.mtimeMs) return "modified after the plan was made";
    return null;
  } catch (error) {
    if (isErrno(error, "ENOENT", "ENOTDIR")) return "vanished before deletion";
    throw error;
  }
}
