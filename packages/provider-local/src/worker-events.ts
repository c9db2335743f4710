/**
 * What a queue worker tells the one running it (`runctl worker` prints
 * these, or writes them as `--json` lines).
 */
import type { AttemptEnd, JobResponse } from "@runctl/tracker";

export type WorkerEventType =
  | "registered"
  | "claimed"
  | "finished"
  | "cancelled"
  | "lease_lost"
  | "unregistered"
  | "warning"
  | "error";

export interface WorkerEvent {
  type: WorkerEventType;
  message: string;
  /** The job as claimed, for job events. */
  job?: JobResponse;
  runId?: string;
  /** `finished` and `cancelled`: the attempt's exit code and how it ended. */
  exitCode?: number;
  reason?: AttemptEnd;
}
