/**
 * `runctl aws train`: one training run on a fresh EC2 instance. The run is named here (a new
 * run id, as `runctl local` names its runs); the agent and the code go to the store
 * content-addressed and the machine gets only short-lived grants (prepareRemoteLaunch in
 * @runctl/agent); the bootstrap is the instance's user-data, and the instance is tagged with the
 * run id. The machine shuts itself down when idle: an on-demand instance stops (its disk stays),
 * a one-time spot instance terminates.
 */
import type { RemoteTrainNats } from "@runctl/agent";
import {
  type ArtifactStore,
  type LaunchSpec,
  newRunId,
  type Placement,
  type Provider,
  type Quote,
  TAG_HOST,
  type Tags,
  UserError,
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
  /** Quote and build the bootstrap (its size), but upload nothing and launch nothing. */
  dryRun: boolean;
  /** Told of each step (stderr in the CLI). */
  progress?: (line: string) => void;
  now?: Date;
}

export interface AwsTrainResult {
  runId: string;
  dryRun: boolean;
  quote: Quote;
  bootstrapBytes: number;
  /** Bytes uploaded to the store (0 on a dry run, or when the agent and the code were there). */
  uploadedBytes: number;
  placement?: Placement;
  store: string;
  /** The command that follows the run. */
  follow: string;
}

export async function trainOnAws(input: AwsTrainInput): Promise<AwsTrainResult> {
  const progress = input.progress ?? (() => {});
  const { checkRemoteTrain, prepareRemoteTrain } = await import("@runctl/agent");
  const runCwd = checkRemoteTrain({
    projectRoot: input.projectRoot,
    cwd: input.cwd,
    storeUrl: input.store.url,
    command: "runctl aws train",
    storeHint: "Pass --store s3://bucket/prefix or set `[aws] store` in .runctl.toml.",
  });
  const runId = newRunId(input.now);
  // The instance id is known only after the launch: the host is named after its run.
  const hostId = `aws-${runId}`;
  const market = input.spot ? "spot" : "on-demand";
  const spec: LaunchSpec = {
    instanceType: input.instanceType,
    market,
    runId,
    idleStopMinutes: input.idleStopMinutes,
    // Its agent takes further runs: `runctl aws train <machine> <script>` finds its inbox by this tag.
    tags: { ...input.tags, [TAG_HOST]: hostId },
    providerOptions: { name: input.name ?? `runctl ${runId}` },
  };
  const quote = await input.provider.quote(spec);
  if (!quote.available && !input.dryRun) {
    throw new UserError(
      `Cannot launch ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
      {
        code: quote.unavailable?.code ?? "capacity",
        hint: "Try another --type, or on-demand (leave --spot out).",
      },
    );
  }

  const launch = await prepareRemoteTrain({
    hostId,
    provider: input.provider.name,
    runId,
    script: input.script,
    args: input.args,
    nprocPerNode: input.nprocPerNode,
    runCwd,
    projectRoot: input.projectRoot,
    store: input.store,
    bundleCacheDir: input.bundleCacheDir,
    ...(input.nats ? { nats: input.nats } : {}),
    node: input.node,
    // What the machine's shutdown means to EC2: a one-time spot instance cannot stop.
    idle: { minutes: input.idleStopMinutes, action: input.spot ? "terminate" : "stop" },
    // A spot instance hears of its reclaim two minutes ahead, from IMDS.
    ...(input.spot ? { interruptions: "ec2-imds" as const } : {}),
    tags: input.tags,
    price: { perHour: quote.pricePerHour, market },
    dryRun: input.dryRun,
  });
  const result: AwsTrainResult = {
    runId,
    dryRun: input.dryRun,
    quote,
    bootstrapBytes: launch.bootstrapBytes,
    uploadedBytes: launch.uploadedBytes,
    store: launch.store,
    follow: launch.follow,
  };
  if (input.dryRun) return result;
  progress(
    `run ${runId}: code and agent in ${launch.store} (${launch.uploadedBytes} bytes uploaded), bootstrap ${launch.bootstrapBytes} bytes`,
  );
  const placement = await input.provider.launch({ ...spec, bootstrap: launch.bootstrap });
  return { ...result, placement };
}
