/**
 * @runctl/queue-server: the job server behind `runctl server`. A SQLite job
 * queue (better-sqlite3: WAL, atomic claims, leases with fencing) and its HTTP
 * API under /api/v1 (docs/job-queue.md). It is the only runctl package with a
 * native addon, which is why it is kept apart from what workers and remote
 * agents load: they speak to it through @runctl/tracker's QueueClient.
 */
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
  type JobPage,
  LIST_PAGE_BYTES,
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
