/**
 * The `runpod` provider: pods through RunPod's GraphQL API (`runpod-wire.ts` holds every wire
 * detail). A launch walks a bounded fallback order (the spec's GPU type then the user's others,
 * each in the preferred cloud then the other, then on-demand only with `spotFallback`), one
 * create per step, each refusal reported. Pods carry no tags, so runctl's ownership is a name
 * prefix plus env labels the provider reads back: RUNCTL_MANAGED=1, RUNCTL_PROTECTED=1 and
 * RUNCTL_TAGS (the launch's tags as JSON).
 */
import { randomBytes } from "node:crypto";
import {
  type Interruption,
  isProtected,
  LaunchSpec,
  type LaunchSpec as LaunchSpecInput,
  type Market,
  type Placement,
  type Provider,
  type ProviderCapabilities,
  ProviderError,
  type Quote,
  type ResolvedLaunchSpec,
  type Resource,
  ResourceFilter,
  type ResourceState,
  runctlTags,
  TAG_CREATED,
  TAG_CREATED_BY,
  TAG_CREATED_BY_VALUE,
  TAG_PROJECT,
  TAG_PROTECTED,
  TAG_USER,
  Tags,
  type TerminateOptions,
  UserError,
} from "@runctl/core";
import {
  API_KEY_ENV,
  type CloudName,
  RUNPOD_CAPABILITIES,
  type RunpodConfig,
  RunpodLaunchOptions,
} from "./runpod-options.ts";
import { type CloudType, type GpuType, type Pod, podEnv, RunPodApi } from "./runpod-wire.ts";

export const PROVIDER_NAME = "runpod";
export const ENV_MANAGED = "RUNCTL_MANAGED";
export const ENV_PROTECTED = "RUNCTL_PROTECTED";
export const ENV_TAGS = "RUNCTL_TAGS";
/** The most create calls one launch makes. */
export const MAX_LAUNCH_STEPS = 12;

/** Names the launch env must never carry: long-lived secrets have no place on a pod. */
const SECRET_ENV = /^(RUNPOD_API_KEY|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)$|SECRET|PASSWORD/i;

export interface LaunchStep {
  gpuTypeId: string;
  cloud: CloudName;
  market: Market;
}

export type LaunchStepEvent =
  | { kind: "plan"; steps: LaunchStep[] }
  | { kind: "refused"; step: LaunchStep; code: string; message: string; next: LaunchStep | undefined }
  | { kind: "skipped"; step: LaunchStep; reason: string; next: LaunchStep | undefined }
  | { kind: "launched"; step: LaunchStep; podId: string };

export function describeStep(step: LaunchStep): string {
  return `${step.gpuTypeId} ${step.market} in the ${step.cloud} cloud`;
}

export interface RunpodProviderOptions {
  config: RunpodConfig;
  env: Readonly<Record<string, string | undefined>>;
  onLaunchStep?: (event: LaunchStepEvent) => void;
}

const WIRE_CLOUD: Record<CloudName, CloudType> = { secure: "SECURE", community: "COMMUNITY" };

function podState(pod: Pod): ResourceState {
  switch (pod.desiredStatus) {
    case "RUNNING":
      // The container is still being pulled and started until RunPod reports a runtime.
      return pod.runtime ? "running" : "pending";
    case "CREATED":
    case "RESTARTING":
      return "pending";
    case "EXITED":
    case "PAUSED":
    case "DEAD":
      return "stopped";
    case "TERMINATED":
      return "terminated";
    default:
      return "unknown";
  }
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

interface Plan {
  spec: ResolvedLaunchSpec;
  options: RunpodLaunchOptions;
  gpuCount: number;
  steps: LaunchStep[];
  types: Map<string, GpuType>;
}

export class RunpodProvider implements Provider {
  readonly name = PROVIDER_NAME;
  readonly capabilities: ProviderCapabilities = RUNPOD_CAPABILITIES;
  readonly #config: RunpodConfig;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #onStep: (event: LaunchStepEvent) => void;
  #api: RunPodApi | undefined;
  #apiKey: string | undefined;
  /** Pods this provider terminated: RunPod forgets them, runctl still answers `terminated`. */
  readonly #gone = new Map<string, Resource>();
  /** Display name → GPU type id, to name the type of a pod (RunPod reports the display name). */
  #typeIds: Map<string, string> | undefined;

  constructor(options: RunpodProviderOptions) {
    this.#config = options.config;
    this.#env = options.env;
    this.#onStep = options.onLaunchStep ?? (() => {});
  }

  /** The API client; the key is looked up at the first call, so listing providers needs none. */
  #client(): RunPodApi {
    if (this.#api) return this.#api;
    const key = this.#env[API_KEY_ENV] || this.#config.api_key;
    if (!key) {
      throw new ProviderError("No RunPod API key", {
        // Not `auth`: `runctl resources` reads this as "no RunPod account here" and goes on.
        code: "not_configured",
        hint: `Set ${API_KEY_ENV}, or \`[runpod] api_key\` in .runctl.toml (RunPod console → Settings → API Keys).`,
      });
    }
    this.#apiKey = key;
    this.#api = new RunPodApi({ url: this.#config.api_url, apiKey: key });
    return this.#api;
  }

  async #gpuTypes(gpuCount: number): Promise<GpuType[]> {
    const types = await this.#client().gpuTypes(gpuCount);
    this.#typeIds = new Map(types.map((t) => [t.displayName, t.id]));
    return types;
  }

  // ---- plan ----------------------------------------------------------------------------

  async #plan(input: LaunchSpecInput): Promise<Plan> {
    const spec = LaunchSpec.parse(input);
    const parsed = RunpodLaunchOptions.safeParse(spec.providerOptions);
    if (!parsed.success) {
      throw new UserError(`runpod launch options: ${parsed.error.issues.map((i) => i.message).join("; ")}`, {
        code: "invalid_spec",
        hint: "See `runctl runpod create --help` for what a RunPod launch takes.",
      });
    }
    const options = parsed.data;
    const gpuCount = spec.gpuCount ?? 1;
    if (gpuCount < 1 || gpuCount > 8) {
      throw new UserError(`A pod has 1 to 8 GPUs, not ${gpuCount}`, {
        code: "invalid_spec",
        hint: "Pass --gpu-count between 1 and 8.",
      });
    }
    const catalog = await this.#gpuTypes(gpuCount);
    const types = new Map<string, GpuType>();
    const names = [spec.instanceType, ...options.gpuTypes, ...this.#config.gpu_types];
    for (const name of names) {
      const wanted = name.toLowerCase();
      const type = catalog.find(
        (t) => t.id.toLowerCase() === wanted || t.displayName.toLowerCase() === wanted,
      );
      if (type === undefined) {
        throw new UserError(`RunPod has no GPU type ${JSON.stringify(name)}`, {
          code: "invalid_spec",
          hint: `Use an id or display name RunPod lists, e.g. ${catalog
            .slice(0, 3)
            .map((t) => JSON.stringify(t.id))
            .join(", ")}.`,
        });
      }
      types.set(type.id, type);
    }
    const first = options.cloud ?? this.#config.cloud;
    const clouds: CloudName[] =
      (options.cloudFallback ?? this.#config.cloud_fallback)
        ? [first, first === "secure" ? "community" : "secure"]
        : [first];
    const markets: Market[] =
      spec.market === "spot" && spec.spotFallback ? ["spot", "on-demand"] : [spec.market];
    const steps: LaunchStep[] = [];
    for (const market of markets)
      for (const gpuTypeId of types.keys())
        for (const cloud of clouds) steps.push({ gpuTypeId, cloud, market });
    return { spec, options, gpuCount, steps: steps.slice(0, MAX_LAUNCH_STEPS), types };
  }

  /**
   * Price per hour of a step and, for spot, the bid per GPU. `skip` says why the step cannot be
   * served at all (no create is sent); `unlisted` that RunPod's listing shows no capacity now,
   * which is only a hint (the listing lags), so a launch still asks but a quote says unavailable.
   */
  #price(
    plan: Plan,
    step: LaunchStep,
  ): { perHour: number | null; bid?: number; skip?: string; unlisted?: string } {
    const type = plan.types.get(step.gpuTypeId) as GpuType;
    const lowest = step.cloud === "secure" ? type.secure : type.community;
    const max = plan.spec.maxPricePerHour;
    const unlisted = "RunPod lists none available now";
    if (step.market === "on-demand") {
      const perGpu =
        lowest?.uninterruptablePrice ?? (step.cloud === "secure" ? type.securePrice : type.communityPrice);
      if (perGpu == null) return { perHour: null, skip: "RunPod lists no price for it" };
      const perHour = round(perGpu * plan.gpuCount);
      if (max !== undefined && perHour > max)
        return { perHour, skip: `$${perHour}/h is over the max price $${max}/h` };
      return { perHour, ...(lowest?.uninterruptablePrice == null ? { unlisted } : {}) };
    }
    const minimum = lowest?.minimumBidPrice ?? null;
    const bid = plan.options.bidPerGpu ?? (max !== undefined ? round(max / plan.gpuCount) : minimum);
    // Without a bid an interruptible pod cannot be asked for; it is never sent as on-demand.
    if (bid === null) return { perHour: null, skip: "no minimum bid listed (none available now)" };
    const perHour = round(bid * plan.gpuCount);
    if (max !== undefined && perHour > max)
      return { perHour, bid, skip: `$${perHour}/h is over the max price $${max}/h` };
    if (minimum !== null && bid < minimum)
      return { perHour, bid, skip: `bid $${bid}/GPU/h is under the minimum bid $${minimum}` };
    return { perHour, bid, ...(minimum === null ? { unlisted } : {}) };
  }

  // ---- Provider --------------------------------------------------------------------------

  async quote(input: LaunchSpecInput): Promise<Quote> {
    const plan = await this.#plan(input);
    const base = { provider: PROVIDER_NAME, instanceType: plan.spec.instanceType };
    for (const step of plan.steps) {
      const price = this.#price(plan, step);
      if (price.skip === undefined && price.unlisted === undefined)
        return {
          ...base,
          instanceType: step.gpuTypeId,
          market: step.market,
          zone: step.cloud,
          pricePerHour: price.perHour,
          available: true,
        };
    }
    const step = plan.steps[0] as LaunchStep;
    const price = this.#price(plan, step);
    return {
      ...base,
      instanceType: step.gpuTypeId,
      market: step.market,
      zone: step.cloud,
      pricePerHour: price.perHour,
      available: false,
      unavailable: {
        code: "capacity",
        message: plan.steps
          .map((s) => {
            const p = this.#price(plan, s);
            return `${describeStep(s)}: ${p.skip ?? p.unlisted}`;
          })
          .join("; "),
      },
    };
  }

  async launch(input: LaunchSpecInput, signal?: AbortSignal): Promise<Placement> {
    const plan = await this.#plan(input);
    const { spec, options } = plan;
    for (const name of Object.keys(spec.env)) {
      if (SECRET_ENV.test(name) || (this.#apiKey !== undefined && spec.env[name] === this.#apiKey)) {
        throw new UserError(`The launch env carries ${name}, a long-lived secret a pod must not hold`, {
          code: "invalid_spec",
          hint: "Give the run short-lived credentials (runctl's run-scoped ones) instead.",
        });
      }
    }
    const created = new Date();
    const tags: Record<string, string> = {
      ...spec.tags,
      ...runctlTags({
        project: spec.tags[TAG_PROJECT],
        user: spec.tags[TAG_USER] ?? this.#env.USER,
        runId: spec.runId,
        now: created,
      }),
    };
    const env: Record<string, string> = {
      ...spec.env,
      [ENV_MANAGED]: "1",
      [ENV_TAGS]: JSON.stringify(tags),
      ...(isProtected(tags) ? { [ENV_PROTECTED]: "1" } : {}),
    };
    const prefix = this.#config.name_prefix;
    const base = options.name ?? spec.runId ?? randomBytes(4).toString("hex");
    const name = base.startsWith(prefix) ? base : `${prefix}${base}`;
    const dockerArgs =
      spec.bootstrap !== undefined
        ? `bash -c ${shellQuote(spec.bootstrap)}`
        : (spec.command ?? []).map(shellQuote).join(" ");

    this.#onStep({ kind: "plan", steps: plan.steps });
    let last: ProviderError | undefined;
    for (const [i, step] of plan.steps.entries()) {
      signal?.throwIfAborted();
      const next = plan.steps[i + 1];
      const price = this.#price(plan, step);
      if (price.skip !== undefined) {
        this.#onStep({ kind: "skipped", step, reason: price.skip, next });
        last = new ProviderError(`${describeStep(step)}: ${price.skip}`, {
          code: "capacity",
          hint: "Raise --bid or the max price, or launch on-demand.",
        });
        continue;
      }
      try {
        const pod = await this.#client().deploy({
          gpuTypeId: step.gpuTypeId,
          gpuCount: plan.gpuCount,
          cloudType: WIRE_CLOUD[step.cloud],
          name,
          imageName: spec.image ?? this.#config.image,
          dockerArgs,
          containerDiskInGb: spec.diskGb ?? this.#config.container_disk_gb,
          volumeInGb: options.volumeGb ?? this.#config.volume_gb,
          env,
          ...(step.market === "spot" ? { bidPerGpu: price.bid as number } : {}),
        });
        this.#onStep({ kind: "launched", step, podId: pod.id });
        return {
          provider: PROVIDER_NAME,
          resourceId: pod.id,
          market: step.market,
          instanceType: step.gpuTypeId,
          pricePerHour: price.perHour,
          launchedAt: created.toISOString(),
        };
      } catch (error) {
        if (!(error instanceof ProviderError) || error.code !== "capacity") throw error;
        last = error;
        this.#onStep({ kind: "refused", step, code: error.code, message: error.message, next });
      }
    }
    throw new ProviderError(
      `RunPod has no capacity for this launch after ${plan.steps.length} step(s): ${last?.message ?? "refused"}`,
      {
        code: "capacity",
        hint: "Add fallback GPU types (--gpu, repeatable), allow the other cloud, pass --spot-fallback, or try later.",
        details: { steps: plan.steps.map(describeStep) },
      },
    );
  }

  #resource(pod: Pod): Resource {
    const env = podEnv(pod);
    const managed = (pod.name ?? "").startsWith(this.#config.name_prefix) && env[ENV_MANAGED] === "1";
    let tags: Record<string, string> = {};
    if (managed && env[ENV_TAGS] !== undefined) {
      try {
        const parsed = Tags.safeParse(JSON.parse(env[ENV_TAGS]));
        if (parsed.success) tags = parsed.data;
      } catch {
        // A label someone edited by hand: the pod is still runctl's, its other tags are lost.
      }
    }
    if (managed) tags[TAG_CREATED_BY] = TAG_CREATED_BY_VALUE;
    else delete tags[TAG_CREATED_BY];
    if (env[ENV_PROTECTED] === "1") tags[TAG_PROTECTED] = "true";
    const display = pod.machine?.gpuDisplayName ?? undefined;
    const created = tags[TAG_CREATED];
    return {
      provider: PROVIDER_NAME,
      id: pod.id,
      ...(pod.name ? { name: pod.name } : {}),
      state: podState(pod),
      instanceType: (display && this.#typeIds?.get(display)) ?? display ?? "unknown",
      market: pod.podType === "INTERRUPTABLE" ? "spot" : "on-demand",
      tags,
      pricePerHour: pod.costPerHr ?? null,
      launchedAt: created !== undefined && !Number.isNaN(Date.parse(created)) ? created : null,
    };
  }

  async #typesKnown(): Promise<void> {
    if (this.#typeIds === undefined) await this.#gpuTypes(1);
  }

  async status(resourceId: string): Promise<Resource> {
    await this.#typesKnown();
    const pod = await this.#client().pod(resourceId);
    if (pod === undefined) {
      const gone = this.#gone.get(resourceId);
      if (gone) return gone;
      throw new ProviderError(`RunPod knows no pod ${resourceId}`, {
        code: "not_found",
        hint: "`runctl runpod list --all` shows the pods of this account; terminated pods are gone.",
      });
    }
    return this.#resource(pod);
  }

  async list(filter: ResourceFilter = {}): Promise<Resource[]> {
    const f = ResourceFilter.parse(filter);
    await this.#typesKnown();
    const pods = await this.#client().pods();
    return pods
      .map((p) => this.#resource(p))
      .filter(
        (r) =>
          (!f.managedOnly || r.tags[TAG_CREATED_BY] === TAG_CREATED_BY_VALUE) &&
          (f.states === undefined || f.states.includes(r.state)) &&
          Object.entries(f.tags ?? {}).every(([k, v]) => r.tags[k] === v),
      );
  }

  async stop(resourceId: string): Promise<Resource> {
    await this.status(resourceId);
    const pod = await this.#client().stop(resourceId);
    return pod ? this.#resource(pod) : this.status(resourceId);
  }

  async start(resourceId: string): Promise<Resource> {
    const current = await this.status(resourceId);
    const pod = await this.#client().pod(resourceId);
    const gpuCount = pod?.gpuCount ?? 1;
    // An interruptible pod is resumed at the bid it had (its cost per hour per GPU).
    const bid =
      current.market === "spot" && current.pricePerHour !== null
        ? round(current.pricePerHour / gpuCount)
        : undefined;
    const resumed = await this.#client().resume(resourceId, gpuCount, bid);
    return resumed ? this.#resource(resumed) : this.status(resourceId);
  }

  async terminate(resourceId: string, options: TerminateOptions = {}): Promise<Resource> {
    const current = await this.status(resourceId);
    if (current.state === "terminated") return current;
    if (isProtected(current.tags) && !options.force) {
      throw new UserError(`Pod ${resourceId} is protected (${ENV_PROTECTED}=1); not terminated`, {
        code: "protected",
        hint: "Pass --force to terminate it anyway.",
      });
    }
    await this.#client().terminate(resourceId);
    const gone: Resource = { ...current, state: "terminated" };
    this.#gone.set(resourceId, gone);
    return gone;
  }

  async interruptions(_resourceIds?: string[]): Promise<Interruption[]> {
    return [];
  }
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
