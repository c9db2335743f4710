/**
 * The `aws` provider: EC2 through the AWS SDK. Every launch is one RunInstances per fallback
 * step, with a ClientToken so a retried or re-run launch never makes a second machine, tags set
 * at launch (nothing runctl makes is ever untagged), IMDSv2 required, runctl's security group
 * (no inbound rule) and the bootstrap core built as user-data. The SDK's retries are off: EC2
 * throttling is retried here with capped jittered backoff, everything else is decided here.
 */
import {
  type _InstanceType,
  CreateSecurityGroupCommand,
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  DescribeInstanceTypesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSpotPriceHistoryCommand,
  EC2Client,
  type EC2ClientConfig,
  type Filter,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  ConfigError,
  type Interruption,
  isProtected,
  LaunchSpec,
  type LaunchSpec as LaunchSpecInput,
  LogsOptions,
  type Market,
  type Placement,
  type Provider,
  type ProviderCapabilities,
  ProviderError,
  type Quote,
  type ResolvedLaunchSpec,
  type Resource,
  type ResourceFilter,
  type ResourceState,
  runctlTags,
  TAG_CREATED_BY,
  TAG_CREATED_BY_VALUE,
  TAG_PROJECT,
  TAG_USER,
  type TerminateOptions,
  UserError,
} from "@runctl/core";
import { awsClientCredentials } from "./aws-credentials.ts";
import { AWS_CAPABILITIES, type AwsConfig, AwsLaunchOptions } from "./aws-options.ts";
import { type BackoffPolicy, withRetries } from "./backoff.ts";
import {
  AUTH_CODES,
  awsCode,
  CAPACITY_CODES,
  ec2Error,
  QUOTA_CODES,
  THROTTLE_CODES,
  TRANSIENT_CODES,
} from "./ec2-errors.ts";
import {
  CreateSecurityGroupAnswer,
  DescribeInstancesPage,
  Ec2ConsoleOutput,
  type Ec2Instance,
  type Ec2StateName,
  ImagesAnswer,
  InstanceTypesAnswer,
  RunInstancesAnswer,
  SecurityGroupsAnswer,
  SpotPriceAnswer,
  tagsOf,
  ZonesAnswer,
} from "./ec2-shapes.ts";
import { clientToken, describeStep, type LaunchStep, launchName, launchPlan } from "./launch-plan.ts";
import { onDemandPrice, type PriceTable, shippedPriceTable } from "./price-table.ts";

export const PROVIDER_NAME = "aws";

/** One step of a launch's fallback order, as it happens. */
/** Retries of a launch whose new instance profile EC2 does not know yet (~30 s at the default backoff). */
const PROFILE_PROPAGATION_RETRIES = 8;

function profileNotYetUsable(error: unknown): boolean {
  const e = error as { details?: { awsCode?: string }; message?: string };
  return (
    e.details?.awsCode === "InvalidParameterValue" && /Invalid IAM Instance Profile/.test(e.message ?? "")
  );
}

export type LaunchStepEvent =
  | { kind: "plan"; steps: LaunchStep[] }
  | { kind: "refused"; step: LaunchStep; code: string; message: string; next: LaunchStep | undefined }
  | { kind: "skipped"; step: LaunchStep; reason: string; next: LaunchStep | undefined }
  | { kind: "launched"; step: LaunchStep; instanceId: string; adopted: boolean };

export interface AwsProviderOptions {
  config: AwsConfig;
  env: Readonly<Record<string, string | undefined>>;
  /** Told of the fallback order and of each step taken; the plugin prints them. */
  onLaunchStep?: (event: LaunchStepEvent) => void;
  priceTable?: PriceTable;
  /** Extra EC2 client settings (tests: a request handler that counts calls). */
  clientConfig?: Partial<EC2ClientConfig>;
}

const SPOT_PRICE_TTL_MS = 5 * 60_000;
const RECENT_LAUNCH_MS = 60_000;
const ROOT_DEVICE = "/dev/sda1";

const TO_EC2_STATES: Record<ResourceState, Ec2StateName[]> = {
  pending: ["pending"],
  running: ["running"],
  stopping: ["stopping", "shutting-down"],
  stopped: ["stopped"],
  terminated: ["terminated"],
  unknown: [],
};

/** `shutting-down` is on its way to terminated but still bills: runctl shows it as stopping. */
function resourceState(state: Ec2StateName): ResourceState {
  return state === "shutting-down" ? "stopping" : state;
}

interface Plan {
  spec: ResolvedLaunchSpec;
  options: AwsLaunchOptions;
  steps: LaunchStep[];
  /** Steps known to be refused before asking (spot above the max price), with why. */
  infeasible: Map<LaunchStep, string>;
  maxPrice: number | undefined;
}

export class AwsProvider implements Provider {
  readonly name = PROVIDER_NAME;
  readonly capabilities: ProviderCapabilities = AWS_CAPABILITIES;
  readonly region: string;
  readonly #client: EC2Client;
  readonly #config: AwsConfig;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #policy: BackoffPolicy;
  readonly #onStep: (event: LaunchStepEvent) => void;
  readonly #prices: PriceTable;
  readonly #spot = new Map<string, { at: number; byZone: Map<string, number> }>();
  readonly #recent = new Map<string, number>();
  #zones: Promise<string[]> | undefined;
  #image: Promise<{ imageId: string; rootDevice: string }> | undefined;
  #group: Promise<string> | undefined;
  #credentialSource: string;

  constructor(options: AwsProviderOptions & { region: string }) {
    this.#config = options.config;
    this.#env = options.env;
    this.region = options.region;
    this.#policy = {
      attempts: options.config.retry_attempts,
      baseMs: options.config.retry_base_ms,
      capMs: options.config.retry_cap_ms,
    };
    this.#onStep = options.onLaunchStep ?? (() => {});
    this.#prices = options.priceTable ?? shippedPriceTable();
    const env = options.env;
    const endpoint = env.AWS_ENDPOINT_URL_EC2 ?? env.AWS_ENDPOINT_URL ?? options.config.endpoint;
    const auth = awsClientCredentials(env, options.config.profile);
    const profile = auth.profile;
    const settings: EC2ClientConfig = {
      region: options.region,
      // Retries are ours: RunInstances must never be retried blindly, throttling is capped.
      maxAttempts: 1,
      ...(endpoint ? { endpoint } : {}),
      ...(profile ? { profile } : {}),
      ...options.clientConfig,
    };
    if (auth.credentials && !options.clientConfig?.credentials) settings.credentials = auth.credentials;
    this.#credentialSource = auth.source;
    this.#client = new EC2Client(settings);
  }

  /** Closes the SDK's connections. */
  destroy(): void {
    this.#client.destroy();
  }

  // ---- calls ---------------------------------------------------------------------------

  /** One EC2 call (retried on throttling), its failure in runctl's terms. */
  async #send<T>(
    doing: string,
    call: (client: EC2Client, options: { abortSignal?: AbortSignal }) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    try {
      return (await withRetries(
        this.#policy,
        () => call(this.#client, signal ? { abortSignal: signal } : {}),
        (error) => {
          const code = awsCode(error);
          return code !== undefined && (THROTTLE_CODES.has(code) || TRANSIENT_CODES.has(code));
        },
        signal,
      )) as T;
    } catch (error) {
      const code = awsCode(error);
      throw ec2Error(error, {
        doing,
        ...(code !== undefined && AUTH_CODES.has(code) ? { credentialSource: this.#credentialSource } : {}),
      });
    }
  }

  async #describe(input: DescribeInstancesCommandInput, doing: string): Promise<Ec2Instance[]> {
    const out: Ec2Instance[] = [];
    let token: string | undefined;
    do {
      const page = DescribeInstancesPage.parse(
        await this.#send(doing, (c, o) =>
          c.send(new DescribeInstancesCommand({ ...input, ...(token ? { NextToken: token } : {}) }), o),
        ),
      );
      for (const r of page.Reservations) out.push(...r.Instances);
      token = page.NextToken || undefined;
    } while (token);
    return out;
  }

  #zonesOnce(): Promise<string[]> {
    this.#zones ??= (async () => {
      if (this.#config.zones && this.#config.zones.length > 0) return this.#config.zones;
      const answer = ZonesAnswer.parse(
        await this.#send(`list the Availability Zones of ${this.region}`, (c, o) =>
          c.send(
            new DescribeAvailabilityZonesCommand({
              Filters: [
                { Name: "state", Values: ["available"] },
                { Name: "zone-type", Values: ["availability-zone"] },
              ],
            }),
            o,
          ),
        ),
      );
      const zones = answer.AvailabilityZones.map((z) => z.ZoneName).sort();
      if (zones.length === 0) {
        throw new ProviderError(`EC2 lists no available zone in ${this.region}`, {
          code: "capacity",
          hint: "Pick another region ([aws] region or AWS_REGION).",
        });
      }
      return zones;
    })();
    this.#zones.catch(() => {
      this.#zones = undefined;
    });
    return this.#zones;
  }

  /** Current spot price per zone for a type (one call, cached a few minutes). */
  async spotPrices(instanceType: string): Promise<Map<string, number>> {
    const cached = this.#spot.get(instanceType);
    if (cached && Date.now() - cached.at < SPOT_PRICE_TTL_MS) return cached.byZone;
    const answer = SpotPriceAnswer.parse(
      await this.#send(`read the spot price of ${instanceType}`, (c, o) =>
        c.send(
          new DescribeSpotPriceHistoryCommand({
            InstanceTypes: [instanceType as _InstanceType],
            ProductDescriptions: ["Linux/UNIX"],
            StartTime: new Date(),
          }),
          o,
        ),
      ),
    );
    const byZone = new Map<string, { price: number; at: number }>();
    for (const row of answer.SpotPriceHistory) {
      if (row.InstanceType !== instanceType) continue;
      const at = row.Timestamp?.getTime() ?? 0;
      const seen = byZone.get(row.AvailabilityZone);
      if (!seen || at > seen.at) byZone.set(row.AvailabilityZone, { price: Number(row.SpotPrice), at });
    }
    const prices = new Map([...byZone].map(([zone, v]) => [zone, v.price]));
    this.#spot.set(instanceType, { at: Date.now(), byZone: prices });
    return prices;
  }

  async #price(step: {
    instanceType: string;
    zone: string | undefined;
    market: Market;
  }): Promise<number | null> {
    if (step.market === "on-demand") return onDemandPrice(this.#prices, this.region, step.instanceType);
    if (step.zone === undefined) return null;
    return (await this.spotPrices(step.instanceType)).get(step.zone) ?? null;
  }

  async #imageFor(spec: ResolvedLaunchSpec): Promise<{ imageId: string; rootDevice: string }> {
    const wanted = spec.image;
    if (wanted !== undefined) {
      const answer = ImagesAnswer.parse(
        await this.#send(`look up image ${spec.image}`, (c, o) =>
          c.send(new DescribeImagesCommand({ ImageIds: [wanted] }), o),
        ),
      );
      const image = answer.Images[0];
      if (!image)
        throw new UserError(`Image ${spec.image} does not exist in ${this.region}`, {
          code: "invalid_spec",
          hint: "AMI ids are per region: look it up in this region, or leave --image out for the newest Deep Learning AMI.",
        });
      return { imageId: image.ImageId, rootDevice: image.RootDeviceName ?? ROOT_DEVICE };
    }
    this.#image ??= (async () => {
      const answer = ImagesAnswer.parse(
        await this.#send("find the newest Deep Learning AMI", (c, o) =>
          c.send(
            new DescribeImagesCommand({
              Owners: [this.#config.ami_owner],
              Filters: [
                { Name: "name", Values: [this.#config.ami_name] },
                { Name: "state", Values: ["available"] },
                { Name: "architecture", Values: ["x86_64"] },
              ],
            }),
            o,
          ),
        ),
      );
      const newest = [...answer.Images].sort((a, b) =>
        (b.CreationDate ?? "").localeCompare(a.CreationDate ?? ""),
      )[0];
      if (!newest) {
        throw new ConfigError(
          `No image named "${this.#config.ami_name}" owned by ${this.#config.ami_owner} in ${this.region}`,
          {
            code: "aws_no_image",
            hint: "Set [aws] ami_name / ami_owner to an image this region has, or pass --image ami-….",
          },
        );
      }
      return { imageId: newest.ImageId, rootDevice: newest.RootDeviceName ?? ROOT_DEVICE };
    })();
    this.#image.catch(() => {
      this.#image = undefined;
    });
    return this.#image;
  }

  /** runctl's security group (`[aws] security_group`) and its inbound rule count, if it exists; creates nothing. */
  async findSecurityGroup(): Promise<{ groupId: string; inboundRules: number } | undefined> {
    const name = this.#config.security_group;
    const group = SecurityGroupsAnswer.parse(
      await this.#send(`find security group ${name}`, (c, o) =>
        c.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: [name] }] }), o),
      ),
    ).SecurityGroups[0];
    return group && { groupId: group.GroupId, inboundRules: group.IpPermissions.length };
  }

  /** runctl's security group: no inbound rule (the agent dials out), created once, found by name after. */
  ensureSecurityGroup(): Promise<string> {
    const name = this.#config.security_group;
    this.#group ??= (async () => {
      const find = async () => (await this.findSecurityGroup())?.groupId;
      const existing = await find();
      if (existing) return existing;
      try {
        return CreateSecurityGroupAnswer.parse(
          await this.#send(`create security group ${name}`, (c, o) =>
            c.send(
              new CreateSecurityGroupCommand({
                GroupName: name,
                Description: "runctl: machines dial out; no inbound rule",
                TagSpecifications: [
                  {
                    ResourceType: "security-group",
                    Tags: [{ Key: TAG_CREATED_BY, Value: TAG_CREATED_BY_VALUE }],
                  },
                ],
              }),
              o,
            ),
          ),
        ).GroupId;
      } catch (error) {
        // Another runctl created it between our look and our create.
        const again = await find();
        if (again) return again;
        throw error;
      }
    })();
    this.#group.catch(() => {
      this.#group = undefined;
    });
    return this.#group;
  }

  // ---- planning --------------------------------------------------------------------------

  async #plan(input: LaunchSpecInput, checkZone: boolean): Promise<Plan> {
    const spec = LaunchSpec.parse(input);
    const options = AwsLaunchOptions.parse(spec.providerOptions);
    if (spec.region !== undefined && spec.region !== this.region) {
      throw new UserError(
        `This aws provider is set up for ${this.region}, the spec asks for ${spec.region}`,
        {
          code: "invalid_spec",
          hint: "Set [aws] region or AWS_REGION to the region you want.",
        },
      );
    }
    // A launch passes a named zone on as is (EC2 refuses one it lacks: one call fewer); a quote
    // checks it, since nothing else would.
    let zones = spec.zone !== undefined && !checkZone ? [spec.zone] : await this.#zonesOnce();
    if (spec.zone !== undefined) {
      if (!zones.includes(spec.zone)) {
        throw new UserError(`Zone ${spec.zone} is not an available zone of ${this.region}`, {
          code: "invalid_spec",
          hint: `Zones: ${zones.join(", ")}.`,
        });
      }
      zones = [spec.zone];
    }
    const maxPrice = options.maxPrice ?? spec.maxPricePerHour;
    if (spec.market === "spot" && zones.length > 1) {
      // Cheapest zone first: the spot price is what the run pays.
      const prices = await this.spotPrices(spec.instanceType);
      zones = [...zones].sort((a, b) => (prices.get(a) ?? Infinity) - (prices.get(b) ?? Infinity));
    }
    const steps = launchPlan({
      instanceType: spec.instanceType,
      fallbackTypes: options.instanceTypes,
      zones,
      market: spec.market,
      spotFallback: spec.spotFallback,
    });
    const infeasible = new Map<LaunchStep, string>();
    if (maxPrice !== undefined) {
      for (const step of steps) {
        if (step.market !== "spot") continue;
        const price = await this.#price(step);
        if (price !== null && price > maxPrice)
          infeasible.set(step, `spot price $${price}/h is above the maximum $${maxPrice}/h`);
      }
    }
    return { spec, options, steps, infeasible, maxPrice };
  }

  /** Instance types EC2 offers here; a name it does not know is `invalid_spec`, said before any launch. */
  async #checkTypes(types: readonly string[]): Promise<void> {
    const wanted = [...new Set(types)];
    const answer = InstanceTypesAnswer.parse(
      await this.#send(`look up instance types ${wanted.join(", ")}`, (c, o) =>
        c.send(new DescribeInstanceTypesCommand({ InstanceTypes: wanted as _InstanceType[] }), o),
      ),
    );
    const known = new Set(answer.InstanceTypes.map((t) => t.InstanceType));
    const missing = wanted.filter((t) => !known.has(t));
    if (missing.length > 0) {
      throw new UserError(`${missing.join(", ")}: not an instance type EC2 offers in ${this.region}`, {
        code: "invalid_spec",
        hint: "Check the spelling (g5.xlarge, g6.xlarge, p4d.24xlarge) and that the region offers it.",
      });
    }
  }

  async quote(input: LaunchSpecInput): Promise<Quote> {
    const parsed = LaunchSpec.parse(input);
    await this.#checkTypes([
      parsed.instanceType,
      ...AwsLaunchOptions.parse(parsed.providerOptions).instanceTypes,
    ]);
    const plan = await this.#plan(input, true);
    const step = plan.steps.find((s) => !plan.infeasible.has(s));
    if (step === undefined) {
      const first = plan.steps[0] as LaunchStep;
      return {
        provider: this.name,
        instanceType: first.instanceType,
        market: first.market,
        region: this.region,
        zone: first.zone,
        pricePerHour: await this.#price(first),
        available: false,
        unavailable: {
          code: "capacity",
          message: plan.infeasible.get(first) ?? "no step of the launch can be served",
        },
      };
    }
    return {
      provider: this.name,
      instanceType: step.instanceType,
      market: step.market,
      region: this.region,
      zone: step.zone,
      pricePerHour: await this.#price(step),
      available: true,
    };
  }

  // ---- launch ----------------------------------------------------------------------------

  async launch(input: LaunchSpecInput, signal?: AbortSignal): Promise<Placement> {
    const early = LaunchSpec.parse(input);
    const earlyOptions = AwsLaunchOptions.parse(early.providerOptions);
    // Independent look-ups run side by side: a launch waits for the slowest, not for the sum.
    const [plan, image, groupId] = await Promise.all([
      this.#plan(input, false),
      this.#imageFor(early),
      earlyOptions.securityGroup !== undefined
        ? Promise.resolve(earlyOptions.securityGroup)
        : this.ensureSecurityGroup(),
    ]);
    const { spec, options } = plan;
    const tags: Record<string, string> = {
      ...spec.tags,
      ...(options.name ? { Name: options.name } : {}),
      ...runctlTags({
        project: spec.tags[TAG_PROJECT],
        user: spec.tags[TAG_USER] ?? this.#env.USER,
        runId: spec.runId,
      }),
    };
    const name = launchName(spec, options.idempotencyKey);
    const profile = options.iamInstanceProfile ?? this.#config.iam_instance_profile;
    const subnet = options.subnet ?? this.#config.subnet;
    this.#onStep({ kind: "plan", steps: plan.steps });
    if (name !== undefined) {
      // A named launch that ran before (killed, retried, or it fell back to a later step) has
      // its machine already: found by the client tokens of its steps, whichever one made it.
      const tokens = plan.steps.map((s) => clientToken(name, s));
      const earlier = await this.#describe(
        { Filters: [{ Name: "client-token", Values: tokens }] },
        "look for this launch's machine",
      );
      const found = earlier.find((e) => e.State.Name !== "terminated" && e.State.Name !== "shutting-down");
      if (found) {
        return this.#placed(
          found,
          {
            instanceType: found.InstanceType,
            zone: found.Placement?.AvailabilityZone ?? (plan.steps[0] as LaunchStep).zone,
            market: found.InstanceLifecycle === "spot" ? "spot" : "on-demand",
          },
          true,
        );
      }
      if (earlier.length > 0) throw launchUsedUp(name, earlier[0]?.InstanceId ?? "");
    }
    const refusals: string[] = [];
    const next = (i: number) => plan.steps.slice(i + 1).find((s) => !plan.infeasible.has(s));
    for (let i = 0; i < plan.steps.length; i++) {
      const step = plan.steps[i] as LaunchStep;
      const skip = plan.infeasible.get(step);
      if (skip !== undefined) {
        refusals.push(`${describeStep(step)}: ${skip}`);
        this.#onStep({ kind: "skipped", step, reason: skip, next: next(i) });
        continue;
      }
      signal?.throwIfAborted();
      const spot = step.market === "spot";
      const token = clientToken(name, step);
      const request: RunInstancesCommandInput = {
        ImageId: image.imageId,
        InstanceType: step.instanceType as _InstanceType,
        MinCount: 1,
        MaxCount: 1,
        ClientToken: token,
        Placement: { AvailabilityZone: step.zone },
        SecurityGroupIds: [groupId],
        ...(subnet ? { SubnetId: subnet } : {}),
        ...(spec.bootstrap !== undefined
          ? { UserData: Buffer.from(spec.bootstrap, "utf8").toString("base64") }
          : {}),
        // Hop limit 2 lets containers on the machine reach IMDS; tokens are always required.
        MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled", HttpPutResponseHopLimit: 2 },
        BlockDeviceMappings: [
          {
            DeviceName: image.rootDevice,
            Ebs: {
              VolumeSize: spec.diskGb ?? this.#config.disk_gb,
              VolumeType: "gp3",
              DeleteOnTermination: true,
            },
          },
        ],
        ...(profile ? { IamInstanceProfile: { Name: profile } } : {}),
        // A one-time spot request cannot stop; on-demand stops so idle auto-stop keeps the disk.
        InstanceInitiatedShutdownBehavior:
          spot && options.interruptionBehavior === "terminate" ? "terminate" : "stop",
        ...(spot
          ? {
              InstanceMarketOptions: {
                MarketType: "spot",
                SpotOptions: {
                  SpotInstanceType: options.interruptionBehavior === "stop" ? "persistent" : "one-time",
                  InstanceInterruptionBehavior: options.interruptionBehavior,
                  ...(plan.maxPrice !== undefined ? { MaxPrice: String(plan.maxPrice) } : {}),
                },
              },
            }
          : {}),
        TagSpecifications: [
          { ResourceType: "instance", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
          { ResourceType: "volume", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
        ],
      };
      let instance: Ec2Instance;
      let adopted = false;
      try {
        instance = RunInstancesAnswer.parse(
          // An instance profile IAM made moments ago (`runctl aws setup`) is refused by EC2 until
          // it propagates (seconds, up to about a minute): asked again with the same ClientToken,
          // which made nothing the first time.
          await withRetries(
            { ...this.#policy, attempts: PROFILE_PROPAGATION_RETRIES },
            () =>
              this.#send(
                `launch ${describeStep(step)}`,
                (c, o) => c.send(new RunInstancesCommand(request), o),
                signal,
              ),
            (error) => profile !== undefined && profileNotYetUsable(error),
            signal,
          ),
        ).Instances[0] as Ec2Instance;
      } catch (error) {
        const code = (error as { details?: { awsCode?: string } }).details?.awsCode;
        if (code === "IdempotentParameterMismatch") {
          // The same launch ran before with other arguments (a new bootstrap URL, a later
          // runctl:created): the machine it made is this launch's machine.
          const existing = await this.#describe(
            { Filters: [{ Name: "client-token", Values: [token] }] },
            `find the instance of launch ${token}`,
          );
          const live = existing.find(
            (e) => e.State.Name !== "terminated" && e.State.Name !== "shutting-down",
          );
          if (!live) throw error;
          instance = live;
          adopted = true;
        } else if (code !== undefined && CAPACITY_CODES.has(code)) {
          refusals.push(`${describeStep(step)}: ${code}`);
          this.#onStep({ kind: "refused", step, code, message: (error as Error).message, next: next(i) });
          continue;
        } else if (
          code !== undefined &&
          QUOTA_CODES.has(code) &&
          spot &&
          plan.steps.slice(i + 1).some((s) => s.market === "on-demand")
        ) {
          // A spot quota is not a capacity problem of one zone: go straight to on-demand.
          refusals.push(`${describeStep(step)}: ${code}`);
          const j = plan.steps.findIndex((s, k) => k > i && s.market === "on-demand");
          this.#onStep({
            kind: "refused",
            step,
            code,
            message: (error as Error).message,
            next: plan.steps[j],
          });
          i = j - 1;
          continue;
        } else {
          throw error;
        }
      }
      if (instance.State.Name === "terminated" || instance.State.Name === "shutting-down") {
        // EC2 answers a client token with the machine it made, even one ended since.
        throw launchUsedUp(name ?? token, instance.InstanceId);
      }
      return this.#placed(instance, step, adopted);
    }
    throw new ProviderError(
      `No capacity for ${spec.instanceType} (${spec.market}) in ${this.region}: ${refusals.join("; ")}`,
      {
        code: "capacity",
        hint:
          spec.market === "spot" && !spec.spotFallback
            ? "Allow on-demand with --spot-fallback, add types (providerOptions.instanceTypes), raise --max-price, or try another region."
            : "Add fallback types (providerOptions.instanceTypes) or try another region.",
        details: { attempts: refusals },
      },
    );
  }

  async #placed(instance: Ec2Instance, step: LaunchStep, adopted: boolean): Promise<Placement> {
    this.#recent.set(instance.InstanceId, Date.now());
    this.#onStep({ kind: "launched", step, instanceId: instance.InstanceId, adopted });
    return {
      provider: this.name,
      resourceId: instance.InstanceId,
      region: this.region,
      market: step.market,
      instanceType: step.instanceType,
      pricePerHour: await this.#price(step),
      launchedAt: (instance.LaunchTime ?? new Date()).toISOString(),
    };
  }

  // ---- resources -------------------------------------------------------------------------

  async #resources(instances: Ec2Instance[]): Promise<Resource[]> {
    const out: Resource[] = [];
    for (const i of instances) {
      const market: Market = i.InstanceLifecycle === "spot" ? "spot" : "on-demand";
      const tags = tagsOf(i);
      out.push({
        provider: this.name,
        id: i.InstanceId,
        ...(tags.Name ? { name: tags.Name } : {}),
        state: resourceState(i.State.Name),
        instanceType: i.InstanceType,
        market,
        region: this.region,
        tags,
        pricePerHour: await this.#price({
          instanceType: i.InstanceType,
          zone: i.Placement?.AvailabilityZone,
          market,
        }).catch(() => null),
        launchedAt: i.LaunchTime ? i.LaunchTime.toISOString() : null,
        ...(i.PublicIpAddress ? { publicIp: i.PublicIpAddress } : {}),
        ...(i.PrivateIpAddress ? { privateIp: i.PrivateIpAddress } : {}),
      });
    }
    return out;
  }

  async #instance(id: string): Promise<Ec2Instance> {
    const describe = async () => {
      const [instance] = await this.#describe({ InstanceIds: [id] }, `describe ${id}`);
      if (!instance)
        throw new UserError(`describe ${id}: no such instance in ${this.region}`, {
          code: "not_found",
          hint: "Check the id and region (`runctl aws list`).",
        });
      return instance;
    };
    const launched = this.#recent.get(id);
    if (launched === undefined || Date.now() - launched > RECENT_LAUNCH_MS) return describe();
    // EC2 is eventually consistent: an instance we just launched may be unknown for a moment.
    return withRetries(
      { attempts: 5, baseMs: 100, capMs: 2_000 },
      describe,
      (e) => (e as { code?: string }).code === "not_found",
    );
  }

  /**
   * The instance's serial console (cloud-init's output: the bootstrap's lines), for a machine
   * that failed before its run directory reached the store. EC2 keeps the last 64 KiB, also
   * after the instance stopped, and only some minutes after boot on real hardware.
   */
  async logs(resourceId: string, options: LogsOptions = {}): Promise<string> {
    const raw = await this.#send(`read the console of ${resourceId}`, (c, o) =>
      c.send(new GetConsoleOutputCommand({ InstanceId: resourceId, Latest: true }), o),
    );
    const parsed = Ec2ConsoleOutput.safeParse(raw);
    if (!parsed.success) {
      throw new ProviderError(`EC2's console output of ${resourceId} is not what runctl reads`, {
        code: "invalid_response",
        hint: "Report this with the output of `runctl aws logs --json`.",
      });
    }
    const text = Buffer.from(parsed.data.Output ?? "", "base64").toString("utf8");
    const { tailLines } = LogsOptions.parse(options);
    if (tailLines === undefined) return text;
    return text
      .split(/(?<=\n)/)
      .slice(-tailLines)
      .join("");
  }

  async status(resourceId: string): Promise<Resource> {
    return (await this.#resources([await this.#instance(resourceId)]))[0] as Resource;
  }

  async list(filter: ResourceFilter = {}): Promise<Resource[]> {
    const filters: Filter[] = [];
    if (filter.managedOnly ?? true)
      filters.push({ Name: `tag:${TAG_CREATED_BY}`, Values: [TAG_CREATED_BY_VALUE] });
    for (const [key, value] of Object.entries(filter.tags ?? {}))
      filters.push({ Name: `tag:${key}`, Values: [value] });
    if (filter.states !== undefined) {
      const states = filter.states.flatMap((s) => TO_EC2_STATES[s]);
      if (states.length === 0) return [];
      filters.push({ Name: "instance-state-name", Values: states });
    }
    const instances = await this.#describe(
      { ...(filters.length > 0 ? { Filters: filters } : {}), MaxResults: 1000 },
      "list instances",
    );
    return this.#resources(instances);
  }

  async stop(resourceId: string): Promise<Resource> {
    await this.#send(`stop ${resourceId}`, (c, o) =>
      c.send(new StopInstancesCommand({ InstanceIds: [resourceId] }), o),
    );
    return this.status(resourceId);
  }

  async start(resourceId: string): Promise<Resource> {
    await this.#send(`start ${resourceId}`, (c, o) =>
      c.send(new StartInstancesCommand({ InstanceIds: [resourceId] }), o),
    );
    return this.status(resourceId);
  }

  async terminate(resourceId: string, options: TerminateOptions = {}): Promise<Resource> {
    const instance = await this.#instance(resourceId);
    if (!options.force && isProtected(tagsOf(instance))) {
      throw new UserError(`${resourceId} is tagged runctl:protected and was not terminated`, {
        code: "protected",
        hint: `Remove the tag (aws ec2 delete-tags --resources ${resourceId} --tags Key=runctl:protected) or pass --force.`,
      });
    }
    await this.#send(`terminate ${resourceId}`, (c, o) =>
      c.send(new TerminateInstancesCommand({ InstanceIds: [resourceId] }), o),
    );
    return this.status(resourceId);
  }

  async interruptions(resourceIds?: string[]): Promise<Interruption[]> {
    const instances =
      resourceIds === undefined
        ? await this.#describe(
            {
              Filters: [
                { Name: `tag:${TAG_CREATED_BY}`, Values: [TAG_CREATED_BY_VALUE] },
                { Name: "instance-lifecycle", Values: ["spot"] },
              ],
            },
            "list spot instances",
          )
        : resourceIds.length === 0
          ? []
          : await this.#describe({ InstanceIds: resourceIds }, "describe instances");
    const notices: Interruption[] = [];
    for (const i of instances) {
      const code = i.StateReason?.Code;
      if (code !== "Server.SpotInstanceTermination" && code !== "Server.SpotInstanceShutdown") continue;
      const when = /\((\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) GMT\)/.exec(i.StateTransitionReason ?? "");
      notices.push({
        resourceId: i.InstanceId,
        kind: code === "Server.SpotInstanceTermination" ? "spot-termination" : "spot-stop",
        at: when ? `${when[1]}T${when[2]}Z` : null,
        ...(i.StateReason?.Message ? { detail: i.StateReason.Message } : {}),
      });
    }
    return notices;
  }
}

function launchUsedUp(name: string, instanceId: string): UserError {
  return new UserError(`This launch (${name}) already made ${instanceId}, which has been terminated`, {
    code: "launch_used",
    hint: "A launch makes one machine, once: start a new attempt of the run, or pass another --idempotency-key.",
  });
}

/** The region: `[aws] region`, else AWS_REGION / AWS_DEFAULT_REGION, the profile's, else us-east-1. */
export async function resolveRegion(
  config: AwsConfig,
  env: Readonly<Record<string, string | undefined>>,
): Promise<string> {
  const explicit = config.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (explicit) return explicit;
  const profile = env.AWS_PROFILE ?? config.profile;
  try {
    const probe = new EC2Client(profile ? { profile } : {});
    const region = await probe.config.region();
    probe.destroy();
    if (region) return region;
  } catch {
    // No region anywhere: EC2's oldest region, as the AWS CLI's docs suggest.
  }
  return "us-east-1";
}
