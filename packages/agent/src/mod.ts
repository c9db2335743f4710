/**
 * @runctl/agent: the one process that runs ranks, on any machine. It takes a
 * run spec (core's RunSpec), starts its ranks in process groups of their own,
 * keeps the run directory truthful on crash and kill, bridges runtime control,
 * and samples system metrics. `runctl local`, detached runs, the local
 * provider and queue workers all run it; cloud machines start it through a
 * bootstrap (`runctl-agent <spec.json>`).
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
export { exitCodeOfSignal } from "./exit-status.ts";
export {
  findOnPath,
  type LaunchCommand,
  type LaunchKind,
  pythonFor,
  type ResolveLaunchOptions,
  resolveLaunchCommand,
} from "./launch-command.ts";
export { killGroup, livingMembers, markedProcesses, reapGroup } from "./process-group.ts";
export { pythonClientDir, withPythonClient } from "./python-client.ts";
export { freePort, type RankLayout, rankEnv } from "./rank-env.ts";
export { FORWARDABLE_SIGNALS, type SignalWatch, watchSignalOps } from "./signal-op.ts";
export { type RanksOutcome, type RunOutcome, Supervisor, type SupervisorHooks } from "./supervisor.ts";
export { type GpuSample, SystemSampler, visibleDevices } from "./system-sampler.ts";

// Run sync: the run directory mirrored to a RunSyncTarget as it grows.

export { RunDirSync, type RunDirSyncOptions, SYNC_CHUNK_BYTES } from "./run-dir-sync.ts";

// Starting the agent as a process of its own.

export { AGENT_MAIN, AGENT_STATUS_FD_VARIABLE, AgentStatus } from "./agent-status.ts";
