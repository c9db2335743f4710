import { homedir } from "node:os";
import { join } from "node:path";
import { Args, Flags } from "@oclif/core";
import { findProjectConfig, setConfigValue, userConfigPath } from "@runctl/core";
import { RunctlCommand } from "../../command.ts";

export default class ConfigSet extends RunctlCommand {
  static override summary = "Set a configuration value in .runctl.toml (or the user file).";
  static override description =
    "The value is read as a TOML value when it parses as one (numbers, booleans, arrays), else as a string. The file is edited in place, comments kept, and only written when the result validates.";
  static override examples = [
    "<%= config.bin %> config set bundle.warn_size_mb 250",
    '<%= config.bin %> config set bundle.exclude \'["data/", "*.npy"]\'',
    "<%= config.bin %> config set nats.url nats://10.0.0.5:4222 --user",
  ];
  static override args = {
    key: Args.string({ description: "Dotted key, e.g. `nats.url`.", required: true }),
    value: Args.string({ description: "New value.", required: true }),
  };
  static override flags = {
    user: Flags.boolean({
      description: "Write the user config file instead of the project's.",
      default: false,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(ConfigSet);
    const file = flags.user
      ? userConfigPath(process.env, homedir())
      : ((await findProjectConfig(process.cwd())) ?? join(process.cwd(), ".runctl.toml"));
    const registry = await this.registry();
    await setConfigValue({ file, key: args.key, value: args.value, sections: registry.configSections() });
    this.log(`Set ${args.key} in ${file}`);
    return { key: args.key, file };
  }
}
