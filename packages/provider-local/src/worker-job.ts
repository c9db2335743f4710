/**
 * One claimed job on a queue worker: the attempt runs under the supervisor
 * (one Supervisor per job, so its orphan guard ends the job's processes if
 * the worker is SIGKILLed), its lease is renewed by heartbeat, its run
 * directory is uploaded as it grows, and the end is reported once, fenced
 * by the attempt (docs/job-queue.md, "Leases", "Fencing", "Workers").
 */
import { statSync } from "node:fs";
import { rename } from "node:fs/promises";
import { join } from "node:path";
import { RunDirSync, type RunOutcome, resolveLaunchCommand, Supervisor } from "@runctl/agent";
import { isRunctlError, RunSpec, type RunSpecInput } from "@runctl/core";
import {
  type AttemptEnd,
  isSafeRunId,
  type JobResponse,
  jobRunId,
  type QueueClient,
  readMeta,
  runDirOf,
} from "@runctl/tracker";
import { jobEnvFrom } from "./job-env.ts";
import { clipErrorMessage, isLeaseLost, type JobRunEnd, sendReport } from "./queue-reports.ts";
import { QueueSyncTarget } from "./queue-sync-target.ts";
import type { WorkerEvent } from "./worker-events.ts";
import { clearUnreported, recordUnreported, type Unreported } from "./worker-recovery.ts";

export interface JobRunOptions {
  client: QueueClient;
  workerId: string;
  hostname: string;
  job: JobResponse;
  dataDir: string;
  leaseSeconds: number;
  graceMs: number;
  uploadIntervalMs: number;
  env: Readonly<Record<string, string | undefined>>;
  /** `CUDA_VISIBLE_DEVICES` for the job, "" to hide every GPU; undefined leaves the worker's own. */
  cudaDevices: string | undefined;
  terminal?: SuperviseTerminal | undefined;
  /** Resolves when an older copy of the same job on this worker has stopped (it holds the checkpoint lock). */
  after?: Promise<unknown> | undefined;
  emit: (event: WorkerEvent) => void;
}

type SuperviseTerminal = NonNullable<Parameters<typeof Supervisor.start>[1]["terminal"]>;

/** Heartbeats also carry cancellations, so they go at least this often whatever the lease. */
const MAX_BEAT_INTERVAL_MS = 5_000;

export class JobRun {
  readonly job: JobResponse;
  readonly runId: string;
  readonly done: Promise<JobRunEnd>;

  readonly #o: JobRunOptions;
  readonly #leaseMs: number;
  /** A third of the lease, at most MAX_BEAT_INTERVAL_MS. */
  readonly #beatMs: number;
  /** The stop asked for, reported as the attempt's end (first one wins). */
  #reason: "cancelled" | "timeout" | undefined;
  #leaseLost = false;
  #handedBack = false;
  #supervisor: Supervisor | undefined;
  #upload: RunDirSync | undefined;
  /** Fires when the lease has certainly expired by this worker's clock (no heartbeat answered in time). */
  #expiryTimer: NodeJS.Timeout | undefined;
  #beatTimer: NodeJS.Timeout | undefined;
  #uploadTimer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  /** The process has exited. */
  #ended = false;
  /** The worker is done with the attempt: no more heartbeats. */
  #closed = false;
  #beatFailing = false;
  readonly #giveUp = new AbortController();

  constructor(options: JobRunOptions) {
    this.#o = options;
    this.job = options.job;
    this.runId = options.job.run_id ?? jobRunId(options.job.id, options.job.attempt);
    this.#leaseMs = options.leaseSeconds * 1000;
    this.#beatMs = Math.min(this.#leaseMs / 3, MAX_BEAT_INTERVAL_MS);
    // The claim granted a lease just now: the worker's clock starts here.
    this.#armExpiry(Date.now());
    this.done = this.#run().finally(() => {
      this.#closed = true;
      this.#stopLoops();
      clearUnreported(this.#o.dataDir, this.runId);
    });
  }

  /** The worker is stopping: stop the process and report nothing; unregistering hands the attempt back. */
  handBack(): void {
    if (this.#handedBack) return;
    this.#handedBack = true;
    this.#giveUp.abort();
    this.#supervisor?.stop("SIGTERM");
  }

  async #run(): Promise<JobRunEnd> {
    this.#scheduleBeat();
    await this.#o.after;
    if (this.#leaseLost) return "lease_lost";
    if (this.#handedBack) return "handed_back";
    let supervisor: Supervisor;
    try {
      supervisor = await this.#start();
    } catch (error) {
      if (this.#leaseLost) return "lease_lost";
      if (this.#handedBack) return "handed_back";
      const message = error instanceof Error ? error.message : String(error);
      const hint = isRunctlError(error) && error.hint ? `\n${error.hint}` : "";
      this.#emit("error", `job ${this.job.id} could not start: ${message}`);
      return this.#report("fail", () =>
        this.#o.client.failJob(this.job.id, {
          ...this.#owner(),
          error_message: clipErrorMessage(`${message}${hint}`),
          reason: "error",
        }),
      );
    }
    this.#supervisor = supervisor;
    // A stop that came while the supervisor was starting.
    if (this.#leaseLost || this.#handedBack || this.#reason) supervisor.stop("SIGTERM");
    this.#upload = new RunDirSync(
      supervisor.runDir,
      new QueueSyncTarget({
        client: this.#o.client,
        runId: this.runId,
        workerId: this.#o.workerId,
        attempt: this.job.attempt,
      }),
      {
        onFileError: (path, error) =>
          this.#emit("error", `job ${this.job.id}: the server refused ${path}: ${error.message}`),
      },
    );
    this.#scheduleUpload();
    const timeout = this.job.timeout_seconds;
    if (timeout != null) {
      this.#deadline = setTimeout(() => this.#stopFor("timeout"), timeout * 1000);
    }
    const outcome = await supervisor.done;
    this.#ended = true;
    // Heartbeats go on until the report lands: the lease must outlive a slow final upload.
    clearTimeout(this.#uploadTimer);
    clearTimeout(this.#deadline);
    if (this.#leaseLost) return "lease_lost";
    if (this.#handedBack) {
      // What the attempt wrote is still worth having on the server; one try, no waiting.
      await this.#upload.sync().catch(() => undefined);
      return "handed_back";
    }
    const uploaded = await this.#report("upload", () => (this.#upload as RunDirSync).sync());
    // A file that could not be sent must not keep the job from being reported.
    if (uploaded === "lease_lost" || uploaded === "handed_back") return uploaded;
    return this.#complete(outcome);
  }

  async #start(): Promise<Supervisor> {
    const { job } = this;
    if (!isSafeRunId(this.runId)) throw new Error(`the server gave an unusable run id "${this.runId}"`);
    if (!isDirectory(job.workdir)) {
      throw new Error(
        `working directory ${job.workdir} does not exist on worker ${this.#o.workerId} (${this.#o.hostname})`,
      );
    }
    const env: Record<string, string | undefined> = {
      ...jobEnvFrom(this.#o.env),
      RUNCTL_JOB_ID: String(job.id),
      RUNCTL_JOB_ATTEMPT: String(job.attempt),
    };
    if (this.#o.cudaDevices !== undefined) env.CUDA_VISIBLE_DEVICES = this.#o.cudaDevices;
    const [target, ...args] = job.command_argv;
    const launch = resolveLaunchCommand({ target: target as string, args, cwd: job.workdir, env, raw: true });
    const runsDir = join(this.#o.dataDir, "runs");
    await this.#setAside(runDirOf(runsDir, this.runId));
    this.#recordUnreported(undefined);
    const spec = RunSpec.parse({
      v: 1,
      runId: this.runId,
      ...(job.name ? { name: job.name } : {}),
      ...(job.tags ? { tags: job.tags } : {}),
      ...(job.config ? { config: job.config } : {}),
      command: launch.argv,
      commandKind: launch.kind,
      cwd: job.workdir,
      runsDir,
      checkpointDir: join(this.#o.dataDir, "checkpoints", `job-${job.id}`),
      ...(this.#o.cudaDevices ? { gpus: this.#o.cudaDevices } : {}),
      graceMs: this.#o.graceMs,
    } satisfies RunSpecInput);
    return Supervisor.start(spec, {
      env,
      ...(this.#o.terminal ? { terminal: this.#o.terminal } : {}),
      onWarning: (message) => this.#emit("warning", `job ${job.id}: ${message}`),
      // Synchronous, the moment the process exits: a worker killed from here on leaves an ending
      // the next worker on this data dir reports (worker-recovery.ts).
      onRanksExited: (ended) =>
        this.#recordUnreported({
          status: ended.status,
          exit_code: ended.exitCode,
          error: ended.error,
          reason: this.#reason ?? (ended.status === "cancelled" ? "cancelled" : "exited"),
        }),
    });
  }

  #recordUnreported(ended: Unreported["ended"]): void {
    try {
      recordUnreported(this.#o.dataDir, {
        job_id: this.job.id,
        attempt: this.job.attempt,
        worker_id: this.#o.workerId,
        run_id: this.runId,
        ...(ended ? { ended } : {}),
      });
    } catch (error) {
      // Only recovery after a crash depends on it; the job itself goes on.
      this.#emit(
        "warning",
        `job ${this.job.id}: could not record its state for recovery: ${(error as Error).message}`,
      );
    }
  }

  /**
   * A directory of this name is left from an earlier server (job ids start
   * over with a new queue database); keep it under another name rather than
   * mixing two jobs' files.
   */
  async #setAside(runDir: string): Promise<void> {
    if (!isDirectory(runDir)) return;
    const aside = `${runDir}.replaced-${Date.now()}`;
    await rename(runDir, aside);
    this.#emit("warning", `job ${this.job.id}: an older ${this.runId} was in the way; moved it to ${aside}`);
  }

  async #complete(outcome: RunOutcome): Promise<JobRunEnd> {
    const reason: AttemptEnd = this.#reason ?? (outcome.status === "cancelled" ? "cancelled" : "exited");
    let errorMessage: string | undefined;
    if (reason === "timeout") errorMessage = `timed out after ${this.job.timeout_seconds} s`;
    else if (reason === "cancelled") errorMessage = "cancelled";
    else if (outcome.exitCode !== 0)
      errorMessage = await readMeta(outcome.runDir).then(
        (m) => m.error ?? undefined,
        () => undefined,
      );
    const end = await this.#report("complete", () =>
      this.#o.client.completeJob(this.job.id, {
        ...this.#owner(),
        exit_code: outcome.exitCode,
        run_id: this.runId,
        reason,
        ...(errorMessage ? { error_message: clipErrorMessage(errorMessage) } : {}),
      }),
    );
    if (end === "reported") {
      const what =
        reason === "exited" ? `exit code ${outcome.exitCode}` : `${reason}, exit code ${outcome.exitCode}`;
      this.#emit(reason === "cancelled" ? "cancelled" : "finished", `job ${this.job.id} ended: ${what}`, {
        exitCode: outcome.exitCode,
        reason,
      });
    }
    return end;
  }

  /**
   * Sends one report (or the final upload) until it lands: connection errors
   * and 5xx answers are resent (the server may be restarting; the attempt
   * fences the repeat), `lease_lost` ends the attempt's story here.
   */
  #report(what: string, send: () => Promise<unknown>): Promise<JobRunEnd> {
    return sendReport(send, {
      giveUp: this.#giveUp.signal,
      leaseLost: (error) =>
        this.#loseLease(`the server refused the ${what} of job ${this.job.id}: ${error.message}`),
      failed: (error, retrying, attempt) => {
        if (!retrying) this.#emit("error", `job ${this.job.id}: ${what} failed: ${error.message}`);
        else if (attempt === 0)
          this.#emit("error", `job ${this.job.id}: ${what} failed, retrying: ${error.message}`);
      },
    });
  }

  #owner(): { worker_id: string; attempt: number } {
    return { worker_id: this.#o.workerId, attempt: this.job.attempt };
  }

  #stopFor(reason: "cancelled" | "timeout"): void {
    if (this.#ended) return;
    this.#reason ??= reason;
    this.#supervisor?.stop("SIGTERM");
  }

  #loseLease(message: string): void {
    if (this.#leaseLost) return;
    this.#leaseLost = true;
    this.#giveUp.abort();
    this.#stopLoops();
    if (!this.#ended) this.#supervisor?.stop("SIGTERM");
    this.#emit("lease_lost", message);
  }

  // ---------------------------------------------------------------- heartbeat

  #scheduleBeat(): void {
    if (this.#closed || this.#leaseLost) return;
    this.#beatTimer = setTimeout(() => void this.#beat(), this.#beatMs);
  }

  /**
   * The server's lease runs from when it received the last renewal, so from
   * no earlier than when it was sent: at sentAt + lease it may have been
   * requeued, and a copy still running then could overlap the next attempt.
   */
  #armExpiry(sentAt: number): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = setTimeout(
      () => {
        // A process that has exited has nothing left to stop: its report is still sent, and the
        // server's fencing decides (a restarted server extends leases, so it may still be accepted).
        if (this.#ended || this.#closed || this.#leaseLost) return;
        this.#loseLease(
          `job ${this.job.id}: no heartbeat answered for ${this.#o.leaseSeconds} s, so the lease has expired`,
        );
      },
      Math.max(0, sentAt + this.#leaseMs - Date.now()),
    );
  }

  async #beat(): Promise<void> {
    if (this.#closed || this.#leaseLost) return;
    const sentAt = Date.now();
    try {
      // Bounded by the beat interval and not resent: the next beat is the resend.
      const res = await this.#o.client.heartbeat(
        this.job.id,
        { ...this.#owner(), lease_seconds: this.#o.leaseSeconds },
        { timeoutMs: this.#beatMs, retries: 0 },
      );
      if (!res.success) {
        this.#loseLease(`the server refused the heartbeat of job ${this.job.id}`);
        return;
      }
      this.#armExpiry(sentAt);
      if (this.#beatFailing) this.#emit("warning", `job ${this.job.id}: heartbeats answered again`);
      this.#beatFailing = false;
      if (res.cancel_requested && !this.#reason && !this.#ended) {
        this.#emit("warning", `job ${this.job.id}: cancel requested, stopping it`);
        this.#stopFor("cancelled");
      }
    } catch (error) {
      if (isLeaseLost(error)) {
        this.#loseLease(`job ${this.job.id} attempt ${this.job.attempt}: ${(error as Error).message}`);
        return;
      }
      if (!this.#beatFailing)
        this.#emit("error", `job ${this.job.id}: heartbeat failed: ${(error as Error).message}`);
      this.#beatFailing = true;
    }
    this.#scheduleBeat();
  }

  // ---------------------------------------------------------------- uploads

  #scheduleUpload(): void {
    if (this.#ended || this.#leaseLost) return;
    this.#uploadTimer = setTimeout(() => void this.#uploadOnce(), this.#o.uploadIntervalMs);
  }

  async #uploadOnce(): Promise<void> {
    try {
      await this.#upload?.sync();
    } catch (error) {
      if (isLeaseLost(error)) {
        this.#loseLease(`the server refused an upload of job ${this.job.id}: ${(error as Error).message}`);
        return;
      }
      // Connection trouble shows in the heartbeats; the next pass resends.
    }
    this.#scheduleUpload();
  }

  #stopLoops(): void {
    clearTimeout(this.#expiryTimer);
    clearTimeout(this.#beatTimer);
    clearTimeout(this.#uploadTimer);
    clearTimeout(this.#deadline);
  }

  #emit(type: WorkerEvent["type"], message: string, extra: Partial<WorkerEvent> = {}): void {
    this.#o.emit({ type, message, job: this.job, runId: this.runId, ...extra });
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
