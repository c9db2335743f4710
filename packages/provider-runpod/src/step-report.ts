/** `runctl runpod create`'s fallback report (the format is @runctl/command's, shared by every cloud). */
import { fallbackReport } from "@runctl/command";
import { describeStep, type LaunchStep, type LaunchStepEvent } from "./runpod-provider.ts";

const report = fallbackReport<LaunchStep, LaunchStepEvent>("runctl runpod", describeStep);

export const stepReport = report.line;
export const stepPrinter = report.printer;
