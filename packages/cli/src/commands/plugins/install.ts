import { Flags } from "@oclif/core";
import { commands } from "@oclif/plugin-plugins";
import { RunctlCommand } from "../../command.ts";
import { loadForeign, runForeign } from "../../foreign-command.ts";
import { ASSUME_YES_ENV } from "../../hooks/plugin-name.ts";
import { type PluginRow, pluginRows } from "../../plugin-list.ts";

const original = commands["plugins:install"];

export default class PluginsInstall extends RunctlCommand<{ installed: PluginRow[] }> {
  static override summary = "Install a plugin, e.g. a provider: `runctl plugins install provider-<name>`.";
  static override description =
    `A short name provider-<name> resolves to the first package the npm registry has: @runctl/provider-<name>, then runctl-provider-<name>, then provider-<name>. A package outside the @runctl scope is third-party code that runs with your permissions: runctl shows its name, version, publisher and what it contributes, and asks before installing it (--yes answers for you).

The registry is npm's own setting (npm config get registry, .npmrc, npm_config_registry).`;
  static override examples = [
    "<%= config.bin %> plugins install provider-gcp",
    "<%= config.bin %> plugins install runctl-provider-gcp@1.2.0 --yes",
  ];
  static override aliases = ["plugins:add"];
  static override strict = false;
  static override args = original.args;
  static override flags = {
    yes: Flags.boolean({ char: "y", description: "Install a third-party package without asking." }),
    force: Flags.boolean({
      char: "f",
      description: "Force npm to fetch remote resources even if a local copy exists on disk.",
    }),
    silent: Flags.boolean({ char: "s", description: "Silences npm output.", exclusive: ["verbose"] }),
    verbose: Flags.boolean({ char: "v", description: "Show verbose npm output.", exclusive: ["silent"] }),
  };

  async run(): Promise<{ installed: PluginRow[] }> {
    const { argv, flags } = await this.parse(PluginsInstall);
    const before = new Map(pluginRows(this.config, { core: false }).map((p) => [p.name, p.version]));
    // The plugins:preinstall hook (name resolution and the third-party check) reads this.
    if (flags.yes) process.env[ASSUME_YES_ENV] = "1";
    const passOn = [
      ...(argv as string[]),
      ...(flags.force ? ["--force"] : []),
      ...(flags.silent ? ["--silent"] : []),
      ...(flags.verbose ? ["--verbose"] : []),
    ];
    // npm's own output (warnings, progress) is for people: stderr, so `--json` stdout stays one document.
    const { output } = await runForeign(
      await loadForeign(this.config, "@oclif/plugin-plugins", "plugins:install"),
      passOn,
      this.config,
      this.jsonEnabled(),
    );
    if (output) process.stderr.write(output);
    const installed = pluginRows(this.config, { core: false }).filter(
      (p) => before.get(p.name) !== p.version,
    );
    return { installed };
  }
}
