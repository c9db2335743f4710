import { Args } from "@oclif/core";
import { getConfigValue, redactConfig } from "@runctl/core";
import { RunctlCommand } from "../../command.ts";

export default class ConfigGet extends RunctlCommand {
  static override summary = "Print one configuration value.";
  static override examples = [
    "<%= config.bin %> config get nats.prefix",
    "<%= config.bin %> config get local --json",
  ];
  static override args = {
    key: Args.string({ description: "Dotted key, e.g. `bundle.warn_size_mb`.", required: true }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args } = await this.parse(ConfigGet);
    const loaded = await this.runctlConfig();
    const value = getConfigValue(redactConfig(loaded.config), args.key);
    this.log(typeof value === "string" ? value : JSON.stringify(value, null, 2));
    return { key: args.key, value };
  }
}
