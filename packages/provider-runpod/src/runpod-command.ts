/** What every `runctl runpod …` command shares (CloudCommand), for pods. */
import { CloudCommand, confirmFlags as cloudConfirmFlags } from "@runctl/command";
import { type ArtifactStore, ConfigError, type Provider } from "@runctl/core";
import { RunpodConfig } from "./runpod-options.ts";

export const confirmFlags = cloudConfirmFlags("Include pods labelled RUNCTL_PROTECTED=1 (runctl:protected).");

export abstract class RunpodCommand extends CloudCommand {
  protected readonly cloudName = "runpod";
  protected readonly resourceNoun = { one: "pod", many: "pods" };
  protected override readonly typeColumn = "GPU";

  protected runpod(): Promise<Provider> {
    return this.cloud();
  }

  /** The store runs are synced to: `--store` over `[runpod] store`, opened with `[s3]`'s settings. */
  protected async runStore(flag: string | undefined): Promise<ArtifactStore> {
    const { config } = await this.runctlConfig();
    const url = flag ?? RunpodConfig.parse((config as Record<string, unknown>).runpod ?? {}).store;
    if (url === undefined) {
      throw new ConfigError("No store to read the pod's runs from", {
        code: "store_missing",
        hint: "Pass --store s3://bucket/prefix or set `[runpod] store` in .runctl.toml.",
      });
    }
    const { s3ArtifactStoreFactory, s3SettingsFromConfig } = await import("@runctl/s3");
    return s3ArtifactStoreFactory(s3SettingsFromConfig(config.s3))(new URL(url));
  }
}
