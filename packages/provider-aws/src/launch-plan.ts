/**
 * The capacity fallback order, decided before the first call and printed as it is walked:
 * every zone for the spec's type, then every zone for each fallback type, all in the spec's
 * market; then, only when spot fallback is allowed, the same again on-demand. Bounded: no
 * step is tried twice and the list is capped.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Market } from "@runctl/core";

export interface LaunchStep {
  instanceType: string;
  zone: string;
  market: Market;
}

export const MAX_LAUNCH_STEPS = 24;

export function launchPlan(input: {
  instanceType: string;
  fallbackTypes: readonly string[];
  zones: readonly string[];
  market: Market;
  spotFallback: boolean;
}): LaunchStep[] {
  const types = [...new Set([input.instanceType, ...input.fallbackTypes])];
  const markets: Market[] =
    input.market === "spot" && input.spotFallback ? ["spot", "on-demand"] : [input.market];
  const steps: LaunchStep[] = [];
  for (const market of markets) {
    for (const instanceType of types) {
      for (const zone of input.zones) steps.push({ instanceType, zone, market });
    }
  }
  return steps.slice(0, MAX_LAUNCH_STEPS);
}

export function describeStep(step: LaunchStep): string {
  return `${step.instanceType} (${step.market}) in ${step.zone}`;
}

/**
 * EC2's ClientToken for one step of one launch (≤ 64 ASCII characters). A launch named by its
 * run id and attempt (or an idempotency key) gets the same tokens every time it is run, so a
 * retried or re-run launch returns the machine it already made; an unnamed launch gets fresh ones.
 */
export function clientToken(launchName: string | undefined, step: LaunchStep): string {
  const name = launchName ?? randomUUID();
  const digest = createHash("sha256")
    .update(`${name}\n${step.instanceType}\n${step.zone}\n${step.market}`)
    .digest("hex");
  return `runctl-${digest.slice(0, 48)}`;
}

export function launchName(
  spec: { runId?: string | undefined; attempt?: number | undefined },
  idempotencyKey?: string,
): string | undefined {
  if (idempotencyKey !== undefined) return `key:${idempotencyKey}`;
  if (spec.runId !== undefined) return `run:${spec.runId}:${spec.attempt ?? 1}`;
  return undefined;
}
