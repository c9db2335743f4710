import { Flags } from "@oclif/core";
import { redactConfig } from "@runctl/core";
import { stringify } from "smol-toml";
import { RunctlCommand } from "../../command.ts";

export default class ConfigShow extends RunctlCommand {
  static override summary = "Show the merged configuration and where each part came from.";
  static override description =
    "Precedence, lowest first: defaults, the user file ($XDG_CONFIG_HOME/runctl/config.toml), the nearest .runctl.toml walking up from here, RUNCTL_* variables, flags. Secrets are shown as ***.";
  static override examples = [
    "<%= config.bin %> config show",
    "<%= config.bin %> config show --sources --json",
  ];
  static override flags = {
    sources: Flags.boolean({ description: "List the files and variables that contributed.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(ConfigShow);
    const loaded = await this.runctlConfig();
    const config = redactConfig(loaded.config);
    if (flags.sources) {
      for (const source of loaded.sources) {
        this.progress(
          `# ${source.kind}${source.path ? ` ${source.path}` : ""}: ${source.keys.join(", ") || "-"}`,
        );
      }
    }
    this.log(stringify(config).trimEnd());
    return {
      config,
      sources: loaded.sources,
      projectFile: loaded.projectFile ?? null,
      userFile: loaded.userFile,
    };
  }
}
