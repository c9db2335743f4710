/** What every `runctl aws …` command shares (CloudCommand), for EC2 instances. */
import { CloudCommand, confirmFlags as cloudConfirmFlags } from "@runctl/command";
import { type ArtifactStore, ConfigError, type Provider } from "@runctl/core";
import { AwsConfig } from "./aws-options.ts";

export const confirmFlags = cloudConfirmFlags("Include machines tagged runctl:protected.");

export abstract class AwsCommand extends CloudCommand {
  protected readonly cloudName = "aws";
  protected readonly resourceNoun = { one: "instance", many: "machines" };

  protected aws(): Promise<Provider> {
    return this.cloud();
  }

  /** The store runs are synced to: `--store` over `[aws] store`, opened with `[s3]`'s settings. */
  protected async runStore(flag: string | undefined): Promise<ArtifactStore> {
    const { config } = await this.runctlConfig();
    const url = flag ?? AwsConfig.parse((config as Record<string, unknown>).aws ?? {}).store;
    if (url === undefined) {
      throw new ConfigError("No store to read the machine's runs from", {
        code: "store_missing",
        hint: "Pass --store s3://bucket/prefix or set `[aws] store` in .runctl.toml.",
      });
    }
    const { s3ArtifactStoreFactory, s3SettingsFromConfig } = await import("@runctl/s3");
    return s3ArtifactStoreFactory(s3SettingsFromConfig(config.s3))(new URL(url));
  }
}
