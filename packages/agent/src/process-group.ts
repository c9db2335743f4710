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
  // A group with no process at all (zombies included) needs no scan of every process.
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return [];
  }
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

/** Gives the group `graceMs` to exit on its own (after a SIGTERM sent by the caller), then reaps it. */
export async function endGroup(pgid: number, graceMs: number): Promise<boolean> {
  const deadline = Date.now() + graceMs;
  while (livingMembers(pgid).length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return reapGroup(pgid);
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

/**
 * Living processes whose environment carries `name=value` (Linux /proc; none
 * elsewhere). Processes that left their rank's group and session
 * (`start_new_session=True`) still inherit the variable, so this finds them.
 */
export function markedProcesses(name: string, value: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const needle = Buffer.from(`\0${name}=${value}\0`);
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const environ = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${entry}/environ`)]);
      if (environ.includes(needle) && isProcessLiving(Number(entry))) found.push(Number(entry));
    } catch {
      // exited while we looked, or not ours to read
    }
  }
  return found;
}

/** Alive and not a zombie: an orphan a container's init never reaps still shows in /proc. */
export function isProcessLiving(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Waits up to `graceMs` for the pids to exit, then sends SIGKILL and waits a little more. */
export async function reapPids(pids: readonly number[], graceMs: number): Promise<boolean> {
  const alive = () => pids.filter(isProcessLiving);
  const deadline = Date.now() + graceMs;
  while (alive().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  for (const pid of alive()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  const hard = Date.now() + 5_000;
  while (alive().length > 0 && Date.now() < hard) await new Promise((r) => setTimeout(r, 25));
  return alive().length === 0;
}
