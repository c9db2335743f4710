import { Flags } from "@oclif/core";
import { type LaunchSpec, TAG_PROJECT, TAG_USER, UserError } from "@runctl/core";
import { RunpodCommand } from "../../runpod-command.ts";
import { CloudName } from "../../runpod-options.ts";

export default class RunpodCreate extends RunpodCommand {
  static override summary = "Create a RunPod pod, labelled as runctl's (on-demand or interruptible).";
  static override description =
    "The first --gpu is tried first in the --cloud cloud, then in the other cloud, then each further --gpu likewise (then on-demand only with --spot-fallback); the order and each refusal are printed. GPU types are RunPod ids or display names.";
  static override examples = [
    '<%= config.bin %> runpod create --gpu "NVIDIA RTX A6000"',
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
    if (flags["dry-run"]) {
      const quote = await runpod.quote(spec);
      const price = quote.pricePerHour === null ? "price unknown" : `$${quote.pricePerHour}/h`;
      this.log(
        quote.available
          ? `Would create ${quote.instanceType} x${flags["gpu-count"]} (${quote.market}) in the ${quote.zone} cloud at ${price}`
          : `Cannot create ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
      );
      return { dryRun: true, quote };
    }
    const placement = await runpod.launch(spec);
    const price = placement.pricePerHour === null ? "price unknown" : `$${placement.pricePerHour}/h`;
    this.log(`${placement.resourceId}  ${placement.instanceType} (${placement.market}) at ${price}`);
    return { placement };
  }
}
