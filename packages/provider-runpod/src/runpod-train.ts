/**
 * `runctl runpod train`: one training run on a fresh pod. What every cloud's train shares (the
 * checks, the quote, the run spec, the store and NATS grants, the bootstrap, the launch) is
 * trainOnNewMachine in @runctl/agent; here the run and its pod are named and described. The bootstrap is the pod's
 * container command, so it supervises the agent in the foreground. RunPod restarts a container
 * whose command ends, so when the pod is idle the agent stops it through RunPod
 * (`runpodctl stop pod $RUNPOD_POD_ID`, with the pod-scoped key RunPod sets): EXITED, its volume
 * stays. An interruptible pod is reclaimed the same way, as `docker stop` does it: the agent
 * takes that SIGTERM as the notice, the run checkpoints and ends `preempted`.
 */
import type { NewMachineTrainResult, RemoteTrainNats } from "@runctl/agent";
import {
  type ArtifactStore,
  type HostResume,
  newRunId,
  type Provider,
  TAG_HOST,
  type Tags,
  UserError,
} from "@runctl/core";
import type { CloudName } from "./runpod-options.ts";

/**
 * How a pod stops (or removes) itself: runpodctl, which RunPod's images carry, with the
 * RUNPOD_POD_ID and the pod-scoped RUNPOD_API_KEY RunPod sets in every pod.
 */
export function runpodSelfStop(action: "stop" | "terminate"): string[] {
  const verb = action === "stop" ? "stop" : "remove";
  return ["sh", "-c", `exec runpodctl ${verb} pod "$RUNPOD_POD_ID"`];
}

export interface RunpodTrainInput {
  /** The `runpod` provider (as the registry hands it out). */
  provider: Provider;
  /** The script, relative to `cwd`, and its arguments. */
  script: string;
  args: readonly string[];
  /** GPU types (ids or display names), the first tried first. */
  gpuTypes: readonly string[];
  gpuCount: number;
  spot: boolean;
  /** Interruptible bid per GPU (USD/h); default: the minimum bid. */
  bidPerGpu?: number;
  cloud?: CloudName;
  nprocPerNode: number;
  /** Minutes without a run before the pod stops itself; 0: right after this run. */
  idleStopMinutes: number;
  projectRoot: string;
  cwd: string;
  store: ArtifactStore;
  bundleCacheDir: string;
  nats?: RemoteTrainNats;
  node: { version: string; mirror: string };
  tags: Tags;
  name?: string;
  /** Quote and build the bootstrap (its size), but upload nothing and launch nothing. */
  dryRun: boolean;
  progress?: (line: string) => void;
  now?: Date;
  /** An earlier run's checkpoint to start from (resumeCheckpoint in @runctl/agent). */
  resume?: HostResume;
}

export type RunpodTrainResult = NewMachineTrainResult;

export async function trainOnRunPod(input: RunpodTrainInput): Promise<RunpodTrainResult> {
  const { trainOnNewMachine } = await import("@runctl/agent");
  const [gpu, ...fallbacks] = input.gpuTypes;
  if (gpu === undefined) {
    throw new UserError("Which GPU type?", {
      code: "missing_argument",
      hint: 'Pass one: `runctl runpod train train.py --gpu "NVIDIA RTX A6000"`.',
    });
  }
  const runId = newRunId(input.now);
  // The pod id is known only after the launch: the host is named after its run.
  const hostId = `runpod-${runId}`;
  return trainOnNewMachine({
    ...input,
    words: { cloud: "runpod", machine: "pod" },
    spec: {
      instanceType: gpu,
      gpuCount: input.gpuCount,
      market: input.spot ? "spot" : "on-demand",
      runId,
      idleStopMinutes: input.idleStopMinutes,
      // Its agent takes further runs: `runctl runpod train <machine> <script>` finds its inbox by this tag.
      tags: { ...input.tags, [TAG_HOST]: hostId },
      providerOptions: {
        ...(fallbacks.length > 0 ? { gpuTypes: fallbacks } : {}),
        ...(input.cloud ? { cloud: input.cloud } : {}),
        ...(input.bidPerGpu !== undefined ? { bidPerGpu: input.bidPerGpu } : {}),
        ...(input.name ? { name: input.name } : {}),
      },
    },
    hostId,
    unavailableHint:
      "Add fallback GPU types (--gpu, repeatable), raise --bid, or launch on-demand (leave --spot out).",
    // The container's command ends and RunPod stops the pod, spot or not: its volume stays.
    idle: { minutes: input.idleStopMinutes, action: "stop" },
    // A container whose command ends is restarted: an idle pod stops itself through RunPod.
    shutdownCommand: runpodSelfStop("stop"),
    // An interruptible pod is reclaimed as `docker stop` stops a container: SIGTERM, then SIGKILL.
    ...(input.spot ? { interruptions: "sigterm" as const } : {}),
    // The container runs as long as its command: the bootstrap must not return.
    foreground: true,
  });
}
