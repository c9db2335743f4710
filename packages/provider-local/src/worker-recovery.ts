/**
 * Endings a killed worker never reported. Between a job's process exiting and
 * the server recording it there is a window (final upload, the complete
 * call); a worker killed inside it leaves a finished run directory whose
 * job would otherwise run again once the lease expires. Each running
 * attempt therefore has a small record in `<dataDir>/unreported/`, removed
 * once its end is settled; a worker starting on the same data directory
 * reports what those records left behind, as the worker that held the
 * attempt, which the server accepts while that lease still stands (fencing
 * refuses it otherwise, and the job simply runs again).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { TERMINAL_STATUSES } from "@runctl/core";
import { type QueueClient, QueueServerError, readMeta, writeJsonAtomicSync } from "@runctl/tracker";
import { z } from "zod";
import { RunDirUpload } from "./run-upload.ts";
import type { WorkerEvent } from "./worker-events.ts";

const Unreported = z.object({
  job_id: z.number().int(),
  attempt: z.number().int().min(1),
  worker_id: z.string().min(1),
  run_id: z.string().min(1),
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
    if (parsed.success) await reportOne(client, dataDir, parsed.data, emit);
    rmSync(file, { force: true });
  }
}

async function reportOne(
  client: QueueClient,
  dataDir: string,
  entry: Unreported,
  emit: (event: WorkerEvent) => void,
): Promise<void> {
  const runDir = join(dataDir, "runs", entry.run_id);
  const meta = await readMeta(runDir).catch(() => undefined);
  if (!meta || !TERMINAL_STATUSES.has(meta.status) || typeof meta.exit_code !== "number") return;
  const owner = { worker_id: entry.worker_id, attempt: entry.attempt };
  try {
    await new RunDirUpload(runDir, {
      client,
      runId: entry.run_id,
      workerId: entry.worker_id,
      attempt: entry.attempt,
    }).sync();
    await client.completeJob(entry.job_id, {
      ...owner,
      exit_code: meta.exit_code,
      run_id: entry.run_id,
      reason: meta.status === "cancelled" ? "cancelled" : "exited",
      ...(meta.error ? { error_message: meta.error.slice(0, 65_536) } : {}),
    });
    emit({
      type: "finished",
      message: `job ${entry.job_id} attempt ${entry.attempt} had ended (exit code ${meta.exit_code}) when its worker ${entry.worker_id} stopped; reported now`,
      runId: entry.run_id,
      exitCode: meta.exit_code,
    });
  } catch (error) {
    const refused =
      error instanceof QueueServerError && (error.code === "lease_lost" || error.code === "job_not_found");
    emit({
      type: refused ? "lease_lost" : "error",
      message: `job ${entry.job_id} attempt ${entry.attempt} ended while its worker was down, but ${
        refused ? "the lease was gone by then (the job runs again)" : "reporting it failed"
      }: ${(error as Error).message}`,
      runId: entry.run_id,
    });
  }
}

function parseOrNull(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}
