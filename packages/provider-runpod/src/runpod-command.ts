/** What every `runctl runpod …` command shares (CloudCommand), for pods. */
import { CloudCommand, confirmFlags as cloudConfirmFlags } from "@runctl/command";
import type { Provider } from "@runctl/core";

export const confirmFlags = cloudConfirmFlags("Include pods labelled RUNCTL_PROTECTED=1 (runctl:protected).");

export abstract class RunpodCommand extends CloudCommand {
  protected readonly cloudName = "runpod";
  protected readonly resourceNoun = { one: "pod", many: "pods" };
  protected override readonly typeColumn = "GPU";

  protected runpod(): Promise<Provider> {
    return this.cloud();
  }
}
