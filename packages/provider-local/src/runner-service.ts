/**
 * Warm Python processes for Runner services on a queue worker (docs/runner.md,
 * "Workers"). Each process is `python -m runctl.runner._executor` in the
 * service's unpacked bundle: it imports the service's target once and then
 * runs one call at a time, so imports are paid once per process, not per
 * call. A stateless service gets up to `maxProcesses` of them; a stateful one
 * exactly one, and once that process has died its state is gone: later calls
 * fail rather than run against a fresh copy.
 *
 * Its stdin closing is the executor's signal to exit, so a SIGKILLed worker
 * leaves no idle executor behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { z } from "zod";

export interface ExecutorSpec {
  python: string;
  /** The unpacked bundle: the process's working directory and first on its PYTHONPATH. */
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  storeUrl: string;
  /** `runners/<name>/`. */
  prefix: string;
  /** Key (under the prefix) of the pickled function, class or instance. */
  target: string;
  stateful: boolean;
  /** The executors' stderr (what the user's code prints) is appended here. */
  logFile: string;
  graceMs: number;
}

/** What one call came to. */
export type CallOutcome = { ok: true } | { ok: false; error: string; cancelled?: boolean };

const Ready = z.object({ ready: z.boolean(), error: z.string().optional(), pid: z.number().optional() });
const Answer = z.object({ id: z.number().int(), ok: z.boolean(), error: z.string().optional() });

const STDERR_TAIL = 4096;

class ExecutorProcess {
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  busy = false;
  used = false;
  #alive = true;
  #child: ChildProcess;
  #pending: { id: number; resolve: (answer: CallOutcome) => void } | undefined;
  #stderrTail = "";
  #exitText = "";

  constructor(spec: ExecutorSpec, log: WriteStream) {
    this.#child = spawn(spec.python, ["-m", "runctl.runner._executor"], {
      cwd: spec.cwd,
      env: {
        ...spec.env,
        RUNCTL_RUNNER_STORE: spec.storeUrl,
        RUNCTL_RUNNER_PREFIX: spec.prefix,
        RUNCTL_RUNNER_TARGET: spec.target,
        RUNCTL_RUNNER_STATEFUL: spec.stateful ? "1" : "0",
        PYTHONUNBUFFERED: "1",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.#child.stderr?.on("data", (chunk: Buffer) => {
      log.write(chunk);
      this.#stderrTail = (this.#stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL);
    });
    // A write to a process that just died must not take the worker down; the exit handler reports it.
    this.#child.stdin?.on("error", () => undefined);
    let onReady: () => void = () => undefined;
    let onFailed: (error: Error) => void = () => undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFailed = reject;
    });
    this.ready.catch(() => undefined);
    let readySeen = false;
    const lines = createInterface({ input: this.#child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        return;
      }
      if (!readySeen) {
        const ready = Ready.safeParse(value);
        if (!ready.success) return;
        readySeen = true;
        if (ready.data.ready) onReady();
        else onFailed(new Error(`the service could not be loaded: ${ready.data.error ?? "unknown error"}`));
        return;
      }
      const answer = Answer.safeParse(value);
      if (!answer.success || this.#pending === undefined || answer.data.id !== this.#pending.id) return;
      const { resolve } = this.#pending;
      this.#pending = undefined;
      resolve(answer.data.ok ? { ok: true } : { ok: false, error: answer.data.error ?? "failed" });
    });
    this.exited = new Promise<void>((resolve) => {
      const done = (text: string) => {
        if (!this.#alive) return;
        this.#alive = false;
        this.#exitText = text;
        const tail = this.#stderrTail.trim();
        const why = `the service's Python process ${text}${tail ? `; its last output:\n${tail}` : ""}`;
        onFailed(new Error(why));
        this.#pending?.resolve({ ok: false, error: why });
        this.#pending = undefined;
        resolve();
      };
      this.#child.on("error", (error) => done(`could not start (${spec.python}): ${error.message}`));
      this.#child.on("exit", (code, signal) =>
        done(signal ? `was killed by ${signal}` : `exited with code ${code}`),
      );
    });
  }

  get alive(): boolean {
    return this.#alive;
  }

  get exitText(): string {
    return this.#exitText;
  }

  call(id: number, method: string, payload: unknown): Promise<CallOutcome> {
    if (!this.#alive)
      return Promise.resolve({ ok: false, error: `the service's Python process ${this.#exitText}` });
    this.used = true;
    return new Promise<CallOutcome>((resolve) => {
      this.#pending = { id, resolve };
      this.#child.stdin?.write(`${JSON.stringify({ id, method, payload })}\n`);
    });
  }

  /** SIGTERM, SIGKILL after the grace period; resolves once it has exited. */
  async kill(graceMs: number): Promise<void> {
    if (!this.#alive) return;
    this.#child.stdin?.end();
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The warm processes of one service on this worker. */
export class ServicePool {
  readonly spec: ExecutorSpec;
  readonly #maxProcesses: number;
  readonly #processes: ExecutorProcess[] = [];
  /** Calls waiting for a process, first come first served: a freed process goes straight to the first. */
  readonly #waiting: Array<(proc: ExecutorProcess | undefined) => void> = [];
  readonly #log: WriteStream;
  /** A stateful service whose process died: its state is gone. */
  #lost: string | undefined;
  #closed = false;

  constructor(spec: ExecutorSpec, maxProcesses: number) {
    this.spec = spec;
    this.#maxProcesses = spec.stateful ? 1 : Math.max(1, maxProcesses);
    mkdirSync(dirname(spec.logFile), { recursive: true });
    this.#log = createWriteStream(spec.logFile, { flags: "a" });
    this.#log.on("error", () => undefined);
  }

  get processCount(): number {
    return this.#processes.filter((p) => p.alive).length;
  }

  /** Runs one call; `signal` (cancel, timeout) stops the process running it. */
  async call(id: number, method: string, payload: unknown, signal: AbortSignal): Promise<CallOutcome> {
    const proc = await this.#acquire(signal);
    if ("error" in proc) return proc;
    try {
      try {
        await proc.ready;
      } catch (error) {
        return { ok: false, error: (error as Error).message };
      }
      if (signal.aborted) return { ok: false, error: "cancelled before it started", cancelled: true };
      const onAbort = () => void proc.kill(this.spec.graceMs);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        const outcome = await proc.call(id, method, payload);
        if (signal.aborted) return { ok: false, error: "stopped: cancelled or timed out", cancelled: true };
        return outcome;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    } finally {
      if (!proc.alive && this.spec.stateful && proc.used) {
        this.#lost ??= `the stateful instance's process ${proc.exitText}; its state is gone`;
      }
      this.#release(proc);
    }
  }

  /**
   * Hands a live process to the first waiting call without marking it idle in
   * between, so a call arriving meanwhile cannot overtake: a stateful
   * instance sees its calls in the order they were claimed.
   */
  #release(proc: ExecutorProcess): void {
    const next = this.#waiting.shift();
    if (next === undefined) {
      proc.busy = false;
      return;
    }
    if (proc.alive) {
      next(proc);
    } else {
      proc.busy = false;
      next(undefined);
    }
  }

  async #acquire(
    signal: AbortSignal,
  ): Promise<ExecutorProcess | { ok: false; error: string; cancelled?: boolean }> {
    // Woken without a process (the one freed had died): take or start one now, ahead of later waiters.
    let woken = false;
    for (;;) {
      if (this.#closed) return { ok: false, error: "the service was stopped on this worker" };
      if (this.#lost) return { ok: false, error: this.#lost };
      if (signal.aborted) return { ok: false, error: "cancelled before it started", cancelled: true };
      for (let i = this.#processes.length - 1; i >= 0; i--) {
        if (!(this.#processes[i] as ExecutorProcess).alive) this.#processes.splice(i, 1);
      }
      // Behind earlier waiters, a call waits even if a process looks idle (it is being handed over).
      if (woken || this.#waiting.length === 0) {
        const idle = this.#processes.find((p) => !p.busy);
        if (idle) {
          idle.busy = true;
          return idle;
        }
        if (this.#processes.length < this.#maxProcesses) {
          const proc = new ExecutorProcess(this.spec, this.#log);
          proc.busy = true;
          this.#processes.push(proc);
          return proc;
        }
      }
      const given = await new Promise<ExecutorProcess | undefined>((resolve) => {
        const take = (proc: ExecutorProcess | undefined) => {
          signal.removeEventListener("abort", onAbort);
          resolve(proc);
        };
        const onAbort = () => {
          const at = this.#waiting.indexOf(take);
          if (at >= 0) this.#waiting.splice(at, 1);
          resolve(undefined);
        };
        this.#waiting.push(take);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (given !== undefined) {
        if (signal.aborted || this.#closed) {
          this.#release(given);
          continue;
        }
        return given;
      }
      woken = true;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#waiting.splice(0)) wake(undefined);
    await Promise.all(this.#processes.map((p) => p.kill(this.spec.graceMs)));
    this.#log.end();
  }
}
