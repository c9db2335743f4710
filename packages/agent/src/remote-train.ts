/**
 * What every `runctl <cloud> train` shares, whatever machine it launches: the checks before
 * anything is launched (the run's cwd inside the bundled project, a store a machine reaches), the
 * run spec of a training script, the NATS settings from `[nats]`, the bootstrap
 * (prepareRemoteLaunch) and the commands that follow, steer and read the run. A provider's own
 * train module names the run, quotes, says what its machine's shutdown means, and launches.
 */
import { relative, sep } from "node:path";
import type { NatsSettings } from "@runctl/control";
import { type ArtifactStore, ConfigError, type NatsConfig, type Tags, UserError } from "@runctl/core";
import type { RemoteLaunchInput } from "./remote-launch.ts";

/** The Node the machine downloads and runs the agent with: the current 24.x LTS, pinned. */
export const NODE_VERSION = "24.22.3";
export const DEFAULT_NODE_MIRROR = "https://nodejs.org/dist";

/**
 * NATS for live logs and control: the server the machine reports to, the account seed run
 * credentials are minted from (none: the machine connects without a credential), and the
 * launching side's own connection.
 */
export interface RemoteTrainNats {
  url: string;
  prefix: string;
  accountSeed?: string;
  launcher: NatsSettings;
}

export interface RemoteTrainInput {
  runId: string;
  /** The host's name in the host spec and its NATS credential (the machine id comes later). */
  hostId: string;
  provider: string;
  /** The script, relative to `cwd`, and its arguments. */
  script: string;
  args: readonly string[];
  nprocPerNode: number;
  /** The run's cwd inside the bundle (from checkRemoteTrain). */
  runCwd: string;
  projectRoot: string;
  store: ArtifactStore;
  bundleCacheDir: string;
  nats?: RemoteTrainNats;
  node: { version: string; mirror: string };
  idle: NonNullable<RemoteLaunchInput["idle"]>;
  /** The quoted price (null: unknown), so runs record their cost so far. */
  price?: { perHour: number | null; market: "on-demand" | "spot" };
  tags: Tags;
  /** Build the bootstrap (its size) without uploading anything or touching NATS. */
  dryRun: boolean;
  /** The bootstrap is a container's command and must not return (RunPod). */
  foreground?: boolean;
}

export interface RemoteTrain {
  bootstrap: string;
  bootstrapBytes: number;
  /** Bytes uploaded to the store (0 on a dry run, or when the agent and the code were there). */
  uploadedBytes: number;
  /** The store URL without a trailing slash. */
  store: string;
  /** The command that follows the run. */
  follow: string;
}

/** A store that answers "already there" and writes nothing: a dry run's bootstrap without uploads. */
export function readOnlyStore(store: ArtifactStore): ArtifactStore {
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

/**
 * The checks before a quote: `cwd` inside the project (whose directory is what the machine gets)
 * and an s3:// store. Returns the run's cwd inside the bundle.
 */
export function checkRemoteTrain(input: {
  projectRoot: string;
  cwd: string;
  storeUrl: string;
  /** The command, for the hints: `runctl aws train`. */
  command: string;
  /** How to name another store, for the hint: "Pass --store … or set `[aws] store` …". */
  storeHint: string;
}): string {
  const rel = relative(input.projectRoot, input.cwd);
  if (rel.startsWith("..") || rel.startsWith(sep)) {
    throw new UserError(
      `${input.cwd} is outside the project ${input.projectRoot}, whose directory is what the machine gets`,
      {
        code: "outside_project",
        hint: `Run \`${input.command}\` from inside the project (the directory of .runctl.toml).`,
      },
    );
  }
  if (!input.storeUrl.startsWith("s3://")) {
    throw new ConfigError(
      `The store ${input.storeUrl} is not an s3:// store, which a cloud machine reaches`,
      {
        code: "store_cannot_presign",
        hint: input.storeHint,
      },
    );
  }
  return rel === "" ? "." : rel.split(sep).join("/");
}

/** The run spec of a training script, the agent and the code in the store, and the bootstrap. */
export async function prepareRemoteTrain(input: RemoteTrainInput): Promise<RemoteTrain> {
  const { prepareRemoteLaunch } = await import("./remote-launch.ts");
  const launch = await prepareRemoteLaunch({
    hostId: input.hostId,
    provider: input.provider,
    run: {
      v: 1,
      runId: input.runId,
      command: ["python3", input.script, ...input.args],
      commandKind: "python",
      cwd: input.runCwd,
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
    idle: input.idle,
    ...(input.price && input.price.perHour !== null
      ? { price: { perHour: input.price.perHour, market: input.price.market } }
      : {}),
    ...(input.foreground ? { foreground: true } : {}),
  });
  const store = input.store.url.replace(/\/+$/, "");
  return {
    bootstrap: launch.bootstrap,
    bootstrapBytes: Buffer.byteLength(launch.bootstrap),
    uploadedBytes: launch.uploadedBytes,
    store,
    follow: `runctl logs -f ${input.runId} --from ${store}`,
  };
}

/**
 * `[nats]` as a remote run takes it; `warn` is told when the run is not followed live or the
 * machine connects without a credential. Undefined: no `[nats] url`.
 */
export async function remoteTrainNats(
  config: NatsConfig,
  warn: (line: string) => void,
  storeUrl: string,
): Promise<RemoteTrainNats | undefined> {
  if (!config.url) {
    warn(
      `No [nats] url: the run is not followed live; read it from the store (runctl logs <run> --from ${storeUrl})`,
    );
    return undefined;
  }
  const { loadAccountSeed, natsSettingsFromConfig } = await import("@runctl/control");
  const seeded = config.account_seed !== undefined || config.account_seed_file !== undefined;
  if (!seeded) {
    warn(
      "Warning: no nats.account_seed: the machine connects to NATS without a credential (only for a server on a network you control)",
    );
  }
  return {
    url: config.url,
    prefix: config.prefix,
    ...(seeded ? { accountSeed: await loadAccountSeed(config) } : {}),
    launcher: natsSettingsFromConfig(config),
  };
}

/** The lines that tell how to follow, steer and read a launched run. */
export function remoteTrainNextSteps(run: { runId: string; store: string; follow: string }): string[] {
  return [
    `  follow:  ${run.follow}`,
    `  steer:   runctl ctl ${run.runId} run.stop --wait`,
    `  result:  runctl show ${run.runId} --from ${run.store}`,
  ];
}
