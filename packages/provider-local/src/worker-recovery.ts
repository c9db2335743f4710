/**
 * Endings a killed worker never reported. Between a job's process exiting and
 * the server recording it there is a window (final upload, the complete
 * call); a worker killed inside it leaves a finished run directory whose
 * job would otherwise run again once the lease expires. Each running
 * attempt therefore has a small record in `<dataDir>/unreported/`, given
 * the outcome the moment the process exits and removed once the end is
 * settled; a worker starting on the same data directory
 * reports what those records left behind, as the worker that held the
 * attempt, which the server accepts while that lease still stands (fencing
 * refuses it otherwise, and the job simply runs again).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { RunDirSync } from "@runctl/agent";
import { TERMINAL_STATUSES } from "@runctl/core";
import { writeJsonAtomicSync } from "@runctl/core/internal";
import { AttemptEnd, type QueueClient, readMeta } from "@runctl/tracker";
import { z } from "zod";
import { isLeaseLost, isTransient } from "./queue-reports.ts";
import { QueueSyncTarget } from "./queue-sync-target.ts";
import type { WorkerEvent } from "./worker-events.ts";

const Unreported = z.object({
  job_id: z.number().int(),
  attempt: z.number().int().min(1),
  worker_id: z.string().min(1),
  run_id: z.string().min(1),
  /** Set the moment the job's process exited, before meta.json says so. */
  ended: z
    .object({
      status: z.enum(["completed", "failed", "cancelled"]),
      exit_code: z.number().int(),
      error: z.string().nullable(),
      /** Why it stopped, when the worker stopped it: a timeout is a failure, not a cancel. */
      reason: AttemptEnd.optional(),
    })
    .optional(),
});
export type Unreported = z.infer<typeof Unreported>;

const DIR = "unreported";

function recordFile(dataDir: string, runId: string): string {
  return join(dataDir, DIR, `${runId}.json`);
}

/** The attempt runs: if this worker dies, the next one on this data directory reports its end. */
export function recordUnreported(dataDir: string, entry: Unreported): void {
  mkdirSync(join(dataDir, DIR), { recursive: true });
  writeJsonAtomicSync(recordFile(dataDir, entry.run_id), entry);
}

/** The attempt's end is settled (reported, refused, handed back): nothing to recover. */
export function clearUnreported(dataDir: string, runId: string): void {
  rmSync(recordFile(dataDir, runId), { force: true });
}

/**
 * Reports every finished attempt a previous worker process left unreported,
 * and forgets the records of attempts that never finished (their processes
 * died with that worker; the server requeues them when the lease expires).
 */
export async function reportUnreported(
  client: QueueClient,
  dataDir: string,
  emit: (event: WorkerEvent) => void,
): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(join(dataDir, DIR)).filter((n) => n.endsWith(".json"));
  } catch {
    return;
  }
  for (const name of names) {
    const file = join(dataDir, DIR, name);
    const parsed = Unreported.safeParse(parseOrNull(file));
    // Kept when the server could not be asked: the next start tries again.
    if (!parsed.success || (await reportOne(client, dataDir, parsed.data, emit)))
      rmSync(file, { force: true });
  }
}

async function reportOne(
  client: QueueClient,
  dataDir: string,
  entry: Unreported,
  emit: (event: WorkerEvent) => void,
): Promise<boolean> {
  const runDir = join(dataDir, "runs", entry.run_id);
  const meta = await readMeta(runDir).catch(() => undefined);
  // The record's outcome first: it also knows why the worker stopped the process.
  const ended: Unreported["ended"] =
    entry.ended ??
    (meta && TERMINAL_STATUSES.has(meta.status) && typeof meta.exit_code === "number"
      ? {
          status:
            meta.status === "completed" ? "completed" : meta.status === "failed" ? "failed" : "cancelled",
          exit_code: meta.exit_code,
          error: meta.error ?? null,
        }
      : undefined);
  if (!ended) return true;
  const owner = { worker_id: entry.worker_id, attempt: entry.attempt };
  try {
    await new RunDirSync(
      runDir,
      new QueueSyncTarget({ client, runId: entry.run_id, workerId: entry.worker_id, attempt: entry.attempt }),
    ).sync();
    await client.completeJob(entry.job_id, {
      ...owner,
      exit_code: ended.exit_code,
      run_id: entry.run_id,
      reason: ended.reason ?? (ended.status === "cancelled" ? "cancelled" : "exited"),
      ...(ended.error ? { error_message: ended.error.slice(0, 65_536) } : {}),
    });
    emit({
      type: "finished",
      message: `job ${entry.job_id} attempt ${entry.attempt} had ended (exit code ${ended.exit_code}) when its worker ${entry.worker_id} stopped; reported now`,
      runId: entry.run_id,
      exitCode: ended.exit_code,
    });
    return true;
  } catch (error) {
    const refused = isLeaseLost(error);
    emit({
      type: refused ? "lease_lost" : "error",
      message: `job ${entry.job_id} attempt ${entry.attempt} ended while its worker was down, but ${
        refused ? "the lease was gone by then (the job runs again)" : "reporting it failed"
      }: ${(error as Error).message}`,
      runId: entry.run_id,
    });
    return !isTransient(error);
  }
}

function parseOrNull(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}
