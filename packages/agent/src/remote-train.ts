/**
 * What every `runctl <cloud> train` and `runctl <cloud> create` shares, whatever the cloud: the
 * checks before anything is launched (the run's cwd inside the bundled project, a store a machine
 * reaches), the run spec of a training script, the store and NATS settings from flags and
 * configuration, the bootstrap of a machine with or without a first run (prepareRemoteLaunch),
 * a run sent to a live machine's inbox (trainOnLiveMachine), and the lines that follow, steer and
 * read the run. A provider's own train module names the run, quotes, says what its machine's
 * shutdown means, and launches.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { NatsSettings } from "@runctl/control";
import {
  type ArtifactStore,
  ConfigError,
  HostInboxReply,
  type HostResume,
  HostResumeSchema,
  isRunctlManaged,
  type LaunchSpec,
  MAX_BOOTSTRAP_BYTES,
  type NatsConfig,
  newRunId,
  type Placement,
  type Provider,
  type Quote,
  type RunSpecInput,
  TAG_HOST,
  TAG_PROJECT,
  TAG_USER,
  type Tags,
  UserError,
} from "@runctl/core";
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
  /** How the machine hears it is being reclaimed: `ec2-imds` for an EC2 spot instance, `sigterm` for a RunPod interruptible pod. */
  interruptions?: RemoteLaunchInput["interruptions"];
  /** The machine's own shutdown, when not `shutdown -h now`. */
  shutdownCommand?: string[];
  /** The quoted price (null: unknown), so runs record their cost so far. */
  price?: { perHour: number | null; market: "on-demand" | "spot" };
  /** An earlier run's checkpoint to start from (resumeCheckpoint). */
  resume?: HostResume;
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

/** The run spec of a training script (`python3 <script> <args>` in the run's cwd inside the bundle). */
export function scriptRunSpec(input: {
  runId: string;
  script: string;
  args: readonly string[];
  runCwd: string;
  nprocPerNode: number;
  tags: Tags;
}): RunSpecInput {
  return {
    v: 1,
    runId: input.runId,
    command: ["python3", input.script, ...input.args],
    commandKind: "python",
    cwd: input.runCwd,
    runsDir: "runs",
    // Inside the run directory, which the agent keeps synced: the store has the checkpoints
    // when the machine (and its disk) is gone, preempted or not.
    checkpointDir: `runs/${input.runId}/checkpoints`,
    nprocPerNode: input.nprocPerNode,
    resourceTags: input.tags,
  };
}

/** NATS as prepareRemoteLaunch takes it; a dry run does not touch the server. */
function launchNats(nats: RemoteTrainNats, dryRun: boolean) {
  return {
    url: nats.url,
    prefix: nats.prefix,
    ...(nats.accountSeed !== undefined ? { accountSeed: nats.accountSeed } : {}),
    ...(dryRun ? {} : { launcher: nats.launcher }),
  };
}

/** The run spec of a training script, the agent and the code in the store, and the bootstrap. */
export async function prepareRemoteTrain(input: RemoteTrainInput): Promise<RemoteTrain> {
  const { prepareRemoteLaunch } = await import("./remote-launch.ts");
  const launch = await prepareRemoteLaunch({
    hostId: input.hostId,
    provider: input.provider,
    run: scriptRunSpec(input),
    projectRoot: input.projectRoot,
    bundleCacheDir: input.bundleCacheDir,
    store: input.dryRun ? readOnlyStore(input.store) : input.store,
    ...(input.nats ? { nats: launchNats(input.nats, input.dryRun) } : {}),
    node: input.node,
    idle: input.idle,
    ...(input.interruptions ? { interruptions: input.interruptions } : {}),
    ...(input.shutdownCommand ? { shutdownCommand: input.shutdownCommand } : {}),
    ...(input.price && input.price.perHour !== null
      ? { price: { perHour: input.price.perHour, market: input.price.market } }
      : {}),
    ...(input.resume ? { resume: input.resume } : {}),
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

/** What `runctl <cloud> train` reads before either form runs: the form, the store, NATS, the run's tags. */
export interface RemoteTrainSetupInput {
  /** The command's arguments: `<script> [args…]` or `<machine> <script> [args…]`. */
  argv: readonly string[];
  cwd: string;
  words: CloudWords;
  storeFlag: string | undefined;
  /** `[<cloud>] store`. */
  configuredStore: string | undefined;
  config: { project: { name?: string | undefined; user?: string | undefined }; nats: NatsConfig };
  /** The project's .runctl.toml: its directory is what the machine gets. */
  projectFile: string | undefined;
  /** Where the CLI keeps bundles between launches. */
  cacheDir: string;
  openStore: (url: string) => Promise<ArtifactStore>;
  progress: (line: string) => void;
  /** `--resume <run>`: start from that run's newest checkpoint in the store. */
  resume?: { run: string; passArg: boolean };
}

export async function remoteTrainSetup(input: RemoteTrainSetupInput) {
  const { words, config, cwd } = input;
  const form = trainForm(input.argv, cwd, words);
  const storeUrl = requireRemoteStore(remoteStoreUrl(input.storeFlag, input.configuredStore, words), words);
  const nats = await remoteTrainNats(config.nats, input.progress, storeUrl);
  const tags: Tags = {
    ...(config.project.name ? { [TAG_PROJECT]: config.project.name } : {}),
    ...(config.project.user ? { [TAG_USER]: config.project.user } : {}),
  };
  const store = await input.openStore(storeUrl);
  const resume = input.resume ? await resumeCheckpoint(store, input.resume, input.progress) : undefined;
  return {
    form,
    nats,
    /** What both forms take. */
    common: {
      script: form.script,
      args: form.args,
      projectRoot: input.projectFile ? dirname(input.projectFile) : cwd,
      cwd,
      store,
      bundleCacheDir: join(input.cacheDir, "bundles"),
      tags,
      progress: input.progress,
      ...(resume ? { resume } : {}),
    },
  };
}

/**
 * `--resume <run>`: the newest checkpoint of an earlier run in the store (the file under its
 * `checkpoints/` written last), with a presigned GET the machine fetches it by before the ranks
 * start. The earlier run's machine may be gone (a reclaimed spot instance); its store copy is
 * not. A run still running is refused: it is still writing its checkpoints.
 */
export async function resumeCheckpoint(
  store: ArtifactStore,
  resume: { run: string; passArg: boolean },
  progress: (line: string) => void,
): Promise<HostResume> {
  const { StoreRunSource, sourceMeta, withEffectiveStatus } = await import("@runctl/tracker");
  const source = new StoreRunSource(store, "runs");
  const runId = await source.resolve(resume.run);
  const meta = withEffectiveStatus(await sourceMeta(source, runId));
  if (meta.status === "running") {
    throw new UserError(`Run ${runId} is still running: its checkpoints are still being written`, {
      code: "run_live",
      hint: `Wait until it ends, or stop it first (\`runctl ctl ${runId} run.stop --wait\`).`,
    });
  }
  const prefix = `runs/${runId}/checkpoints/`;
  const files = (await store.list(prefix))
    .map((object) => ({ ...object, file: object.key.slice(prefix.length) }))
    // Writers' temporary files (`.step-000120.pt.tmp`) are not checkpoints.
    .filter((o) => o.file.split("/").every((segment) => segment !== "" && !segment.startsWith(".")))
    .sort((a, b) => a.modified.localeCompare(b.modified) || a.file.localeCompare(b.file));
  const newest = files.at(-1);
  if (!newest) {
    throw new UserError(`Run ${runId} has no checkpoint in ${source.location}`, {
      code: "no_checkpoint",
      hint: "A run's checkpoints reach the store when its script saves them under $RUNCTL_CHECKPOINT_DIR (a remote run's is synced with its run directory).",
    });
  }
  if (!store.presignGet) {
    throw new ConfigError(`The store ${store.url} cannot presign downloads`, {
      code: "store_cannot_presign",
      hint: "Use an s3:// store, which a cloud machine reaches.",
    });
  }
  const parsed = HostResumeSchema.safeParse({
    run: runId,
    file: newest.file,
    url: await store.presignGet(newest.key, { expiresInSeconds: 24 * 60 * 60 }),
    bytes: newest.size,
    passArg: resume.passArg,
  });
  if (!parsed.success) {
    throw new UserError(`Run ${runId}'s checkpoint ${newest.file} has a name runctl does not send`, {
      code: "bad_checkpoint_name",
      hint: "Checkpoint files need names of letters, digits and _ . + = @ - (and / between directories).",
    });
  }
  progress(`resuming from ${runId}/${newest.file} (${newest.size} bytes, written ${newest.modified})`);
  return parsed.data;
}

/** A new machine for one run (`runctl <cloud> train <script>`): what the cloud decides about it. */
export interface NewMachineTrainInput
  extends Pick<
    RemoteTrainInput,
    | "script"
    | "args"
    | "nprocPerNode"
    | "projectRoot"
    | "store"
    | "bundleCacheDir"
    | "nats"
    | "node"
    | "idle"
    | "interruptions"
    | "shutdownCommand"
    | "tags"
    | "dryRun"
    | "foreground"
    | "resume"
  > {
  provider: Provider;
  words: CloudWords;
  /** Where the command runs: the ranks run in the same place inside the bundle. */
  cwd: string;
  /** The launch, named by its run id; the bootstrap is added here. */
  spec: LaunchSpec & { runId: string };
  /** The host's name (the machine id is known only after the launch). */
  hostId: string;
  /** How to get a machine when the quote says none can be had now. */
  unavailableHint: string;
  progress?: (line: string) => void;
}

export interface NewMachineTrainResult {
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

/**
 * One run on a new machine, whatever the cloud: the checks, the quote (refused when nothing can
 * be had, unless a dry run), the agent and the code in the store, the bootstrap, the launch.
 */
export async function trainOnNewMachine(input: NewMachineTrainInput): Promise<NewMachineTrainResult> {
  const { words, spec } = input;
  const runCwd = checkRemoteTrain({
    projectRoot: input.projectRoot,
    cwd: input.cwd,
    storeUrl: input.store.url,
    command: `runctl ${words.cloud} train`,
    storeHint: `Pass --store s3://bucket/prefix or set \`[${words.cloud}] store\` in .runctl.toml.`,
  });
  const quote = await input.provider.quote(spec);
  if (!quote.available && !input.dryRun) {
    throw new UserError(
      `Cannot launch ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
      { code: quote.unavailable?.code ?? "capacity", hint: input.unavailableHint },
    );
  }
  const launch = await prepareRemoteTrain({
    runId: spec.runId,
    hostId: input.hostId,
    provider: input.provider.name,
    script: input.script,
    args: input.args,
    nprocPerNode: input.nprocPerNode,
    runCwd,
    projectRoot: input.projectRoot,
    store: input.store,
    bundleCacheDir: input.bundleCacheDir,
    ...(input.nats ? { nats: input.nats } : {}),
    node: input.node,
    idle: input.idle,
    ...(input.interruptions ? { interruptions: input.interruptions } : {}),
    ...(input.shutdownCommand ? { shutdownCommand: input.shutdownCommand } : {}),
    tags: input.tags,
    price: { perHour: quote.pricePerHour, market: quote.market },
    ...(input.resume ? { resume: input.resume } : {}),
    dryRun: input.dryRun,
    ...(input.foreground ? { foreground: true } : {}),
  });
  const result: NewMachineTrainResult = {
    runId: spec.runId,
    dryRun: input.dryRun,
    quote,
    bootstrapBytes: launch.bootstrapBytes,
    uploadedBytes: launch.uploadedBytes,
    store: launch.store,
    follow: launch.follow,
  };
  if (input.dryRun) return result;
  input.progress?.(
    `run ${spec.runId}: code and agent in ${launch.store} (${launch.uploadedBytes} bytes uploaded), bootstrap ${launch.bootstrapBytes} bytes`,
  );
  const placement = await input.provider.launch({ ...spec, bootstrap: launch.bootstrap });
  return { ...result, placement };
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

/**
 * What `runctl <cloud> train <script>` prints for a new machine: on a dry run the quote (in the
 * cloud's words) and the bootstrap's size; else the run, the machine and the follow-up lines.
 */
export function newMachineTrainLines(
  result: {
    runId: string;
    dryRun: boolean;
    quote: Quote;
    placement?: Placement;
    bootstrapBytes: number;
    store: string;
    follow: string;
  },
  words: CloudWords & {
    /** The quote as the cloud's `create --dry-run` says it. */
    quoteLine: (quote: Quote, price: string) => string;
    /** Where the bootstrap goes: `user-data`, `container command`. */
    bootstrapIn: string;
  },
): string[] {
  const perHour = result.placement?.pricePerHour ?? result.quote.pricePerHour;
  const price = perHour === null ? "price unknown" : `$${perHour}/h`;
  if (result.dryRun) {
    return [
      words.quoteLine(result.quote, price),
      `Bootstrap (${words.bootstrapIn}): ${result.bootstrapBytes} bytes of ${MAX_BOOTSTRAP_BYTES}`,
    ];
  }
  const p = result.placement;
  return [
    `run ${result.runId}`,
    `${words.machine} ${p?.resourceId}  ${p?.instanceType} (${p?.market}) at ${price}`,
    ...remoteTrainNextSteps(result),
  ];
}

/** What `runctl <cloud> train <machine> <script>` prints (people-facing; `--json` has the result). */
export function liveTrainLines(result: LiveTrainResult, words: CloudWords): string[] {
  if (result.dryRun) {
    return [
      `Would send run ${result.runId} to ${words.machine} ${result.machine} (agent ${result.hostId}); nothing uploaded, nothing sent`,
    ];
  }
  const ahead = result.queued ? ` (${result.queued} run(s) ahead of it)` : "";
  return [
    `run ${result.runId}`,
    `${words.machine} ${result.machine} accepted it${ahead}`,
    ...remoteTrainNextSteps(result),
  ];
}

/** How a cloud names itself in messages and hints. */
export interface CloudWords {
  /** `aws`, `runpod`: the command group and the `.runctl.toml` section. */
  cloud: string;
  /** `instance`, `pod`. */
  machine: string;
}

/**
 * The store of a remote run or machine: `--store`, else `[<cloud>] store`; an s3:// URL, which a
 * cloud machine reaches. Undefined (no store) only when `optional`.
 */
export function remoteStoreUrl(
  flag: string | undefined,
  configured: string | undefined,
  words: CloudWords,
): string | undefined {
  const url = flag ?? configured;
  if (url === undefined) return undefined;
  if (!url.startsWith("s3://")) {
    throw new UserError(`--store ${url} is not an s3:// URL`, {
      code: "invalid_flag",
      hint: `A cloud ${words.machine} reaches an S3 store: --store s3://bucket/prefix.`,
    });
  }
  return url;
}

/** remoteStoreUrl, required: a ConfigError that names both ways to give one. */
export function requireRemoteStore(url: string | undefined, words: CloudWords): string {
  if (url === undefined) {
    throw new ConfigError("No store for the run's code and results", {
      code: "store_missing",
      hint: `Pass --store s3://bucket/prefix or set \`[${words.cloud}] store\` in .runctl.toml.`,
    });
  }
  return url;
}

/**
 * Which form of `runctl <cloud> train` this is: `train <script> [-- args]` (a new machine) when
 * the first argument is an existing file, `train <machine> <script> [-- args]` (a live machine)
 * when the first is not a file and the second is; else an error naming both forms.
 */
export function trainForm(
  argv: readonly string[],
  cwd: string,
  words: CloudWords,
):
  | { kind: "new"; script: string; args: string[] }
  | { kind: "live"; machine: string; script: string; args: string[] } {
  const isFile = (path: string | undefined) => {
    if (path === undefined) return false;
    const full = resolve(cwd, path);
    return existsSync(full) && statSync(full).isFile();
  };
  const [first, second, ...rest] = argv;
  if (isFile(first)) return { kind: "new", script: first as string, args: argv.slice(1) };
  if (first !== undefined && isFile(second)) {
    return { kind: "live", machine: first, script: second as string, args: rest };
  }
  const usage = `\`runctl ${words.cloud} train <script> [-- args]\` (a new ${words.machine}) or \`runctl ${words.cloud} train <${words.machine}-id> <script> [-- args]\` (one that runs runctl's agent)`;
  throw new UserError(
    second === undefined
      ? `${first ?? "(nothing)"} is not a file here, and no script follows it`
      : `Neither ${first} nor ${second} is a file here`,
    { code: "script_not_found", hint: `Name a script that exists: ${usage}.` },
  );
}

/** The `[nats]` a live machine's inbox needs: a ConfigError that names the fix without a URL. */
export function requireInboxNats(nats: RemoteTrainNats | undefined, words: CloudWords): RemoteTrainNats {
  if (nats === undefined) {
    throw new ConfigError(`A run on a live ${words.machine} is sent over NATS, and no [nats] url is set`, {
      code: "nats_missing",
      hint: `Set \`[nats] url\` in .runctl.toml (or RUNCTL_NATS_URL), the server the ${words.machine}'s agent listens on; or start a new ${words.machine} with \`runctl ${words.cloud} train <script>\`.`,
    });
  }
  return nats;
}

export interface LiveTrainInput {
  provider: Provider;
  /** The machine's id as its provider names it. */
  machine: string;
  script: string;
  args: readonly string[];
  nprocPerNode: number;
  projectRoot: string;
  cwd: string;
  store: ArtifactStore;
  bundleCacheDir: string;
  nats: RemoteTrainNats;
  tags: Tags;
  dryRun: boolean;
  /** An earlier run's checkpoint to start from (resumeCheckpoint). */
  resume?: HostResume;
  words: CloudWords;
  /** How long to wait for the agent's answer (default 30 s). */
  timeoutMs?: number;
  progress?: (line: string) => void;
  now?: Date;
}

export interface LiveTrainResult {
  runId: string;
  dryRun: boolean;
  machine: string;
  hostId: string;
  /** The agent took the run (always false on a dry run, which sends nothing). */
  accepted: boolean;
  /** Runs ahead of it on the machine. */
  queued?: number;
  uploadedBytes: number;
  store: string;
  follow: string;
}

/**
 * One run on a machine that already runs runctl's agent (`runctl <cloud> create` with a store and
 * NATS): the machine is checked (running, runctl's, has an agent), the code goes to the store
 * (skipped when it is there), the run gets its own credential and POST policy, and the run is
 * sent to the machine's inbox as a NATS request. The agent's refusal is a UserError with its code.
 */
export async function trainOnLiveMachine(input: LiveTrainInput): Promise<LiveTrainResult> {
  const { words } = input;
  const progress = input.progress ?? (() => {});
  const runCwd = checkRemoteTrain({
    projectRoot: input.projectRoot,
    cwd: input.cwd,
    storeUrl: input.store.url,
    command: `runctl ${words.cloud} train`,
    storeHint: `Pass --store s3://bucket/prefix or set \`[${words.cloud}] store\` in .runctl.toml.`,
  });
  const resource = await input.provider.status(input.machine);
  if (!isRunctlManaged(resource.tags)) {
    throw new UserError(`${words.machine} ${input.machine} was not created by runctl`, {
      code: "not_runctl_managed",
      hint: `Create one with \`runctl ${words.cloud} create … --store …\`, or train on a new ${words.machine}: \`runctl ${words.cloud} train <script>\`.`,
    });
  }
  const hostId = resource.tags[TAG_HOST];
  if (hostId === undefined) {
    throw new UserError(
      `${words.machine} ${input.machine} runs no runctl agent (it has no ${TAG_HOST} tag)`,
      {
        code: "no_agent",
        hint: `Create the ${words.machine} with a store and [nats] url (\`runctl ${words.cloud} create … --store s3://…\`), or train on a new one: \`runctl ${words.cloud} train <script>\`.`,
      },
    );
  }
  if (resource.state !== "running") {
    throw new UserError(`${words.machine} ${input.machine} is ${resource.state}, not running`, {
      code: "machine_not_running",
      hint:
        resource.state === "stopped"
          ? `Start it (\`runctl ${words.cloud} start ${input.machine}\`): its agent starts with it.`
          : resource.state === "pending"
            ? `Wait until it runs (\`runctl ${words.cloud} wait ${input.machine}\`).`
            : `Train on a new ${words.machine}: \`runctl ${words.cloud} train <script>\`.`,
    });
  }
  const runId = newRunId(input.now);
  const { prepareInboxRun } = await import("./remote-launch.ts");
  const inbox = await prepareInboxRun({
    hostId,
    run: scriptRunSpec({ ...input, runId, runCwd }),
    projectRoot: input.projectRoot,
    bundleCacheDir: input.bundleCacheDir,
    store: input.dryRun ? readOnlyStore(input.store) : input.store,
    nats: launchNats(input.nats, input.dryRun),
    ...(resource.pricePerHour !== null
      ? { price: { perHour: resource.pricePerHour, market: resource.market } }
      : {}),
    ...(input.resume ? { resume: input.resume } : {}),
  });
  const store = input.store.url.replace(/\/+$/, "");
  const result: LiveTrainResult = {
    runId,
    dryRun: input.dryRun,
    machine: input.machine,
    hostId,
    accepted: false,
    uploadedBytes: inbox.uploadedBytes,
    store,
    follow: `runctl logs -f ${runId} --from ${store}`,
  };
  if (input.dryRun) return result;
  progress(`run ${runId}: code in ${store} (${inbox.uploadedBytes} bytes uploaded); sending it to ${hostId}`);
  const reply = await askHost(
    input.nats,
    hostId,
    inbox.message,
    input.timeoutMs ?? 30_000,
    words,
    input.machine,
  );
  if (!reply.accepted) {
    throw new UserError(`${words.machine} ${input.machine} refused the run: ${reply.error.message}`, {
      code: reply.error.code,
      hint:
        reply.error.code === "host_stopping"
          ? `It is shutting down (idle): train on a new ${words.machine} (\`runctl ${words.cloud} train <script>\`), or start it again once it has stopped.`
          : "The agent could not read the request: check that runctl here and the agent on the machine are the same version.",
      details: { runId, hostId },
    });
  }
  return { ...result, accepted: true, queued: reply.queued };
}

/** The inbox request and the agent's answer, schema-checked. */
async function askHost(
  nats: RemoteTrainNats,
  hostId: string,
  message: unknown,
  timeoutMs: number,
  words: CloudWords,
  machine: string,
): Promise<HostInboxReply> {
  const { connectNats, hostSubjects, requestWhenListening } = await import("@runctl/control");
  const nc = await connectNats(nats.launcher);
  try {
    let data: Uint8Array;
    try {
      // The agent's inbox is absent while it reconnects (a renewed credential): asked again then.
      const msg = await requestWhenListening(
        nc,
        hostSubjects(nats.prefix, hostId).inbox,
        new TextEncoder().encode(JSON.stringify(message)),
        { timeoutMs },
      );
      data = msg.data;
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new UserError(`The agent on ${words.machine} ${machine} did not answer (${why})`, {
        code: "host_unreachable",
        hint: `Its agent may still be booting (try again in a minute), have shut the ${words.machine} down, or be on another NATS server than [nats] url; \`runctl ${words.cloud} status ${machine}\` shows its state.`,
        cause: error,
      });
    }
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(data));
    } catch {
      body = undefined;
    }
    const parsed = HostInboxReply.safeParse(body);
    if (!parsed.success) {
      throw new UserError(`The agent on ${words.machine} ${machine} sent an answer runctl cannot read`, {
        code: "host_bad_reply",
        hint: "Check that runctl here and the agent on the machine are the same version.",
      });
    }
    return parsed.data;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

export interface RemoteHostInput {
  hostId: string;
  provider: string;
  store: ArtifactStore;
  nats: RemoteTrainNats;
  node: { version: string; mirror: string };
  idle: NonNullable<RemoteLaunchInput["idle"]>;
  interruptions?: RemoteLaunchInput["interruptions"];
  shutdownCommand?: string[];
  dryRun: boolean;
  foreground?: boolean;
}

/** The bootstrap of a machine whose agent waits for runs from boot (`runctl <cloud> create`). */
export async function prepareRemoteHost(
  input: RemoteHostInput,
): Promise<{ bootstrap: string; bootstrapBytes: number; uploadedBytes: number; store: string }> {
  const { prepareRemoteLaunch } = await import("./remote-launch.ts");
  const launch = await prepareRemoteLaunch({
    hostId: input.hostId,
    provider: input.provider,
    store: input.dryRun ? readOnlyStore(input.store) : input.store,
    nats: launchNats(input.nats, input.dryRun),
    node: input.node,
    idle: input.idle,
    ...(input.interruptions ? { interruptions: input.interruptions } : {}),
    ...(input.shutdownCommand ? { shutdownCommand: input.shutdownCommand } : {}),
    ...(input.foreground ? { foreground: true } : {}),
  });
  return {
    bootstrap: launch.bootstrap,
    bootstrapBytes: Buffer.byteLength(launch.bootstrap),
    uploadedBytes: launch.uploadedBytes,
    store: input.store.url.replace(/\/+$/, ""),
  };
}

/** A new host id for a machine runctl creates with an agent: `<cloud>-<time>-<random>`, before its own id exists. */
export function newHostId(cloud: string, now?: Date): string {
  return `${cloud}-${newRunId(now)}`;
}
