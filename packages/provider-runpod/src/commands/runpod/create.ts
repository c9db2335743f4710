import { Flags } from "@oclif/core";
import { type LaunchSpec, type NatsConfig, TAG_HOST, TAG_PROJECT, TAG_USER, UserError } from "@runctl/core";
import { RunpodCommand } from "../../runpod-command.ts";
import { CloudName, RunpodConfig } from "../../runpod-options.ts";
import { runpodSelfStop } from "../../runpod-train.ts";

export default class RunpodCreate extends RunpodCommand {
  static override summary = "Create a RunPod pod, labelled as runctl's (on-demand or interruptible).";
  static override description =
    "The first --gpu is tried first in the --cloud cloud, then in the other cloud, then each further --gpu likewise (then on-demand only with --spot-fallback); the order and each refusal are printed. GPU types are RunPod ids or display names. With a store (--store or `[runpod] store`) and `[nats] url` the pod's command boots runctl's agent, which waits for runs (`runctl runpod train <pod> <script>`) and stops the pod after --idle-stop minutes without one.";
  static override examples = [
    '<%= config.bin %> runpod create --gpu "NVIDIA RTX A6000"',
    '<%= config.bin %> runpod create --gpu "NVIDIA RTX A6000" --store s3://my-bucket/runctl --idle-stop 60',
    '<%= config.bin %> runpod create --gpu "RTX 4090" --gpu "RTX A6000" --spot --bid 0.3 --dry-run',
    '<%= config.bin %> runpod create --gpu "NVIDIA A100 80GB PCIe" --gpu-count 2 --cloud community --json',
  ];
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
    "spot-fallback": Flags.boolean({
      description: "Fall back to on-demand when interruptible is refused.",
      default: false,
    }),
    bid: Flags.string({ description: "Bid per GPU in USD per hour (default: the minimum bid)." }),
    image: Flags.string({ description: "Container image (default: RunPod's PyTorch image)." }),
    cloud: Flags.string({ description: "Cloud tried first.", options: CloudName.options }),
    "no-cloud-fallback": Flags.boolean({ description: "Do not try the other cloud.", default: false }),
    "disk-gb": Flags.integer({ description: "Container disk in GiB.", min: 1, max: 65_536 }),
    "volume-gb": Flags.integer({
      description: "Pod volume in GiB (kept across stop/start).",
      min: 0,
      max: 65_536,
    }),
    name: Flags.string({ description: "Pod name (prefixed with runctl-)." }),
    store: Flags.string({
      description:
        "Artifact store, s3://bucket/prefix (default: [runpod] store): with [nats] url, the pod runs runctl's agent.",
    }),
    "idle-stop": Flags.integer({
      description: "Minutes without a run before the agent stops the pod (with an agent).",
      default: 30,
      min: 0,
    }),
    "dry-run": Flags.boolean({
      description: "Show GPU type, market, cloud and price; create nothing.",
      default: false,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(RunpodCreate);
    const [gpu, ...fallbacks] = flags.gpu ?? [];
    if (gpu === undefined) {
      throw new UserError("Which GPU type?", {
        code: "missing_argument",
        hint: 'Pass one: `runctl runpod create --gpu "NVIDIA RTX A6000"`.',
      });
    }
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
    const { config } = await this.runctlConfig();
    const project = (config as { project?: { name?: string; user?: string } }).project ?? {};
    const natsConfig = (config as { nats: NatsConfig }).nats;
    const agent = await import("@runctl/agent");
    const runpodConfig = RunpodConfig.parse((config as { runpod?: unknown }).runpod ?? {});
    const storeUrl = agent.remoteStoreUrl(flags.store, runpodConfig.store, this.words);
    const hostId =
      storeUrl !== undefined && natsConfig.url !== undefined ? agent.newHostId("runpod") : undefined;
    const spec: LaunchSpec = {
      instanceType: gpu,
      gpuCount: flags["gpu-count"],
      market: flags.spot ? "spot" : "on-demand",
      spotFallback: flags["spot-fallback"],
      ...(flags.image ? { image: flags.image } : {}),
      ...(flags["disk-gb"] ? { diskGb: flags["disk-gb"] } : {}),
      tags: {
        ...(project.name ? { [TAG_PROJECT]: project.name } : {}),
        ...(project.user ? { [TAG_USER]: project.user } : {}),
        // Kept in the pod's env labels: `runctl runpod train <pod>` finds the agent's inbox by it.
        ...(hostId ? { [TAG_HOST]: hostId } : {}),
      },
      providerOptions: {
        ...(fallbacks.length > 0 ? { gpuTypes: fallbacks } : {}),
        ...(flags.cloud ? { cloud: flags.cloud } : {}),
        ...(flags["no-cloud-fallback"] ? { cloudFallback: false } : {}),
        ...(bid !== undefined ? { bidPerGpu: bid } : {}),
        ...(flags["volume-gb"] !== undefined ? { volumeGb: flags["volume-gb"] } : {}),
        ...(flags.name ? { name: flags.name } : {}),
      },
    };
    const runpod = await this.runpod();
    const quote = flags["dry-run"] ? await runpod.quote(spec) : undefined;
    if (quote) {
      const price = quote.pricePerHour === null ? "price unknown" : `$${quote.pricePerHour}/h`;
      this.log(
        quote.available
          ? `Would create ${quote.instanceType} x${flags["gpu-count"]} (${quote.market}) in the ${quote.zone} cloud at ${price}`
          : `Cannot create ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
      );
    }
    let host: { hostId: string; bootstrapBytes: number; uploadedBytes: number; store: string } | undefined;
    if (storeUrl !== undefined && hostId !== undefined) {
      const nats = await agent.remoteTrainNats(natsConfig, (line) => this.progress(line), storeUrl);
      const store = await (await this.registry()).openArtifactStore(storeUrl);
      const prepared = await agent.prepareRemoteHost({
        hostId,
        provider: "runpod",
        store,
        nats: agent.requireInboxNats(nats, this.words),
        node: { version: agent.NODE_VERSION, mirror: runpodConfig.node_mirror },
        // The container's command ends and RunPod stops the pod, spot or not: its volume stays.
        idle: { minutes: flags["idle-stop"], action: "stop" },
        // RunPod restarts a container whose command ends: an idle pod stops itself through RunPod.
        shutdownCommand: runpodSelfStop("stop"),
        // A reclaimed spot pod's container gets SIGTERM, seconds before SIGKILL.
        ...(flags.spot ? { interruptions: "sigterm" as const } : {}),
        dryRun: flags["dry-run"],
        // The container runs as long as its command: the bootstrap must not return.
        foreground: true,
      });
      spec.bootstrap = prepared.bootstrap;
      spec.idleStopMinutes = flags["idle-stop"];
      host = {
        hostId,
        bootstrapBytes: prepared.bootstrapBytes,
        uploadedBytes: prepared.uploadedBytes,
        store: prepared.store,
      };
    } else {
      this.progress(
        `No agent on this pod: \`runctl runpod train <pod> <script>\` will need a store (--store or [runpod] store) and [nats] url${storeUrl === undefined ? "; no store is set" : "; no [nats] url is set"}`,
      );
    }
    if (quote) {
      if (host) this.log(`Bootstrap (container command): ${host.bootstrapBytes} bytes`);
      return { dryRun: true, quote, ...(host ? { host } : {}) };
    }
    const placement = await runpod.launch(spec);
    const price = placement.pricePerHour === null ? "price unknown" : `$${placement.pricePerHour}/h`;
    this.log(`${placement.resourceId}  ${placement.instanceType} (${placement.market}) at ${price}`);
    if (host) {
      this.log(`  agent ${host.hostId}: waits for runs, stops the pod after ${flags["idle-stop"]} min idle`);
      this.log(`  train:   runctl runpod train ${placement.resourceId} train.py`);
    }
    return { placement, ...(host ? { host } : {}) };
  }
}
