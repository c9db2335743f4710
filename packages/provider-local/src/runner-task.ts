/**
 * One claimed runner task on a queue worker: the call runs in the service's
 * warm process (runner-executor.ts), the lease is renewed by heartbeat (which
 * also carries cancellation), a timeout stops it as for jobs, and the end is
 * reported once, fenced by the attempt. The result or the exception itself
 * is in the store already when the report is sent; the report only says
 * which of the two the client should read.
 */
import type { JobResponse, QueueClient } from "@runctl/tracker";
import { jobRunId } from "@runctl/tracker";
import { clipErrorMessage, isLeaseLost, type JobRunEnd, sendReport } from "./queue-reports.ts";
import type { RunnerExecutor } from "./runner-executor.ts";
import type { WorkerEvent } from "./worker-events.ts";

export interface RunnerTaskOptions {
  client: QueueClient;
  executor: RunnerExecutor;
  workerId: string;
  job: JobResponse;
  leaseSeconds: number;
  /** `CUDA_VISIBLE_DEVICES` for the task's process ("" hides every GPU); undefined leaves the worker's own. */
  cudaDevices?: string | undefined;
  emit: (event: WorkerEvent) => void;
}

const MAX_BEAT_INTERVAL_MS = 5_000;

export class RunnerTask {
  readonly job: JobResponse;
  readonly runId: string;
  readonly done: Promise<JobRunEnd>;
  readonly #o: RunnerTaskOptions;
  readonly #stop = new AbortController();
  readonly #giveUp = new AbortController();
  #reason: "cancelled" | "timeout" | undefined;
  #leaseLost = false;
  #handedBack = false;
  #closed = false;
  #beatTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  readonly #beatMs: number;

  constructor(options: RunnerTaskOptions) {
    this.#o = options;
    this.job = options.job;
    this.runId = options.job.run_id ?? jobRunId(options.job.id, options.job.attempt);
    this.#beatMs = Math.min((options.leaseSeconds * 1000) / 3, MAX_BEAT_INTERVAL_MS);
    this.#armExpiry(Date.now());
    this.done = this.#run().finally(() => {
      this.#closed = true;
      clearTimeout(this.#beatTimer);
      clearTimeout(this.#expiryTimer);
      clearTimeout(this.#deadline);
    });
  }

  /** The worker is stopping: stop the call and report nothing; unregistering hands the attempt back. */
  handBack(): void {
    if (this.#handedBack) return;
    this.#handedBack = true;
    this.#giveUp.abort();
    this.#stop.abort();
  }

  async #run(): Promise<JobRunEnd> {
    this.#scheduleBeat();
    const timeout = this.job.timeout_seconds;
    if (timeout != null) this.#deadline = setTimeout(() => this.#stopFor("timeout"), timeout * 1000);
    const outcome = await this.#o.executor.execute(this.job, this.#stop.signal, this.#o.cudaDevices);
    clearTimeout(this.#deadline);
    if (this.#leaseLost) return "lease_lost";
    if (this.#handedBack) return "handed_back";
    const send = outcome.ok
      ? () => this.#o.client.completeJob(this.job.id, { ...this.#owner(), exit_code: 0, run_id: this.runId })
      : this.#reason !== undefined
        ? () =>
            this.#o.client.failJob(this.job.id, {
              ...this.#owner(),
              error_message:
                this.#reason === "timeout" ? `timed out after ${this.job.timeout_seconds} s` : "cancelled",
              reason: this.#reason,
            })
        : () =>
            this.#o.client.completeJob(this.job.id, {
              ...this.#owner(),
              exit_code: 1,
              run_id: this.runId,
              error_message: clipErrorMessage(outcome.error),
            });
    const end = await this.#report(send);
    if (end === "reported") {
      this.#emit(
        this.#reason === "cancelled" ? "cancelled" : "finished",
        `task ${this.job.id} (${this.job.name ?? ""}) ${outcome.ok ? "completed" : `failed: ${firstLine(outcome.error)}`}`,
        { exitCode: outcome.ok ? 0 : 1, reason: this.#reason ?? "exited" },
      );
    }
    return end;
  }

  #report(send: () => Promise<unknown>): Promise<JobRunEnd> {
    return sendReport(send, {
      giveUp: this.#giveUp.signal,
      leaseLost: (error) =>
        this.#loseLease(`the server refused the report of task ${this.job.id}: ${error.message}`),
      failed: (error, retrying) => {
        if (!retrying) this.#emit("error", `task ${this.job.id}: report failed: ${error.message}`);
      },
    });
  }

  #owner(): { worker_id: string; attempt: number } {
    return { worker_id: this.#o.workerId, attempt: this.job.attempt };
  }

  #stopFor(reason: "cancelled" | "timeout"): void {
    this.#reason ??= reason;
    this.#stop.abort();
  }

  #loseLease(message: string): void {
    if (this.#leaseLost) return;
    this.#leaseLost = true;
    this.#giveUp.abort();
    this.#stop.abort();
    this.#emit("lease_lost", message);
  }

  #armExpiry(sentAt: number): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = setTimeout(
      () => {
        if (this.#closed || this.#leaseLost) return;
        this.#loseLease(`task ${this.job.id}: no heartbeat answered for ${this.#o.leaseSeconds} s`);
      },
      Math.max(0, sentAt + this.#o.leaseSeconds * 1000 - Date.now()),
    );
  }

  #scheduleBeat(): void {
    if (this.#closed || this.#leaseLost) return;
    this.#beatTimer = setTimeout(() => void this.#beat(), this.#beatMs);
  }

  async #beat(): Promise<void> {
    if (this.#closed || this.#leaseLost) return;
    const sentAt = Date.now();
    try {
      const res = await this.#o.client.heartbeat(
        this.job.id,
        { ...this.#owner(), lease_seconds: this.#o.leaseSeconds },
        { timeoutMs: this.#beatMs, retries: 0 },
      );
      this.#armExpiry(sentAt);
      if (res.cancel_requested && this.#reason === undefined) this.#stopFor("cancelled");
    } catch (error) {
      if (isLeaseLost(error)) {
        this.#loseLease(`task ${this.job.id} attempt ${this.job.attempt}: ${(error as Error).message}`);
        return;
      }
    }
    this.#scheduleBeat();
  }

  #emit(type: WorkerEvent["type"], message: string, extra: Partial<WorkerEvent> = {}): void {
    this.#o.emit({ type, message, job: this.job, runId: this.runId, ...extra });
  }
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0] ?? "";
}
