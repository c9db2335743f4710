/**
 * Code bundles: a working directory packed as a deterministic tar.gz named by
 * the sha256 of its manifest, built once and reused on every launch.
 */
export { ARCHIVE_MTIME, inspectArchive, writeArchive } from "./archive.ts";
export type { BuildBundleOptions, BundleInfo, LargestFile } from "./build.ts";
export {
  BundleInfoSchema,
  buildBundle,
  DEFAULT_WARN_BYTES,
  formatBytes,
  LARGEST_COUNT,
  LargestFileSchema,
} from "./build.ts";
export type { CachedArchive } from "./cache.ts";
export { archivePathFor, lookupArchive } from "./cache.ts";
export type { ArchiveEntryHeader } from "./extract.ts";
export { checkArchiveEntries, extractBundle } from "./extract.ts";
export type { BundleEntry, BundleManifest } from "./manifest.ts";
export {
  BUNDLE_FORMAT,
  BundleEntrySchema,
  bundleManifest,
  canonicalManifest,
  manifestKey,
  Sha256HexSchema,
} from "./manifest.ts";
export type {
  BundleFile,
  BundleMode,
  SelectOptions,
  SelectResult,
  SkippedEntry,
  SkipReason,
} from "./select.ts";
export {
  DEFAULT_EXCLUDES,
  RUNCTL_IGNORE_FILE,
  SkippedEntrySchema,
  SkipReasonSchema,
  selectFiles,
} from "./select.ts";
