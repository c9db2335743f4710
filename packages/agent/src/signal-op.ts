/**
 * The supervisor's own control op: `{"op": "signal", "args": ["SIGUSR1"]}` in
 * the run's queue (`runctl ctl <run> --signal SIGUSR1`). Ranks skip these lines;
 * the supervisor delivers the signal to every rank's process group and acks
 * with rank -1. SIGINT and SIGTERM stop the run as `runctl stop` does.
 */
// The queue alone: the package entry also brings the NATS client, which a run without NATS never needs.
import { FileQueue } from "@runctl/control/queue";
import type { Ack, ControlCursor } from "@runctl/core";

export const FORWARDABLE_SIGNALS: ReadonlySet<string> = new Set([
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGUSR1",
  "SIGUSR2",
  "SIGCONT",
  "SIGSTOP",
]);

export interface SignalWatch {
  stop(): void;
}

/**
 * Polls the queue for signal commands published from now on (older ones were
 * meant for an earlier attempt) and hands each valid one to `deliver`.
 */
export function watchSignalOps(
  queueDir: string,
  deliver: (signal: NodeJS.Signals) => void,
  onWarning: (message: string) => void,
  intervalMs = 500,
): SignalWatch {
  const queue = new FileQueue(queueDir);
  let cursor: ControlCursor = queue.readSync().cursor;
  const timer = setInterval(() => {
    try {
      const page = queue.readSync(cursor);
      cursor = page.cursor;
      for (const entry of page.entries) {
        if (entry.kind !== "command" || entry.command.op !== "signal") continue;
        const name = entry.command.args[0];
        const ack: Ack = {
          id: entry.command.id,
          ts: Date.now() / 1000,
          path: entry.command.path,
          op: "signal",
          rank: -1,
          seq: entry.seq,
          status: "applied",
        };
        if (typeof name !== "string" || !FORWARDABLE_SIGNALS.has(name)) {
          queue.appendAckSync({
            ...ack,
            status: "rejected",
            error: `unsupported signal: ${JSON.stringify(name)} (one of ${[...FORWARDABLE_SIGNALS].join(", ")})`,
          });
          continue;
        }
        deliver(name as NodeJS.Signals);
        queue.appendAckSync({ ...ack, value: name });
      }
    } catch (error) {
      onWarning(`control queue: ${error instanceof Error ? error.message : String(error)}`);
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
