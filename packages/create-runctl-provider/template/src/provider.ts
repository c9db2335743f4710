/**
 * The __NAME__ provider. As scaffolded, its "machines" are records in a JSON file in runctl's data
 * dir, so it passes runctl's provider contract suite from the start and several runctl processes
 * see the same fleet. Replace the bodies marked `YOUR CLOUD` with calls to your cloud's API;
 * keep the shapes, the tags and the error codes: the contract suite (npm test) checks them.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  type Interruption,
  type LaunchSpec,
  type Placement,
  type Provider,
  type ProviderContext,
  ProviderError,
  type Quote,
  type Resource,
  type ResourceFilter,
  type ResourceState,
  runctlTags,
  type TerminateOptions,
  UserError,
} from "@runctl/core";
import { capabilities } from "./capabilities.js";
import type { __CLASS__Config } from "./hooks/providers.js";

/** USD per hour by machine type; a real provider asks its cloud's price list. */
const PRICES: Record<string, number> = { small: 0.1, large: 1.5 };
/** Spot is this fraction of the on-demand price here; a real provider asks its cloud. */
const SPOT_DISCOUNT = 0.3;

interface State {
  resources: Record<string, Resource>;
}

export class __CLASS__Provider implements Provider {
  readonly name = "__NAME__";
  readonly capabilities = capabilities;
  readonly #path: string;
  readonly #region: string;

  constructor(config: __CLASS__Config, context: ProviderContext) {
    this.#path = join(context.dataDir, "__NAME__-provider", "state.json");
    this.#region = config.region ?? "__NAME__-1";
  }

  /** What `launch(spec)` would cost and whether it can be served now; it must agree with launch. */
  async quote(spec: LaunchSpec): Promise<Quote> {
    // YOUR CLOUD: ask the price list and the capacity for spec.instanceType in spec.region/zone.
    const market = spec.market ?? "on-demand";
    const base = PRICES[spec.instanceType] ?? 0.5;
    return {
      provider: this.name,
      instanceType: spec.instanceType,
      market,
      region: spec.region ?? this.#region,
      pricePerHour: market === "spot" ? Math.round(base * SPOT_DISCOUNT * 1000) / 1000 : base,
      available: true,
    };
  }

  async launch(spec: LaunchSpec): Promise<Placement> {
    // YOUR CLOUD: create the machine with spec.instanceType, spec.market (never buy on-demand when
    // spot was asked for unless spec.spotFallback: refuse with code "capacity" instead), the tags
    // below, and spec.bootstrap as user-data (it starts the runctl agent); never put long-lived
    // credentials in it.
    const offer = await this.quote(spec);
    if (!offer.available) {
      throw new ProviderError(offer.unavailable?.message ?? "cannot be served now", {
        code: offer.unavailable?.code ?? "capacity",
        hint: "Try another machine type or zone, or allow on-demand with spotFallback.",
      });
    }
    const market = offer.market;
    const launchedAt = new Date().toISOString();
    const resource: Resource = {
      provider: this.name,
      id: `${this.name}-${randomUUID().slice(0, 8)}`,
      state: "running",
      instanceType: spec.instanceType,
      market,
      region: spec.region ?? this.#region,
      tags: { ...spec.tags, ...runctlTags({ runId: spec.runId, now: new Date(launchedAt) }) },
      pricePerHour: offer.pricePerHour,
      launchedAt,
    };
    this.#mutate((state) => {
      state.resources[resource.id] = resource;
    });
    return {
      provider: this.name,
      resourceId: resource.id,
      region: resource.region,
      market,
      instanceType: resource.instanceType,
      pricePerHour: resource.pricePerHour,
      launchedAt,
    };
  }

  async status(resourceId: string): Promise<Resource> {
    return this.#find(this.#load(), resourceId);
  }

  async list(filter: ResourceFilter = {}): Promise<Resource[]> {
    const wanted = Object.entries(filter.tags ?? {});
    return Object.values(this.#load().resources)
      .filter((r) => filter.managedOnly === false || r.tags.CreatedBy === "runctl")
      .filter((r) => !filter.states || filter.states.includes(r.state))
      .filter((r) => wanted.every(([k, v]) => r.tags[k] === v));
  }

  async stop(resourceId: string): Promise<Resource> {
    return this.#transition(resourceId, ["running"], "stopped");
  }

  async start(resourceId: string): Promise<Resource> {
    return this.#transition(resourceId, ["stopped"], "running");
  }

  async terminate(resourceId: string, options: TerminateOptions = {}): Promise<Resource> {
    return this.#mutate((state) => {
      const r = this.#find(state, resourceId);
      if (r.tags["runctl:protected"] === "true" && !options.force) {
        throw new UserError(`${resourceId} is tagged runctl:protected`, {
          code: "protected",
          hint: "Remove the tag, or terminate with --force.",
        });
      }
      r.state = "terminated";
      return r;
    });
  }

  async interruptions(resourceIds?: string[]): Promise<Interruption[]> {
    // YOUR CLOUD: preemption notices from its API.
    const state = this.#load();
    return (resourceIds ?? Object.keys(state.resources))
      .filter(
        (id) =>
          state.resources[id]?.market === "spot" && state.resources[id]?.tags["__NAME__:preempt"] === "yes",
      )
      .map((id) => ({ resourceId: id, kind: "spot-termination", at: null }));
  }

  #transition(resourceId: string, from: ResourceState[], to: ResourceState): Resource {
    return this.#mutate((state) => {
      const r = this.#find(state, resourceId);
      if (!from.includes(r.state)) {
        throw new ProviderError(`${resourceId} is ${r.state}`, {
          code: "invalid_state",
          hint: `It must be ${from.join(" or ")}.`,
        });
      }
      r.state = to;
      return r;
    });
  }

  #find(state: State, resourceId: string): Resource {
    const r = state.resources[resourceId];
    if (!r) {
      throw new UserError(`No __NAME__ machine ${resourceId}`, {
        code: "not_found",
        hint: "List them with `runctl __NAME__ list`.",
      });
    }
    return r;
  }

  #load(): State {
    try {
      return JSON.parse(readFileSync(this.#path, "utf8")) as State;
    } catch {
      return { resources: {} };
    }
  }

  #mutate<T>(change: (state: State) => T): T {
    const state = this.#load();
    const result = change(state);
    mkdirSync(dirname(this.#path), { recursive: true });
    const tmp = `${this.#path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 2));
    renameSync(tmp, this.#path);
    return structuredClone(result);
  }
}
