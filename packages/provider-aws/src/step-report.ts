/** `runctl aws create`'s fallback report (the format is @runctl/command's, shared by every cloud). */
import { fallbackReport } from "@runctl/command";
import type { LaunchStepEvent } from "./aws-provider.ts";
import { describeStep, type LaunchStep } from "./launch-plan.ts";

const report = fallbackReport<LaunchStep, LaunchStepEvent>("runctl aws", describeStep, (event) =>
  event.adopted
    ? `runctl aws: ${event.instanceId} already launched by this launch (${describeStep(event.step)}); not launching another`
    : undefined,
);

export const stepReport = report.line;
export const stepPrinter = report.printer;
