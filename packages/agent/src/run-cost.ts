/**
 * A run's cost so far on a priced machine: the price quoted at launch times the hours from the
 * run's start to its end (or now). Kept in meta.json's `cost_usd`, so `runctl show` and
 * `runctl <cloud> monitor` read it from the store copy without asking the provider.
 */
import type { HostSpec, RunMeta } from "@runctl/core";

/** USD for `perHour` from `started_at` to `finished_at` (or `now`); null when the run has no start. */
export function runCost(
  perHour: number,
  meta: Pick<RunMeta, "started_at" | "finished_at">,
  now = new Date(),
) {
  const start = meta.started_at ? Date.parse(meta.started_at) : Number.NaN;
  if (Number.isNaN(start)) return null;
  const end = meta.finished_at ? Date.parse(meta.finished_at) : now.getTime();
  // Rounded to a millionth of a dollar: the figure changes at every sync, its noise need not.
  return Math.round(perHour * (Math.max(0, end - start) / 3_600_000) * 1e6) / 1e6;
}

/** What records the cost: `record()` before each store sync and once at the end. */
export function costRecorder(
  price: HostSpec["price"],
  meta: { updateMeta(patch: (current: RunMeta) => Partial<RunMeta>): unknown },
  onError: (error: unknown) => void,
): { record(): void } {
  return {
    record() {
      if (!price) return;
      try {
        meta.updateMeta((current) => ({ cost_usd: runCost(price.perHour, current) }));
      } catch (error) {
        onError(error);
      }
    },
  };
}
