/**
 * The job queue's state: jobs, one run record per attempt, and workers, in
 * SQLite (`<dataDir>/queue.db`, docs/job-queue.md). Every operation is one
 * immediate transaction, so several server processes may share the file; a
 * claim is one `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`, so a job is
 * handed out once however many claim at the same time.
 *
 * Refusals the caller must act on (lease lost, job finished, not found) come
 * back as typed outcomes, not exceptions: the HTTP layer maps their codes to
 * statuses, and a worker's fencing logic branches on them.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { jsonTextDepth, MAX_JSON_DEPTH, parseAt, UserError } from "@runctl/core";
import {
  type AttemptEnd,
  JobClaim,
  JobComplete,
  JobCreate,
  JobFail,
  JobHeartbeat,
  type JobKind,
  type JobResponse,
  type JobRunStatus,
  type JobStatus,
  type JobStatusFilter,
  jobRunId,
  RunnerCreate,
  type RunnerResponse,
  ServiceCreate,
  type ServiceResponse,
  type StatusResponse,
  TasksCancel,
  TasksCreate,
  WorkerRegistration,
  type WorkerResponse,
} from "@runctl/tracker";
import Database from "better-sqlite3";
import type { z } from "zod";
import { migrate } from "./queue-migrations.ts";

/** After this many expired leases a job fails instead of being requeued again. */
export const MAX_LOST_LEASES = 5;
/** Retry backoff never waits longer than this. */
export const MAX_RETRY_BACKOFF_SECONDS = 3600;
export const QUEUE_DB_FILE = "queue.db";

const DEFAULT_WORKER_LEASE_SECONDS = 60;
const FINISHED: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

export interface QueueStoreOptions {
  /** The clock; tests move it instead of sleeping. */
  now?: () => Date;
  /** A worker is offline after this long without a claim or heartbeat; default 2 × its last lease. */
  offlineAfterMs?: number;
  /** How long a write waits for another process's transaction; default 5 s. */
  busyTimeoutMs?: number;
}

export type QueueRefusalCode =
  | "job_not_found"
  | "run_not_found"
  | "lease_lost"
  | "job_finished"
  | "job_not_finished"
  | "runner_not_found"
  | "service_not_found"
  | "runner_exists"
  | "runner_not_owned";

/** Why an operation did not happen; `code` is the HTTP API's `error_code`. */
export interface QueueRefusal {
  ok: false;
  code: QueueRefusalCode;
  detail: string;
  hint?: string;
}

export type Outcome<T> = ({ ok: true } & T) | QueueRefusal;

export interface CreatedJob {
  job: JobResponse;
  /** False when the idempotency key matched an existing job. */
  created: boolean;
}

export interface HeartbeatOutcome {
  lease_expires_at: string;
  cancel_requested: boolean;
}

export interface ReportOutcome {
  job: JobResponse;
  /** What the report did to the attempt's run record. */
  run_status: JobRunStatus;
  /** True when this repeats a report already applied (the answer is the recorded one). */
  repeated: boolean;
  message: string;
}

export interface CancelOutcome {
  previous_status: JobStatus;
  status: JobStatus;
  message: string;
}

/** A job whose running attempt was taken away (expired lease, unregistered worker). */
export interface LostAttempt {
  job_id: number;
  attempt: number;
  run_id: string;
  /** The job's status afterwards: queued (next attempt), failed (lost too often) or cancelled. */
  status: JobStatus;
}

export interface ListJobsFilter {
  status?: JobStatusFilter;
  limit?: number;
  offset?: number;
  /**
   * Stop adding jobs once their stored JSON (config, command, tags) passes this
   * many bytes; default LIST_PAGE_BYTES. At least one job is always returned.
   */
  maxBytes?: number;
}

/** One page of jobs; `next_offset` is where the next page starts, null at the end. */
export interface JobPage {
  jobs: JobResponse[];
  next_offset: number | null;
}

/**
 * Bytes of stored job JSON one list response may carry. Jobs from before the
 * config cap (or a limit of 1000 × 256 KiB) would otherwise make one response
 * of hundreds of MB: seconds of a blocked event loop, gigabytes of memory,
 * and past V8's string limit a 500. 4 MiB keeps one page's work (read,
 * parse, serialise) to a few hundred milliseconds at most.
 */
export const LIST_PAGE_BYTES = 4 * 1024 * 1024;
/** Rows read from SQLite at a time while filling a page. */
const LIST_BATCH_ROWS = 16;

export interface ListRunsFilter {
  status?: JobRunStatus;
  tag?: string;
  job_id?: number;
  limit?: number;
}

/** One attempt's record as the queue knows it (the server adds what the run directory says). */
export interface QueueRun {
  id: string;
  job_id: number;
  attempt: number;
  name: string | null;
  config: Record<string, unknown> | null;
  tags: string[] | null;
  status: JobRunStatus;
  started_at: string;
  finished_at: string | null;
  duration_seconds: number | null;
  hostname: string | null;
  worker_id: string | null;
  exit_code: number | null;
  error_message: string | null;
}

interface JobRow {
  id: number;
  name: string | null;
  command_argv: string;
  workdir: string;
  config: string | null;
  tags: string | null;
  status: JobStatus;
  attempt: number;
  worker_id: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  run_id: string | null;
  error_message: string | null;
  priority: number;
  gpus: number;
  assigned_gpus: string | null;
  timeout_seconds: number | null;
  max_retries: number;
  retry_backoff_seconds: number;
  available_at: string;
  lease_expires_at: string | null;
  lease_seconds: number | null;
  cancel_requested: number;
  retry_of: number | null;
  idempotency_key: string | null;
  lost_count: number;
  failure_count: number;
  kind: JobKind;
  runner: string | null;
  service: string | null;
  depends_on: string | null;
  runs_json?: string;
}

interface RunnerRow {
  name: string;
  bundle_key: string;
  store_url: string;
  owner: string;
  created_at: string;
}

interface ServiceRow {
  runner: string;
  id: string;
  stateful: number;
  target: string;
  label: string;
  gpus: number;
  max_instances: number | null;
  worker_id: string | null;
  created_at: string;
}

/** Runner objects live under this prefix of the runner's store (docs/runner.md). */
export function runnerPrefix(name: string): string {
  return `runners/${name}/`;
}

interface RunRow {
  id: string;
  job_id: number;
  attempt: number;
  worker_id: string | null;
  hostname: string | null;
  status: JobRunStatus;
  started_at: string;
  finished_at: string | null;
  exit_code: number | null;
  error_message: string | null;
}

interface WorkerRow {
  id: string;
  hostname: string | null;
  gpu_ids: string;
  max_jobs: number;
  pid: number | null;
  registered_at: string;
  heartbeat_at: string;
  lease_seconds: number | null;
}

const JOB_COLUMNS = `jobs.*, (SELECT json_group_array(id) FROM (SELECT id FROM runs WHERE runs.job_id = jobs.id ORDER BY attempt)) AS runs_json`;

const STATUS_FILTERS: Record<JobStatusFilter, string> = {
  queued: "status = 'queued'",
  running: "status = 'running'",
  completed: "status = 'completed'",
  failed: "status = 'failed'",
  cancelled: "status = 'cancelled'",
  active: "status IN ('queued', 'running')",
  all: "1",
};

const LEASE_LOST_HINT =
  "Stop this copy of the job: its lease expired or the job ended, and another attempt may be running. A worker does this on its own.";

function iso(d: Date): string {
  return d.toISOString();
}

function plusSeconds(d: Date, seconds: number): Date {
  return new Date(d.getTime() + seconds * 1000);
}

function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  return parseAt(schema, value, { what, kind: "user", code: "invalid_body" });
}

function jsonOrNull(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

function parseJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

/**
 * The fields of a create that differ from the job stored under the same
 * idempotency key. A resend after a lost answer is byte-for-byte the same
 * request; anything else reusing the key is a caller's mistake that must not
 * be answered with another job as if it were theirs.
 */
function differingFields(row: JobRow, spec: z.output<typeof JobCreate>): string[] {
  const pairs: Array<[string, unknown, unknown]> = [
    ["command_argv", row.command_argv, JSON.stringify(spec.command_argv)],
    ["workdir", row.workdir, spec.workdir],
    ["name", row.name, spec.name ?? null],
    ["config", row.config, jsonOrNull(spec.config)],
    ["tags", row.tags, jsonOrNull(spec.tags)],
    ["priority", row.priority, spec.priority],
    ["gpus", row.gpus, spec.gpus],
    ["timeout_seconds", row.timeout_seconds, spec.timeout_seconds ?? null],
    ["max_retries", row.max_retries, spec.max_retries],
    ["retry_backoff_seconds", row.retry_backoff_seconds, spec.retry_backoff_seconds],
  ];
  return pairs.filter(([, stored, sent]) => stored !== sent).map(([field]) => field);
}

function notFound(jobId: number): QueueRefusal {
  return {
    ok: false,
    code: "job_not_found",
    detail: `Job ${jobId} not found`,
    hint: "Run `runctl jobs --status all` to list jobs.",
  };
}

export class QueueStore {
  readonly dataDir: string;
  readonly file: string;
  readonly #db: Database.Database;
  readonly #now: () => Date;
  readonly #offlineAfterMs: number | undefined;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(dataDir: string, options: QueueStoreOptions = {}) {
    this.dataDir = dataDir;
    this.file = join(dataDir, QUEUE_DB_FILE);
    this.#now = options.now ?? (() => new Date());
    this.#offlineAfterMs = options.offlineAfterMs;
    mkdirSync(dataDir, { recursive: true });
    const db = new Database(this.file);
    try {
      // busy_timeout first: the other pragmas and the migration may wait for another process.
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
      migrate(db, this.file);
    } catch (error) {
      db.close();
      throw error;
    }
    this.#db = db;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  #stmt(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  // Immediate: a deferred transaction that reads and then writes can fail with
  // SQLITE_BUSY without waiting when another process wrote in between.
  #write<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  #jobRow(id: number): JobRow | undefined {
    return this.#stmt(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`).get(id) as JobRow | undefined;
  }

  #runRow(id: string): RunRow | undefined {
    return this.#stmt("SELECT * FROM runs WHERE id = ?").get(id) as RunRow | undefined;
  }

  // ------------------------------------------------------------ jobs

  createJob(input: JobCreate): CreatedJob {
    const spec = parseInput(JobCreate, input, "job");
    return this.#write(() => {
      if (spec.idempotency_key) {
        const existing = this.#stmt(`SELECT ${JOB_COLUMNS} FROM jobs WHERE idempotency_key = ?`).get(
          spec.idempotency_key,
        ) as JobRow | undefined;
        if (existing) {
          const differs = differingFields(existing, spec);
          if (differs.length > 0) {
            throw new UserError(
              `Idempotency key "${spec.idempotency_key}" was already used for job ${existing.id}, with a different ${differs.join(", ")}`,
              {
                code: "idempotency_conflict",
                hint: "Use a new idempotency key for a different job; resend the same body only to retry the same submission.",
                details: { job_id: existing.id, fields: differs },
              },
            );
          }
          return { job: toJobResponse(existing), created: false };
        }
      }
      const id = this.#insertJob(spec, null);
      return { job: toJobResponse(this.#jobRow(id) as JobRow), created: true };
    });
  }

  #insertJob(spec: z.output<typeof JobCreate>, retryOf: number | null): number {
    const now = iso(this.#now());
    const result = this.#stmt(
      `INSERT INTO jobs (name, command_argv, workdir, config, tags, status, attempt, created_at, priority, gpus,
         timeout_seconds, max_retries, retry_backoff_seconds, available_at, retry_of, idempotency_key)
       VALUES (?, ?, ?, ?, ?, 'queued', 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      spec.name ?? null,
      JSON.stringify(spec.command_argv),
      spec.workdir,
      jsonOrNull(spec.config),
      jsonOrNull(spec.tags),
      now,
      spec.priority,
      spec.gpus,
      spec.timeout_seconds ?? null,
      spec.max_retries,
      spec.retry_backoff_seconds,
      now,
      retryOf,
      spec.idempotency_key ?? null,
    );
    const id = Number(result.lastInsertRowid);
    this.#stmt("UPDATE jobs SET run_id = ? WHERE id = ?").run(jobRunId(id, 1), id);
    return id;
  }

  getJob(id: number): JobResponse | undefined {
    const row = this.#jobRow(id);
    return row ? toJobResponse(row) : undefined;
  }

  /** Newest first; up to `limit` jobs, fewer when their size passes `maxBytes` (then `next_offset` is set). */
  listJobs(filter: ListJobsFilter = {}): JobPage {
    const where = STATUS_FILTERS[filter.status ?? "active"];
    const limit = filter.limit ?? 50;
    const maxBytes = filter.maxBytes ?? LIST_PAGE_BYTES;
    const offset = filter.offset ?? 0;
    const select = this.#stmt(
      `SELECT ${JOB_COLUMNS} FROM jobs WHERE ${where} ORDER BY id DESC LIMIT ? OFFSET ?`,
    );
    const jobs: JobResponse[] = [];
    let bytes = 0;
    // Batches, so a page of large jobs never has all `limit` rows in memory at once.
    while (jobs.length < limit) {
      const batch = Math.min(LIST_BATCH_ROWS, limit - jobs.length);
      const rows = select.all(batch, offset + jobs.length) as JobRow[];
      for (const row of rows) {
        const size = storedJobBytes(row);
        if (jobs.length > 0 && bytes + size > maxBytes) return { jobs, next_offset: offset + jobs.length };
        bytes += size;
        jobs.push(toJobResponse(row));
      }
      if (rows.length < batch) return { jobs, next_offset: null };
    }
    const more = select.get(1, offset + jobs.length) !== undefined;
    return { jobs, next_offset: more ? offset + jobs.length : null };
  }

  /**
   * Hands the next fitting job to `worker_id`, or null. Expired leases are
   * requeued first so their jobs are claimable in the same call.
   */
  claimJob(input: JobClaim): JobResponse | null {
    const claim = parseInput(JobClaim, input, "claim");
    const free =
      claim.free_gpus ?? (claim.gpu_id === null || claim.gpu_id === undefined ? [] : [claim.gpu_id]);
    const kinds = claim.kinds ?? ["job"];
    return this.#write(() => {
      const now = this.#now();
      this.#requeueExpired(now);
      if (kinds.includes("runner_task")) this.#failOrphanedTasks(now);
      const leaseEnd = iso(plusSeconds(now, claim.lease_seconds));
      // Runner tasks wait for the tasks they depend on, a stateful service's tasks
      // go only to the worker holding its instance, and a service with
      // max_instances runs no more of its tasks at once.
      const claimed = this.#stmt(
        `UPDATE jobs SET status = 'running', worker_id = ?, started_at = ?, finished_at = NULL, exit_code = NULL,
           error_message = NULL, lease_expires_at = ?, lease_seconds = ?
         WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND available_at <= ? AND gpus <= ?
                     AND kind IN (SELECT value FROM json_each(?))
                     AND (depends_on IS NULL OR NOT EXISTS (
                       SELECT 1 FROM json_each(jobs.depends_on) AS dep JOIN jobs AS d ON d.id = dep.value
                       WHERE d.status != 'completed'))
                     AND (kind = 'job' OR NOT EXISTS (
                       SELECT 1 FROM runner_services AS s WHERE s.runner = jobs.runner AND s.id = jobs.service
                       AND ((s.stateful = 1 AND s.worker_id IS NOT NULL AND s.worker_id != ?)
                         OR (s.max_instances IS NOT NULL AND s.max_instances <= (
                           SELECT count(*) FROM jobs AS r WHERE r.runner = s.runner AND r.service = s.id
                           AND r.status = 'running')))))
                     ORDER BY priority DESC, id ASC LIMIT 1)
         RETURNING id, attempt, gpus, kind, runner, service`,
      ).get(
        claim.worker_id,
        iso(now),
        leaseEnd,
        claim.lease_seconds,
        iso(now),
        free.length,
        JSON.stringify(kinds),
        claim.worker_id,
      ) as
        | {
            id: number;
            attempt: number;
            gpus: number;
            kind: JobKind;
            runner: string | null;
            service: string | null;
          }
        | undefined;
      this.#touchWorker(claim.worker_id, now, claim.lease_seconds);
      if (!claimed) return null;
      if (claimed.kind === "runner_task") {
        this.#stmt(
          "UPDATE runner_services SET worker_id = ? WHERE runner = ? AND id = ? AND stateful = 1 AND worker_id IS NULL",
        ).run(claim.worker_id, claimed.runner, claimed.service);
      }
      const runId = jobRunId(claimed.id, claimed.attempt);
      this.#stmt("UPDATE jobs SET assigned_gpus = ?, run_id = ? WHERE id = ?").run(
        JSON.stringify(free.slice(0, claimed.gpus)),
        runId,
        claimed.id,
      );
      const worker = this.#stmt("SELECT hostname FROM workers WHERE id = ?").get(claim.worker_id) as
        | { hostname: string | null }
        | undefined;
      this.#stmt(
        `INSERT INTO runs (id, job_id, attempt, worker_id, hostname, status, started_at)
         VALUES (?, ?, ?, ?, ?, 'running', ?)`,
      ).run(runId, claimed.id, claimed.attempt, claim.worker_id, worker?.hostname ?? null, iso(now));
      return toJobResponse(this.#jobRow(claimed.id) as JobRow);
    });
  }

  #touchWorker(workerId: string, now: Date, leaseSeconds: number): void {
    this.#stmt("UPDATE workers SET heartbeat_at = ?, lease_seconds = ? WHERE id = ?").run(
      iso(now),
      leaseSeconds,
      workerId,
    );
  }

  /** The job's row when `worker_id` (and `attempt`, when given) hold its running attempt, else the refusal. */
  #heldBy(jobId: number, workerId: string, attempt: number | null | undefined): JobRow | QueueRefusal {
    const job = this.#jobRow(jobId);
    if (!job) return notFound(jobId);
    if (
      job.status === "running" &&
      job.worker_id === workerId &&
      (attempt == null || attempt === job.attempt)
    ) {
      return job;
    }
    const held =
      job.status === "running" ? `attempt ${job.attempt} running on ${job.worker_id}` : `${job.status}`;
    return {
      ok: false,
      code: "lease_lost",
      detail: `Worker ${workerId} no longer holds job ${jobId}${attempt == null ? "" : ` attempt ${attempt}`} (the job is ${held})`,
      hint: LEASE_LOST_HINT,
    };
  }

  /** Renews the lease of the attempt `worker_id` holds; tells it whether the job was cancelled. */
  heartbeat(jobId: number, input: JobHeartbeat): Outcome<HeartbeatOutcome> {
    const hb = parseInput(JobHeartbeat, input, "heartbeat");
    return this.#write(() => {
      const now = this.#now();
      this.#requeueExpired(now);
      const job = this.#heldBy(jobId, hb.worker_id, hb.attempt);
      if ("ok" in job) return job;
      const leaseEnd = iso(plusSeconds(now, hb.lease_seconds));
      this.#stmt("UPDATE jobs SET lease_expires_at = ?, lease_seconds = ? WHERE id = ?").run(
        leaseEnd,
        hb.lease_seconds,
        jobId,
      );
      this.#touchWorker(hb.worker_id, now, hb.lease_seconds);
      return { ok: true, lease_expires_at: leaseEnd, cancel_requested: job.cancel_requested === 1 };
    });
  }

  /** The attempt ended with an exit code: completed for 0, else failed (retried per policy). */
  complete(jobId: number, input: JobComplete): Outcome<ReportOutcome> {
    const body = parseInput(JobComplete, input, "completion");
    return this.#report(jobId, body.worker_id, body.attempt, {
      exit_code: body.exit_code,
      error_message: body.error_message ?? null,
      reason: body.reason ?? "exited",
    });
  }

  /** The attempt ended without an exit code of its own (could not start, timeout, …): failed. */
  fail(jobId: number, input: JobFail): Outcome<ReportOutcome> {
    const body = parseInput(JobFail, input, "failure");
    return this.#report(jobId, body.worker_id, body.attempt, {
      exit_code: null,
      error_message: body.error_message,
      reason: body.reason ?? "error",
    });
  }

  #report(
    jobId: number,
    workerId: string,
    attempt: number | null | undefined,
    end: { exit_code: number | null; error_message: string | null; reason: AttemptEnd },
  ): Outcome<ReportOutcome> {
    return this.#write(() => {
      const now = this.#now();
      this.#requeueExpired(now);
      const job = this.#heldBy(jobId, workerId, attempt);
      if ("ok" in job) return this.#repeatedReport(jobId, workerId, attempt) ?? job;
      const runId = jobRunId(job.id, job.attempt);
      const success = end.reason === "exited" && end.exit_code === 0;
      // A finished success stays a success even if a cancel arrived meanwhile: it is what happened.
      const cancelled = end.reason === "cancelled" || (!success && job.cancel_requested === 1);
      const runStatus: JobRunStatus = success ? "completed" : cancelled ? "cancelled" : "failed";
      const errorMessage = end.error_message ?? defaultError(end);
      this.#stmt(
        "UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, error_message = ? WHERE id = ?",
      ).run(runStatus, iso(now), end.exit_code, success ? end.error_message : errorMessage, runId);
      let message: string;
      if (runStatus === "failed" && job.failure_count < job.max_retries) {
        const retry = job.failure_count + 1;
        const delay = Math.min(job.retry_backoff_seconds * 2 ** (retry - 1), MAX_RETRY_BACKOFF_SECONDS);
        const availableAt = iso(plusSeconds(now, delay));
        this.#stmt(
          `UPDATE jobs SET status = 'queued', attempt = attempt + 1, run_id = ?, worker_id = NULL, started_at = NULL,
             lease_expires_at = NULL, assigned_gpus = NULL, available_at = ?, failure_count = failure_count + 1,
             exit_code = ?, error_message = ?
           WHERE id = ?`,
        ).run(jobRunId(job.id, job.attempt + 1), availableAt, end.exit_code, errorMessage, job.id);
        message = `Job ${job.id} attempt ${job.attempt} failed; retry ${retry} of ${job.max_retries} is queued, claimable from ${availableAt}`;
      } else {
        this.#stmt(
          `UPDATE jobs SET status = ?, finished_at = ?, exit_code = ?, error_message = ?, lease_expires_at = NULL,
             failure_count = failure_count + ?
           WHERE id = ?`,
        ).run(
          runStatus,
          iso(now),
          end.exit_code,
          success ? end.error_message : errorMessage,
          runStatus === "failed" ? 1 : 0,
          job.id,
        );
        message = `Job ${job.id} marked as ${runStatus}`;
      }
      return {
        ok: true,
        job: toJobResponse(this.#jobRow(job.id) as JobRow),
        run_status: runStatus,
        repeated: false,
        message,
      };
    });
  }

  /**
   * A report from a worker whose own earlier report for this attempt already
   * moved the job on (its answer was lost): the recorded outcome, not an error.
   * Undefined when the attempt ended some other way (lost lease) or was never this worker's.
   */
  #repeatedReport(
    jobId: number,
    workerId: string,
    attempt: number | null | undefined,
  ): Outcome<ReportOutcome> | undefined {
    const run = (
      attempt == null
        ? this.#stmt(
            "SELECT * FROM runs WHERE job_id = ? AND worker_id = ? ORDER BY attempt DESC LIMIT 1",
          ).get(jobId, workerId)
        : this.#stmt("SELECT * FROM runs WHERE job_id = ? AND attempt = ? AND worker_id = ?").get(
            jobId,
            attempt,
            workerId,
          )
    ) as RunRow | undefined;
    if (!run || !FINISHED.has(run.status)) return undefined;
    return {
      ok: true,
      job: toJobResponse(this.#jobRow(jobId) as JobRow),
      run_status: run.status,
      repeated: true,
      message: `Job ${jobId} attempt ${run.attempt} was already reported: ${run.status}`,
    };
  }

  /** Queued → cancelled now; running → cancel_requested (its worker stops it); finished → refused. */
  cancelJob(jobId: number): Outcome<CancelOutcome> {
    return this.#write(() => {
      const job = this.#jobRow(jobId);
      if (!job) return notFound(jobId);
      if (job.status === "queued") {
        this.#stmt("UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ?").run(
          iso(this.#now()),
          jobId,
        );
        return {
          ok: true,
          previous_status: "queued",
          status: "cancelled",
          message: `Job ${jobId} cancelled`,
        };
      }
      if (job.status === "running") {
        this.#stmt("UPDATE jobs SET cancel_requested = 1 WHERE id = ?").run(jobId);
        return {
          ok: true,
          previous_status: "running",
          status: "running",
          message: `Cancellation of job ${jobId} requested; its worker stops it at its next heartbeat`,
        };
      }
      return {
        ok: false,
        code: "job_finished",
        detail: `Job ${jobId} is already ${job.status}`,
        hint: "Only queued or running jobs can be cancelled; `runctl retry` runs a finished job again.",
      };
    });
  }

  /** Cancels every queued job; returns their ids, ascending. */
  cancelQueued(): number[] {
    return this.#write(() => {
      const rows = this.#stmt(
        "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE status = 'queued' RETURNING id",
      ).all(iso(this.#now())) as Array<{ id: number }>;
      return rows.map((r) => r.id).sort((a, b) => a - b);
    });
  }

  /** A new queued job with a finished job's spec, linked by `retry_of`. */
  retryJob(jobId: number): Outcome<{ job: JobResponse }> {
    return this.#write(() => {
      const job = this.#jobRow(jobId);
      if (!job) return notFound(jobId);
      if (!FINISHED.has(job.status)) {
        return {
          ok: false,
          code: "job_not_finished",
          detail: `Job ${jobId} is ${job.status}; only finished jobs can be retried`,
          hint: "Wait for it to finish, or cancel it first (`runctl cancel`).",
        };
      }
      const spec = parseInput(
        JobCreate,
        {
          command_argv: JSON.parse(job.command_argv),
          workdir: job.workdir,
          name: job.name,
          config: parseJson(job.config),
          tags: parseJson(job.tags),
          priority: job.priority,
          gpus: job.gpus,
          timeout_seconds: job.timeout_seconds,
          max_retries: job.max_retries,
          retry_backoff_seconds: job.retry_backoff_seconds,
        },
        "job",
      );
      const id = this.#insertJob(spec, jobId);
      return { ok: true, job: toJobResponse(this.#jobRow(id) as JobRow) };
    });
  }

  // ------------------------------------------------------------ runners (docs/runner.md)

  /** Registers a runner, or returns the existing one of that name (`created: false`) unless `fail_if_exists`. */
  createRunner(input: RunnerCreate): Outcome<{ runner: RunnerResponse; created: boolean }> {
    const spec = parseInput(RunnerCreate, input, "runner");
    return this.#write(() => {
      const existing = this.#runnerRow(spec.name);
      if (existing) {
        if (spec.fail_if_exists) {
          return {
            ok: false,
            code: "runner_exists",
            detail: `A runner named ${spec.name} exists (created ${existing.created_at})`,
            hint: "Pick another name, pass fail_if_exists=False to reuse it, or close it first.",
          };
        }
        return { ok: true, runner: this.#runnerResponse(existing), created: false };
      }
      this.#stmt(
        "INSERT INTO runners (name, bundle_key, store_url, owner, created_at) VALUES (?, ?, ?, ?, ?)",
      ).run(spec.name, spec.bundle_key, spec.store_url, spec.owner, iso(this.#now()));
      return {
        ok: true,
        runner: this.#runnerResponse(this.#runnerRow(spec.name) as RunnerRow),
        created: true,
      };
    });
  }

  getRunner(name: string): RunnerResponse | undefined {
    const row = this.#runnerRow(name);
    return row ? this.#runnerResponse(row) : undefined;
  }

  #runnerRow(name: string): RunnerRow | undefined {
    return this.#stmt("SELECT * FROM runners WHERE name = ?").get(name) as RunnerRow | undefined;
  }

  #runnerResponse(row: RunnerRow): RunnerResponse {
    const services = this.#stmt("SELECT * FROM runner_services WHERE runner = ? ORDER BY created_at, id").all(
      row.name,
    ) as ServiceRow[];
    return { ...row, prefix: runnerPrefix(row.name), services: services.map(toServiceResponse) };
  }

  #runnerNotFound(name: string): QueueRefusal {
    return {
      ok: false,
      code: "runner_not_found",
      detail: `Runner ${name} not found`,
      hint: "It was closed, or never registered: open it again with runctl.Runner(name).",
    };
  }

  /** Adds a service; a service of the same id is returned as it is (`created: false`). */
  createService(
    runner: string,
    input: ServiceCreate,
  ): Outcome<{ service: ServiceResponse; created: boolean }> {
    const spec = parseInput(ServiceCreate, input, "service");
    return this.#write(() => {
      if (!this.#runnerRow(runner)) return this.#runnerNotFound(runner);
      const existing = this.#serviceRow(runner, spec.id);
      if (existing) return { ok: true, service: toServiceResponse(existing), created: false };
      this.#stmt(
        `INSERT INTO runner_services (runner, id, stateful, target, label, gpus, max_instances, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        runner,
        spec.id,
        spec.stateful ? 1 : 0,
        spec.target,
        spec.label,
        spec.gpus,
        spec.max_instances ?? null,
        iso(this.#now()),
      );
      return {
        ok: true,
        service: toServiceResponse(this.#serviceRow(runner, spec.id) as ServiceRow),
        created: true,
      };
    });
  }

  #serviceRow(runner: string, id: string): ServiceRow | undefined {
    return this.#stmt("SELECT * FROM runner_services WHERE runner = ? AND id = ?").get(runner, id) as
      | ServiceRow
      | undefined;
  }

  #pinnedTask(job: JobRow): boolean {
    if (job.kind !== "runner_task" || job.runner === null || job.service === null) return false;
    return this.#serviceRow(job.runner, job.service)?.stateful === 1;
  }

  /** Queues one job of kind `runner_task` per call, in order; one transaction for the batch. */
  createTasks(
    runner: string,
    input: TasksCreate,
  ): Outcome<{ tasks: Array<{ job_id: number; created: boolean }> }> {
    const batch = parseInput(TasksCreate, input, "tasks");
    return this.#write(() => {
      if (!this.#runnerRow(runner)) return this.#runnerNotFound(runner);
      const services = new Map<string, ServiceRow>();
      const out: Array<{ job_id: number; created: boolean }> = [];
      for (const task of batch.tasks) {
        let service = services.get(task.service);
        if (service === undefined) {
          service = this.#serviceRow(runner, task.service);
          if (service === undefined) {
            return {
              ok: false,
              code: "service_not_found",
              detail: `Runner ${runner} has no service ${task.service}`,
              hint: "Create it first with Runner.service(...).",
            };
          }
          services.set(task.service, service);
        }
        if (task.idempotency_key) {
          const existing = this.#stmt("SELECT id, runner FROM jobs WHERE idempotency_key = ?").get(
            task.idempotency_key,
          ) as { id: number; runner: string | null } | undefined;
          if (existing) {
            if (existing.runner !== runner) {
              throw new UserError(
                `Idempotency key "${task.idempotency_key}" was already used for job ${existing.id}`,
                {
                  code: "idempotency_conflict",
                  hint: "Use a new idempotency key for each task.",
                  details: { job_id: existing.id },
                },
              );
            }
            out.push({ job_id: existing.id, created: false });
            continue;
          }
        }
        const spec = parseInput(
          JobCreate,
          {
            command_argv: ["runner-task", runner, task.service, task.method],
            workdir: `runner:${runner}`,
            name: `${runner}/${task.service}.${task.method}`,
            config: task.payload,
            tags: [`runner:${runner}`],
            gpus: service.gpus,
            timeout_seconds: task.timeout_seconds ?? null,
            max_retries: task.max_retries,
            retry_backoff_seconds: 0,
            idempotency_key: task.idempotency_key ?? null,
          },
          "task",
        );
        const id = this.#insertJob(spec, null);
        this.#stmt(
          "UPDATE jobs SET kind = 'runner_task', runner = ?, service = ?, depends_on = ? WHERE id = ?",
        ).run(runner, task.service, task.depends_on.length > 0 ? JSON.stringify(task.depends_on) : null, id);
        out.push({ job_id: id, created: true });
      }
      return { ok: true, tasks: out };
    });
  }

  /** The records of a runner's tasks by id (unknown ids are left out). */
  listTasks(runner: string, ids: readonly number[]): JobResponse[] {
    return this.#write(() => {
      this.#failOrphanedTasks(this.#now());
      const rows = this.#stmt(
        `SELECT ${JOB_COLUMNS} FROM jobs WHERE runner = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
      ).all(runner, JSON.stringify(ids)) as JobRow[];
      return rows.map(toJobResponse);
    });
  }

  /** Queued tasks that depend on a task that failed or was cancelled can never run: they fail, saying which. */
  #failOrphanedTasks(now: Date): void {
    this.#stmt(
      `UPDATE jobs SET status = 'failed', finished_at = ?,
         error_message = 'a task it depends on did not complete: ' || (
           SELECT group_concat(d.id || ' ' || d.status, ', ') FROM json_each(jobs.depends_on) AS dep
           JOIN jobs AS d ON d.id = dep.value WHERE d.status IN ('failed', 'cancelled'))
       WHERE status = 'queued' AND kind = 'runner_task' AND depends_on IS NOT NULL AND EXISTS (
         SELECT 1 FROM json_each(jobs.depends_on) AS dep JOIN jobs AS d ON d.id = dep.value
         WHERE d.status IN ('failed', 'cancelled'))`,
    ).run(iso(now));
  }

  /** Cancels the given tasks of `runner` that are still queued, and asks running ones to stop. */
  cancelTasks(runner: string, input: TasksCancel): { cancelled: number[]; cancel_requested: number[] } {
    const { ids } = parseInput(TasksCancel, input, "task ids");
    return this.#write(() => {
      const now = iso(this.#now());
      const list = JSON.stringify(ids);
      const cancelled = this.#stmt(
        `UPDATE jobs SET status = 'cancelled', finished_at = ?
         WHERE runner = ? AND status = 'queued' AND id IN (SELECT value FROM json_each(?)) RETURNING id`,
      ).all(now, runner, list) as Array<{ id: number }>;
      const requested = this.#stmt(
        `UPDATE jobs SET cancel_requested = 1
         WHERE runner = ? AND status = 'running' AND id IN (SELECT value FROM json_each(?)) RETURNING id`,
      ).all(runner, list) as Array<{ id: number }>;
      return {
        cancelled: cancelled.map((r) => r.id).sort((a, b) => a - b),
        cancel_requested: requested.map((r) => r.id).sort((a, b) => a - b),
      };
    });
  }

  /**
   * Closes a runner its owner created: queued tasks are cancelled, running
   * ones asked to stop, and the runner and its services forgotten (workers
   * stop its warm processes when they next look it up).
   */
  closeRunner(name: string, owner: string): Outcome<{ cancelled: number[]; cancel_requested: number[] }> {
    return this.#write(() => {
      const runner = this.#runnerRow(name);
      if (!runner) return this.#runnerNotFound(name);
      if (runner.owner !== owner) {
        return {
          ok: false,
          code: "runner_not_owned",
          detail: `Runner ${name} belongs to another session`,
          hint: "Only the session that created a runner closes it; a session that reused it leaves it as it is.",
        };
      }
      const now = iso(this.#now());
      const cancelled = this.#stmt(
        "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE runner = ? AND status = 'queued' RETURNING id",
      ).all(now, name) as Array<{ id: number }>;
      const requested = this.#stmt(
        "UPDATE jobs SET cancel_requested = 1 WHERE runner = ? AND status = 'running' RETURNING id",
      ).all(name) as Array<{ id: number }>;
      this.#stmt("DELETE FROM runner_services WHERE runner = ?").run(name);
      this.#stmt("DELETE FROM runners WHERE name = ?").run(name);
      return {
        ok: true,
        cancelled: cancelled.map((r) => r.id).sort((a, b) => a - b),
        cancel_requested: requested.map((r) => r.id).sort((a, b) => a - b),
      };
    });
  }

  // ------------------------------------------------------------ leases

  /** Takes back every running attempt whose lease ended before `now`. */
  requeueExpired(now: Date = this.#now()): LostAttempt[] {
    return this.#write(() => this.#requeueExpired(now));
  }

  #requeueExpired(now: Date): LostAttempt[] {
    const rows = this.#stmt(
      `SELECT ${JOB_COLUMNS} FROM jobs WHERE status = 'running' AND lease_expires_at < ? ORDER BY id`,
    ).all(iso(now)) as JobRow[];
    return rows.map((row) => this.#loseAttempt(row, now, "its lease expired"));
  }

  // The attempt is over without a report: its run record is lost and the job
  // goes back to the queue (lost leases do not use up retries), unless it was
  // being cancelled or has been lost too often.
  #loseAttempt(job: JobRow, now: Date, why: string): LostAttempt {
    const runId = jobRunId(job.id, job.attempt);
    const at = iso(now);
    this.#stmt("UPDATE runs SET status = 'lost', finished_at = ?, error_message = ? WHERE id = ?").run(
      at,
      `attempt lost: ${why}`,
      runId,
    );
    const lost = job.lost_count + 1;
    let status: JobStatus;
    if (this.#pinnedTask(job)) {
      // Its instance lived in that worker's process: running it elsewhere would silently reset the state.
      status = "failed";
      this.#stmt(
        `UPDATE jobs SET status = 'failed', finished_at = ?, lease_expires_at = NULL, lost_count = ?,
           error_message = ? WHERE id = ?`,
      ).run(
        at,
        lost,
        `the stateful instance of service ${job.service} was lost with its worker (${why})`,
        job.id,
      );
    } else if (job.cancel_requested === 1) {
      status = "cancelled";
      this.#stmt(
        `UPDATE jobs SET status = 'cancelled', finished_at = ?, lease_expires_at = NULL, lost_count = ?,
           error_message = ? WHERE id = ?`,
      ).run(at, lost, `cancelled; the attempt was lost (${why}) before its worker reported`, job.id);
    } else if (lost >= MAX_LOST_LEASES) {
      status = "failed";
      this.#stmt(
        `UPDATE jobs SET status = 'failed', finished_at = ?, lease_expires_at = NULL, lost_count = ?,
           error_message = ? WHERE id = ?`,
      ).run(
        at,
        lost,
        `lost ${MAX_LOST_LEASES} times: every attempt's worker died or stopped heartbeating (last: ${why})`,
        job.id,
      );
    } else {
      status = "queued";
      this.#stmt(
        `UPDATE jobs SET status = 'queued', attempt = attempt + 1, run_id = ?, worker_id = NULL, started_at = NULL,
           lease_expires_at = NULL, assigned_gpus = NULL, available_at = ?, lost_count = ? WHERE id = ?`,
      ).run(jobRunId(job.id, job.attempt + 1), at, lost, job.id);
    }
    return { job_id: job.id, attempt: job.attempt, run_id: runId, status };
  }

  /**
   * At server start: every running lease ends no earlier than one lease
   * period (the job's own, or `seconds` when larger) from `now`, so workers
   * that kept running through an outage can heartbeat before anything is
   * requeued. Returns how many leases were looked at.
   */
  /**
   * Repairs jobs stored before the JSON depth limit (finding 4 of the
   * hardening issue): a config nested past MAX_JSON_DEPTH cannot be read by
   * any client (each refuses it with json_too_deep), so it would make every
   * listing fail and, when claimed, burn the job's attempts on workers that
   * cannot parse it. Such a config is dropped; a queued job with one fails at
   * once, saying why. Returns the jobs repaired.
   */
  repairTooDeepConfigs(now: Date = this.#now()): Array<{ id: number; status: string }> {
    return this.#write(() => {
      const deep: Array<{ id: number; status: string }> = [];
      // One row at a time: legacy configs may be large.
      const rows = this.#db
        .prepare("SELECT id, status, config FROM jobs WHERE config IS NOT NULL")
        .iterate() as Iterable<{
        id: number;
        status: string;
        config: string;
      }>;
      for (const row of rows) {
        if (jsonTextDepth(row.config, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
          deep.push({ id: row.id, status: row.status });
      }
      const message = `config nested more than ${MAX_JSON_DEPTH} levels deep (the limit for JSON in runctl); it was dropped`;
      for (const job of deep) {
        if (job.status === "queued") {
          this.#stmt(
            "UPDATE jobs SET config = NULL, status = 'failed', finished_at = ?, error_message = ? WHERE id = ?",
          ).run(iso(now), message, job.id);
          job.status = "failed";
        } else {
          this.#stmt("UPDATE jobs SET config = NULL WHERE id = ?").run(job.id);
        }
      }
      return deep;
    });
  }

  extendLeasesAtStartup(now: Date = this.#now(), seconds = 0): number {
    return this.#write(() => {
      const rows = this.#stmt(
        "SELECT id, lease_expires_at, lease_seconds FROM jobs WHERE status = 'running'",
      ).all() as Array<{ id: number; lease_expires_at: string | null; lease_seconds: number | null }>;
      for (const row of rows) {
        const period = Math.max(seconds, row.lease_seconds ?? DEFAULT_WORKER_LEASE_SECONDS);
        const extended = iso(plusSeconds(now, period));
        if (row.lease_expires_at === null || row.lease_expires_at < extended) {
          this.#stmt("UPDATE jobs SET lease_expires_at = ? WHERE id = ?").run(extended, row.id);
        }
      }
      return rows.length;
    });
  }

  // ------------------------------------------------------------ workers

  registerWorker(input: WorkerRegistration): void {
    const reg = parseInput(WorkerRegistration, input, "worker registration");
    const now = iso(this.#now());
    this.#write(() => {
      this.#stmt(
        `INSERT INTO workers (id, hostname, gpu_ids, max_jobs, pid, registered_at, heartbeat_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, gpu_ids = excluded.gpu_ids,
           max_jobs = excluded.max_jobs, pid = excluded.pid, heartbeat_at = excluded.heartbeat_at`,
      ).run(
        reg.worker_id,
        reg.hostname,
        JSON.stringify(reg.gpu_ids),
        reg.max_jobs,
        reg.pid ?? null,
        now,
        now,
      );
    });
  }

  /**
   * Forgets a worker. Jobs it still runs are taken back as if their leases had
   * expired (a worker stopped by a second signal hands them back this way).
   */
  unregisterWorker(workerId: string): LostAttempt[] {
    return this.#write(() => {
      const now = this.#now();
      const rows = this.#stmt(
        `SELECT ${JOB_COLUMNS} FROM jobs WHERE status = 'running' AND worker_id = ? ORDER BY id`,
      ).all(workerId) as JobRow[];
      const lost = rows.map((row) => this.#loseAttempt(row, now, `worker ${workerId} unregistered`));
      this.#stmt("DELETE FROM workers WHERE id = ?").run(workerId);
      this.#stmt(
        `UPDATE jobs SET status = 'failed', finished_at = ?, error_message = ?
         WHERE status = 'queued' AND kind = 'runner_task' AND EXISTS (
           SELECT 1 FROM runner_services AS s WHERE s.runner = jobs.runner AND s.id = jobs.service
           AND s.stateful = 1 AND s.worker_id = ?)`,
      ).run(iso(now), `the stateful instance's worker ${workerId} unregistered`, workerId);
      return lost;
    });
  }

  listWorkers(): WorkerResponse[] {
    const now = this.#now().getTime();
    const workers = this.#stmt("SELECT * FROM workers ORDER BY id").all() as WorkerRow[];
    const running = this.#stmt(
      "SELECT id, worker_id FROM jobs WHERE status = 'running' AND worker_id IS NOT NULL ORDER BY id",
    ).all() as Array<{ id: number; worker_id: string }>;
    return workers.map((w) => {
      const jobs = running.filter((j) => j.worker_id === w.id).map((j) => j.id);
      const gpuIds = JSON.parse(w.gpu_ids) as number[];
      const offlineAfter =
        this.#offlineAfterMs ?? 2 * 1000 * (w.lease_seconds ?? DEFAULT_WORKER_LEASE_SECONDS);
      const offline = now - Date.parse(w.heartbeat_at) > offlineAfter;
      return {
        id: w.id,
        hostname: w.hostname,
        gpu_id: gpuIds[0] ?? null,
        gpu_ids: gpuIds,
        max_jobs: w.max_jobs,
        status: offline ? "offline" : jobs.length > 0 ? "busy" : "idle",
        current_job_id: jobs[0] ?? null,
        current_job_ids: jobs,
        heartbeat_at: w.heartbeat_at,
        registered_at: w.registered_at,
      };
    });
  }

  status(): StatusResponse {
    const counts = this.#stmt("SELECT status, count(*) AS n FROM jobs GROUP BY status").all() as Array<{
      status: JobStatus;
      n: number;
    }>;
    const of = (s: JobStatus) => counts.find((c) => c.status === s)?.n ?? 0;
    const workers = this.listWorkers();
    return {
      queued: of("queued"),
      running: of("running"),
      completed: of("completed"),
      failed: of("failed"),
      cancelled: of("cancelled"),
      workers_online: workers.filter((w) => w.status !== "offline").length,
      workers_total: workers.length,
    };
  }

  // ------------------------------------------------------------ runs

  /** Newest first. */
  listRuns(filter: ListRunsFilter = {}): QueueRun[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status !== undefined) {
      where.push("runs.status = ?");
      params.push(filter.status);
    }
    if (filter.job_id !== undefined) {
      where.push("runs.job_id = ?");
      params.push(filter.job_id);
    }
    if (filter.tag !== undefined) {
      where.push("EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE json_each.value = ?)");
      params.push(filter.tag);
    }
    const rows = this.#stmt(
      `SELECT runs.*, jobs.name, jobs.config, jobs.tags FROM runs JOIN jobs ON jobs.id = runs.job_id
       ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY runs.started_at DESC, runs.job_id DESC, runs.attempt DESC LIMIT ?`,
    ).all(...params, filter.limit ?? 50) as Array<RunRow & Pick<JobRow, "name" | "config" | "tags">>;
    const now = this.#now();
    return rows.map((r) => toQueueRun(r, now));
  }

  getRun(runId: string): QueueRun | undefined {
    const row = this.#stmt(
      "SELECT runs.*, jobs.name, jobs.config, jobs.tags FROM runs JOIN jobs ON jobs.id = runs.job_id WHERE runs.id = ?",
    ).get(runId) as (RunRow & Pick<JobRow, "name" | "config" | "tags">) | undefined;
    return row ? toQueueRun(row, this.#now()) : undefined;
  }

  /**
   * Whether `worker_id` may write the files of `runId`: the run must be its
   * job's current, running attempt, held by that worker under a live lease
   * (and `attempt`, when given, must be that attempt).
   */
  runOwner(
    runId: string,
    workerId: string,
    attempt?: number | null,
  ): Outcome<{ job_id: number; attempt: number }> {
    const run = this.#runRow(runId);
    if (!run) {
      return { ok: false, code: "run_not_found", detail: `Run ${runId} not found` };
    }
    const job = this.#jobRow(run.job_id);
    const live =
      job !== undefined &&
      job.status === "running" &&
      job.attempt === run.attempt &&
      job.worker_id === workerId &&
      (attempt == null || attempt === run.attempt) &&
      job.lease_expires_at !== null &&
      job.lease_expires_at >= iso(this.#now());
    if (!live) {
      return {
        ok: false,
        code: "lease_lost",
        detail: `Worker ${workerId} does not hold run ${runId}${attempt == null ? "" : ` (attempt ${attempt})`}`,
        hint: LEASE_LOST_HINT,
      };
    }
    return { ok: true, job_id: run.job_id, attempt: run.attempt };
  }
}

function defaultError(end: { exit_code: number | null; reason: AttemptEnd }): string | null {
  switch (end.reason) {
    case "timeout":
      return "timed out";
    case "cancelled":
      return "cancelled";
    case "error":
      return "the worker could not run the job";
    default:
      return end.exit_code === null || end.exit_code === 0 ? null : `exit code ${end.exit_code}`;
  }
}

function toJobResponse(row: JobRow): JobResponse {
  return {
    id: row.id,
    name: row.name,
    command_argv: JSON.parse(row.command_argv) as string[],
    workdir: row.workdir,
    config: parseJson<Record<string, unknown>>(row.config),
    tags: parseJson<string[]>(row.tags),
    status: row.status,
    attempt: row.attempt,
    worker_id: row.worker_id,
    created_at: row.created_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    exit_code: row.exit_code,
    run_id: row.run_id,
    error_message: row.error_message,
    priority: row.priority,
    gpus: row.gpus,
    assigned_gpus: parseJson<number[]>(row.assigned_gpus),
    timeout_seconds: row.timeout_seconds,
    max_retries: row.max_retries,
    retry_backoff_seconds: row.retry_backoff_seconds,
    available_at: row.available_at,
    lease_expires_at: row.lease_expires_at,
    cancel_requested: row.cancel_requested === 1,
    retry_of: row.retry_of,
    runs: row.runs_json ? (JSON.parse(row.runs_json) as string[]) : [],
    kind: row.kind,
    runner: row.runner,
    service: row.service,
    depends_on: parseJson<number[]>(row.depends_on),
  };
}

function toServiceResponse(row: ServiceRow): ServiceResponse {
  return {
    id: row.id,
    runner: row.runner,
    stateful: row.stateful === 1,
    target: row.target,
    label: row.label,
    gpus: row.gpus,
    max_instances: row.max_instances,
    worker_id: row.worker_id,
    created_at: row.created_at,
  };
}

/** What a job row adds to a response, roughly: its stored JSON columns. */
function storedJobBytes(row: JobRow): number {
  return (row.config?.length ?? 0) + row.command_argv.length + (row.tags?.length ?? 0) + 512;
}

function toQueueRun(row: RunRow & Pick<JobRow, "name" | "config" | "tags">, now: Date): QueueRun {
  const end = row.finished_at === null ? now.getTime() : Date.parse(row.finished_at);
  return {
    id: row.id,
    job_id: row.job_id,
    attempt: row.attempt,
    name: row.name,
    config: parseJson<Record<string, unknown>>(row.config),
    tags: parseJson<string[]>(row.tags),
    status: row.status,
    started_at: row.started_at,
    finished_at: row.finished_at,
    duration_seconds: Math.max(0, (end - Date.parse(row.started_at)) / 1000),
    hostname: row.hostname,
    worker_id: row.worker_id,
    exit_code: row.exit_code,
    error_message: row.error_message,
  };
}
