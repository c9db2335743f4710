/**
 * The job queue's SQLite schema, as ordered migrations keyed by
 * `PRAGMA user_version` (docs/job-queue.md, Storage). Migration n brings a
 * database from version n-1 to n; they are only ever appended, never edited,
 * because databases in the field already ran the old ones.
 */
import { UserError } from "@runctl/core";
import type Database from "better-sqlite3";

const MIGRATIONS: readonly string[] = [
  // 1: jobs, one run row per attempt, workers.
  `
  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    command_argv TEXT NOT NULL,
    workdir TEXT NOT NULL,
    config TEXT,
    tags TEXT,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    worker_id TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    exit_code INTEGER,
    run_id TEXT,
    error_message TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    gpus INTEGER NOT NULL DEFAULT 0,
    assigned_gpus TEXT,
    timeout_seconds REAL,
    max_retries INTEGER NOT NULL DEFAULT 0,
    retry_backoff_seconds REAL NOT NULL DEFAULT 0,
    available_at TEXT NOT NULL,
    lease_expires_at TEXT,
    -- The running attempt's lease length: what a server restart extends it by.
    lease_seconds INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    retry_of INTEGER REFERENCES jobs(id),
    idempotency_key TEXT UNIQUE,
    lost_count INTEGER NOT NULL DEFAULT 0,
    failure_count INTEGER NOT NULL DEFAULT 0
  );
  -- The claim's subquery: filter on status, walk priority then FIFO.
  CREATE INDEX jobs_claim ON jobs (status, priority DESC, id);
  -- requeueExpired and extendLeasesAtStartup scan running jobs by lease.
  CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);

  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL,
    worker_id TEXT,
    hostname TEXT,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER,
    error_message TEXT,
    UNIQUE (job_id, attempt)
  );
  CREATE INDEX runs_started ON runs (started_at DESC);

  CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    hostname TEXT,
    gpu_ids TEXT NOT NULL DEFAULT '[]',
    max_jobs INTEGER NOT NULL DEFAULT 1,
    pid INTEGER,
    registered_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    lease_seconds INTEGER
  );
  `,
  // 2: Runner records and services; tasks are jobs of kind 'runner_task' (docs/runner.md).
  `
  ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'job';
  ALTER TABLE jobs ADD COLUMN runner TEXT;
  ALTER TABLE jobs ADD COLUMN service TEXT;
  -- JSON array of job ids whose results the task reads.
  ALTER TABLE jobs ADD COLUMN depends_on TEXT;
  CREATE INDEX jobs_runner ON jobs (runner, status);

  CREATE TABLE runners (
    name TEXT PRIMARY KEY,
    bundle_key TEXT NOT NULL,
    store_url TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at TEXT NOT NULL
  );

  CREATE TABLE runner_services (
    runner TEXT NOT NULL REFERENCES runners(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    stateful INTEGER NOT NULL,
    target TEXT NOT NULL,
    label TEXT NOT NULL,
    gpus INTEGER NOT NULL DEFAULT 0,
    -- At most this many of its tasks run at once (NULL: no limit).
    max_instances INTEGER,
    -- A stateful service's worker, set by the claim of its first task.
    worker_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (runner, id)
  );
  `,
];

/** The schema version this code writes. */
export const QUEUE_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings `db` to QUEUE_SCHEMA_VERSION in one immediate transaction, so two
 * servers opening a fresh file at once cannot both migrate it. Refuses a
 * database written by a newer runctl rather than guess at its tables.
 */
export function migrate(db: Database.Database, file: string): void {
  db.transaction(() => {
    const current = db.pragma("user_version", { simple: true }) as number;
    if (current > QUEUE_SCHEMA_VERSION) {
      throw new UserError(
        `The queue database ${file} has schema version ${current}; this runctl knows up to ${QUEUE_SCHEMA_VERSION}`,
        {
          code: "queue_db_too_new",
          hint: "It was written by a newer runctl. Upgrade runctl on this machine, or start the server with another --data-dir.",
          details: { file, version: current, supported: QUEUE_SCHEMA_VERSION },
        },
      );
    }
    for (let version = current + 1; version <= QUEUE_SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version - 1] as string);
    }
    if (current !== QUEUE_SCHEMA_VERSION) db.pragma(`user_version = ${QUEUE_SCHEMA_VERSION}`);
  }).immediate();
}
