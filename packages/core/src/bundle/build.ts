/**
 * One call from a working directory to a content-addressed archive: select,
 * hash, and pack only when the cache has no archive for the key yet.
 */
import path from "node:path";
import { z } from "zod";
import { UserError } from "../errors.ts";
import { writeArchive } from "./archive.ts";
import { lookupArchive, storeArchive } from "./cache.ts";
import { BundleEntrySchema, bundleManifest, Sha256HexSchema } from "./manifest.ts";
import type { SkippedEntry } from "./select.ts";
import { escapeGlob, resolveBundleRoot, SkippedEntrySchema, selectFiles } from "./select.ts";

export const DEFAULT_WARN_BYTES = 100 * 1024 * 1024;

/** How many of the largest files a result names. */
export const LARGEST_COUNT = 10;

export const LargestFileSchema = z.object({ path: z.string(), size: z.number().int().nonnegative() });
export type LargestFile = z.infer<typeof LargestFileSchema>;

export const BundleInfoSchema = z.object({
  /** sha256 of the canonical manifest; names the bundle everywhere. */
  key: Sha256HexSchema,
  /** Real path of the directory that was bundled. */
  root: z.string(),
  /** Files and symlinks in the bundle. */
  fileCount: z.number().int().nonnegative(),
  /** Bytes of file content before compression. */
  totalBytes: z.number().int().nonnegative(),
  largest: z.array(LargestFileSchema),
  warnings: z.array(z.string()),
  skipped: z.array(SkippedEntrySchema),
  archivePath: z.string(),
  archiveBytes: z.number().int().nonnegative(),
  /** sha256 of the archive file, for whoever downloads it. */
  archiveSha256: Sha256HexSchema,
  /** True when the archive already existed and nothing was packed. */
  cached: z.boolean(),
  files: z.array(BundleEntrySchema),
});
export type BundleInfo = z.infer<typeof BundleInfoSchema>;

export interface BuildBundleOptions {
  /** Where archives are kept by key; created if missing. Excluded from the bundle when inside `root`. */
  cacheDir: string;
  /** Gitignore-syntax patterns from config `bundle.exclude`. */
  extraExcludes?: readonly string[];
  /** Total size above which `warnings` names the largest files; default 100 MiB. */
  warnBytes?: number;
}

export async function buildBundle(root: string, opts: BuildBundleOptions): Promise<BundleInfo> {
  const warnBytes = opts.warnBytes ?? DEFAULT_WARN_BYTES;
  if (!Number.isFinite(warnBytes) || warnBytes < 0) {
    throw new UserError(`Invalid bundle warning threshold: ${warnBytes}`, {
      code: "bundle_invalid_warn_bytes",
      hint: "Give warnBytes as a non-negative number of bytes, e.g. 104857600 for 100 MiB.",
    });
  }
  const base = await resolveBundleRoot(root);
  const cacheDir = path.resolve(opts.cacheDir);
  const extraExcludes = [...(opts.extraExcludes ?? []), ...cacheExclude(base, cacheDir)];

  const selection = await selectFiles(base, { extraExcludes });
  if (selection.files.length === 0) {
    // Almost always a wrong directory or an ignore rule that matches everything.
    throw new UserError(`Nothing to bundle in ${base}: every entry is excluded or there are none`, {
      code: "bundle_empty",
      hint: "Point at the directory that holds your code, or check .gitignore, .runctlignore and bundle.exclude.",
      details: { root: base, skipped: selection.skipped.length },
    });
  }
  const manifest = await bundleManifest(selection.files);

  let cached = true;
  let archive = await lookupArchive(cacheDir, manifest.key);
  if (archive === undefined) {
    cached = false;
    archive = await storeArchive(cacheDir, manifest.key, (temp) =>
      writeArchive(base, manifest.entries, temp),
    );
  }

  const sizes: LargestFile[] = [];
  let totalBytes = 0;
  for (const e of manifest.entries) {
    if (e.type !== "file") continue;
    sizes.push({ path: e.path, size: e.size });
    totalBytes += e.size;
  }
  const largest = sizes.sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1)).slice(0, LARGEST_COUNT);

  const warnings: string[] = [];
  if (totalBytes > warnBytes) warnings.push(sizeWarning(totalBytes, warnBytes, largest));
  if (selection.skipped.length > 0) warnings.push(skippedWarning(selection.skipped));

  return {
    key: manifest.key,
    root: base,
    fileCount: manifest.entries.length,
    totalBytes,
    largest,
    warnings,
    skipped: selection.skipped,
    archivePath: archive.archivePath,
    archiveBytes: archive.archiveBytes,
    archiveSha256: archive.archiveSha256,
    cached,
    files: manifest.entries,
  };
}

/** Keeps the cache out of its own bundles when it lives inside the project. */
function cacheExclude(base: string, cacheDir: string): string[] {
  const rel = path.relative(base, cacheDir);
  if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) return [];
  return [`/${escapeGlob(rel.split(path.sep).join("/"))}/`];
}

/** Human-readable binary sizes: `512 B`, `1.5 KiB`, `2.0 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function sizeWarning(totalBytes: number, warnBytes: number, largest: readonly LargestFile[]): string {
  const named = largest
    .slice(0, 5)
    .map((f) => `${f.path} (${formatBytes(f.size)})`)
    .join(", ");
  return (
    `Bundle is ${formatBytes(totalBytes)}, over the ${formatBytes(warnBytes)} warning threshold; largest: ${named}. ` +
    "Exclude data and weights in .runctlignore or bundle.exclude and fetch them on the machine instead."
  );
}

function skippedWarning(skipped: readonly SkippedEntry[]): string {
  const why: Record<SkippedEntry["reason"], string> = {
    symlink_outside_root: "symlink leaves the project",
    symlink_absolute: "symlink has an absolute target",
    symlink_loop: "symlink loops",
    special_file: "not a regular file",
    name_not_utf8: "its name is not valid UTF-8; rename it to bundle it",
  };
  const named = skipped
    .slice(0, 5)
    .map((s) => `${s.path} (${why[s.reason]})`)
    .join(", ");
  const more = skipped.length > 5 ? ` and ${skipped.length - 5} more` : "";
  return `Left ${skipped.length} entr${skipped.length === 1 ? "y" : "ies"} out of the bundle: ${named}${more}. Use relative symlinks that stay inside the project if the code needs them.`;
}
