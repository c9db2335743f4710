import { Args, Flags } from "@oclif/core";
import { remoteTrainFlags } from "@runctl/command";
import type { NatsConfig } from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";
import { AwsConfig } from "../../aws-options.ts";

export default class AwsTrain extends AwsCommand {
  static override summary =
    "Run a training script on a new EC2 instance, or on one that runs runctl's agent.";
  static override description =
    "`train <script> [-- args]` (the first argument is a file here) bundles the project, puts it and the agent in the store (once: content-addressed), and launches an instance whose user-data downloads Node, the agent and the code with short-lived URLs and runs the script (--nproc-per-node ranks); the machine shuts itself down --idle-stop minutes after the run (on-demand: stopped, spot: terminated). `train <instance> <script> [-- args]` sends the run to an instance made by `runctl aws create --store …` over NATS: it must be running; its agent fetches the code and answers whether it took the run. Either way the run writes its directory to the store and reports over NATS ([nats]).";
  static override examples = [
    "<%= config.bin %> aws train train.py --type g5.xlarge --spot -- --epochs 10",
    "<%= config.bin %> aws train i-0abc123 train.py --nproc-per-node 4 -- --epochs 10",
    "<%= config.bin %> aws train train.py --nproc-per-node 4 --store s3://my-bucket/runctl",
    "<%= config.bin %> aws train train.py --dry-run",
  ];
  static override strict = false;
  static override args = {
    target: Args.string({
      description: "Python script, relative to here (train.py); or the instance id, followed by the script.",
      required: true,
    }),
  };
  static override flags = {
    ...remoteTrainFlags({ cloud: "aws", machine: "instance" }),
    type: Flags.string({ description: "Instance type of a new instance.", default: "g5.xlarge" }),
    spot: Flags.boolean({
      description: "A new instance on spot capacity (one-time; terminated when idle).",
      default: false,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags, argv } = await this.parse(AwsTrain);
    const loaded = await this.runctlConfig();
    const config = loaded.config as Record<string, unknown> & {
      project: { name?: string; user?: string };
      nats: NatsConfig;
    };
    const aws = AwsConfig.parse(config.aws ?? {});
    const agent = await import("@runctl/agent");
    const [{ form, nats, common: shared }, provider] = await Promise.all([
      agent.remoteTrainSetup({
        argv: argv as string[],
        cwd: process.cwd(),
        words: this.words,
        storeFlag: flags.store,
        configuredStore: aws.store,
        config,
        projectFile: loaded.projectFile,
        cacheDir: this.config.cacheDir,
        openStore: async (url) => (await this.registry()).openArtifactStore(url),
        progress: (line) => this.progress(line),
        ...(flags.resume ? { resume: { run: flags.resume, passArg: flags["resume-arg"] ?? false } } : {}),
      }),
      this.aws(),
    ]);
    const common = {
      ...shared,
      provider,
      nprocPerNode: flags["nproc-per-node"] ?? 1,
      dryRun: flags["dry-run"],
    };
    if (form.kind === "live") {
      const result = await agent.trainOnLiveMachine({
        ...common,
        machine: form.machine,
        nats: agent.requireInboxNats(nats, this.words),
        words: this.words,
      });
      for (const line of agent.liveTrainLines(result, this.words)) this.log(line);
      return { ...result };
    }
    const { trainOnAws } = await import("../../aws-train.ts");
    const result = await trainOnAws({
      ...common,
      instanceType: flags.type,
      spot: flags.spot,
      idleStopMinutes: flags["idle-stop"],
      ...(nats ? { nats } : {}),
      node: { version: agent.NODE_VERSION, mirror: aws.node_mirror },
      ...(flags.name ? { name: flags.name } : {}),
    });
    const lines = agent.newMachineTrainLines(result, {
      ...this.words,
      bootstrapIn: "user-data",
      quoteLine: (quote, price) =>
        quote.available
          ? `Would launch ${quote.instanceType} (${quote.market}) in ${quote.zone ?? quote.region} at ${price}`
          : `Cannot launch ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
    });
    for (const line of lines) this.log(line);
    return { ...result };
  }
}
