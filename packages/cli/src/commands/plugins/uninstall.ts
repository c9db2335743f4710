import { commands } from "@oclif/plugin-plugins";
import { RunctlCommand } from "../../command.ts";
import { loadForeign, runForeign } from "../../foreign-command.ts";
import { pluginRows } from "../../plugin-list.ts";

const original = commands["plugins:uninstall"];

export default class PluginsUninstall extends RunctlCommand<{ uninstalled: string[] }> {
  static override summary = "Remove a plugin installed with `runctl plugins install` (by its package name).";
  static override examples = ["<%= config.bin %> plugins uninstall runctl-provider-gcp"];
  static override aliases = ["plugins:remove", "plugins:unlink"];
  static override strict = false;
  static override args = original.args;
  static override flags = original.flags;

  async run(): Promise<{ uninstalled: string[] }> {
    const { argv } = await this.parse(PluginsUninstall);
    const before = pluginRows(this.config, { core: false }).map((p) => p.name);
    // npm's own output (warnings, progress) is for people: stderr, so `--json` stdout stays one document.
    const { output } = await runForeign(
      await loadForeign(this.config, "@oclif/plugin-plugins", "plugins:uninstall"),
      argv as string[],
      this.config,
      this.jsonEnabled(),
    );
    if (output) process.stderr.write(output);
    const after = new Set(pluginRows(this.config, { core: false }).map((p) => p.name));
    return { uninstalled: before.filter((name) => !after.has(name)) };
  }
}
