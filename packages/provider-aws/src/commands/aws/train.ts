import { dirname, join } from "node:path";
import { Args, Flags } from "@oclif/core";
import { ConfigError, type ProviderRegistry, TAG_PROJECT, TAG_USER, UserError } from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";
import { AwsConfig } from "../../aws-options.ts";

export default class AwsTrain extends AwsCommand {
  static override summary = "Run a training script on a new EC2 instance.";
  static override description =
    "Bundles the project, puts it and the agent in the store (once: content-addressed), and launches an instance whose user-data downloads Node, the agent and the code with short-lived URLs and runs the script (--nproc-per-node ranks). The run writes its directory to the store and reports over NATS ([nats]); the machine shuts itself down --idle-stop minutes after the run (on-demand: stopped, spot: terminated).";
  static override examples = [
    "<%= config.bin %> aws train train.py --type g5.xlarge --spot -- --epochs 10",
    "<%= config.bin %> aws train train.py --nproc-per-node 4 --store s3://my-bucket/runctl",
    "<%= config.bin %> aws train train.py --dry-run",
  ];
  static override strict = false;
  static override args = {
    script: Args.string({ description: "Python script, relative to here (train.py).", required: true }),
  };
  static override flags = {
    type: Flags.string({ description: "Instance type.", default: "g5.xlarge" }),
    spot: Flags.boolean({ description: "Spot capacity (one-time; terminated when idle).", default: false }),
    "nproc-per-node": Flags.integer({ description: "Ranks to start.", default: 1, min: 1, max: 256 }),
    "idle-stop": Flags.integer({
      description: "Minutes without a run before the machine shuts down (0: right after the run).",
      default: 30,
      min: 0,
    }),
    store: Flags.string({ description: "Artifact store, s3://bucket/prefix (default: [aws] store)." }),
    name: Flags.string({ description: "Name tag of the instance." }),
    "dry-run": Flags.boolean({
      description: "Quote and build the bootstrap; upload nothing, launch nothing.",
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
    const { args, flags, argv } = await this.parse(AwsTrain);
    const scriptArgs = (argv as string[]).slice(1);
    const loaded = await this.runctlConfig();
    const config = loaded.config as Record<string, unknown> & {
      project: { name?: string; user?: string };
      nats: import("@runctl/core").NatsConfig;
    };
    const aws = AwsConfig.parse(config.aws ?? {});
    const storeUrl = flags.store ?? aws.store;
    if (storeUrl === undefined) {
      throw new ConfigError("No store for the run's code and results", {
        code: "store_missing",
        hint: "Pass --store s3://bucket/prefix or set `[aws] store` in .runctl.toml.",
      });
    }
    if (!storeUrl.startsWith("s3://")) {
      throw new UserError(`--store ${storeUrl} is not an s3:// URL`, {
        code: "invalid_flag",
        hint: "An EC2 machine reaches an S3 store: --store s3://bucket/prefix.",
      });
    }
    const [{ trainOnAws }, { NODE_VERSION, remoteTrainNats, remoteTrainNextSteps }] = await Promise.all([
      import("../../aws-train.ts"),
      import("@runctl/agent"),
    ]);
    const nats = await remoteTrainNats(config.nats, (line) => this.progress(line), storeUrl);
    const [store, provider] = await Promise.all([
      (await this.registry()).openArtifactStore(storeUrl),
      this.aws(),
    ]);
    const cwd = process.cwd();
    const result = await trainOnAws({
      provider,
      script: args.script,
      args: scriptArgs,
      instanceType: flags.type,
      spot: flags.spot,
      nprocPerNode: flags["nproc-per-node"],
      idleStopMinutes: flags["idle-stop"],
      projectRoot: loaded.projectFile ? dirname(loaded.projectFile) : cwd,
      cwd,
      store,
      bundleCacheDir: join(this.config.cacheDir, "bundles"),
      ...(nats ? { nats } : {}),
      node: { version: NODE_VERSION, mirror: aws.node_mirror },
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
          ? `Would launch ${quote.instanceType} (${quote.market}) in ${quote.zone ?? quote.region} at ${price}`
          : `Cannot launch ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
      );
      this.log(`Bootstrap (user-data): ${result.bootstrapBytes} bytes of 16384`);
      return { ...result };
    }
    const placement = result.placement;
    this.log(`run ${result.runId}`);
    this.log(
      `instance ${placement?.resourceId}  ${placement?.instanceType} (${placement?.market}) at ${price}`,
    );
    for (const line of remoteTrainNextSteps(result)) this.log(line);
    return { ...result };
  }
}
