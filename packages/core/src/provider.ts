/**
 * The Provider contract: where compute comes from. A provider never runs
 * training code itself; `launch` starts the runctl agent on the machine it gets.
 * Every value a provider returns is parsed with these schemas by the registry's
 * callers, so a third-party plugin cannot hand the CLI malformed data.
 */
import { z } from "zod";
import { Tags } from "./tags.ts";

export const Market = z.enum(["spot", "on-demand"]);
export type Market = z.infer<typeof Market>;

export const ResourceState = z.enum(["pending", "running", "stopping", "stopped", "terminated", "unknown"]);
export type ResourceState = z.infer<typeof ResourceState>;

export const ProviderCapabilities = z
  .object({
    /** Can launch interruptible (spot / community) capacity. */
    spot: z.boolean(),
    /** Can stop a resource and start it again later (EC2 yes, RunPod pods yes, most batch systems no). */
    stopStart: z.boolean(),
    gpuTypes: z.array(z.string()),
    regions: z.array(z.string()),
    /** Reports preemption notices through `interruptions`. */
    interruptions: z.boolean(),
  })
  .strict();
export type ProviderCapabilities = z.infer<typeof ProviderCapabilities>;

/** EC2's limit on user-data, which every bootstrap must fit. */
export const MAX_BOOTSTRAP_BYTES = 16 * 1024;

export const LaunchSpec = z
  .object({
    /** Machine type as the provider names it: `g5.xlarge`, `NVIDIA RTX A6000`, `local`. */
    instanceType: z.string().min(1),
    market: Market.default("on-demand"),
    /** Fall back to on-demand when spot capacity is refused; never implicit. */
    spotFallback: z.boolean().default(false),
    region: z.string().optional(),
    /** Availability zone (EC2) or data center (RunPod); unset lets the provider choose. */
    zone: z.string().optional(),
    /** Machine or container image: an AMI id, a container image reference. Unset: the provider's default. */
    image: z.string().min(1).optional(),
    /** Root or container disk in GiB. */
    diskGb: z.number().int().positive().max(65_536).optional(),
    gpuCount: z.number().int().nonnegative().optional(),
    /** Content-addressed code bundle to run (sha256 key) and where it lives. */
    bundle: z.object({ key: z.string().regex(/^[0-9a-f]{64}$/), url: z.string() }).optional(),
    command: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).default({}),
    tags: Tags.default({}),
    runId: z.string().optional(),
    /**
     * Which attempt of `runId` this launch is. With `runId` it names the launch, so a provider
     * with idempotent creation (EC2's ClientToken) makes one machine however often it is retried.
     */
    attempt: z.number().int().positive().optional(),
    /** Stop the machine after this many idle minutes (no run, no ssh); 0 disables. */
    idleStopMinutes: z.number().nonnegative().optional(),
    maxPricePerHour: z.number().positive().optional(),
    /**
     * The shell script that starts the agent on a fresh machine (EC2
     * user-data, a RunPod container argument). Core builds it from the run
     * spec (`buildBootstrap`); providers pass it on and never write their own.
     */
    bootstrap: z
      .string()
      .refine((s) => Buffer.byteLength(s) <= MAX_BOOTSTRAP_BYTES, "the bootstrap is over 16 KiB")
      .optional(),
    /**
     * What only this provider understands (TorchX's run options are the
     * model): checked against the provider definition's `launchOptionsSchema`.
     */
    providerOptions: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type LaunchSpec = z.input<typeof LaunchSpec>;
export type ResolvedLaunchSpec = z.output<typeof LaunchSpec>;

/** What a launch of a spec would cost and whether it can be served now: for `--dry-run` and fallback. */
export const Quote = z
  .object({
    provider: z.string().min(1),
    instanceType: z.string(),
    market: Market,
    region: z.string().optional(),
    zone: z.string().optional(),
    /** USD per hour; null when the provider cannot tell. */
    pricePerHour: z.number().nonnegative().nullable(),
    /** The spec can be launched now (capacity, quota and the spec itself allowing). */
    available: z.boolean(),
    /** Why not, when `available` is false: an error code of PROVIDER_ERROR_CODES and a sentence. */
    unavailable: z.object({ code: z.string(), message: z.string() }).optional(),
  })
  .strict();
export type Quote = z.infer<typeof Quote>;

export const LogsOptions = z
  .object({
    /** Only the last N lines. */
    tailLines: z.number().int().positive().optional(),
  })
  .strict();
export type LogsOptions = z.input<typeof LogsOptions>;

export const Resource = z
  .object({
    provider: z.string().min(1),
    id: z.string().min(1),
    name: z.string().optional(),
    state: ResourceState,
    instanceType: z.string(),
    market: Market,
    region: z.string().optional(),
    tags: Tags,
    /** Price per hour in USD as the provider quotes it; null when unknown. */
    pricePerHour: z.number().nonnegative().nullable(),
    /** ISO 8601. */
    launchedAt: z.string().datetime({ offset: true }).nullable(),
    publicIp: z.string().optional(),
    privateIp: z.string().optional(),
  })
  .strict();
export type Resource = z.infer<typeof Resource>;

/** Where a launched run lives: enough to find, steer and pay for it. */
export const Placement = z
  .object({
    provider: z.string().min(1),
    resourceId: z.string().min(1),
    region: z.string().optional(),
    market: Market,
    instanceType: z.string(),
    pricePerHour: z.number().nonnegative().nullable(),
    launchedAt: z.string().datetime({ offset: true }),
  })
  .strict();
export type Placement = z.infer<typeof Placement>;

export const ResourceFilter = z
  .object({
    states: z.array(ResourceState).optional(),
    tags: Tags.optional(),
    /** Only resources tagged CreatedBy=runctl; the default for every bulk action. */
    managedOnly: z.boolean().default(true),
  })
  .strict();
export type ResourceFilter = z.input<typeof ResourceFilter>;

export const Interruption = z
  .object({
    resourceId: z.string(),
    kind: z.enum(["spot-termination", "spot-stop", "maintenance", "host-failure", "other"]),
    /** ISO 8601 time the provider will act. */
    at: z.string().datetime({ offset: true }).nullable(),
    detail: z.string().optional(),
  })
  .strict();
export type Interruption = z.infer<typeof Interruption>;

export interface TerminateOptions {
  /** Terminate even when tagged `runctl:protected`. Callers must have asked the user. */
  force?: boolean;
}

/**
 * A source of compute. Every method throws runctl errors whose `code` is one
 * of PROVIDER_ERROR_CODES where one fits (fallback and retries branch on
 * them); the registry hands providers out wrapped so answers are schema-checked.
 */
export interface Provider {
  readonly name: string;
  readonly capabilities: ProviderCapabilities;
  /**
   * Starts a resource and the runctl agent on it, and returns once the
   * provider has accepted it (it may still be `pending`). A spot spec that
   * cannot be served throws `capacity` unless `spotFallback` is set; a market
   * the provider lacks throws `unsupported`; a spec its options schema refuses
   * throws `invalid_spec`. Tags `CreatedBy=runctl` and `runctl:created` are
   * always set; the spec's tags are kept.
   */
  launch(spec: LaunchSpec, signal?: AbortSignal): Promise<Placement>;
  /** Price, market and availability of what `launch(spec)` would start; must agree with it. */
  quote(spec: LaunchSpec): Promise<Quote>;
  /** One resource; `not_found` for an id the provider does not know. */
  status(resourceId: string): Promise<Resource>;
  /** Resources, by default only those tagged CreatedBy=runctl (`managedOnly` defaults to true). */
  list(filter?: ResourceFilter): Promise<Resource[]>;
  /** Stops a resource to start it later; `unsupported` when `capabilities.stopStart` is false. */
  stop(resourceId: string): Promise<Resource>;
  /** Starts a stopped resource; `unsupported` when `capabilities.stopStart` is false. */
  start(resourceId: string): Promise<Resource>;
  /**
   * Ends a resource for good. A `runctl:protected` resource is refused with
   * `protected` unless `force`. Failure must throw: a machine that was not
   * terminated keeps billing.
   */
  terminate(resourceId: string, options?: TerminateOptions): Promise<Resource>;
  /** Preemption notices currently known for the given resources (all when omitted). */
  interruptions(resourceIds?: string[]): Promise<Interruption[]>;
  /**
   * The machine's own console or container log, for resources that failed
   * before their run directory was synced. Optional capability.
   */
  logs?(resourceId: string, options?: LogsOptions): Promise<string>;
}

/** What a plugin registers: static facts for listing, and a lazy factory. */
export interface ProviderDefinition<C = unknown> {
  readonly name: string;
  readonly description: string;
  readonly capabilities: ProviderCapabilities;
  /** The provider's `[name]` section of `.runctl.toml`. */
  readonly configSchema: z.ZodType<C>;
  /** What `LaunchSpec.providerOptions` may hold for this provider; unset means nothing. */
  readonly launchOptionsSchema?: z.ZodType;
  /**
   * The section is one of runctl's own (first-party `local` uses `[local]`):
   * core validates it, so it is not contributed again as a provider section.
   */
  readonly coreSection?: boolean;
  /**
   * Builds the provider. SDKs are imported here, never at module top level, so
   * `runctl --help` and `runctl providers` stay fast whatever is installed.
   */
  create(config: C, context: ProviderContext): Promise<Provider>;
}

export interface ProviderContext {
  env: Readonly<Record<string, string | undefined>>;
  /** Directory for the provider's own state (the CLI's data dir). */
  dataDir: string;
  /** The CLI's working directory (default: the process's). */
  cwd?: string;
  /** Directory of the project's `.runctl.toml`, which relative config paths are relative to. */
  projectRoot?: string;
}

export const ProviderInfo = z
  .object({
    name: z.string(),
    description: z.string(),
    capabilities: ProviderCapabilities,
    /** npm package that registered it. */
    plugin: z.string().optional(),
  })
  .strict();
export type ProviderInfo = z.infer<typeof ProviderInfo>;
