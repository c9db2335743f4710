import { Args, Flags } from "@oclif/core";
import { remoteTrainFlags } from "@runctl/command";
import { type NatsConfig, UserError } from "@runctl/core";
import { RunpodCommand } from "../../runpod-command.ts";
import { CloudName, RunpodConfig } from "../../runpod-options.ts";

export default class RunpodTrain extends RunpodCommand {
  static override summary = "Run a training script on a new RunPod pod, or on one that runs runctl's agent.";
  static override description =
    "`train <script> [-- args]` (the first argument is a file here) bundles the project, puts it and the agent in the store (once: content-addressed), and creates a pod whose container command downloads Node, the agent and the code with short-lived URLs and runs the script (--nproc-per-node ranks); the pod stops itself --idle-stop minutes after the run. GPU types fall back as in `runctl runpod create`. `train <pod> <script> [-- args]` sends the run to a pod made by `runctl runpod create --store …` over NATS: it must be running; its agent fetches the code and answers whether it took the run. Either way the run writes its directory to the store and reports over NATS ([nats]); the command returns once the run is launched or accepted.";
  static override examples = [
    '<%= config.bin %> runpod train train.py --gpu "NVIDIA RTX A6000" -- --epochs 10',
    "<%= config.bin %> runpod train abc123xyz train.py --nproc-per-node 2 -- --epochs 10",
    '<%= config.bin %> runpod train train.py --gpu "RTX 4090" --gpu-count 2 --nproc-per-node 2 --spot --bid 0.3',
    '<%= config.bin %> runpod train train.py --gpu "RTX A6000" --store s3://my-bucket/runctl --dry-run',
  ];
  static override strict = false;
  static override args = {
    target: Args.string({
      description: "Python script, relative to here (train.py); or the pod id, followed by the script.",
      required: true,
    }),
  };
  static override flags = {
    ...remoteTrainFlags({ cloud: "runpod", machine: "pod" }),
    background: Flags.boolean({
      description: "Return at once (the default too: train returns once the run is launched or accepted).",
      default: false,
    }),
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
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags, argv } = await this.parse(RunpodTrain);
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
      nats: NatsConfig;
    };
    const runpod = RunpodConfig.parse(config.runpod ?? {});
    const agent = await import("@runctl/agent");
    const [{ form, nats, common: shared }, provider] = await Promise.all([
      agent.remoteTrainSetup({
        argv: argv as string[],
        cwd: process.cwd(),
        words: this.words,
        storeFlag: flags.store,
        configuredStore: runpod.store,
        config,
        projectFile: loaded.projectFile,
        cacheDir: this.config.cacheDir,
        openStore: async (url) => (await this.registry()).openArtifactStore(url),
        progress: (line) => this.progress(line),
        ...(flags.resume ? { resume: { run: flags.resume, passArg: flags["resume-arg"] ?? false } } : {}),
      }),
      this.runpod(),
    ]);
    const common = { ...shared, provider, dryRun: flags["dry-run"] };
    if (form.kind === "live") {
      const result = await agent.trainOnLiveMachine({
        ...common,
        machine: form.machine,
        nprocPerNode: flags["nproc-per-node"] ?? 1,
        nats: agent.requireInboxNats(nats, this.words),
        words: this.words,
      });
      for (const line of agent.liveTrainLines(result, this.words)) this.log(line);
      return { ...result };
    }
    const { trainOnRunPod } = await import("../../runpod-train.ts");
    const gpuCount = flags["gpu-count"];
    const result = await trainOnRunPod({
      ...common,
      gpuTypes: flags.gpu ?? [],
      gpuCount,
      spot: flags.spot,
      ...(bid !== undefined ? { bidPerGpu: bid } : {}),
      ...(flags.cloud ? { cloud: CloudName.parse(flags.cloud) } : {}),
      nprocPerNode: flags["nproc-per-node"] ?? gpuCount,
      idleStopMinutes: flags["idle-stop"],
      ...(nats ? { nats } : {}),
      node: { version: agent.NODE_VERSION, mirror: runpod.node_mirror },
      ...(flags.name ? { name: flags.name } : {}),
    });
    const lines = agent.newMachineTrainLines(result, {
      ...this.words,
      bootstrapIn: "container command",
      quoteLine: (quote, price) =>
        quote.available
          ? `Would create ${quote.instanceType} x${gpuCount} (${quote.market}) in the ${quote.zone} cloud at ${price}`
          : `Cannot create ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
    });
    for (const line of lines) this.log(line);
    return { ...result };
  }
}
