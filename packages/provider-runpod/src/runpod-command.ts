/** What every `runctl runpod …` command shares (CloudCommand), for pods. */
import { CloudCommand, confirmFlags as cloudConfirmFlags } from "@runctl/command";
import type { Provider, ProviderRegistry } from "@runctl/core";

export const confirmFlags = cloudConfirmFlags("Include pods labelled RUNCTL_PROTECTED=1 (runctl:protected).");

export abstract class RunpodCommand extends CloudCommand {
  protected readonly cloudName = "runpod";
  protected readonly resourceNoun = { one: "pod", many: "pods" };
  protected override readonly typeColumn = "GPU";
  /** How messages and hints name this cloud and its machines. */
  protected readonly words = { cloud: "runpod", machine: "pod" };

  protected runpod(): Promise<Provider> {
    return this.cloud();
  }

  /** `s3://` stores, configured by `[s3]`, as the CLI opens them for `--from`: where pods' bytes go. */
  protected override async registry(): Promise<ProviderRegistry> {
    const registry = await super.registry();
    registry.registerArtifactStore("s3:", async (url) => {
      const [{ s3ArtifactStoreFactory, s3SettingsFromConfig }, { config }] = await Promise.all([
        import("@runctl/s3"),
        this.runctlConfig(),
      ]);
      return s3ArtifactStoreFactory(s3SettingsFromConfig(config.s3))(url);
    });
    return registry;
  }
}
