/**
 * The job server's HTTP API (docs/job-queue.md): every request and response
 * body, as zod schemas. whirr's paths and field names are kept; runctl adds
 * fields (priority, gpus, timeout, retries, attempts, idempotency) that whirr
 * clients may ignore. The server parses requests with these schemas and the
 * clients parse responses with them, so neither side can drift.
 */
import { jsonValueDepth, MAX_JSON_DEPTH } from "@runctl/core";
import { z } from "zod";

/** Where a job is; `lost` never appears: an expired lease requeues or fails the job. */
export const JobStatus = z.enum(["queued", "running", "completed", "failed", "cancelled"]);
export type JobStatus = z.infer<typeof JobStatus>;

export const FINISHED_JOB_STATUSES: readonly JobStatus[] = ["completed", "failed", "cancelled"];

/** `GET /api/v1/jobs?status=`: any job status, `active` (queued + running) or `all`. */
export const JobStatusFilter = z.enum([...JobStatus.options, "active", "all"]);
export type JobStatusFilter = z.infer<typeof JobStatusFilter>;

/** A run record's status (one per attempt). */
export const JobRunStatus = z.enum(["running", "completed", "failed", "cancelled", "lost"]);
export type JobRunStatus = z.infer<typeof JobRunStatus>;

export const WorkerStatus = z.enum(["idle", "busy", "offline"]);
export type WorkerStatus = z.infer<typeof WorkerStatus>;

const JsonValue: z.ZodType<unknown> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(JsonValue),
    z.record(z.string(), JsonValue),
  ]),
);
/**
 * A JSON object no deeper than MAX_JSON_DEPTH. Depth is checked first, by a
 * walk without recursion: JsonValue's schema recurses per level and would
 * overflow the stack on a few thousand.
 */
const JsonObject = z
  .unknown()
  .superRefine((value, ctx) => {
    if (jsonValueDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
      ctx.addIssue({
        code: "custom",
        message: `nested more than ${MAX_JSON_DEPTH} levels deep (the limit for JSON in runctl)`,
        abort: true,
      });
    }
  })
  .pipe(z.record(z.string(), JsonValue));

/**
 * A job's config, as JSON, is at most this big. It travels in every list,
 * claim and run response; bigger data belongs in a file the job reads.
 */
export const MAX_JOB_CONFIG_BYTES = 256 * 1024;

const JobConfig = JsonObject.superRefine((value, ctx) => {
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > MAX_JOB_CONFIG_BYTES) {
    ctx.addIssue({
      code: "custom",
      message: `is ${bytes} bytes as JSON, over the limit of ${MAX_JOB_CONFIG_BYTES} bytes (256 KiB); pass large data as a file the job reads`,
    });
  }
});

/** GPU indices, each at most once: a repeated index would count one GPU twice. */
const GpuIndices = z
  .array(z.number().int().min(0))
  .max(64)
  .refine((ids) => new Set(ids).size === ids.length, "repeats a GPU index; list each GPU once");

const WorkerId = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, "letters, digits and . _ : @ - only");
const Seconds = (max: number) => z.number().positive().max(max);
/** Leases from 1 s (tests, fast failover) to 1 h; whirr's default of 60 s. */
export const LeaseSeconds = z.number().int().min(1).max(3600);
export const DEFAULT_LEASE_SECONDS = 60;

// ---------------------------------------------------------------- jobs

export const JobCreate = z.strictObject({
  command_argv: z.array(z.string().max(65_536)).min(1).max(4096),
  workdir: z.string().min(1).max(4096),
  name: z.string().min(1).max(200).nullish(),
  config: JobConfig.nullish(),
  tags: z.array(z.string().min(1).max(200)).max(100).nullish(),
  /** Higher runs first; FIFO among equals. */
  priority: z.number().int().min(-1000).max(1000).default(0),
  /** GPUs the job needs on one worker; 0 runs anywhere. */
  gpus: z.number().int().min(0).max(64).default(0),
  /** Wall-clock limit of one attempt; the worker stops it (SIGTERM, SIGKILL after grace) and the attempt fails. */
  // At most 24 days: a Node timer cannot wait longer (2^31 ms).
  timeout_seconds: Seconds(24 * 86_400).nullish(),
  /** Automatic retries after a failed attempt (exit ≠ 0 or timeout); lost leases do not count. */
  max_retries: z.number().int().min(0).max(100).default(0),
  /** Delay before retry n is claimable: backoff × 2^(n-1), capped at one hour. */
  retry_backoff_seconds: z.number().min(0).max(3600).default(10),
  /**
   * The caller's key for this submission. A second create with the same key
   * returns the first job instead of a new one, so a client may resend after
   * a connection error without queueing the job twice.
   */
  idempotency_key: z.string().min(1).max(200).nullish(),
});
export type JobCreate = z.input<typeof JobCreate>;

export const JobCreateResponse = z.object({
  job_id: z.number().int(),
  /** The first attempt's run id (whirr reserves it at submit time). */
  run_id: z.string(),
  run_dir: z.string(),
  message: z.string(),
  /** False when an idempotency key matched an existing job. */
  created: z.boolean().default(true),
});
export type JobCreateResponse = z.infer<typeof JobCreateResponse>;

/** What a job runs: a command (`job`), or one call on a Runner service (`runner_task`). */
export const JobKind = z.enum(["job", "runner_task"]);
export type JobKind = z.infer<typeof JobKind>;

export const JobResponse = z.object({
  id: z.number().int(),
  name: z.string().nullish(),
  command_argv: z.array(z.string()),
  workdir: z.string(),
  config: JsonObject.nullish(),
  tags: z.array(z.string()).nullish(),
  status: JobStatus,
  attempt: z.number().int().default(1),
  worker_id: z.string().nullish(),
  created_at: z.string().nullish(),
  started_at: z.string().nullish(),
  finished_at: z.string().nullish(),
  exit_code: z.number().int().nullish(),
  /** The current (or last) attempt's run id. */
  run_id: z.string().nullish(),
  error_message: z.string().nullish(),
  priority: z.number().int().default(0),
  gpus: z.number().int().default(0),
  /** GPU indices the worker gave the running attempt. */
  assigned_gpus: z.array(z.number().int()).nullish(),
  timeout_seconds: z.number().nullish(),
  max_retries: z.number().int().default(0),
  retry_backoff_seconds: z.number().default(0),
  /** Not claimable before this time (retry backoff). */
  available_at: z.string().nullish(),
  lease_expires_at: z.string().nullish(),
  cancel_requested: z.boolean().default(false),
  /** The job this one retries (`runctl retry`). */
  retry_of: z.number().int().nullish(),
  /** Every attempt's run id, oldest first. */
  runs: z.array(z.string()).default([]),
  /** `job` (a command under the supervisor) or `runner_task` (a call on a Runner service, docs/runner.md). */
  kind: JobKind.default("job"),
  /** Runner tasks: the runner's name, the service, and the tasks whose results this one reads. */
  runner: z.string().nullish(),
  service: z.string().nullish(),
  depends_on: z.array(z.number().int()).nullish(),
});
export type JobResponse = z.infer<typeof JobResponse>;

export const JobClaim = z.strictObject({
  worker_id: WorkerId,
  /** whirr's single-GPU claim; runctl workers send `free_gpus` instead. */
  gpu_id: z.number().int().min(0).nullish(),
  /** GPU indices free on the worker: a job needing n GPUs is claimable when n ≤ this many. */
  free_gpus: GpuIndices.nullish(),
  lease_seconds: LeaseSeconds.default(DEFAULT_LEASE_SECONDS),
  /** Kinds the worker runs; default `["job"]`, so workers that predate runner tasks never get one. */
  kinds: z
    .array(JobKind)
    .min(1)
    .max(2)
    .refine((kinds) => new Set(kinds).size === kinds.length, "repeats a kind")
    .nullish(),
});
export type JobClaim = z.input<typeof JobClaim>;

export const JobClaimResponse = z.object({ job: JobResponse.nullable() });
export type JobClaimResponse = z.infer<typeof JobClaimResponse>;

export const JobListResponse = z.object({
  jobs: z.array(JobResponse),
  /**
   * runctl addition: set when the page stopped before `limit` because its jobs
   * passed the server's byte budget per response (4 MiB); ask again with
   * `offset=next_offset` for the rest. Null or absent: nothing more.
   */
  next_offset: z.number().int().min(0).nullish(),
});
export type JobListResponse = z.infer<typeof JobListResponse>;

/**
 * The attempt a worker acts for. `attempt` is the fencing token: a worker
 * that lost its lease holds an older attempt and is refused (409
 * `lease_lost`) even if the same job came back to it. whirr clients omit it.
 */
const AttemptOwner = {
  worker_id: WorkerId,
  attempt: z.number().int().min(1).nullish(),
};

export const JobHeartbeat = z.strictObject({
  ...AttemptOwner,
  lease_seconds: LeaseSeconds.default(DEFAULT_LEASE_SECONDS),
});
export type JobHeartbeat = z.input<typeof JobHeartbeat>;

export const HeartbeatResponse = z.object({
  success: z.boolean(),
  lease_expires_at: z.string().nullish(),
  /** Stop the job: it was cancelled (`runctl cancel`). */
  cancel_requested: z.boolean().default(false),
});
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>;

/** How an attempt ended, as the worker saw it. */
export const AttemptEnd = z.enum(["exited", "timeout", "cancelled", "error"]);
export type AttemptEnd = z.infer<typeof AttemptEnd>;

export const JobComplete = z.strictObject({
  ...AttemptOwner,
  exit_code: z.number().int(),
  run_id: z.string().max(200).nullish(),
  error_message: z.string().max(65_536).nullish(),
  /** Default `exited`: status is completed for exit 0, else failed (and retried per policy). */
  reason: AttemptEnd.nullish(),
});
export type JobComplete = z.input<typeof JobComplete>;

export const JobFail = z.strictObject({
  ...AttemptOwner,
  error_message: z.string().max(65_536),
  reason: AttemptEnd.nullish(),
});
export type JobFail = z.input<typeof JobFail>;

export const JobCancelResponse = z.object({
  message: z.string(),
  previous_status: JobStatus,
  /** The job's status now: `cancelled`, or `running` until its worker has stopped it. */
  status: JobStatus.optional(),
});
export type JobCancelResponse = z.infer<typeof JobCancelResponse>;

export const CancelQueuedResponse = z.object({
  message: z.string(),
  cancelled: z.array(z.number().int()),
});
export type CancelQueuedResponse = z.infer<typeof CancelQueuedResponse>;

export const JobRetryResponse = JobCreateResponse.extend({ retry_of: z.number().int() });
export type JobRetryResponse = z.infer<typeof JobRetryResponse>;

// ---------------------------------------------------------------- workers

export const WorkerRegistration = z.strictObject({
  worker_id: WorkerId,
  hostname: z.string().min(1).max(255),
  gpu_ids: GpuIndices.default([]),
  /** Jobs the worker runs at once. */
  max_jobs: z.number().int().min(1).max(256).default(1),
  pid: z.number().int().min(0).nullish(),
});
export type WorkerRegistration = z.input<typeof WorkerRegistration>;

export const WorkerUnregister = z.strictObject({ worker_id: WorkerId });
export type WorkerUnregister = z.input<typeof WorkerUnregister>;

export const WorkerResponse = z.object({
  id: z.string(),
  hostname: z.string().nullish(),
  /** whirr's field: the first GPU, or null. */
  gpu_id: z.number().int().nullish(),
  gpu_ids: z.array(z.number().int()).default([]),
  max_jobs: z.number().int().default(1),
  status: WorkerStatus,
  /** whirr's field: one of the running jobs, or null. */
  current_job_id: z.number().int().nullish(),
  current_job_ids: z.array(z.number().int()).default([]),
  heartbeat_at: z.string().nullish(),
  registered_at: z.string().nullish(),
});
export type WorkerResponse = z.infer<typeof WorkerResponse>;

export const WorkerListResponse = z.object({ workers: z.array(WorkerResponse) });
export type WorkerListResponse = z.infer<typeof WorkerListResponse>;

// ---------------------------------------------------------------- runs

export const RunResponse = z.object({
  id: z.string(),
  job_id: z.number().int().nullish(),
  attempt: z.number().int().nullish(),
  name: z.string().nullish(),
  config: JsonObject.nullish(),
  tags: z.array(z.string()).nullish(),
  status: JobRunStatus,
  started_at: z.string().nullish(),
  finished_at: z.string().nullish(),
  duration_seconds: z.number().nullish(),
  summary: JsonObject.nullish(),
  hostname: z.string().nullish(),
  worker_id: z.string().nullish(),
  exit_code: z.number().int().nullish(),
  error_message: z.string().nullish(),
  /** The run's directory on the server (files the worker uploaded). */
  run_dir: z.string().nullish(),
});
export type RunResponse = z.infer<typeof RunResponse>;

export const RunListResponse = z.object({ runs: z.array(RunResponse) });
export type RunListResponse = z.infer<typeof RunListResponse>;

export const MetricRow = z.record(z.string(), JsonValue);

export const RunMetricsResponse = z.object({
  metrics: z.array(MetricRow),
  count: z.number().int(),
  /** Pass back as `?since=` to get only newer records (`_idx >= since`). */
  cursor: z.number().int().default(0),
  /** Lines of metrics.jsonl that could not be returned (over 1 MiB, nested too deep, not JSON); runctl addition. */
  skipped: z.number().int().min(0).default(0),
});
export type RunMetricsResponse = z.infer<typeof RunMetricsResponse>;

export const ArtifactRecord = z.object({
  path: z.string(),
  size: z.number().int(),
  modified: z.string(),
});
export type ArtifactRecord = z.infer<typeof ArtifactRecord>;

export const RunArtifactsResponse = z.object({
  artifacts: z.array(ArtifactRecord),
  count: z.number().int(),
});
export type RunArtifactsResponse = z.infer<typeof RunArtifactsResponse>;

/** `PUT /api/v1/runs/{run_id}/files/{path}` (workers uploading a run directory). */
export const FileUploadResponse = z.object({ path: z.string(), size: z.number().int() });
export type FileUploadResponse = z.infer<typeof FileUploadResponse>;

// ---------------------------------------------------------------- server

export const StatusResponse = z.object({
  queued: z.number().int(),
  running: z.number().int(),
  completed: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int().default(0),
  workers_online: z.number().int(),
  workers_total: z.number().int(),
});
export type StatusResponse = z.infer<typeof StatusResponse>;

export const MessageResponse = z.object({ message: z.string(), success: z.boolean().default(true) });
export type MessageResponse = z.infer<typeof MessageResponse>;

export const HealthResponse = z.object({ status: z.string(), version: z.string().optional() });
export type HealthResponse = z.infer<typeof HealthResponse>;

/**
 * Every error body: FastAPI's `detail` (what whirr clients read) plus a
 * stable `error_code` and, where there is one, the fix.
 */
export const ErrorResponse = z.object({
  detail: z.string(),
  error_code: z.string().nullish(),
  hint: z.string().nullish(),
});
export type ErrorResponse = z.infer<typeof ErrorResponse>;

/** Run ids of a job's attempts: `job-<id>` for the first (whirr's), `job-<id>-<n>` after. */
export function jobRunId(jobId: number, attempt: number): string {
  return attempt <= 1 ? `job-${jobId}` : `job-${jobId}-${attempt}`;
}
