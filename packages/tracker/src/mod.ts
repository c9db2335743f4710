/**
 * @runctl/tracker: run directories (docs/run-directory.md, whirr-compatible).
 * A writer for the process that owns a run, readers that are safe beside live
 * writers, the runs-directory listing, a checkpoint-directory lock, and the
 * file implementation of core's Tracker.
 */
export { listArtifacts } from "./artifacts.ts";
export { FILE_MUTEX_STALE_MS, withFileMutexSync } from "./file-mutex.ts";
export { FileTracker, type FileTrackerOptions } from "./file-tracker.ts";
export { JsonlAppender, type JsonlPage, type JsonRecord, readJsonl } from "./jsonl.ts";
export { RUN_FILES } from "./layout.ts";
export { parseJsonLenient } from "./lenient-json.ts";
export {
  type EffectiveStatus,
  effectiveStatus,
  HEARTBEAT_STALE_MS,
  isPidAlive,
  type LivenessOptions,
  withEffectiveStatus,
} from "./liveness.ts";
export { type AcquireLockOptions, acquireLock, type DirLock, LOCK_FILE, LockInfo } from "./lock.ts";
export { writeFileAtomicSync, writeJsonAtomicSync } from "./meta-file.ts";
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
export { QUEUE_SCHEMA_VERSION } from "./queue-migrations.ts";
export {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_UPLOAD_BYTES,
  isLoopbackHost,
  type QueueServer,
  type QueueServerOptions,
  startQueueServer,
} from "./queue-server.ts";
export {
  type CancelOutcome,
  type CreatedJob,
  type HeartbeatOutcome,
  type ListJobsFilter,
  type ListRunsFilter,
  type LostAttempt,
  MAX_LOST_LEASES,
  MAX_RETRY_BACKOFF_SECONDS,
  type Outcome,
  QUEUE_DB_FILE,
  type QueueRefusal,
  type QueueRefusalCode,
  type QueueRun,
  QueueStore,
  type QueueStoreOptions,
  type ReportOutcome,
} from "./queue-store.ts";
export { readMeta, readMetrics, readSystem } from "./read.ts";
export {
  type CreateRunOptions,
  type FinishDetail,
  type InitialStatus,
  type MetaPatch,
  RunWriter,
  type WriterIdentity,
} from "./run-dir.ts";
export { isSafeRunId, newRunId, RUN_ID_PATTERN, runIdTime } from "./run-id.ts";
export {
  CORRUPT_META_ERROR,
  type ListRunsOptions,
  listRuns,
  type ResolvedRun,
  type ResolveRunsDirOptions,
  RUNS_DIR_ENV,
  resolveRun,
  resolveRunsDir,
  runDirOf,
} from "./runs.ts";
