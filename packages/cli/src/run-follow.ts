/**
 * Following a run in the foreground: the supervisor echoes the ranks' output
 * itself, so this only forwards the terminal's signals to it and waits for the
 * run's end. A run supervised in this process (`runctl local`) is followed
 * through its handle; one whose agent is a process of its own, through the
 * agent's pid and meta.json, which the agent finishes just before it exits.
 */
import { watch } from "node:fs";
import { type RunStatus, TERMINAL_STATUSES } from "@runctl/core";
import { isPidAlive, readMeta } from "@runctl/tracker";

export interface RunEnd {
  runId: string;
  runDir: string;
  status: RunStatus | "lost";
  exitCode: number;
}

/** How often the agent's pid is checked, besides file events. */
const CHECK_MS = 100;

/** A run supervised in this process: provider-local's `AttachedRun`. */
export interface InProcessRun {
  runId: string;
  runDir: string;
  done: Promise<{ status: RunStatus; exitCode: number }>;
  stop(signal: NodeJS.Signals): void;
}

export class RunFollower {
  #pid: number | undefined;
  #local: InProcessRun | undefined;
  readonly #pending: NodeJS.Signals[] = [];

  /** Sends a signal to the agent, or keeps it until the agent is known. */
  forward(signal: NodeJS.Signals): void {
    if (this.#local) this.#local.stop(signal);
    else if (this.#pid === undefined) this.#pending.push(signal);
    else send(this.#pid, signal);
  }

  /** Waits for a run supervised in this process; signals that came before it existed reach it now. */
  async followHere(run: InProcessRun): Promise<RunEnd> {
    this.#local = run;
    for (const signal of this.#pending.splice(0)) run.stop(signal);
    const { status, exitCode } = await run.done;
    return { runId: run.runId, runDir: run.runDir, status, exitCode };
  }

  async follow(runDir: string): Promise<RunEnd> {
    const started = await readMeta(runDir);
    const pid = started.pid;
    if (pid === undefined) throw new Error(`run ${started.id} has no agent pid in meta.json`);
    this.#pid = pid;
    for (const signal of this.#pending.splice(0)) send(pid, signal);
    await new Promise<void>((resolveEnd) => {
      let done = false;
      const check = () => {
        if (done) return;
        if (isPidAlive(pid)) return;
        done = true;
        watcher?.close();
        clearInterval(timer);
        resolveEnd();
      };
      // meta.json is replaced by rename when the run ends: that is the event to wake up for.
      let watcher: ReturnType<typeof watch> | undefined;
      try {
        watcher = watch(runDir, check);
      } catch {
        watcher = undefined;
      }
      const timer = setInterval(check, CHECK_MS);
      check();
    });
    const meta = await readMeta(runDir);
    if (TERMINAL_STATUSES.has(meta.status)) {
      return { runId: meta.id, runDir, status: meta.status, exitCode: meta.exit_code ?? 1 };
    }
    return { runId: meta.id, runDir, status: "lost", exitCode: 1 };
  }
}

function send(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // the agent is already gone: follow() finds out
  }
}
