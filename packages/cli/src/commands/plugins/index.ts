import { Flags } from "@oclif/core";
import { RunctlCommand } from "../../command.ts";
import { table } from "../../output.ts";
import { type PluginRow, pluginRows } from "../../plugin-list.ts";

export default class Plugins extends RunctlCommand<{ plugins: PluginRow[] }> {
  static override summary = "List installed plugins.";
  static override description =
    "Plugins installed with `runctl plugins install` (and linked ones); --core adds those that ship with runctl.";
  static override examples = ["<%= config.bin %> plugins", "<%= config.bin %> plugins --core --json"];
  static override flags = {
    core: Flags.boolean({ description: "Also list the plugins that ship with runctl." }),
  };

  async run(): Promise<{ plugins: PluginRow[] }> {
    const { flags } = await this.parse(Plugins);
    const plugins = pluginRows(this.config, { core: flags.core });
    if (plugins.length === 0) {
      this.progress(
        "No plugins installed. Install a provider with `runctl plugins install provider-<name>`.",
      );
    } else {
      this.log(
        table(
          ["NAME", "VERSION", "TYPE", "FROM"],
          plugins.map((p) => [p.name, p.version, p.type, p.root]),
        ),
      );
    }
    return { plugins };
  }
}
