import type { ProviderInfo } from "@runctl/core";
import { RunctlCommand } from "../command.ts";
import { table } from "../output.ts";

export default class Providers extends RunctlCommand<{ providers: ProviderInfo[] }> {
  static override summary = "List registered providers and what they can do.";
  static override description =
    "Providers come from plugins: first-party ones ship with runctl, others are installed with `runctl plugins install provider-<name>`.";
  static override examples = ["<%= config.bin %> providers", "<%= config.bin %> providers --json"];

  async run(): Promise<{ providers: ProviderInfo[] }> {
    await this.parse(Providers);
    const providers = (await this.registry()).list();
    if (providers.length === 0) {
      this.progress("No providers registered. Install one with `runctl plugins install provider-<name>`.");
    } else {
      this.log(
        table(
          ["NAME", "SPOT", "STOP/START", "GPUS", "REGIONS", "PLUGIN"],
          providers.map((p) => [
            p.name,
            p.capabilities.spot ? "yes" : "no",
            p.capabilities.stopStart ? "yes" : "no",
            summarise(p.capabilities.gpuTypes),
            summarise(p.capabilities.regions),
            p.plugin ?? "",
          ]),
        ),
      );
    }
    return { providers };
  }
}

function summarise(items: string[]): string {
  if (items.length <= 3) return items.join(", ") || "-";
  return `${items.slice(0, 3).join(", ")} +${items.length - 3}`;
}
