/**
 * The fallback order and each step taken, in words, as `runctl aws create` prints them. A
 * launch that succeeds at its first step prints nothing; the order is printed at the first
 * refusal, then each step as it is taken.
 */
import type { LaunchStepEvent } from "./aws-provider.ts";
import { describeStep } from "./launch-plan.ts";

export function stepReport(event: LaunchStepEvent): string | undefined {
  switch (event.kind) {
    case "plan":
      return event.steps.length > 1
        ? `runctl aws: launch order: ${event.steps.map((s, i) => `${i + 1}. ${describeStep(s)}`).join(", ")}`
        : undefined;
    case "refused":
      return `runctl aws: ${describeStep(event.step)} refused (${event.code})${event.next ? `; trying ${describeStep(event.next)}` : "; nothing left to try"}`;
    case "skipped":
      return `runctl aws: ${describeStep(event.step)} skipped: ${event.reason}${event.next ? `; trying ${describeStep(event.next)}` : "; nothing left to try"}`;
    case "launched":
      return event.adopted
        ? `runctl aws: ${event.instanceId} already launched by this launch (${describeStep(event.step)}); not launching another`
        : undefined;
  }
}

/** A launch-step listener that writes the report lines, the order only once something was refused. */
export function stepPrinter(write: (line: string) => void): (event: LaunchStepEvent) => void {
  let plan: LaunchStepEvent | undefined;
  return (event) => {
    if (event.kind === "plan") {
      plan = event;
      return;
    }
    if ((event.kind === "refused" || event.kind === "skipped") && plan !== undefined) {
      const order = stepReport(plan);
      plan = undefined;
      if (order !== undefined) write(order);
    }
    const line = stepReport(event);
    if (line !== undefined) write(line);
  };
}
