/**
 * The TypeScript client of the job server (docs/job-queue.md, "Clients"):
 * what `runctl submit/jobs/watch` and `runctl worker` speak. Every request
 * body is checked and every response parsed with the schemas of
 * queue-api.ts, so a server of another version fails loudly, not subtly.
 *
 * Two failures are kept apart because callers act differently on them: the
 * server answered with an error (QueueServerError, its `error_code` as
 * `code`) or nobody answered (QueueUnreachableError). "Not found" is only
 * ever the former.
 */
import { randomUUID } from "node:crypto";
import {
  assertJsonDepth,
  MAX_JSON_DEPTH,
  ProviderError,
  parseAt,
  parseJsonWithDepthLimit,
  UserError,
} from "@runctl/core";
import type { z } from "zod";
import {
  type ArtifactRecord,
  CancelQueuedResponse,
  ErrorResponse,
  FINISHED_JOB_STATUSES,
  FileUploadResponse,
  HealthResponse,
  HeartbeatResponse,
  JobCancelResponse,
  JobClaim,
  JobClaimResponse,
  JobComplete,
  JobCreate,
  JobCreateResponse,
  JobFail,
  JobHeartbeat,
  JobListResponse,
  type JobResponse,
  JobResponse as JobResponseSchema,
  JobRetryResponse,
  type JobRunStatus,
  type JobStatusFilter,
  MessageResponse,
  RunArtifactsResponse,
  RunListResponse,
  RunMetricsResponse,
  RunResponse,
  StatusResponse,
  WorkerListResponse,
  WorkerRegistration,
  type WorkerResponse,
  WorkerUnregister,
} from "./queue-api.ts";
import { type RunnerResponse, RunnerResponse as RunnerResponseSchema } from "./runner-api.ts";

export const SERVER_UNREACHABLE_HINT =
  "Start it with `runctl server`, or point --server / RUNCTL_SERVER_URL / [server] url at it.";

export interface QueueErrorBody {
  status: number;
  detail: string;
  errorCode: string | undefined;
  hint: string | undefined;
}

/** The server answered with an error; `code` is its `error_code` (`job_not_found`, `lease_lost`, …). */
export class QueueServerError extends UserError {
  readonly status: number;

  constructor(url: string, body: QueueErrorBody) {
    super(body.detail, {
      code: body.errorCode ?? `http_${body.status}`,
      ...(body.hint ? { hint: body.hint } : {}),
      details: { url, status: body.status },
    });
    this.status = body.status;
  }
}

/** Nobody answered: connection refused or reset, DNS failure, or no answer within the timeout. */
export class QueueUnreachableError extends ProviderError {
  readonly url: string;

  constructor(url: string, reason: string, cause: unknown) {
    super(`Cannot reach the runctl server at ${url}: ${reason}`, {
      code: "server_unreachable",
      hint: SERVER_UNREACHABLE_HINT,
      details: { url },
      cause,
    });
    this.url = url;
  }
}

/** waitForJob gave up before the job finished; `job` is what it saw last. */
export class JobWaitTimeoutError extends UserError {
  readonly job: JobResponse;

  constructor(job: JobResponse, timeoutMs: number) {
    super(`Job ${job.id} is still ${job.status} after ${formatSeconds(timeoutMs)}`, {
      code: "wait_timeout",
      hint: `It keeps going on the server; follow it with \`runctl job ${job.id}\` or cancel it with \`runctl cancel ${job.id}\`.`,
      details: { job_id: job.id, status: job.status },
    });
    this.job = job;
  }
}

export interface QueueClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080` (a trailing `/api/v1` is accepted). */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string | undefined;
  /** Per request, until the answer (for artifacts: until the headers). Default 30 s. */
  timeoutMs?: number;
  /** Resends of idempotent requests after a connection error. Default 3. */
  retries?: number;
  /** First backoff between resends, doubled each time (capped at 2 s). Default 200 ms. */
  retryDelayMs?: number;
  fetch?: typeof fetch;
}

/** Per-call overrides. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  retries?: number;
}

export interface WaitOptions {
  /** Default 1 s. */
  pollMs?: number;
  /** Give up with JobWaitTimeoutError (`wait_timeout`) after this long; default: wait forever. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called with every state seen while waiting (the CLI prints progress from it). */
  onPoll?: (job: JobResponse) => void;
}

export interface ListJobsOptions extends CallOptions {
  status?: JobStatusFilter;
  limit?: number;
  offset?: number;
}

export interface GetRunsOptions extends CallOptions {
  status?: JobRunStatus;
  tag?: string;
  jobId?: number;
  limit?: number;
}

export interface ArtifactOptions extends CallOptions {
  /** Bytes `start`..`end` inclusive (HTTP `Range`); `end` omitted: to the end of the file. */
  range?: { start: number; end?: number };
}

export interface UploadOptions extends CallOptions {
  workerId: string;
  attempt: number;
  /** Write at this offset (the file is cut there first); omitted: replace the file atomically. */
  offset?: number;
  /** Stage the chunks of a large file under this id (8–32 hex digits); `commit` then puts it in place. */
  part?: string;
  commit?: boolean;
}

/** What came back: the body read as text, or (streams) the unread Response. */
interface Answer {
  status: number;
  statusText: string;
  text: string;
  response?: Response;
}

type Query = Record<string, string | number | undefined | null>;

interface RequestSpec {
  method: "GET" | "POST" | "PUT";
  /** Under the API root, e.g. `/jobs/1`; `/health` is outside it. */
  path: string;
  query?: Query;
  json?: unknown;
  bytes?: Uint8Array;
  headers?: Record<string, string>;
  /** Safe to resend after a connection error (the server treats a repeat as the same request). */
  idempotent: boolean;
  root?: boolean;
}

const MAX_BACKOFF_MS = 2_000;
/** Status codes a reverse proxy answers while the server behind it restarts. */
const GATEWAY_STATUSES = new Set([502, 503, 504]);

export class QueueClient {
  /** The server's base URL as given, for messages. */
  readonly url: string;
  readonly #base: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #retryDelayMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: QueueClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch (error) {
      throw badUrl(options.url, error);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw badUrl(options.url);
    const path = parsed.pathname.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
    this.#base = `${parsed.origin}${path}`;
    this.url = this.#base;
    this.#token = options.token || undefined;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#retries = options.retries ?? 3;
    this.#retryDelayMs = options.retryDelayMs ?? 200;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  // ------------------------------------------------------------ jobs

  /**
   * Queues a job. A random idempotency key is set when none is given, and the
   * same body is resent after a connection error, so a lost answer never
   * queues the job twice (`created: false` when the server already had it).
   */
  async submitJob(job: JobCreate, options: CallOptions = {}): Promise<JobCreateResponse> {
    const body = parseRequest(
      JobCreate,
      { ...job, idempotency_key: job.idempotency_key ?? randomUUID() },
      "job",
    );
    return this.#json(
      JobCreateResponse,
      { method: "POST", path: "/jobs", json: body, idempotent: true },
      options,
    );
  }

  /** Polls until the job is completed, failed or cancelled and returns it. */
  async waitForJob(jobId: number, options: WaitOptions = {}): Promise<JobResponse> {
    const pollMs = options.pollMs ?? 1_000;
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    let last: JobResponse | undefined;
    for (;;) {
      try {
        last = await this.getJob(jobId, options.signal ? { signal: options.signal } : {});
        options.onPoll?.(last);
        if (FINISHED_JOB_STATUSES.includes(last.status)) return last;
      } catch (error) {
        // A server restarting is no reason to stop waiting (the job goes on); the first poll must
        // answer, though, so that a wrong URL is not waited on forever.
        if (!(error instanceof QueueUnreachableError) || last === undefined) throw error;
      }
      const left = deadline === undefined ? pollMs : deadline - Date.now();
      if (left <= 0) throw new JobWaitTimeoutError(last, options.timeoutMs ?? 0);
      await sleep(Math.min(pollMs, left), options.signal);
    }
  }

  async submitAndWait(job: JobCreate, options: WaitOptions = {}): Promise<JobResponse> {
    const created = await this.submitJob(job, options.signal ? { signal: options.signal } : {});
    return this.waitForJob(created.job_id, options);
  }

  /** Throws QueueServerError with code `job_not_found` when there is no such job. */
  /** A Runner's record with its services (docs/runner.md); 404 `runner_not_found` once it was closed. */
  async getRunner(name: string, options: CallOptions = {}): Promise<RunnerResponse> {
    return this.#json(
      RunnerResponseSchema,
      { method: "GET", path: `/runners/${encodeURIComponent(name)}`, idempotent: true },
      options,
    );
  }

  async getJob(jobId: number, options: CallOptions = {}): Promise<JobResponse> {
    return this.#json(
      JobResponseSchema,
      { method: "GET", path: `/jobs/${jobSegment(jobId)}`, idempotent: true },
      options,
    );
  }

  /** Newest first; default status `active` (queued and running). */
  /**
   * Up to `limit` jobs (default 50), newest first. The server may answer in
   * pages bounded by bytes (`next_offset`); they are followed until `limit`.
   */
  async listJobs(options: ListJobsOptions = {}): Promise<JobResponse[]> {
    const limit = options.limit ?? 50;
    const jobs: JobResponse[] = [];
    let offset = options.offset ?? 0;
    for (;;) {
      const query = { status: options.status, limit: limit - jobs.length, offset };
      const res = await this.#json(
        JobListResponse,
        { method: "GET", path: "/jobs", query, idempotent: true },
        options,
      );
      jobs.push(...res.jobs);
      if (res.next_offset === null || res.next_offset === undefined || res.jobs.length === 0) return jobs;
      if (jobs.length >= limit) return jobs;
      offset = res.next_offset;
    }
  }

  /** A queued job is cancelled at once; a running one when its worker has stopped it. */
  async cancelJob(jobId: number, options: CallOptions = {}): Promise<JobCancelResponse> {
    // Not resent: a repeat after a lost answer would report `job_finished` for a job this call cancelled.
    return this.#json(
      JobCancelResponse,
      { method: "POST", path: `/jobs/${jobSegment(jobId)}/cancel`, idempotent: false },
      options,
    );
  }

  async cancelQueued(options: CallOptions = {}): Promise<CancelQueuedResponse> {
    return this.#json(
      CancelQueuedResponse,
      { method: "POST", path: "/jobs/cancel-queued", idempotent: false },
      options,
    );
  }

  /** A new job from a finished one (linked by `retry_of`). */
  async retryJob(jobId: number, options: CallOptions = {}): Promise<JobRetryResponse> {
    return this.#json(
      JobRetryResponse,
      { method: "POST", path: `/jobs/${jobSegment(jobId)}/retry`, idempotent: false },
      options,
    );
  }

  // ------------------------------------------------------------ runs

  async getRuns(options: GetRunsOptions = {}): Promise<RunResponse[]> {
    const query = { status: options.status, tag: options.tag, job_id: options.jobId, limit: options.limit };
    const res = await this.#json(
      RunListResponse,
      { method: "GET", path: "/runs", query, idempotent: true },
      options,
    );
    return res.runs;
  }

  async getRun(runId: string, options: CallOptions = {}): Promise<RunResponse> {
    return this.#json(
      RunResponse,
      { method: "GET", path: `/runs/${segment(runId)}`, idempotent: true },
      options,
    );
  }

  /** Metric records with `_idx >= since`; pass `cursor` back as the next `since`. */
  async getMetrics(
    runId: string,
    options: CallOptions & { since?: number } = {},
  ): Promise<RunMetricsResponse> {
    return this.#json(
      RunMetricsResponse,
      {
        method: "GET",
        path: `/runs/${segment(runId)}/metrics`,
        query: { since: options.since },
        idempotent: true,
      },
      options,
    );
  }

  /** Every file of the run directory on the server. */
  async listArtifacts(runId: string, options: CallOptions = {}): Promise<ArtifactRecord[]> {
    const res = await this.#json(
      RunArtifactsResponse,
      { method: "GET", path: `/runs/${segment(runId)}/artifacts`, idempotent: true },
      options,
    );
    return res.artifacts;
  }

  /**
   * A file of the run directory (`output.log`, `artifacts/model.pt`, …) as
   * the server's Response, its body not yet read: stream it with `.body` or
   * take it whole with `.arrayBuffer()`/`.text()`. A range answers 206.
   */
  async getArtifact(runId: string, path: string, options: ArtifactOptions = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (options.range) headers.range = `bytes=${options.range.start}-${options.range.end ?? ""}`;
    const answer = await this.#send(
      {
        method: "GET",
        path: `/runs/${segment(runId)}/artifacts/${filePath(path)}`,
        headers,
        idempotent: true,
      },
      options,
      true,
    );
    if (!answer.response) throw new Error("unreachable: a streamed answer carries its Response");
    return answer.response;
  }

  // ------------------------------------------------------------ server

  async getStatus(options: CallOptions = {}): Promise<StatusResponse> {
    return this.#json(StatusResponse, { method: "GET", path: "/status", idempotent: true }, options);
  }

  async getWorkers(options: CallOptions = {}): Promise<WorkerResponse[]> {
    const res = await this.#json(
      WorkerListResponse,
      { method: "GET", path: "/workers", idempotent: true },
      options,
    );
    return res.workers;
  }

  /** `GET /health` (open even when the server wants a token). */
  async health(options: CallOptions = {}): Promise<HealthResponse> {
    return this.#json(
      HealthResponse,
      { method: "GET", path: "/health", idempotent: true, root: true },
      options,
    );
  }

  // ------------------------------------------------------------ worker calls

  async registerWorker(worker: WorkerRegistration, options: CallOptions = {}): Promise<MessageResponse> {
    const body = parseRequest(WorkerRegistration, worker, "worker registration");
    return this.#json(
      MessageResponse,
      { method: "POST", path: "/workers/register", json: body, idempotent: true },
      options,
    );
  }

  /** The server hands the worker's running jobs back to the queue (no retry counted). */
  async unregisterWorker(workerId: string, options: CallOptions = {}): Promise<MessageResponse> {
    const body = parseRequest(WorkerUnregister, { worker_id: workerId }, "worker id");
    return this.#json(
      MessageResponse,
      { method: "POST", path: "/workers/unregister", json: body, idempotent: true },
      options,
    );
  }

  /**
   * The next job that fits, or null. Never resent: a claim whose answer was
   * lost comes back to the queue when its lease expires.
   */
  async claimJob(claim: JobClaim, options: CallOptions = {}): Promise<JobResponse | null> {
    const body = parseRequest(JobClaim, claim, "claim");
    const res = await this.#json(
      JobClaimResponse,
      { method: "POST", path: "/jobs/claim", json: body, idempotent: false },
      options,
    );
    return res.job;
  }

  /** Renews the lease; 409 `lease_lost` when this worker's attempt is no longer the job's. */
  async heartbeat(jobId: number, beat: JobHeartbeat, options: CallOptions = {}): Promise<HeartbeatResponse> {
    const body = parseRequest(JobHeartbeat, beat, "heartbeat");
    return this.#json(
      HeartbeatResponse,
      { method: "POST", path: `/jobs/${jobSegment(jobId)}/heartbeat`, json: body, idempotent: true },
      options,
    );
  }

  async completeJob(jobId: number, report: JobComplete, options: CallOptions = {}): Promise<MessageResponse> {
    const body = parseRequest(JobComplete, report, "completion");
    return this.#json(
      MessageResponse,
      { method: "POST", path: `/jobs/${jobSegment(jobId)}/complete`, json: body, idempotent: true },
      options,
    );
  }

  async failJob(jobId: number, report: JobFail, options: CallOptions = {}): Promise<MessageResponse> {
    const body = parseRequest(JobFail, report, "failure report");
    return this.#json(
      MessageResponse,
      { method: "POST", path: `/jobs/${jobSegment(jobId)}/fail`, json: body, idempotent: true },
      options,
    );
  }

  /** Writes `bytes` to a file of the run directory on the server (see docs/job-queue.md, "Uploads"). */
  async uploadFile(
    runId: string,
    path: string,
    bytes: Uint8Array,
    options: UploadOptions,
  ): Promise<FileUploadResponse> {
    return this.#json(
      FileUploadResponse,
      {
        method: "PUT",
        path: `/runs/${segment(runId)}/files/${filePath(path)}`,
        query: {
          worker_id: options.workerId,
          attempt: options.attempt,
          offset: options.offset,
          part: options.part,
          commit: options.commit ? "1" : undefined,
        },
        bytes,
        // Resending is harmless: an offset write cuts the file there first, a whole write replaces it.
        idempotent: true,
      },
      options,
    );
  }

  // ------------------------------------------------------------ transport

  async #json<S extends z.ZodType>(schema: S, spec: RequestSpec, options: CallOptions): Promise<z.output<S>> {
    const answer = await this.#send(spec, options, false);
    // Before JSON.parse and the schema (which recurses per level): a job stored
    // by an older server may hold a config nested thousands of levels deep.
    assertJsonDepth(
      answer.text,
      MAX_JSON_DEPTH,
      `The answer of ${this.#base} to ${spec.method} ${spec.path}`,
    );
    let value: unknown;
    try {
      value = JSON.parse(answer.text);
    } catch {
      throw badResponse(this.#base, spec, `not JSON: ${snippet(answer.text)}`);
    }
    return parseAt(schema, value, {
      what: `answer of ${this.#base} to ${spec.method} ${spec.path}`,
      kind: "provider",
      code: "invalid_server_response",
      hint: "Is that a runctl server of a matching version? Check --server / RUNCTL_SERVER_URL and `runctl --version` on both sides.",
    });
  }

  /** One HTTP exchange, resent after connection errors when the request is idempotent. */
  async #send(spec: RequestSpec, options: CallOptions, stream: boolean): Promise<Answer> {
    const retries = spec.idempotent ? (options.retries ?? this.#retries) : 0;
    for (let attempt = 0; ; attempt++) {
      let answer: Answer;
      try {
        answer = await this.#exchange(spec, options, stream);
      } catch (error) {
        if (!(error instanceof QueueUnreachableError) || attempt >= retries) throw error;
        await sleep(this.#backoff(attempt), options.signal);
        continue;
      }
      if (answer.status >= 200 && answer.status < 300) return answer;
      if (GATEWAY_STATUSES.has(answer.status) && attempt < retries) {
        await sleep(this.#backoff(attempt), options.signal);
        continue;
      }
      throw errorOf(this.#base, answer);
    }
  }

  /**
   * With `stream`, a successful answer comes back unread and the timeout
   * covers only the wait for its headers, so a long download is not cut off.
   * Otherwise the whole body is read under the timeout: a connection cut
   * mid-body is a connection error like any other.
   */
  async #exchange(spec: RequestSpec, options: CallOptions, stream: boolean): Promise<Answer> {
    const url = this.#urlOf(spec);
    const headers: Record<string, string> = { accept: "application/json", ...spec.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let body: string | Uint8Array | undefined;
    if (spec.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(spec.json);
    } else if (spec.bytes !== undefined) {
      headers["content-type"] = "application/octet-stream";
      body = spec.bytes;
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(), timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timer.signal]) : timer.signal;
    try {
      const res = await this.#fetch(url, { method: spec.method, headers, body, signal });
      if (stream && res.ok)
        return { status: res.status, statusText: res.statusText, text: "", response: res };
      return { status: res.status, statusText: res.statusText, text: await res.text() };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      const reason = timer.signal.aborted
        ? `no answer within ${formatSeconds(timeoutMs)}`
        : describeCause(error);
      throw new QueueUnreachableError(this.#base, reason, error);
    } finally {
      clearTimeout(timeout);
    }
  }

  #urlOf(spec: RequestSpec): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined && value !== null) params.set(key, String(value));
    }
    const qs = params.size > 0 ? `?${params}` : "";
    return `${this.#base}${spec.root ? "" : "/api/v1"}${spec.path}${qs}`;
  }

  #backoff(attempt: number): number {
    const delay = Math.min(MAX_BACKOFF_MS, this.#retryDelayMs * 2 ** attempt);
    return delay / 2 + Math.random() * (delay / 2);
  }
}

function errorOf(base: string, answer: Answer): QueueServerError {
  const { status, statusText, text } = answer;
  let parsed: ErrorResponse | undefined;
  try {
    const result = ErrorResponse.safeParse(parseJsonWithDepthLimit(text, "error body"));
    if (result.success) parsed = result.data;
  } catch {
    // not JSON: a proxy's error page, say
  }
  const fallback = `HTTP ${status}${statusText ? ` ${statusText}` : ""} from ${base}${text ? `: ${snippet(text)}` : ""}`;
  return new QueueServerError(base, {
    status,
    detail: parsed?.detail || fallback,
    errorCode: parsed?.error_code ?? undefined,
    hint: parsed?.hint ?? defaultHint(status),
  });
}

function defaultHint(status: number): string | undefined {
  if (status === 401)
    return "The server wants a token: pass the one it was started with (--token / RUNCTL_SERVER_TOKEN / [server] token).";
  return undefined;
}

function parseRequest<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  return parseAt(schema, value, { what, kind: "user", code: "invalid_request" });
}

function badUrl(url: string, cause?: unknown): UserError {
  return new UserError(`Invalid server URL "${url}"`, {
    code: "bad_server_url",
    hint: "Give an http(s) URL such as http://127.0.0.1:8080 (--server / RUNCTL_SERVER_URL / [server] url).",
    cause,
  });
}

function badResponse(base: string, spec: RequestSpec, why: string): ProviderError {
  return new ProviderError(`Invalid answer of ${base} to ${spec.method} ${spec.path}: ${why}`, {
    code: "invalid_server_response",
    hint: "Is that a runctl server? Check --server / RUNCTL_SERVER_URL.",
  });
}

/** Node's fetch hides the socket error in `cause` (ECONNREFUSED, ENOTFOUND, …). */
function describeCause(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") return `${code} (${current.message})`;
    current = current.cause;
  }
  return error instanceof Error ? error.message : String(error);
}

function jobSegment(jobId: number): string {
  if (!Number.isSafeInteger(jobId) || jobId < 0) {
    throw new UserError(`Invalid job id ${String(jobId)}`, {
      code: "bad_job_id",
      hint: "Job ids are the numbers `runctl jobs` lists.",
    });
  }
  return String(jobId);
}

function segment(value: string): string {
  return encodeURIComponent(value);
}

/**
 * A relative file path: each segment encoded, the `/` between them kept.
 * `.`, `..` and empty segments are refused here: URL parsing would resolve
 * them (even percent-encoded) and ask for another file instead.
 */
function filePath(path: string): string {
  const parts = path.split("/");
  if (parts.some((part) => part === "" || part === "." || part === "..")) {
    throw new UserError(`Invalid run file path "${path}"`, {
      code: "bad_path",
      hint: "Name a file inside the run directory, like `output.log` or `artifacts/model.pt` (no leading `/`, no `.` or `..`).",
    });
  }
  return parts.map(encodeURIComponent).join("/");
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
