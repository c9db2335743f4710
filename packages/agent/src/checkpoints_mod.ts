/**
 * `@runctl/agent/checkpoints`: checkpoint files (listing, inspection,
 * retention) without the rest of the agent, for commands that only look at a
 * checkpoint directory. Also exported from the package's main entry.
 */

export { type ResolveCheckpointDirOptions, resolveCheckpointDir } from "./checkpoint-dir.ts";
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
