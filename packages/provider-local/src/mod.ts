/**
 * @runctl/provider-local: runctl on this machine.
 */

export { type AttachedRun, attachedRun } from "./foreground.ts";
export { LOCAL_CAPABILITIES, LocalLaunchOptions } from "./local-options.ts";
export { LocalProvider, type LocalProviderOptions } from "./local-provider.ts";

// The queue worker (`runctl worker`): claims jobs from the job server and runs them under the supervisor.

export type { JobRunEnd } from "./queue-reports.ts";
export { QueueSyncTarget, type QueueSyncTargetOptions, UPLOAD_CHUNK_BYTES } from "./queue-sync-target.ts";
export { QueueWorker, type QueueWorkerOptions } from "./worker.ts";
export type { WorkerEvent, WorkerEventType } from "./worker-events.ts";
