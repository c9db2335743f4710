/**
 * `runctl aws train`: one training run on a fresh EC2 instance. The run is named here (a new
 * run id, as `runctl local` names its runs); the agent and the code go to the store
 * content-addressed and the machine gets only short-lived grants (prepareRemoteLaunch in
 * @runctl/agent); the bootstrap is the instance's user-data, and the instance is tagged with the
 * run id. The machine shuts itself down when idle: an on-demand instance stops (its disk stays),
 * a one-time spot instance terminates.
 */
import { relative, sep } from "node:path";
import type { RemoteLaunchInput } from "@runctl/agent";
import type { NatsSettings } from "@runctl/control";
import {
  type ArtifactStore,
  ConfigError,
  type LaunchSpec,
  newRunId,
  type Placement,
  type Provider,
  type Quote,
  type Tags,
  UserError,
} from "@runctl/core";

/** The Node the machine downloads and runs the agent with: the current 24.x LTS, pinned. */
export const NODE_VERSION = "24.22.3";
export const DEFAULT_NODE_MIRROR = "https://nodejs.org/dist";

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
  /**
   * NATS for live logs and control: the server the machine reports to, the account seed run
   * credentials are minted from (none: the machine connects without a credential), and the
   * launching side's own connection.
   */
  nats?: { url: string; prefix: string; accountSeed?: string; launcher: NatsSettings };
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

/** A store that answers "already there" and writes nothing: a dry run's bootstrap without uploads. */
function readOnlyStore(store: ArtifactStore): ArtifactStore {
  const refuse = (): never => {
    throw new Error("a dry run writes nothing to the store");
  };
  return {
    url: store.url,
    head: async (key) => ({ key, size: 0, modified: new Date(0).toISOString() }),
    putFile: async () => refuse(),
    putStream: async () => refuse(),
    getFile: (key, dest) => store.getFile(key, dest),
    getStream: (key) => store.getStream(key),
    list: (prefix) => store.list(prefix),
    delete: async () => refuse(),
    ...(store.presignGet ? { presignGet: store.presignGet.bind(store) } : {}),
    ...(store.presignPost ? { presignPost: store.presignPost.bind(store) } : {}),
  };
}

function checkScript(projectRoot: string, cwd: string): string {
  const rel = relative(projectRoot, cwd);
  if (rel.startsWith("..") || rel.startsWith(sep)) {
    throw new UserError(
      `${cwd} is outside the project ${projectRoot}, whose directory is what the machine gets`,
      {
        code: "outside_project",
        hint: "Run `runctl aws train` from inside the project (the directory of .runctl.toml).",
      },
    );
  }
  return rel === "" ? "." : rel.split(sep).join("/");
}

export async function trainOnAws(input: AwsTrainInput): Promise<AwsTrainResult> {
  const progress = input.progress ?? (() => {});
  const runCwd = checkScript(input.projectRoot, input.cwd);
  if (!input.store.url.startsWith("s3://")) {
    throw new ConfigError(
      `The store ${input.store.url} is not an s3:// store, which an EC2 machine reaches`,
      {
        code: "store_cannot_presign",
        hint: "Pass --store s3://bucket/prefix or set `[aws] store` in .runctl.toml.",
      },
    );
  }
  const runId = newRunId(input.now);
  const market = input.spot ? "spot" : "on-demand";
  const spec: LaunchSpec = {
    instanceType: input.instanceType,
    market,
    runId,
    idleStopMinutes: input.idleStopMinutes,
    tags: input.tags,
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

  const { prepareRemoteLaunch } = await import("@runctl/agent");
  const launchInput: RemoteLaunchInput = {
    // The instance id is known only after the launch: the host is named after its run.
    hostId: `aws-${runId}`,
    provider: input.provider.name,
    run: {
      v: 1,
      runId,
      command: ["python3", input.script, ...input.args],
      commandKind: "python",
      cwd: runCwd,
      runsDir: "runs",
      checkpointDir: "checkpoints",
      nprocPerNode: input.nprocPerNode,
      resourceTags: input.tags,
    },
    projectRoot: input.projectRoot,
    bundleCacheDir: input.bundleCacheDir,
    store: input.dryRun ? readOnlyStore(input.store) : input.store,
    ...(input.nats
      ? {
          nats: {
            url: input.nats.url,
            prefix: input.nats.prefix,
            ...(input.nats.accountSeed !== undefined ? { accountSeed: input.nats.accountSeed } : {}),
            // A dry run does not touch the server.
            ...(input.dryRun ? {} : { launcher: input.nats.launcher }),
          },
        }
      : {}),
    node: input.node,
    // What the machine's shutdown means to EC2: a one-time spot instance cannot stop.
    idle: { minutes: input.idleStopMinutes, action: input.spot ? "terminate" : "stop" },
  };
  const launch = await prepareRemoteLaunch(launchInput);
  const bootstrapBytes = Buffer.byteLength(launch.bootstrap);
  const storeUrl = input.store.url.replace(/\/+$/, "");
  const follow = `runctl logs -f ${runId} --from ${storeUrl}`;
  const result: AwsTrainResult = {
    runId,
    dryRun: input.dryRun,
    quote,
    bootstrapBytes,
    uploadedBytes: launch.uploadedBytes,
    store: storeUrl,
    follow,
  };
  if (input.dryRun) return result;
  progress(
    `run ${runId}: code and agent in ${storeUrl} (${launch.uploadedBytes} bytes uploaded), bootstrap ${bootstrapBytes} bytes`,
  );
  const placement = await input.provider.launch({ ...spec, bootstrap: launch.bootstrap });
  return { ...result, placement };
}
