/**
 * Runs and the Tracker contract. File shapes follow whirr's run directories
 * (`meta.json`, `metrics.jsonl` with `_idx` and `_timestamp`) so runs written by
 * whirr read here and the other way round; fields runctl adds are optional.
 */
import { z } from "zod";
import { Placement } from "./provider.ts";

export const RunStatus = z.enum([
  "pending",
  "provisioning",
  "running",
  "completed",
  "failed",
  "cancelled",
  "preempted",
]);
export type RunStatus = z.infer<typeof RunStatus>;

export const TERMINAL_STATUSES: ReadonlySet<RunStatus> = new Set([
  "completed",
  "failed",
  "cancelled",
  "preempted",
]);

export const JsonObject = z.record(z.string(), z.unknown());

export const GitInfo = z
  .object({
    commit: z.string(),
    short_hash: z.string().optional(),
    branch: z.string().nullable().optional(),
    dirty: z.boolean(),
    remote: z.string().nullable().optional(),
  })
  .passthrough();

export const Attempt = z
  .object({
    number: z.number().int().positive(),
    started_at: z.string(),
    finished_at: z.string().nullable().optional(),
    status: RunStatus,
    exit_code: z.number().int().nullable().optional(),
    placement: Placement.nullable().optional(),
  })
  .passthrough();
export type Attempt = z.infer<typeof Attempt>;

/**
 * Where a run listens for runtime commands (docs/run-directory.md, `control`):
 * its node-local file queue only, or NATS as well (the supervisor bridges the
 * two). `url` is the server URL(s) as configured, never with credentials in
 * it; `prefix` the subject prefix. `runctl ctl` reads it, so it talks to the
 * channel the run actually listens on rather than to its own configuration.
 */
export const RunControlChannel = z
  .object({
    kind: z.enum(["file", "nats"]),
    prefix: z.string().min(1).optional(),
    url: z.string().min(1).optional(),
  })
  .passthrough();
export type RunControlChannel = z.infer<typeof RunControlChannel>;

/**
 * `meta.json`. Passthrough keeps fields written by newer versions or by whirr
 * itself, so a rewrite never drops what it does not know.
 */
export const RunMeta = z
  .object({
    id: z.string().min(1),
    name: z.string(),
    tags: z.array(z.string()).default([]),
    started_at: z.string(),
    finished_at: z.string().nullable().optional(),
    status: RunStatus,
    summary: JsonObject.nullable().optional(),
    config_file: z.string().default("config.json"),
    metrics_file: z.string().default("metrics.jsonl"),
    artifacts_dir: z.string().default("artifacts"),
    git: GitInfo.nullable().optional(),
    git_file: z.string().nullable().optional(),
    requirements_file: z.string().nullable().optional(),
    // runctl additions
    exit_code: z.number().int().nullable().optional(),
    error: z.string().nullable().optional(),
    attempts: z.array(Attempt).optional(),
    placement: Placement.nullable().optional(),
    cost_usd: z.number().nonnegative().nullable().optional(),
    heartbeat_at: z.string().nullable().optional(),
    /** The live writer (see docs/run-directory.md): used to tell a running run from a lost one. */
    pid: z.number().int().positive().optional(),
    hostname: z.string().optional(),
    /** `supervisor` or `python`; open so other writers can name themselves. */
    writer: z.string().optional(),
    /** The command line, when started by runctl. */
    command: z.array(z.string()).optional(),
    /** Ranks the run was started with (`--nproc-per-node`); acks are expected from each. */
    world_size: z.number().int().positive().optional(),
    /** The control channel the run listens on. */
    control: RunControlChannel.optional(),
  })
  .passthrough();
export type RunMeta = z.infer<typeof RunMeta>;

/** One line of `metrics.jsonl`: reserved `_idx`, `_timestamp`, optional `step`, user keys. */
export const MetricRecord = z
  .object({
    _idx: z.number().int().nonnegative(),
    _timestamp: z.union([z.string(), z.number()]),
    step: z.number().int().optional(),
  })
  .catchall(z.unknown());
export type MetricRecord = z.infer<typeof MetricRecord>;

export const ArtifactInfo = z
  .object({
    path: z.string(),
    size: z.number().int().nonnegative(),
    modified: z.string(),
  })
  .strict();
export type ArtifactInfo = z.infer<typeof ArtifactInfo>;

export interface CreateRunInput {
  id?: string;
  name?: string;
  config?: Record<string, unknown>;
  tags?: string[];
}

export interface MetricsPage {
  records: MetricRecord[];
  /** Pass back as `since` to get only newer records. */
  cursor: number;
}

export interface Tracker {
  createRun(input: CreateRunInput): Promise<RunMeta>;
  logMetrics(runId: string, metrics: Record<string, unknown>, step?: number): Promise<MetricRecord>;
  setSummary(runId: string, summary: Record<string, unknown>): Promise<void>;
  saveArtifact(runId: string, sourcePath: string, name?: string): Promise<ArtifactInfo>;
  finishRun(
    runId: string,
    status: RunStatus,
    detail?: { exitCode?: number; error?: string },
  ): Promise<RunMeta>;
  getRun(runId: string): Promise<RunMeta>;
  listRuns(filter?: { status?: RunStatus[]; tags?: string[]; last?: number }): Promise<RunMeta[]>;
  /** Records with `_idx >= since`, in order. */
  getMetrics(runId: string, since?: number): Promise<MetricsPage>;
  listArtifacts(runId: string): Promise<ArtifactInfo[]>;
}
