/**
 * @runctl/provider-local: runctl on this machine.
 */

// Checkpoints: listing, inspection (safetensors headers, torch magic bytes) and retention.

export {
  CHECKPOINT_EXTENSIONS,
  CheckpointFile,
  CheckpointFormat,
  CheckpointInfo,
  type CheckpointOrder,
  type CleanupOptions,
  type CleanupPlan,
  CleanupResult,
  checkpointInfo,
  checkpointOrder,
  cleanupCheckpoints,
  isCheckpointName,
  latestCheckpoint,
  listCheckpoints,
  parseStep,
  type ResolveCheckpointDirOptions,
  resolveCheckpointDir,
  sortNewestFirst,
} from "./checkpoints.ts";
export {
  readSafetensorsHeader,
  SAFETENSORS_MAX_HEADER_BYTES,
  type SafetensorsHeader,
  SafetensorsSummary,
  SafetensorsTensor,
  summarizeSafetensors,
} from "./safetensors.ts";

// The supervisor: runs a command as one or many ranks and keeps its run directory truthful.

export { captureGit, type GitInfo, writeGitInfo, writeRequirements } from "./capture.ts";
export {
  findOnPath,
  type LaunchCommand,
  type LaunchKind,
  pythonFor,
  type ResolveLaunchOptions,
  resolveLaunchCommand,
} from "./launch-command.ts";
export { LOCAL_CAPABILITIES, LocalProvider, type LocalProviderOptions } from "./local-provider.ts";
export { killGroup, livingMembers, reapGroup } from "./process-group.ts";
export { pythonClientDir, withPythonClient } from "./python-client.ts";
export { freePort, type RankLayout, rankEnv } from "./rank-env.ts";
export { FORWARDABLE_SIGNALS, type SignalWatch, watchSignalOps } from "./signal-op.ts";
export { type RanksOutcome, type RunOutcome, type SuperviseOptions, Supervisor } from "./supervisor.ts";
export { type GpuSample, SystemSampler, visibleDevices } from "./system-sampler.ts";

// The queue worker (`runctl worker`): claims jobs from the job server and runs them under the supervisor.

export { RunDirUpload, type RunUploadTarget, UPLOAD_CHUNK_BYTES } from "./run-upload.ts";
export { QueueWorker, type QueueWorkerOptions } from "./worker.ts";
export type { WorkerEvent, WorkerEventType } from "./worker-events.ts";
export type { JobRunEnd } from "./worker-job.ts";
