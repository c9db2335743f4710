import { Flags } from "@oclif/core";
import { ResourceState } from "@runctl/core";
import { RunctlCommand } from "../../command.ts";
import { table } from "../../output.ts";
import { collectResources, failureLine, type ResourceRow } from "../../resources.ts";

export const resourceFlags = {
  provider: Flags.string({ description: "Only this provider (repeatable).", multiple: true }),
  all: Flags.boolean({ description: "Include resources runctl did not launch.", default: false }),
};

export default class ResourcesList extends RunctlCommand {
  static override summary =
    "List what every provider runs for runctl: state, type, market, $/h, uptime, cost so far.";
  static override description =
    "Only resources tagged CreatedBy=runctl unless --all. A provider that cannot answer (credentials, network) is reported as a warning, and the others are still listed.";
  static override examples = [
    "<%= config.bin %> resources list",
    "<%= config.bin %> resources list --provider aws --state running --json",
  ];
  static override flags = {
    ...resourceFlags,
    state: Flags.string({
      description: "Only resources in this state (repeatable).",
      multiple: true,
      options: ResourceState.options,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(ResourcesList);
    const registry = await this.registry();
    const names = flags.provider ?? registry.list().map((p) => p.name);
    for (const name of names) registry.get(name);
    const inventory = await collectResources(names, (name) => this.provider(name), {
      managedOnly: !flags.all,
      ...(flags.state ? { states: flags.state.map((s) => ResourceState.parse(s)) } : {}),
    });
    for (const f of inventory.failures) this.progress(failureLine(f));
    this.log(inventory.resources.length === 0 ? "No resources." : resourcesTable(inventory.resources));
    return { ...inventory };
  }
}

export function resourcesTable(rows: readonly ResourceRow[]): string {
  return table(
    ["PROVIDER", "ID", "STATE", "TYPE", "MARKET", "$/H", "UPTIME", "COST", "NAME"],
    rows.map((r) => [
      r.provider,
      r.id,
      r.state,
      r.instanceType,
      r.market,
      r.pricePerHour === null ? "?" : r.pricePerHour.toFixed(4),
      r.uptimeHours === null ? "" : `${r.uptimeHours.toFixed(1)}h`,
      r.costSoFar === null ? "" : `$${r.costSoFar.toFixed(2)}`,
      r.name ?? "",
    ]),
  );
}
