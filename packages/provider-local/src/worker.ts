/**
 * A queue worker (`runctl worker`, docs/job-queue.md "Workers"): registers
 * with the job server, claims jobs while it has free slots and GPUs, runs
 * each under its own supervisor (worker-job.ts) and gives up cleanly:
 * `drain()` lets the running jobs finish, `stop()` stops them and hands
 * their attempts back to the queue.
 */
import { randomBytes } from "node:crypto";
import { hostname as osHostname } from "node:os";
import { resolve } from "node:path";
import type { Writable } from "node:stream";
import { type ArtifactStore, isRunctlError, parseAt, UserError } from "@runctl/core";
import {
  acquireLock,
  DEFAULT_LEASE_SECONDS,
  type DirLock,
  type JobResponse,
  LeaseSeconds,
  type QueueClient,
  QueueServerError,
} from "@runctl/tracker";
import { z } from "zod";
import { RunnerExecutor } from "./runner-executor.ts";
import { RunnerTask } from "./runner-task.ts";
import type { WorkerEvent } from "./worker-events.ts";
import { JobRun } from "./worker-job.ts";
import { reportUnreported } from "./worker-recovery.ts";

export interface QueueWorkerOptions {
  client: QueueClient;
  /** Runs go to `<dataDir>/runs/<run_id>`, checkpoints to `<dataDir>/checkpoints/job-<id>`. */
  dataDir: string;
  /** Default `<hostname>-<pid>-<6 hex>`. */
  workerId?: string;
  hostname?: string;
  /** GPU indices this worker hands out; a job gets `gpus` of them as CUDA_VISIBLE_DEVICES. */
  gpus?: readonly number[];
  /** Jobs at once. Default 1. */
  maxJobs?: number;
  /** Default 60; renewed every third of it (at most 5 s apart). */
  leaseSeconds?: number;
  /** Wait between claims when the queue had nothing. Default 1000. */
  pollMs?: number;
  /** Upload new bytes of the run directories this often. Default 1000. */
  uploadIntervalMs?: number;
  /** SIGKILL this long after SIGTERM. Default 10 s. */
  graceMs?: number;
  /** The jobs' base environment. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Drain and exit once a claim finds nothing and no job is running (`runctl worker --exit-when-idle`). */
  exitWhenIdle?: boolean;
  /** Echo the jobs' output here; default: only to their output.log. */
  terminal?: { stdout: Writable; stderr: Writable };
  onEvent?: (event: WorkerEvent) => void;
  /**
   * Runner tasks (docs/runner.md), claimed beside jobs unless `false`: the
   * interpreter of the warm service processes (default `python3`), how to
   * open a runner's store (file:// without it), and how often to look for
   * closed runners whose processes can go (default 10 s).
   */
  runner?:
    | false
    | { python?: string; openStore?: (url: string) => Promise<ArtifactStore>; reapIntervalMs?: number };
}

type Attempt = JobRun | RunnerTask;

const Options = z.object({
  dataDir: z.string().min(1),
  workerId: z.string().min(1).max(200).optional(),
  gpus: z.array(z.number().int().min(0)).max(64).optional(),
  maxJobs: z.number().int().min(1).max(256).optional(),
  leaseSeconds: LeaseSeconds.optional(),
  pollMs: z.number().min(0).optional(),
  uploadIntervalMs: z.number().positive().optional(),
  graceMs: z.number().min(0).optional(),
  exitWhenIdle: z.boolean().optional(),
});

type State = "new" | "running" | "draining" | "stopping" | "done";

export class QueueWorker {
  readonly id: string;
  readonly hostname: string;

  readonly #o: QueueWorkerOptions;
  readonly #client: QueueClient;
  readonly #dataDir: string;
  readonly #gpus: readonly number[];
  readonly #maxJobs: number;
  readonly #leaseSeconds: number;
  readonly #pollMs: number;
  /** Running attempts, and the GPUs each was given. */
  readonly #jobs = new Map<Attempt, readonly number[]>();
  readonly #runner: RunnerExecutor | undefined;
  #reapTimer: NodeJS.Timeout | undefined;
  #runnerClaims = true;
  #state: State = "new";
  #done: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #kicked = false;
  #lock: DirLock | undefined;

  constructor(options: QueueWorkerOptions) {
    parseAt(Options, options, { what: "worker options", kind: "user", code: "invalid_worker_options" });
    this.#o = options;
    this.#client = options.client;
    this.#dataDir = resolve(options.dataDir);
    this.hostname = options.hostname ?? osHostname();
    this.id = options.workerId ?? defaultWorkerId(this.hostname);
    this.#gpus = [...new Set(options.gpus ?? [])];
    this.#maxJobs = options.maxJobs ?? 1;
    this.#leaseSeconds = options.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
    this.#pollMs = options.pollMs ?? 1000;
    if (options.runner !== false) {
      this.#runner = new RunnerExecutor({
        client: this.#client,
        dataDir: this.#dataDir,
        ...(options.runner?.python ? { python: options.runner.python } : {}),
        ...(options.runner?.openStore ? { openStore: options.runner.openStore } : {}),
        maxProcesses: this.#maxJobs,
        env: options.env ?? process.env,
        graceMs: options.graceMs ?? 10_000,
      });
    }
  }

  /** Jobs running now. */
  get running(): JobResponse[] {
    return [...this.#jobs.keys()].map((run) => run.job);
  }

  /**
   * Registers and starts claiming. Rejects when the server cannot be reached
   * or refuses the worker; afterwards trouble is reported through `onEvent`
   * and the worker keeps trying (the server may be restarting).
   */
  async start(): Promise<void> {
    if (this.#state !== "new") {
      throw new UserError(`Worker ${this.id} was already started`, {
        code: "worker_started",
        hint: "Create a new QueueWorker to start again.",
      });
    }
    this.#state = "running";
    // Two workers on one data dir would report each other's leftovers and fight over checkpoint locks.
    try {
      this.#lock = acquireLock(this.#dataDir, { runId: `worker ${this.id}` });
    } catch (error) {
      this.#state = "done";
      throw new UserError(`Worker data directory ${this.#dataDir} is in use by another worker`, {
        code: "worker_data_dir_in_use",
        hint: "Give each worker on a machine its own --data-dir.",
        cause: error,
        ...(isRunctlError(error) && error.details ? { details: error.details } : {}),
      });
    }
    try {
      await this.#client.registerWorker({
        worker_id: this.id,
        hostname: this.hostname,
        gpu_ids: [...this.#gpus],
        max_jobs: this.#maxJobs,
        pid: process.pid,
      });
    } catch (error) {
      this.#state = "done";
      this.#lock.release();
      throw error;
    }
    this.#emit({ type: "registered", message: `worker ${this.id} registered with ${this.#client.url}` });
    await reportUnreported(this.#client, this.#dataDir, (event) => this.#emit(event));
    this.#scheduleReap();
    this.#done = this.#run();
  }

  /** Resolves when the worker has stopped and unregistered (after drain() or stop()). */
  get done(): Promise<void> {
    return this.#done ?? Promise.resolve();
  }

  /** Stops claiming; resolves when the running jobs have finished and the worker has unregistered. */
  drain(): Promise<void> {
    if (this.#state === "running") this.#state = "draining";
    this.#kick();
    return this.done;
  }

  /**
   * Stops the running jobs (SIGTERM, SIGKILL after the grace period) without
   * reporting them; unregistering then hands their attempts back to the
   * queue without counting a retry.
   */
  stop(): Promise<void> {
    if (this.#state === "running" || this.#state === "draining") this.#state = "stopping";
    for (const run of this.#jobs.keys()) run.handBack();
    this.#kick();
    return this.done;
  }

  async #run(): Promise<void> {
    await this.#claimLoop();
    while (this.#jobs.size > 0) await Promise.all([...this.#jobs.keys()].map((run) => run.done));
    clearTimeout(this.#reapTimer);
    await this.#runner?.close();
    try {
      await this.#client.unregisterWorker(this.id);
      this.#emit({ type: "unregistered", message: `worker ${this.id} unregistered` });
    } catch (error) {
      this.#emit({
        type: "error",
        message: `worker ${this.id} could not unregister (its leases will expire instead): ${errorText(error)}`,
      });
    }
    this.#state = "done";
    this.#lock?.release();
  }

  async #claimLoop(): Promise<void> {
    let lastError: string | undefined;
    while (this.#state === "running") {
      let claimed = false;
      if (this.#jobs.size < this.#maxJobs) {
        try {
          const job = await this.#client.claimJob({
            worker_id: this.id,
            free_gpus: this.#freeGpus(),
            lease_seconds: this.#leaseSeconds,
            ...(this.#runner && this.#runnerClaims ? { kinds: ["job", "runner_task"] } : {}),
          });
          lastError = undefined;
          if (!job && this.#jobs.size === 0 && this.#o.exitWhenIdle) {
            this.#state = "draining";
            break;
          }
          // Claimed while stop() was called: unregistering hands it back.
          if (job && !this.#stopping()) {
            this.#launch(job);
            claimed = true;
          }
        } catch (error) {
          if (this.#runnerClaims && error instanceof QueueServerError && error.code === "invalid_body") {
            // A server from before runner tasks refuses the `kinds` field: claim jobs only.
            this.#runnerClaims = false;
            this.#emit({
              type: "warning",
              message: `the server at ${this.#client.url} does not know runner tasks (upgrade it for runctl.Runner); claiming jobs only`,
            });
            continue;
          }
          const text = errorText(error);
          // Once per distinct trouble, not once per poll.
          if (text !== lastError) this.#emit({ type: "error", message: `claim failed: ${text}` });
          lastError = text;
        }
      }
      // A busy queue is drained without pauses: claim again at once while slots are free.
      if (claimed && this.#jobs.size < this.#maxJobs) continue;
      await this.#idle(this.#pollMs);
    }
  }

  #launch(job: JobResponse): void {
    if (job.kind === "runner_task") {
      this.#launchTask(job);
      return;
    }
    const gpus = this.#assignGpus(job);
    // An older copy of the same job (its lease lost) may still be stopping: it holds the checkpoint lock.
    const older = [...this.#jobs.keys()].filter((run) => run.job.id === job.id).map((run) => run.done);
    const run = new JobRun({
      client: this.#client,
      workerId: this.id,
      hostname: this.hostname,
      job,
      dataDir: this.#dataDir,
      leaseSeconds: this.#leaseSeconds,
      graceMs: this.#o.graceMs ?? 10_000,
      uploadIntervalMs: this.#o.uploadIntervalMs ?? 1000,
      env: this.#o.env ?? process.env,
      // A worker that hands out GPUs hides them from jobs that asked for none.
      cudaDevices: this.#gpus.length > 0 ? gpus.join(",") : undefined,
      terminal: this.#o.terminal,
      after: older.length > 0 ? Promise.allSettled(older) : undefined,
      emit: (event) => this.#emit(event),
    });
    this.#jobs.set(run, gpus);
    const where = gpus.length > 0 ? ` on GPU ${gpus.join(",")}` : "";
    this.#emit({
      type: "claimed",
      message: `job ${job.id} attempt ${job.attempt} claimed${where}: ${job.command_argv.join(" ")}`,
      job,
      runId: run.runId,
    });
    void run.done.then(
      () => this.#release(run),
      (error: unknown) => {
        this.#emit({ type: "error", message: `job ${job.id}: ${errorText(error)}`, job, runId: run.runId });
        this.#release(run);
      },
    );
    if (this.#stopping()) run.handBack();
  }

  #launchTask(job: JobResponse): void {
    const gpus = this.#assignGpus(job);
    const task = new RunnerTask({
      client: this.#client,
      executor: this.#runner as RunnerExecutor,
      workerId: this.id,
      job,
      leaseSeconds: this.#leaseSeconds,
      // As for jobs: a worker that hands out GPUs hides them from tasks that asked for none.
      cudaDevices: this.#gpus.length > 0 ? gpus.join(",") : undefined,
      emit: (event) => this.#emit(event),
    });
    this.#jobs.set(task, gpus);
    this.#emit({
      type: "claimed",
      message: `task ${job.id} attempt ${job.attempt} claimed: ${job.name ?? ""}`,
      job,
    });
    void task.done.then(
      () => this.#release(task),
      (error: unknown) => {
        this.#emit({ type: "error", message: `task ${job.id}: ${errorText(error)}`, job });
        this.#release(task);
      },
    );
    if (this.#stopping()) task.handBack();
  }

  /** Looks for closed runners now and then, to stop their warm processes. */
  #scheduleReap(): void {
    const runner = this.#runner;
    if (!runner || this.#o.runner === false) return;
    const interval = this.#o.runner?.reapIntervalMs ?? 10_000;
    this.#reapTimer = setTimeout(() => {
      void runner.reap().finally(() => {
        if (this.#state === "running" || this.#state === "draining") this.#scheduleReap();
      });
    }, interval);
    this.#reapTimer.unref();
  }

  // A method, not an inline comparison: the state changes while the claim loop awaits.
  #stopping(): boolean {
    return this.#state === "stopping";
  }

  #release(run: Attempt): void {
    this.#jobs.delete(run);
    this.#kick();
  }

  /** The server's choice when it made one from our free set, else the lowest free indices. */
  #assignGpus(job: JobResponse): number[] {
    const free = this.#freeGpus();
    const given = job.assigned_gpus;
    if (given && given.length === job.gpus && given.every((g) => free.includes(g))) return [...given];
    return free.slice(0, job.gpus);
  }

  #freeGpus(): number[] {
    const busy = new Set([...this.#jobs.values()].flat());
    return this.#gpus.filter((g) => !busy.has(g));
  }

  #idle(ms: number): Promise<void> {
    if (this.#kicked) {
      this.#kicked = false;
      return Promise.resolve();
    }
    return new Promise((resolveIdle) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolveIdle();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolveIdle();
      };
    });
  }

  /** A slot freed or the state changed: the claim loop looks again now. */
  #kick(): void {
    if (this.#wake) this.#wake();
    else this.#kicked = true;
  }

  #emit(event: WorkerEvent): void {
    try {
      this.#o.onEvent?.(event);
    } catch {
      // A broken listener must not take the worker (and its jobs) down.
    }
  }
}

function defaultWorkerId(hostname: string): string {
  const host = hostname.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "") || "worker";
  return `${host}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
