/**
 * Resources across every registered provider, for `runctl resources …`: what each provider
 * lists (by default only what runctl launched), with uptime and cost so far, a summary, and the
 * plan of `stop-all`. A provider that cannot answer (no credentials, no network) is reported
 * beside the others, never hides them.
 */
import {
  isProtected,
  type Provider,
  type ProviderInfo,
  type Resource,
  type ResourceFilter,
  toRunctlError,
} from "@runctl/core";

export interface ResourceRow extends Resource {
  /** Hours since launch for a live resource; null when stopped, ended or unknown. */
  uptimeHours: number | null;
  /** USD since launch at today's price, for a live resource; null when unknown. */
  costSoFar: number | null;
}

export interface ProviderFailure {
  provider: string;
  code: string;
  message: string;
  hint?: string;
}

export interface Inventory {
  resources: ResourceRow[];
  failures: ProviderFailure[];
}

const LIVE = new Set(["pending", "running", "stopping"]);

export function row(resource: Resource, now: Date): ResourceRow {
  const launched = resource.launchedAt === null ? Number.NaN : Date.parse(resource.launchedAt);
  const uptimeHours =
    LIVE.has(resource.state) && !Number.isNaN(launched)
      ? Math.max(0, now.getTime() - launched) / 3_600_000
      : null;
  const costSoFar =
    uptimeHours !== null && resource.pricePerHour !== null
      ? Number((uptimeHours * resource.pricePerHour).toFixed(4))
      : null;
  return {
    ...resource,
    uptimeHours: uptimeHours === null ? null : Number(uptimeHours.toFixed(3)),
    costSoFar,
  };
}

/** Every provider's `list(filter)`, side by side; each failure is kept with its provider's name. */
export async function collectResources(
  providers: readonly string[],
  open: (name: string) => Promise<Provider>,
  filter: ResourceFilter,
  now = new Date(),
): Promise<Inventory> {
  const answers = await Promise.all(
    providers.map(async (name) => {
      try {
        return { name, resources: await (await open(name)).list(filter) };
      } catch (error) {
        const e = toRunctlError(error);
        // A provider with no account configured (no API key at all) has nothing to list.
        if (e.code === "not_configured") return { name, resources: [] };
        return {
          name,
          failure: { provider: name, code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) },
        };
      }
    }),
  );
  const inventory: Inventory = { resources: [], failures: [] };
  for (const a of answers) {
    if ("failure" in a && a.failure) inventory.failures.push(a.failure);
    else if ("resources" in a && a.resources)
      inventory.resources.push(...a.resources.map((r) => row(r, now)));
  }
  return inventory;
}

export interface ProviderSummary {
  provider: string;
  total: number;
  byState: Record<string, number>;
  /** USD per hour of what is running now (pending and running resources with a known price). */
  burnPerHour: number;
  /** Resources running without a known price: the burn rate leaves them out. */
  unpriced: number;
  costSoFar: number;
}

export function summarise(rows: readonly ResourceRow[]): ProviderSummary[] {
  const by = new Map<string, ProviderSummary>();
  for (const r of rows) {
    const s = by.get(r.provider) ?? {
      provider: r.provider,
      total: 0,
      byState: {},
      burnPerHour: 0,
      unpriced: 0,
      costSoFar: 0,
    };
    s.total += 1;
    s.byState[r.state] = (s.byState[r.state] ?? 0) + 1;
    if (r.state === "running" || r.state === "pending") {
      if (r.pricePerHour === null) s.unpriced += 1;
      else s.burnPerHour += r.pricePerHour;
    }
    s.costSoFar += r.costSoFar ?? 0;
    by.set(r.provider, s);
  }
  return [...by.values()]
    .map((s) => ({
      ...s,
      burnPerHour: Number(s.burnPerHour.toFixed(4)),
      costSoFar: Number(s.costSoFar.toFixed(4)),
    }))
    .sort((a, b) => a.provider.localeCompare(b.provider));
}

export interface StopPlan {
  stop: ResourceRow[];
  skipped: Array<{ resource: ResourceRow; reason: string }>;
}

/**
 * What `stop-all` stops: running resources tagged by runctl, not `runctl:protected`, of
 * providers that can stop and start; everything else it was shown is skipped with a reason.
 */
export function stopPlan(rows: readonly ResourceRow[], providers: readonly ProviderInfo[]): StopPlan {
  const canStop = new Map(providers.map((p) => [p.name, p.capabilities.stopStart]));
  const plan: StopPlan = { stop: [], skipped: [] };
  for (const r of rows) {
    if (r.state !== "running" && r.state !== "pending") continue;
    if (r.tags.CreatedBy !== "runctl") plan.skipped.push({ resource: r, reason: "not launched by runctl" });
    else if (isProtected(r.tags)) plan.skipped.push({ resource: r, reason: "tagged runctl:protected" });
    else if (!canStop.get(r.provider))
      plan.skipped.push({ resource: r, reason: `${r.provider} cannot stop and start` });
    else plan.stop.push(r);
  }
  return plan;
}

export function failureLine(f: ProviderFailure): string {
  return `Warning: ${f.provider}: ${f.message}${f.hint ? ` (${f.hint})` : ""}`;
}
