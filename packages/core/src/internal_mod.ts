/**
 * `@runctl/core/internal`: file primitives that runctl's own packages share
 * (tracker, control, agent) but that are not part of the public API. They live
 * in core so that nothing below the CLI has to import the tracker, and so the
 * closure of what a remote machine runs stays free of native addons.
 */
export { type AtomicWriteOptions, writeFileAtomicSync, writeJsonAtomicSync } from "./files/atomic-write.ts";
export { isErrno } from "./files/errno.ts";
export { FILE_MUTEX_STALE_MS, withFileMutexSync } from "./files/file-mutex.ts";
export {
  describeJsonlSkips,
  JsonlAppender,
  type JsonlPage,
  type JsonlSkip,
  type JsonlSkipReason,
  type JsonRecord,
  MAX_JSONL_LINE_BYTES,
  parseJsonlLines,
  readJsonl,
  readJsonlSync,
} from "./files/jsonl.ts";
export { parseJsonLenient } from "./files/lenient-json.ts";
