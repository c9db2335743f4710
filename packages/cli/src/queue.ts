/**
 * What the job-queue commands share: reaching the server (`--server`, else
 * `[server] url` / RUNCTL_SERVER_URL; the token from `[server] token` /
 * RUNCTL_SERVER_TOKEN, never a flag, so it stays out of shell history) and
 * showing jobs and workers as tables.
 */
import { Flags } from "@oclif/core";
import { UserError } from "@runctl/core";
import { type JobResponse, QueueClient, type WorkerResponse } from "@runctl/tracker";
import { formatAgo, formatValue, table } from "./output.ts";

export const serverFlag = {
  server: Flags.string({
    description: "Job server URL (default: server.url from the configuration, RUNCTL_SERVER_URL).",
  }),
};

export function queueClient(serverUrl: string, token: string | undefined): QueueClient {
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    throw new UserError(`"${serverUrl}" is not a URL`, {
      code: "bad_server_url",
      hint: "Give the job server as http://host:port, e.g. --server http://127.0.0.1:8080.",
    });
  }
  return new QueueClient({ url: url.toString(), ...(token ? { token } : {}) });
}

/** `90`, `90s`, `30m`, `2h`, `1d` → seconds. */
export function parseDurationSeconds(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(text.trim());
  const unit = m?.[2] ?? "s";
  const seconds = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[unit as "s"] : Number.NaN;
  if (!(seconds > 0)) {
    throw new UserError(`${flag} "${text}" is not a duration`, {
      code: "bad_duration",
      hint: `Use seconds or a unit: ${flag} 90, ${flag} 30m, ${flag} 2h.`,
    });
  }
  return seconds;
}

export function jobsTable(jobs: readonly JobResponse[], now = new Date()): string {
  return table(
    ["ID", "NAME", "STATUS", "ATTEMPT", "PRIO", "GPUS", "WORKER", "CREATED", "EXIT"],
    jobs.map((job) => [
      String(job.id),
      formatValue(job.name ?? job.command_argv.join(" "), 30),
      job.cancel_requested && job.status === "running" ? "cancelling" : job.status,
      String(job.attempt),
      String(job.priority),
      String(job.gpus),
      formatValue(job.worker_id ?? "-", 30),
      job.created_at ? formatAgo(new Date(job.created_at), now) : "-",
      job.exit_code == null ? "-" : String(job.exit_code),
    ]),
  );
}

export function workersTable(workers: readonly WorkerResponse[], now = new Date()): string {
  return table(
    ["WORKER", "HOST", "STATUS", "JOBS", "GPUS", "SEEN"],
    workers.map((w) => [
      w.id,
      formatValue(w.hostname ?? "-", 24),
      w.status,
      w.current_job_ids.length > 0 ? w.current_job_ids.join(",") : "-",
      w.gpu_ids.length > 0 ? w.gpu_ids.join(",") : "-",
      w.heartbeat_at ? formatAgo(new Date(w.heartbeat_at), now) : "-",
    ]),
  );
}

/** A job id argument: a positive integer. */
export function jobId(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new UserError(`"${text}" is not a job id`, {
      code: "bad_job_id",
      hint: "Job ids are positive integers; list them with `runctl jobs --status all`.",
    });
  }
  return Number(text);
}
