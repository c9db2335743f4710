import { Args, Flags } from "@oclif/core";
import { type LaunchSpec, TAG_PROJECT, TAG_USER, UserError } from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";

export default class AwsCreate extends AwsCommand {
  static override summary = "Launch an EC2 instance, tagged by runctl (spot or on-demand).";
  static override description =
    "Capacity refused in a zone is tried in the other zones, then with each --fallback-type, then (only with --spot-fallback) on-demand; the order and each refusal are printed. The same --idempotency-key never launches a second machine, even when the command is killed and run again.";
  static override examples = [
    "<%= config.bin %> aws create g5.xlarge --spot",
    "<%= config.bin %> aws create g5.xlarge --spot --spot-fallback --fallback-type g6.xlarge --dry-run",
    "<%= config.bin %> aws create t3.micro --zone us-east-1b --json",
  ];
  static override args = {
    type: Args.string({ description: "Instance type (or --type)." }),
  };
  static override flags = {
    type: Flags.string({ description: "Instance type, e.g. g5.xlarge." }),
    spot: Flags.boolean({
      description: "Spot capacity (one-time; terminated when reclaimed).",
      default: false,
    }),
    "spot-fallback": Flags.boolean({
      description: "Fall back to on-demand when spot is refused.",
      default: false,
    }),
    "max-price": Flags.string({ description: "Spot price cap in USD per hour." }),
    "fallback-type": Flags.string({
      description: "Another type to try when capacity is refused (repeatable).",
      multiple: true,
    }),
    zone: Flags.string({ description: "Availability zone, e.g. us-east-1b." }),
    image: Flags.string({ description: "AMI id (default: the newest Deep Learning AMI)." }),
    "disk-gb": Flags.integer({ description: "Root disk size in GiB.", min: 8, max: 65_536 }),
    name: Flags.string({ description: "Name tag." }),
    "idempotency-key": Flags.string({
      description: "Names this launch: run again with the same key, get the same machine.",
    }),
    "dry-run": Flags.boolean({
      description: "Show type, market, zone and price; launch nothing.",
      default: false,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(AwsCreate);
    const instanceType = flags.type ?? args.type;
    if (instanceType === undefined) {
      throw new UserError("Which instance type?", {
        code: "missing_argument",
        hint: "Pass one: `runctl aws create g5.xlarge`.",
      });
    }
    const maxPrice = flags["max-price"] === undefined ? undefined : Number(flags["max-price"]);
    if (maxPrice !== undefined && !(maxPrice > 0)) {
      throw new UserError(`--max-price ${flags["max-price"]} is not a positive price`, {
        code: "invalid_flag",
        hint: "USD per hour, e.g. --max-price 0.5.",
      });
    }
    const { config } = await this.runctlConfig();
    const project = (config as { project?: { name?: string; user?: string } }).project ?? {};
    const spec: LaunchSpec = {
      instanceType,
      market: flags.spot ? "spot" : "on-demand",
      spotFallback: flags["spot-fallback"],
      ...(flags.zone ? { zone: flags.zone } : {}),
      ...(flags.image ? { image: flags.image } : {}),
      ...(flags["disk-gb"] ? { diskGb: flags["disk-gb"] } : {}),
      ...(maxPrice !== undefined ? { maxPricePerHour: maxPrice } : {}),
      tags: {
        ...(project.name ? { [TAG_PROJECT]: project.name } : {}),
        ...(project.user ? { [TAG_USER]: project.user } : {}),
      },
      providerOptions: {
        ...(flags["fallback-type"] ? { instanceTypes: flags["fallback-type"] } : {}),
        ...(flags.name ? { name: flags.name } : {}),
        ...(flags["idempotency-key"] ? { idempotencyKey: flags["idempotency-key"] } : {}),
      },
    };
    const aws = await this.aws();
    if (flags["dry-run"]) {
      const quote = await aws.quote(spec);
      const price = quote.pricePerHour === null ? "price unknown" : `$${quote.pricePerHour}/h`;
      this.log(
        quote.available
          ? `Would launch ${quote.instanceType} (${quote.market}) in ${quote.zone ?? quote.region} at ${price}`
          : `Cannot launch ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
      );
      return { dryRun: true, quote };
    }
    const placement = await aws.launch(spec);
    const price = placement.pricePerHour === null ? "price unknown" : `$${placement.pricePerHour}/h`;
    this.log(`${placement.resourceId}  ${placement.instanceType} (${placement.market}) at ${price}`);
    return { placement };
  }
}
