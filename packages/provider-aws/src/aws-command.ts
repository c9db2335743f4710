/** What every `runctl aws …` command shares (CloudCommand), for EC2 instances. */
import { CloudCommand, confirmFlags as cloudConfirmFlags } from "@runctl/command";
import type { Provider, ProviderRegistry } from "@runctl/core";

export const confirmFlags = cloudConfirmFlags("Include machines tagged runctl:protected.");

export abstract class AwsCommand extends CloudCommand {
  protected readonly cloudName = "aws";
  protected readonly resourceNoun = { one: "instance", many: "machines" };
  /** How messages and hints name this cloud and its machines. */
  protected readonly words = { cloud: "aws", machine: "instance" };

  protected aws(): Promise<Provider> {
    return this.cloud();
  }

  /** `s3://` stores, configured by `[s3]`, as the CLI opens them for `--from`: where machines' bytes go. */
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
