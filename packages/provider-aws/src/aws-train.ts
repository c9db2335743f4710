/**
 * `runctl aws train`: one training run on a fresh EC2 instance. The run is named here (a new
 * run id, as `runctl local` names its runs); the agent and the code go to the store
 * content-addressed and the machine gets only short-lived grants (trainOnNewMachine in
 * @runctl/agent, which every cloud's train shares); the bootstrap is the instance's user-data, and the instance is tagged with the
 * run id. The machine shuts itself down when idle: an on-demand instance stops (its disk stays),
 * a one-time spot instance terminates.
 */
import type { NewMachineTrainResult, RemoteTrainNats } from "@runctl/agent";
import {
  type ArtifactStore,
  type HostResume,
  newRunId,
  type Provider,
  TAG_HOST,
  type Tags,
} from "@runctl/core";

export { DEFAULT_NODE_MIRROR, NODE_VERSION } from "@runctl/agent";

export interface AwsTrainInput {
  /** The `aws` provider (as the registry hands it out). */
  provider: Provider;
  /** The script, relative to `cwd`, and its arguments. */
  script: string;
  args: readonly string[];
  instanceType: string;
  spot: boolean;
  nprocPerNode: number;
  /** Minutes without a run before the machine shuts itself down; 0: right after this run. */
  idleStopMinutes: number;
  /** The directory bundled as the run's code (the project root). */
  projectRoot: string;
  /** Where the command runs: the ranks run in the same place inside the bundle. */
  cwd: string;
  store: ArtifactStore;
  bundleCacheDir: string;
  /** NATS for live logs and control (remoteTrainNats in @runctl/agent). */
  nats?: RemoteTrainNats;
  node: { version: string; mirror: string };
  tags: Tags;
  name?: string;
  /** An earlier run's checkpoint to start from (resumeCheckpoint in @runctl/agent). */
  resume?: HostResume;
  /** Quote and build the bootstrap (its size), but upload nothing and launch nothing. */
  dryRun: boolean;
  /** Told of each step (stderr in the CLI). */
  progress?: (line: string) => void;
  now?: Date;
}

export type AwsTrainResult = NewMachineTrainResult;

export async function trainOnAws(input: AwsTrainInput): Promise<AwsTrainResult> {
  const { trainOnNewMachine } = await import("@runctl/agent");
  const runId = newRunId(input.now);
  // The instance id is known only after the launch: the host is named after its run.
  const hostId = `aws-${runId}`;
  return trainOnNewMachine({
    ...input,
    words: { cloud: "aws", machine: "instance" },
    spec: {
      instanceType: input.instanceType,
      market: input.spot ? "spot" : "on-demand",
      runId,
      idleStopMinutes: input.idleStopMinutes,
      // Its agent takes further runs: `runctl aws train <machine> <script>` finds its inbox by this tag.
      tags: { ...input.tags, [TAG_HOST]: hostId },
      providerOptions: { name: input.name ?? `runctl ${runId}` },
    },
    hostId,
    unavailableHint: "Try another --type, or on-demand (leave --spot out).",
    // What the machine's shutdown means to EC2: a one-time spot instance cannot stop.
    idle: { minutes: input.idleStopMinutes, action: input.spot ? "terminate" : "stop" },
    // A spot instance hears of its reclaim two minutes ahead, from IMDS.
    ...(input.spot ? { interruptions: "ec2-imds" as const } : {}),
  });
}
