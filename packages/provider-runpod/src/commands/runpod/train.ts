import { dirname, join } from "node:path";
import { Args, Flags } from "@oclif/core";
import { ConfigError, type ProviderRegistry, TAG_PROJECT, TAG_USER, UserError } from "@runctl/core";
import { RunpodCommand } from "../../runpod-command.ts";
import { CloudName, RunpodConfig } from "../../runpod-options.ts";

export default class RunpodTrain extends RunpodCommand {
  static override summary = "Run a training script on a new RunPod pod.";
  static override description =
    "Bundles the project, puts it and the agent in the store (once: content-addressed), and creates a pod whose container command downloads Node, the agent and the code with short-lived URLs and runs the script (--nproc-per-node ranks). The run writes its directory to the store and reports over NATS ([nats]); the pod stops itself --idle-stop minutes after the run. GPU types fall back as in `runctl runpod create`.";
  static override examples = [
    '<%= config.bin %> runpod train train.py --gpu "NVIDIA RTX A6000" -- --epochs 10',
    '<%= config.bin %> runpod train train.py --gpu "RTX 4090" --gpu-count 2 --nproc-per-node 2 --spot --bid 0.3',
    '<%= config.bin %> runpod train train.py --gpu "RTX A6000" --store s3://my-bucket/runctl --dry-run',
  ];
  static override strict = false;
  static override args = {
    script: Args.string({ description: "Python script, relative to here (train.py).", required: true }),
  };
  static override flags = {
    gpu: Flags.string({
      description: "GPU type id or display name; repeat for fallbacks in order.",
      multiple: true,
    }),
    "gpu-count": Flags.integer({ description: "GPUs in the pod.", min: 1, max: 8, default: 1 }),
    spot: Flags.boolean({
      description: "An interruptible pod at a bid (stopped when outbid).",
      default: false,
    }),
    bid: Flags.string({ description: "Bid per GPU in USD per hour (default: the minimum bid)." }),
    cloud: Flags.string({ description: "Cloud tried first.", options: CloudName.options }),
    "nproc-per-node": Flags.integer({
      description: "Ranks to start (default: --gpu-count).",
      min: 1,
      max: 256,
    }),
    "idle-stop": Flags.integer({
      description: "Minutes without a run before the pod stops itself (0: right after the run).",
      default: 30,
      min: 0,
    }),
    store: Flags.string({ description: "Artifact store, s3://bucket/prefix (default: [runpod] store)." }),
    name: Flags.string({ description: "Pod name (prefixed with runctl-; default: the run id)." }),
    "dry-run": Flags.boolean({
      description: "Quote and build the bootstrap; upload nothing, create nothing.",
      default: false,
    }),
  };

  /** `s3://` stores, configured by `[s3]`, as the CLI opens them for `--from`. */
  protected override async registry(): Promise<ProviderRegistry> {
    const registry = await super.registry();
    registry.registerArtifactStore("s3:", async (url) => {
      const [{ s3ArtifactStoreFactory, s3SettingsFromConfig }, { config }] = await Promise.all([
        import("@runctl/s3"),
        this.runctlConfig(),
      ]);
      return s3ArtifactStoreFactory(s3SettingsFromConfig(config.s3))(url);
    });
    return registry;
  }

  async run(): Promise<Record<string, unknown>> {
    const { args, flags, argv } = await this.parse(RunpodTrain);
    const scriptArgs = (argv as string[]).slice(1);
    const bid = flags.bid === undefined ? undefined : Number(flags.bid);
    if (bid !== undefined && !(bid > 0)) {
      throw new UserError(`--bid ${flags.bid} is not a positive price`, {
        code: "invalid_flag",
        hint: "USD per GPU per hour, e.g. --bid 0.3.",
      });
    }
    if (bid !== undefined && !flags.spot) {
      throw new UserError("--bid is for interruptible pods", {
        code: "invalid_flag",
        hint: "Add --spot, or drop --bid.",
      });
    }
    const loaded = await this.runctlConfig();
    const config = loaded.config as Record<string, unknown> & {
      project: { name?: string; user?: string };
      nats: import("@runctl/core").NatsConfig;
    };
    const runpod = RunpodConfig.parse(config.runpod ?? {});
    const storeUrl = flags.store ?? runpod.store;
    if (storeUrl === undefined) {
      throw new ConfigError("No store for the run's code and results", {
        code: "store_missing",
        hint: "Pass --store s3://bucket/prefix or set `[runpod] store` in .runctl.toml.",
      });
    }
    if (!storeUrl.startsWith("s3://")) {
      throw new UserError(`--store ${storeUrl} is not an s3:// URL`, {
        code: "invalid_flag",
        hint: "A pod reaches an S3 store: --store s3://bucket/prefix.",
      });
    }
    const [{ trainOnRunPod }, { NODE_VERSION, remoteTrainNats, remoteTrainNextSteps }] = await Promise.all([
      import("../../runpod-train.ts"),
      import("@runctl/agent"),
    ]);
    const nats = await remoteTrainNats(config.nats, (line) => this.progress(line), storeUrl);
    const [store, provider] = await Promise.all([
      (await this.registry()).openArtifactStore(storeUrl),
      this.runpod(),
    ]);
    const cwd = process.cwd();
    const gpuCount = flags["gpu-count"];
    const result = await trainOnRunPod({
      provider,
      script: args.script,
      args: scriptArgs,
      gpuTypes: flags.gpu ?? [],
      gpuCount,
      spot: flags.spot,
      ...(bid !== undefined ? { bidPerGpu: bid } : {}),
      ...(flags.cloud ? { cloud: CloudName.parse(flags.cloud) } : {}),
      nprocPerNode: flags["nproc-per-node"] ?? gpuCount,
      idleStopMinutes: flags["idle-stop"],
      projectRoot: loaded.projectFile ? dirname(loaded.projectFile) : cwd,
      cwd,
      store,
      bundleCacheDir: join(this.config.cacheDir, "bundles"),
      ...(nats ? { nats } : {}),
      node: { version: NODE_VERSION, mirror: runpod.node_mirror },
      tags: {
        ...(config.project.name ? { [TAG_PROJECT]: config.project.name } : {}),
        ...(config.project.user ? { [TAG_USER]: config.project.user } : {}),
      },
      ...(flags.name ? { name: flags.name } : {}),
      dryRun: flags["dry-run"],
      progress: (line) => this.progress(line),
    });
    const { quote } = result;
    const perHour = result.placement?.pricePerHour ?? quote.pricePerHour;
    const price = perHour === null ? "price unknown" : `$${perHour}/h`;
    if (result.dryRun) {
      this.log(
        quote.available
          ? `Would create ${quote.instanceType} x${gpuCount} (${quote.market}) in the ${quote.zone} cloud at ${price}`
          : `Cannot create ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
      );
      this.log(`Bootstrap (container command): ${result.bootstrapBytes} bytes`);
      return { ...result };
    }
    const placement = result.placement;
    this.log(`run ${result.runId}`);
    this.log(`pod ${placement?.resourceId}  ${placement?.instanceType} (${placement?.market}) at ${price}`);
    for (const line of remoteTrainNextSteps(result)) this.log(line);
    return { ...result };
  }
}
