/** How a queue worker reads the job server's refusals. */
import { QueueServerError, QueueUnreachableError } from "@runctl/tracker";

/** The attempt is no longer this worker's: refused by the fence, or the job is gone. */
export function isLeaseLost(error: unknown): boolean {
  return error instanceof QueueServerError && (error.code === "lease_lost" || error.code === "job_not_found");
}

/** Worth sending again later: no answer, or the server (or a proxy before it) failed. */
export function isTransient(error: unknown): boolean {
  return error instanceof QueueUnreachableError || (error instanceof QueueServerError && error.status >= 500);
}
