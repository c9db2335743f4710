/**
 * The RunPod GraphQL emulator, for tests and benchmarks of anything that talks to RunPod
 * (provider-runpod, `runctl runpod`): in this process with `startRunPodEmulator`, or as its own
 * process (the built `dist/runpod-emulator/main.js`). Containers plug in through the `machine` hook.
 */
export {
  BID_TOO_LOW_MESSAGE,
  type CapacityFault,
  type ErrorFault,
  GPU_TYPES,
  NO_FREE_GPUS_MESSAGE,
  NO_INSTANCES_MESSAGE,
  noPodMachine,
  type PodMachineContext,
  type PodMachineHandle,
  type PodMachineHook,
  type PodRecord,
  RunPodCloud,
} from "./runpod-emulator/cloud.ts";
export {
  DEFAULT_RUNPOD_API_KEY,
  type RunPodEmulator,
  type RunPodEmulatorOptions,
  startRunPodEmulator,
} from "./runpod-emulator/server.ts";
