import { Args, Flags } from "@oclif/core";
import { type LaunchSpec, type NatsConfig, TAG_HOST, TAG_PROJECT, TAG_USER, UserError } from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";
import { AwsConfig } from "../../aws-options.ts";

export default class AwsCreate extends AwsCommand {
  static override summary = "Launch an EC2 instance, tagged by runctl (spot or on-demand).";
  static override description =
    "Capacity refused in a zone is tried in the other zones, then with each --fallback-type, then (only with --spot-fallback) on-demand; the order and each refusal are printed. The same --idempotency-key never launches a second machine, even when the command is killed and run again.";
  static override examples = [
    "<%= config.bin %> aws create g5.xlarge --spot",
    "<%= config.bin %> aws create g5.xlarge --store s3://my-bucket/runctl --idle-stop 60",
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
    store: Flags.string({
      description:
        "Artifact store, s3://bucket/prefix (default: [aws] store): with [nats] url, the instance runs runctl's agent.",
    }),
    "idle-stop": Flags.integer({
      description: "Minutes without a run before the agent shuts the instance down (with an agent).",
      default: 30,
      min: 0,
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
    const natsConfig = (config as { nats: NatsConfig }).nats;
    const agent = await import("@runctl/agent");
    const awsConfig = AwsConfig.parse((config as { aws?: unknown }).aws ?? {});
    const storeUrl = agent.remoteStoreUrl(flags.store, awsConfig.store, this.words);
    const withAgent = storeUrl !== undefined && natsConfig.url !== undefined;
    const hostId = withAgent ? agent.newHostId("aws") : undefined;
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
        // `runctl aws train <instance>` finds the agent's inbox by this tag.
        ...(hostId ? { [TAG_HOST]: hostId } : {}),
      },
      providerOptions: {
        ...(flags["fallback-type"] ? { instanceTypes: flags["fallback-type"] } : {}),
        ...(flags.name ? { name: flags.name } : {}),
        ...(flags["idempotency-key"] ? { idempotencyKey: flags["idempotency-key"] } : {}),
      },
    };
    const aws = await this.aws();
    const quote = flags["dry-run"] ? await aws.quote(spec) : undefined;
    if (quote) {
      const price = quote.pricePerHour === null ? "price unknown" : `$${quote.pricePerHour}/h`;
      this.log(
        quote.available
          ? `Would launch ${quote.instanceType} (${quote.market}) in ${quote.zone ?? quote.region} at ${price}`
          : `Cannot launch ${quote.instanceType} (${quote.market}) now: ${quote.unavailable?.message ?? "unavailable"}`,
      );
    }
    let host: { hostId: string; bootstrapBytes: number; uploadedBytes: number; store: string } | undefined;
    if (storeUrl !== undefined && hostId !== undefined) {
      const nats = await agent.remoteTrainNats(natsConfig, (line) => this.progress(line), storeUrl);
      const store = await (await this.registry()).openArtifactStore(storeUrl);
      const prepared = await agent.prepareRemoteHost({
        hostId,
        provider: "aws",
        store,
        nats: agent.requireInboxNats(nats, this.words),
        node: { version: agent.NODE_VERSION, mirror: awsConfig.node_mirror },
        // What the machine's shutdown means to EC2: a one-time spot instance cannot stop.
        idle: { minutes: flags["idle-stop"], action: flags.spot ? "terminate" : "stop" },
        // A spot machine hears of its reclaim from IMDS, two minutes ahead: runs checkpoint.
        ...(flags.spot ? { interruptions: "ec2-imds" as const } : {}),
        dryRun: flags["dry-run"],
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
        `No agent on this instance: \`runctl aws train <instance> <script>\` will need a store (--store or [aws] store) and [nats] url${storeUrl === undefined ? "; no store is set" : "; no [nats] url is set"}`,
      );
    }
    if (quote) {
      if (host) this.log(`Bootstrap (user-data): ${host.bootstrapBytes} bytes of 16384`);
      return { dryRun: true, quote, ...(host ? { host } : {}) };
    }
    const placement = await aws.launch(spec);
    const price = placement.pricePerHour === null ? "price unknown" : `$${placement.pricePerHour}/h`;
    this.log(`${placement.resourceId}  ${placement.instanceType} (${placement.market}) at ${price}`);
    if (host) {
      this.log(
        `  agent ${host.hostId}: waits for runs, shuts the instance down after ${flags["idle-stop"]} min idle`,
      );
      this.log(`  train:   runctl aws train ${placement.resourceId} train.py`);
    }
    return { placement, ...(host ? { host } : {}) };
  }
}
