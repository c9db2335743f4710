/**
 * The job server's routes (docs/job-queue.md, HTTP API), as one table: a
 * method, a pattern over the raw (undecoded) URL path, and a handler that
 * returns the JSON body to send with 200, or RESPONDED when it answered itself
 * (file downloads). Patterns match the raw path on purpose: `..` and
 * percent-encoded separators reach the path checks instead of being
 * normalised away first.
 */
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { describeIssues, isRunctlError, issuesOf, type RunMeta } from "@runctl/core";
import { isErrno, parseJsonLenient } from "@runctl/core/internal";
import {
  type CancelQueuedResponse,
  type HealthResponse,
  type HeartbeatResponse,
  JobClaim,
  type JobClaimResponse,
  JobComplete,
  JobCreate,
  type JobCreateResponse,
  JobFail,
  JobHeartbeat,
  type JobListResponse,
  type JobResponse,
  type JobRetryResponse,
  JobRunStatus,
  JobStatusFilter,
  type MessageResponse,
  RUN_FILES,
  type RunArtifactsResponse,
  type RunListResponse,
  type RunMetricsResponse,
  RunnerCloseRequest,
  type RunnerCloseResponse,
  RunnerCreate,
  type RunnerCreateResponse,
  RunnerName,
  type RunnerResponse,
  type RunResponse,
  readMeta,
  readMetrics,
  ServiceCreate,
  type ServiceCreateResponse,
  type TaskListResponse,
  TasksCancel,
  type TasksCancelResponse,
  TasksCreate,
  type TasksCreateResponse,
  WorkerRegistration,
  WorkerUnregister,
} from "@runctl/tracker";
import { z } from "zod";
import { sendRunFile } from "./artifact-download.ts";
import { parseBody, readJsonBody } from "./http-body.ts";
import { HttpError } from "./http-response.ts";
import type { Outcome, QueueRefusalCode, QueueRun, QueueStore } from "./queue-store.ts";
import { listRunFiles, relativePathFromUrl, runIdFromUrl } from "./run-files.ts";
import { receiveRunFile } from "./run-uploads.ts";

/** A handler's answer when it wrote the response itself. */
export const RESPONDED: unique symbol = Symbol("responded");

export interface ServerContext {
  store: QueueStore;
  /** `<dataDir>/runs`: one directory per run id. */
  runsDir: string;
  maxBodyBytes: number;
  maxUploadBytes: number;
}

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** The pattern's capture groups, still percent-encoded. */
  params: readonly string[];
  query: URLSearchParams;
  server: ServerContext;
}

export interface Route {
  method: "GET" | "POST" | "PUT";
  pattern: RegExp;
  handle(ctx: RouteContext): unknown;
}

const REFUSAL_STATUS: Record<QueueRefusalCode, number> = {
  job_not_found: 404,
  run_not_found: 404,
  lease_lost: 409,
  job_finished: 409,
  job_not_finished: 409,
  runner_not_found: 404,
  service_not_found: 404,
  runner_exists: 409,
  runner_not_owned: 409,
};

function runnerName(ctx: RouteContext): string {
  const raw = decodeURIComponent(ctx.params[0] as string);
  const parsed = RunnerName.safeParse(raw);
  if (!parsed.success) throw new HttpError(404, "runner_not_found", `Runner ${raw} not found`);
  return parsed.data;
}

const TaskIdsQuery = z.object({
  ids: z
    .string()
    .regex(/^\d+(,\d+)*$/, "comma-separated job ids")
    .transform((text) => text.split(",").map(Number))
    .pipe(z.array(z.number().int().min(1)).max(1000)),
});

function settled<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome;
  throw new HttpError(
    REFUSAL_STATUS[outcome.code],
    outcome.code,
    outcome.detail,
    outcome.hint === undefined ? {} : { hint: outcome.hint },
  );
}

function parseQuery<S extends z.ZodType>(schema: S, query: URLSearchParams): z.output<S> {
  const result = schema.safeParse(Object.fromEntries(query));
  if (result.success) return result.data;
  throw new HttpError(400, "bad_request", `Invalid query: ${describeIssues(issuesOf(result.error))}`, {
    hint: "The query parameters are documented in docs/job-queue.md (HTTP API).",
  });
}

function jobId(ctx: RouteContext): number {
  const id = Number(ctx.params[0]);
  if (!Number.isSafeInteger(id)) throw new HttpError(404, "job_not_found", `Job ${ctx.params[0]} not found`);
  return id;
}

async function jsonBody<S extends z.ZodType>(
  ctx: RouteContext,
  schema: S,
  what: string,
): Promise<z.output<S>> {
  return parseBody(schema, await readJsonBody(ctx.req, ctx.server.maxBodyBytes), what);
}

/** The run's record, or 404 `run_not_found`; with its directory on the server. */
function knownRun(ctx: RouteContext): { run: QueueRun; runDir: string } {
  const id = runIdFromUrl(ctx.params[0] as string);
  const run = ctx.server.store.getRun(id);
  if (!run) {
    throw new HttpError(404, "run_not_found", `Run ${id} not found`, {
      hint: "Run ids of queued jobs are `job-<id>` (first attempt) and `job-<id>-<n>`; GET /api/v1/runs lists them.",
    });
  }
  return { run, runDir: join(ctx.server.runsDir, id) };
}

const Limit = z.coerce.number().int().min(1).max(1000).default(50);
const JobsQuery = z.object({
  status: JobStatusFilter.default("active"),
  limit: Limit,
  offset: z.coerce.number().int().min(0).default(0),
});
const RunsQuery = z.object({
  status: JobRunStatus.optional(),
  tag: z.string().min(1).optional(),
  job_id: z.coerce.number().int().min(1).optional(),
  limit: Limit,
});
const MetricsQuery = z.object({ since: z.coerce.number().int().min(0).default(0) });
const UploadQuery = z.object({
  worker_id: z.string().min(1),
  attempt: z.coerce.number().int().min(1).optional(),
  offset: z.coerce.number().int().min(0).optional(),
  /** A staged upload (large files): chunks go to a hidden part file, `commit=1` renames it into place. */
  part: z
    .string()
    .regex(/^[0-9a-f]{8,32}$/)
    .optional(),
  commit: z.literal("1").optional(),
});

// What the uploaded run directory says, where it says it. A missing, torn or
// corrupt file is simply not there yet: the worker re-uploads it. Any other
// failure (EMFILE, EIO) is the server's and is not passed off as "absent".
async function uploadedMeta(runDir: string): Promise<RunMeta | undefined> {
  try {
    return await readMeta(runDir);
  } catch (error) {
    if (isRunctlError(error) && (error.code === "run_not_found" || error.code === "run_meta_corrupt"))
      return undefined;
    throw error;
  }
}

async function uploadedConfig(runDir: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(join(runDir, RUN_FILES.config), "utf8");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    throw error;
  }
  try {
    const value = parseJsonLenient(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Run records with what their directories say, a few directories at a time (not 2 × limit files open at once). */
async function runResponses(runs: readonly QueueRun[], runsDir: string): Promise<RunResponse[]> {
  const out: RunResponse[] = [];
  for (let i = 0; i < runs.length; i += RUN_READ_BATCH) {
    const batch = runs.slice(i, i + RUN_READ_BATCH);
    out.push(...(await Promise.all(batch.map((r) => runResponse(r, join(runsDir, r.id))))));
  }
  return out;
}

const RUN_READ_BATCH = 16;

async function runResponse(run: QueueRun, runDir: string): Promise<RunResponse> {
  const [meta, config] = await Promise.all([uploadedMeta(runDir), uploadedConfig(runDir)]);
  const tags = [...new Set([...(run.tags ?? []), ...(meta?.tags ?? [])])];
  const metaDuration =
    meta?.finished_at && meta.started_at
      ? (Date.parse(meta.finished_at) - Date.parse(meta.started_at)) / 1000
      : Number.NaN;
  return {
    id: run.id,
    job_id: run.job_id,
    attempt: run.attempt,
    name: run.name ?? meta?.name ?? null,
    config: config ?? run.config,
    tags: tags.length > 0 || run.tags ? tags : null,
    // The queue's status is the truth: a run directory cannot tell a lost attempt from a live one.
    status: run.status,
    started_at: run.started_at,
    finished_at: run.finished_at,
    duration_seconds:
      Number.isFinite(metaDuration) && metaDuration >= 0 ? metaDuration : run.duration_seconds,
    summary: (meta?.summary as Record<string, unknown> | null | undefined) ?? null,
    hostname: run.hostname,
    worker_id: run.worker_id,
    exit_code: run.exit_code,
    error_message: run.error_message,
    run_dir: runDir,
  };
}

function createdResponse(ctx: RouteContext, job: JobResponse, created: boolean): JobCreateResponse {
  const runId = job.run_id ?? `job-${job.id}`;
  return {
    job_id: job.id,
    run_id: runId,
    run_dir: join(ctx.server.runsDir, runId),
    message: created ? `Job ${job.id} created` : `Job ${job.id} already exists for this idempotency key`,
    created,
  };
}

export const ROUTES: readonly Route[] = [
  // Runner API (docs/runner.md): tasks are jobs of kind runner_task, so /jobs lists them too.
  {
    method: "POST",
    pattern: /^\/api\/v1\/runners$/,
    handle: async (ctx): Promise<RunnerCreateResponse> =>
      settled(ctx.server.store.createRunner(await jsonBody(ctx, RunnerCreate, "runner"))),
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/runners\/([^/]+)$/,
    handle: (ctx): RunnerResponse => {
      const name = runnerName(ctx);
      const runner = ctx.server.store.getRunner(name);
      if (!runner) throw new HttpError(404, "runner_not_found", `Runner ${name} not found`);
      return runner;
    },
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/runners\/([^/]+)\/services$/,
    handle: async (ctx): Promise<ServiceCreateResponse> =>
      settled(ctx.server.store.createService(runnerName(ctx), await jsonBody(ctx, ServiceCreate, "service"))),
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/runners\/([^/]+)\/tasks$/,
    handle: async (ctx): Promise<TasksCreateResponse> =>
      settled(ctx.server.store.createTasks(runnerName(ctx), await jsonBody(ctx, TasksCreate, "tasks"))),
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/runners\/([^/]+)\/tasks$/,
    handle: (ctx): TaskListResponse => ({
      tasks: ctx.server.store.listTasks(runnerName(ctx), parseQuery(TaskIdsQuery, ctx.query).ids),
    }),
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/runners\/([^/]+)\/tasks\/cancel$/,
    handle: async (ctx): Promise<TasksCancelResponse> =>
      ctx.server.store.cancelTasks(runnerName(ctx), await jsonBody(ctx, TasksCancel, "task ids")),
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/runners\/([^/]+)\/close$/,
    handle: async (ctx): Promise<RunnerCloseResponse> => {
      const name = runnerName(ctx);
      const body = await jsonBody(ctx, RunnerCloseRequest, "close");
      const { cancelled, cancel_requested } = settled(ctx.server.store.closeRunner(name, body.owner));
      return {
        message: `Runner ${name} closed: ${cancelled.length} queued task(s) cancelled, ${cancel_requested.length} running asked to stop`,
        cancelled,
        cancel_requested,
      };
    },
  },
  {
    method: "GET",
    pattern: /^\/health$/,
    handle: (): HealthResponse => ({ status: "ok" }),
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/status$/,
    handle: (ctx) => ctx.server.store.status(),
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/jobs$/,
    handle: async (ctx): Promise<JobCreateResponse> => {
      const spec = await jsonBody(ctx, JobCreate, "job");
      const { job, created } = ctx.server.store.createJob(spec);
      return createdResponse(ctx, job, created);
    },
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/jobs$/,
    handle: (ctx): JobListResponse => ctx.server.store.listJobs(parseQuery(JobsQuery, ctx.query)),
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/jobs\/claim$/,
    handle: async (ctx): Promise<JobClaimResponse> => ({
      job: ctx.server.store.claimJob(await jsonBody(ctx, JobClaim, "claim")),
    }),
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/jobs\/cancel-queued$/,
    handle: (ctx): CancelQueuedResponse => {
      const cancelled = ctx.server.store.cancelQueued();
      return { message: `Cancelled ${cancelled.length} queued job(s)`, cancelled };
    },
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/jobs\/(\d+)$/,
    handle: (ctx): JobResponse => {
      const id = jobId(ctx);
      const job = ctx.server.store.getJob(id);
      if (!job) {
        throw new HttpError(404, "job_not_found", `Job ${id} not found`, {
          hint: "Run `runctl jobs --status all` to list jobs.",
        });
      }
      return job;
    },
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/jobs\/(\d+)\/heartbeat$/,
    handle: async (ctx): Promise<HeartbeatResponse> => {
      const id = jobId(ctx);
      const beat = settled(ctx.server.store.heartbeat(id, await jsonBody(ctx, JobHeartbeat, "heartbeat")));
      return {
        success: true,
        lease_expires_at: beat.lease_expires_at,
        cancel_requested: beat.cancel_requested,
      };
    },
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/jobs\/(\d+)\/complete$/,
    handle: async (ctx): Promise<MessageResponse> => {
      const id = jobId(ctx);
      const report = settled(ctx.server.store.complete(id, await jsonBody(ctx, JobComplete, "completion")));
      return { message: report.message, success: true };
    },
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/jobs\/(\d+)\/fail$/,
    handle: async (ctx): Promise<MessageResponse> => {
      const id = jobId(ctx);
      const report = settled(ctx.server.store.fail(id, await jsonBody(ctx, JobFail, "failure")));
      return { message: report.message, success: true };
    },
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/jobs\/(\d+)\/cancel$/,
    handle: (ctx) => {
      const { message, previous_status, status } = settled(ctx.server.store.cancelJob(jobId(ctx)));
      return { message, previous_status, status };
    },
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/jobs\/(\d+)\/retry$/,
    handle: (ctx): JobRetryResponse => {
      const id = jobId(ctx);
      const { job } = settled(ctx.server.store.retryJob(id));
      return {
        ...createdResponse(ctx, job, true),
        message: `Job ${job.id} created to retry job ${id}`,
        retry_of: id,
      };
    },
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/workers\/register$/,
    handle: async (ctx): Promise<MessageResponse> => {
      const reg = await jsonBody(ctx, WorkerRegistration, "worker registration");
      ctx.server.store.registerWorker(reg);
      return { message: `Worker ${reg.worker_id} registered`, success: true };
    },
  },
  {
    method: "POST",
    pattern: /^\/api\/v1\/workers\/unregister$/,
    handle: async (ctx): Promise<MessageResponse> => {
      const { worker_id } = await jsonBody(ctx, WorkerUnregister, "worker unregistration");
      const lost = ctx.server.store.unregisterWorker(worker_id);
      const handedBack =
        lost.length > 0 ? `; its job(s) ${lost.map((l) => l.job_id).join(", ")} were taken back` : "";
      return { message: `Worker ${worker_id} unregistered${handedBack}`, success: true };
    },
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/workers$/,
    handle: (ctx) => ({ workers: ctx.server.store.listWorkers() }),
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/runs$/,
    handle: async (ctx): Promise<RunListResponse> => {
      const runs = ctx.server.store.listRuns(parseQuery(RunsQuery, ctx.query));
      return { runs: await runResponses(runs, ctx.server.runsDir) };
    },
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/runs\/([^/]+)$/,
    handle: (ctx): Promise<RunResponse> => {
      const { run, runDir } = knownRun(ctx);
      return runResponse(run, runDir);
    },
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/runs\/([^/]+)\/metrics$/,
    handle: async (ctx): Promise<RunMetricsResponse> => {
      const { runDir } = knownRun(ctx);
      const { since } = parseQuery(MetricsQuery, ctx.query);
      const page = await readMetrics(runDir, since);
      return {
        metrics: page.records,
        count: page.records.length,
        cursor: page.cursor,
        skipped: page.skipped,
      };
    },
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/runs\/([^/]+)\/artifacts$/,
    handle: async (ctx): Promise<RunArtifactsResponse> => {
      const { runDir } = knownRun(ctx);
      const artifacts = await listRunFiles(runDir);
      return { artifacts, count: artifacts.length };
    },
  },
  {
    method: "GET",
    pattern: /^\/api\/v1\/runs\/([^/]+)\/artifacts\/(.+)$/,
    handle: async (ctx) => {
      const segments = relativePathFromUrl(ctx.params[1] as string);
      const { runDir } = knownRun(ctx);
      await sendRunFile(ctx.req, ctx.res, runDir, segments);
      return RESPONDED;
    },
  },
  {
    method: "PUT",
    pattern: /^\/api\/v1\/runs\/([^/]+)\/files\/(.+)$/,
    handle: async (ctx) => {
      const segments = relativePathFromUrl(ctx.params[1] as string);
      const runId = runIdFromUrl(ctx.params[0] as string);
      const q = parseQuery(UploadQuery, ctx.query);
      settled(ctx.server.store.runOwner(runId, q.worker_id, q.attempt));
      return receiveRunFile(
        ctx.req,
        join(ctx.server.runsDir, runId),
        segments,
        { offset: q.offset, part: q.part, commit: q.commit === "1" },
        ctx.server.maxUploadBytes,
      );
    },
  },
];

export interface RouteMatch {
  route: Route;
  params: string[];
}

/** The route for `method` and raw `path`; `allowed` lists the methods the path has when none matched. */
export function matchRoute(method: string, path: string): { match?: RouteMatch; allowed: string[] } {
  const allowed: string[] = [];
  const wanted = method === "HEAD" ? "GET" : method;
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (!m) continue;
    if (route.method === wanted) return { match: { route, params: m.slice(1) }, allowed };
    allowed.push(route.method);
  }
  return { allowed };
}
