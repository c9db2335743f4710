/**
 * @runctl/tracker: run directories (docs/run-directory.md, whirr-compatible).
 * A writer for the process that owns a run, readers that are safe beside live
 * writers, the runs-directory listing, a checkpoint-directory lock, and the
 * file implementation of core's Tracker, and the job server's API schemas and
 * client (the server itself is @runctl/queue-server: it holds a native addon).
 */

export { isSafeRunId, newRunId, RUN_ID_PATTERN, runIdTime } from "@runctl/core";
export { listArtifacts } from "./artifacts.ts";
export { FileTracker, type FileTrackerOptions } from "./file-tracker.ts";
export { RUN_FILES } from "./layout.ts";
export {
  type EffectiveStatus,
  effectiveStatus,
  HEARTBEAT_STALE_MS,
  isPidAlive,
  type LivenessOptions,
  withEffectiveStatus,
} from "./liveness.ts";
export { type AcquireLockOptions, acquireLock, type DirLock, LOCK_FILE, LockInfo } from "./lock.ts";
export * from "./queue-api.ts";
export {
  type ArtifactOptions,
  type CallOptions,
  type GetRunsOptions,
  JobWaitTimeoutError,
  type ListJobsOptions,
  QueueClient,
  type QueueClientOptions,
  QueueServerError,
  QueueUnreachableError,
  SERVER_UNREACHABLE_HINT,
  type UploadOptions,
  type WaitOptions,
} from "./queue-client.ts";
export { type MetricsRead, readMeta, readMetrics, readSystem } from "./read.ts";
export {
  type CreateRunOptions,
  type FinishDetail,
  type InitialStatus,
  type MetaPatch,
  RunWriter,
  type WriterIdentity,
} from "./run-dir.ts";
export {
  DirRunSource,
  type RunSource,
  ServerRunSource,
  StoreRunSource,
  sourceMeta,
  sourceMetrics,
} from "./run-source.ts";
export * from "./runner-api.ts";
export {
  CORRUPT_META_ERROR,
  type ListRunsOptions,
  listRuns,
  type ResolvedRun,
  type ResolveRunsDirOptions,
  RUNS_DIR_ENV,
  type RunLayout,
  resolveRun,
  resolveRunsDir,
  runDirOf,
  runLayout,
} from "./runs.ts";
