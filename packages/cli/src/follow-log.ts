/**
 * Streams a run's output.log: what is there, then (when following) what is
 * appended, until the run reaches a terminal status. Used by `runctl logs -f`
 * and `runctl attach`.
 */
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { TERMINAL_STATUSES } from "@runctl/core";
import { readMeta, withEffectiveStatus } from "@runctl/tracker";

export interface FollowOptions {
  runDir: string;
  follow: boolean;
  /** Start with only the last N lines. */
  lastLines?: number | undefined;
  write: (text: string) => void;
  signal?: AbortSignal;
  pollMs?: number;
}

async function size(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function readRange(path: string, start: number, end: number): Promise<string> {
  if (end <= start) return "";
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(end - start);
    await handle.read(buffer, 0, buffer.length, start);
    return buffer.toString("utf8");
  } finally {
    await handle.close();
  }
}

function lastLines(text: string, n: number): string {
  const lines = text.split("\n");
  const trailing = lines.at(-1) === "" ? lines.pop() : undefined;
  return lines.slice(-n).join("\n") + (trailing === "" ? "\n" : "");
}

/** Returns the run's status when it stops (terminal, or the current one when not following). */
export async function followLog(options: FollowOptions): Promise<string> {
  const path = join(options.runDir, "output.log");
  let offset = await size(path);
  const head = await readRange(path, 0, offset);
  options.write(options.lastLines !== undefined ? lastLines(head, options.lastLines) : head);
  const status = async () => withEffectiveStatus(await readMeta(options.runDir)).status;
  if (!options.follow) return status();
  for (;;) {
    // Read the status before the data: output written before the run ended is then always shown.
    const current = await status();
    const end = await size(path);
    if (end < offset) offset = 0; // truncated: start over
    if (end > offset) {
      options.write(await readRange(path, offset, end));
      offset = end;
    }
    if (TERMINAL_STATUSES.has(current) || options.signal?.aborted) return current;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 200));
  }
}
