/**
 * Foreground runs supervised in the launching process. A foreground
 * `runctl local` used to start the agent as a second Node process and follow
 * it through meta.json; the supervisor is the same code either way, and
 * running it here saves that process's start (Node and the agent's modules,
 * about half of what runctl added to a short run). The launcher finds the run
 * it just launched through the registry by its id, to forward signals to it
 * and to wait for its end.
 */
import type { RunOutcome } from "@runctl/agent/supervisor";

export interface AttachedRun {
  runId: string;
  runDir: string;
  /** Resolves once every rank has exited and meta.json is final. */
  done: Promise<RunOutcome>;
  /** Stops the run as the agent does on SIGINT/SIGTERM (a second call means SIGKILL now). */
  stop(signal: NodeJS.Signals): void;
}

const attached = new Map<string, AttachedRun>();

export function registerAttachedRun(run: AttachedRun): void {
  attached.set(run.runId, run);
  void run.done.finally(() => attached.delete(run.runId));
}

/** The foreground run `runId` supervised by this process, while it runs. */
export function attachedRun(runId: string): AttachedRun | undefined {
  return attached.get(runId);
}
