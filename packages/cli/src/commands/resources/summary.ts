import { RunctlCommand } from "../../command.ts";
import { table } from "../../output.ts";
import { collectResources, failureLine, summarise } from "../../resources.ts";
import { resourceFlags } from "./list.ts";

export default class ResourcesSummary extends RunctlCommand {
  static override summary =
    "Count runctl's resources per provider and state, with what they cost per hour now.";
  static override examples = [
    "<%= config.bin %> resources summary",
    "<%= config.bin %> resources summary --json",
  ];
  static override flags = { ...resourceFlags };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(ResourcesSummary);
    const registry = await this.registry();
    const names = flags.provider ?? registry.list().map((p) => p.name);
    for (const name of names) registry.get(name);
    const inventory = await collectResources(names, (name) => this.provider(name), {
      managedOnly: !flags.all,
    });
    for (const f of inventory.failures) this.progress(failureLine(f));
    const providers = summarise(inventory.resources);
    const burnPerHour = Number(providers.reduce((n, p) => n + p.burnPerHour, 0).toFixed(4));
    this.log(
      table(
        ["PROVIDER", "TOTAL", "RUNNING", "STOPPED", "$/H NOW", "COST SO FAR"],
        providers.map((p) => [
          p.provider,
          String(p.total),
          String((p.byState.running ?? 0) + (p.byState.pending ?? 0)),
          String(p.byState.stopped ?? 0),
          `$${p.burnPerHour.toFixed(4)}${p.unpriced > 0 ? ` (+${p.unpriced} unpriced)` : ""}`,
          `$${p.costSoFar.toFixed(2)}`,
        ]),
      ),
    );
    this.log(`Running now: $${burnPerHour.toFixed(4)}/h`);
    return { providers, burnPerHour, failures: inventory.failures };
  }
}
