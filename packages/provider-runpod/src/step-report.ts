/**
 * The fallback order and each step taken, in words, as `runctl runpod create` prints them. A
 * launch that succeeds at its first step prints nothing; the order is printed at the first
 * refusal, then each step as it is taken.
 */
import { describeStep, type LaunchStepEvent } from "./runpod-provider.ts";

export function stepReport(event: LaunchStepEvent): string | undefined {
  switch (event.kind) {
    case "plan":
      return event.steps.length > 1
        ? `runctl runpod: launch order: ${event.steps.map((s, i) => `${i + 1}. ${describeStep(s)}`).join(", ")}`
        : undefined;
    case "refused":
      return `runctl runpod: ${describeStep(event.step)} refused (${event.code})${event.next ? `; trying ${describeStep(event.next)}` : "; nothing left to try"}`;
    case "skipped":
      return `runctl runpod: ${describeStep(event.step)} skipped: ${event.reason}${event.next ? `; trying ${describeStep(event.next)}` : "; nothing left to try"}`;
    case "launched":
      return undefined;
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
