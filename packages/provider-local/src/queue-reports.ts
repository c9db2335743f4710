/** How a queue worker reports to the job server and reads its refusals. */
import { setTimeout as sleep } from "node:timers/promises";
import { QueueServerError, QueueUnreachableError } from "@runctl/tracker";

/** How a job's attempt ended for this worker. */
export type JobRunEnd = "reported" | "lease_lost" | "handed_back" | "not_reported";

/** The longest error message a report carries (the server keeps no more). */
const MAX_ERROR_MESSAGE = 65_536;
const MAX_REPORT_BACKOFF_MS = 5_000;

/** The attempt is no longer this worker's: refused by the fence, or the job is gone. */
export function isLeaseLost(error: unknown): boolean {
  return error instanceof QueueServerError && (error.code === "lease_lost" || error.code === "job_not_found");
}

/** Worth sending again later: no answer, or the server (or a proxy before it) failed. */
export function isTransient(error: unknown): boolean {
  return error instanceof QueueUnreachableError || (error instanceof QueueServerError && error.status >= 500);
}

export function clipErrorMessage(text: string): string {
  return text.length > MAX_ERROR_MESSAGE ? `${text.slice(0, MAX_ERROR_MESSAGE - 1)}…` : text;
}

export interface ReportHandlers {
  /** Aborted when the worker gives the job back: the report is then not sent. */
  giveUp: AbortSignal;
  /** The server says the attempt is no longer ours. */
  leaseLost(error: Error): void;
  /** A failure: `retrying` when it is transient and the report will be sent again. */
  failed(error: Error, retrying: boolean, attempt: number): void;
}

/**
 * Sends a report (a result, a completion) until the server has it: transient failures are
 * sent again with a doubling delay (at most 5 s), so a server restart loses no result.
 */
export async function sendReport(send: () => Promise<unknown>, h: ReportHandlers): Promise<JobRunEnd> {
  for (let attempt = 0; ; attempt++) {
    try {
      await send();
      return "reported";
    } catch (error) {
      if (isLeaseLost(error)) {
        h.leaseLost(error as Error);
        return "lease_lost";
      }
      const retrying = isTransient(error);
      h.failed(error as Error, retrying, attempt);
      if (!retrying) return "not_reported";
      const delay = Math.min(MAX_REPORT_BACKOFF_MS, 250 * 2 ** attempt);
      const waited = await sleep(delay, true, { signal: h.giveUp }).catch(() => false);
      if (!waited) return "handed_back";
    }
  }
}
