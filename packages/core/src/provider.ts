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

export const LaunchSpec = z
  .object({
    /** Machine type as the provider names it: `g5.xlarge`, `NVIDIA RTX A6000`, `local`. */
    instanceType: z.string().min(1),
    market: Market.default("on-demand"),
    /** Fall back to on-demand when spot capacity is refused; never implicit. */
    spotFallback: z.boolean().default(false),
    region: z.string().optional(),
    gpuCount: z.number().int().nonnegative().optional(),
    /** Content-addressed code bundle to run (sha256 key) and where it lives. */
    bundle: z.object({ key: z.string().regex(/^[0-9a-f]{64}$/), url: z.string() }).optional(),
    command: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).default({}),
    tags: Tags.default({}),
    runId: z.string().optional(),
    /** Stop the machine after this many idle minutes (no run, no ssh); 0 disables. */
    idleStopMinutes: z.number().nonnegative().optional(),
    maxPricePerHour: z.number().positive().optional(),
  })
  .strict();
export type LaunchSpec = z.input<typeof LaunchSpec>;
export type ResolvedLaunchSpec = z.output<typeof LaunchSpec>;

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

export interface Provider {
  readonly name: string;
  readonly capabilities: ProviderCapabilities;
  launch(spec: LaunchSpec, signal?: AbortSignal): Promise<Placement>;
  status(resourceId: string): Promise<Resource>;
  list(filter?: ResourceFilter): Promise<Resource[]>;
  stop(resourceId: string): Promise<Resource>;
  start(resourceId: string): Promise<Resource>;
  terminate(resourceId: string, options?: TerminateOptions): Promise<Resource>;
  /** Preemption notices currently known for the given resources (all when omitted). */
  interruptions(resourceIds?: string[]): Promise<Interruption[]>;
}

/** What a plugin registers: static facts for listing, and a lazy factory. */
export interface ProviderDefinition<C = unknown> {
  readonly name: string;
  readonly description: string;
  readonly capabilities: ProviderCapabilities;
  /** The provider's `[name]` section of `.runctl.toml`. */
  readonly configSchema: z.ZodType<C>;
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
