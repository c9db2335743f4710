/**
 * @runctl/agent: the one process that runs ranks, on any machine. It takes a
 * run spec (core's RunSpec), starts its ranks in process groups of their own,
 * keeps the run directory truthful on crash and kill, bridges runtime control,
 * and samples system metrics. `runctl local`, detached runs, the local
 * provider and queue workers all run it; cloud machines start it through a
 * bootstrap (`runctl-agent <spec.json>`).
 */

// Checkpoints: listing, inspection (safetensors headers, torch magic bytes) and retention.

export * from "./checkpoints_mod.ts";

// The supervisor: runs a command as one or many ranks and keeps its run directory truthful.

export { captureGit, type GitInfo, writeGitInfo, writeRequirements } from "./capture.ts";
export { exitCodeOfSignal } from "./exit-status.ts";
export { markedProcesses, reapGroup } from "./process-group.ts";
export {
  materializePythonZip,
  pythonClientCacheDir,
  pythonClientDir,
  pythonClientPath,
  withPythonClient,
} from "./python-client.ts";
export { freePort, type RankLayout, rankEnv } from "./rank-env.ts";
export { FORWARDABLE_SIGNALS, type SignalWatch, watchSignalOps } from "./signal-op.ts";
export { type RanksOutcome, type RunOutcome, Supervisor, type SupervisorHooks } from "./supervisor.ts";
export { type GpuSample, SystemSampler, visibleDevices } from "./system-sampler.ts";

// Run sync: the run directory mirrored to a RunSyncTarget as it grows.

export {
  type InboxRun,
  type InboxRunInput,
  mintHostGrants,
  prepareInboxRun,
  prepareRemoteLaunch,
  type RemoteLaunch,
  type RemoteLaunchInput,
  type RemoteLaunchNats,
} from "./remote-launch.ts";
export {
  type CloudWords,
  DEFAULT_NODE_MIRROR,
  type LiveTrainInput,
  type LiveTrainResult,
  liveTrainLines,
  type NewMachineTrainInput,
  type NewMachineTrainResult,
  NODE_VERSION,
  newHostId,
  newMachineTrainLines,
  prepareRemoteHost,
  prepareRemoteTrain,
  type RemoteHostInput,
  type RemoteTrain,
  type RemoteTrainInput,
  type RemoteTrainNats,
  type RemoteTrainSetupInput,
  readOnlyStore,
  remoteStoreUrl,
  remoteTrainNats,
  remoteTrainNextSteps,
  remoteTrainSetup,
  requireInboxNats,
  scriptRunSpec,
  trainForm,
  trainOnLiveMachine,
  trainOnNewMachine,
} from "./remote-train.ts";
export { RunDirSync, type RunDirSyncOptions, SYNC_CHUNK_BYTES } from "./run-dir-sync.ts";

// Following a run on another machine, and the machine a run is on (`runctl <cloud> monitor`).

export {
  type FollowMachineEnd,
  type FollowMachineOptions,
  findMachineRun,
  followMachine,
  formatUptime,
  hostOfRun,
  type MachineRun,
  type MachineRunBasis,
  type MonitorMachineInput,
  type MonitorMachineResult,
  machineGone,
  machineStateLine,
  monitorMachine,
  noRunError,
  runSummary,
  storedMeta,
  uptimeSeconds,
} from "./machine-monitor.ts";
export {
  type MachineProcesses,
  type MachineStoreLogs,
  machineProcesses,
  machineStoreLogs,
} from "./machine-reads.ts";
export {
  type FollowEnd,
  type FollowRenewal,
  followRemote,
  followRenewalFrom,
  followStore,
  type RemoteFollowOptions,
} from "./remote-follow.ts";
export { costRecorder, runCost } from "./run-cost.ts";

// Starting the agent as a process of its own, resolving commands, reaching rank process groups.

export * from "./launcher_mod.ts";
