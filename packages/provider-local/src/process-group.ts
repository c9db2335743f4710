/**
 * Process groups of ranks. Each rank leads its own group, so one signal
 * reaches everything it started. "Gone" means no living member: zombies
 * (state Z) waiting for an indifferent init to reap them are already dead.
 */
import { readdirSync, readFileSync } from "node:fs";

export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

/** Pids of living processes in the group (Linux /proc; elsewhere falls back to kill(0)). */
export function livingMembers(pgid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const members: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") members.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return members;
}

/** Waits until the group has no living member, sending SIGKILL again while it has. */
export async function reapGroup(pgid: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (livingMembers(pgid).length === 0) return true;
    if (Date.now() > deadline) return false;
    killGroup(pgid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
