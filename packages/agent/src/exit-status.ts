/**
 * Exit codes the way a shell reports them: a process killed by signal N
 * exits 128 + N (SIGSEGV → 139, SIGKILL → 137), whatever the signal.
 */
import { constants } from "node:os";

export function exitCodeOfSignal(signal: NodeJS.Signals | null): number {
  if (!signal) return 128;
  return 128 + (constants.signals[signal] ?? 0);
}
