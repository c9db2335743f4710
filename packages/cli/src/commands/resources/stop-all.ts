import { Flags } from "@oclif/core";
import { confirmAction } from "@runctl/command";
import { type Provider, ProviderError, type Resource } from "@runctl/core";
import { RunctlCommand } from "../../command.ts";
import { collectResources, failureLine, stopPlan } from "../../resources.ts";

export default class ResourcesStopAll extends RunctlCommand {
  static override summary = "Stop every running resource runctl launched, on every provider that can stop.";
  static override description =
    "Stops running resources tagged CreatedBy=runctl; runctl:protected ones, providers that cannot stop (local runs), and anything runctl did not launch are left alone and listed. Asks first on a terminal; without one pass --yes, or --dry-run to see the plan.";
  static override examples = [
    "<%= config.bin %> resources stop-all --dry-run",
    "<%= config.bin %> resources stop-all --yes --json",
  ];
  static override flags = {
    provider: Flags.string({ description: "Only this provider (repeatable).", multiple: true }),
    "dry-run": Flags.boolean({ description: "Show what would stop; stop nothing.", default: false }),
    yes: Flags.boolean({ char: "y", description: "Stop without asking.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(ResourcesStopAll);
    const registry = await this.registry();
    const names = flags.provider ?? registry.list().map((p) => p.name);
    for (const name of names) registry.get(name);
    const opened = new Map<string, Promise<Provider>>();
    const open = (name: string): Promise<Provider> => {
      const p = opened.get(name) ?? this.provider(name);
      opened.set(name, p);
      return p;
    };
    const inventory = await collectResources(names, open, {
      managedOnly: true,
      states: ["pending", "running"],
    });
    for (const f of inventory.failures) this.progress(failureLine(f));
    const plan = stopPlan(inventory.resources, registry.list());
    for (const s of plan.skipped)
      this.progress(`Leaving ${s.resource.provider} ${s.resource.id}: ${s.reason}`);
    const lines = plan.stop.map(
      (r) => `  stop ${r.provider} ${r.id} (${r.instanceType}, ${r.market}, $${r.pricePerHour ?? "?"}/h)`,
    );
    if (flags["dry-run"] || plan.stop.length === 0) {
      for (const r of plan.stop)
        this.log(`Would stop ${r.provider} ${r.id} (${r.instanceType}, ${r.market})`);
      if (plan.stop.length === 0) this.log("Nothing to stop.");
      return {
        dryRun: flags["dry-run"],
        stop: plan.stop,
        skipped: plan.skipped,
        failures: inventory.failures,
      };
    }
    if (!flags.yes) await confirmAction(`stop ${plan.stop.length} resource(s)`, lines);
    const stopped: Resource[] = [];
    const errors: Array<{ provider: string; id: string; code: string; message: string }> = [];
    for (const r of plan.stop) {
      try {
        stopped.push(await (await open(r.provider)).stop(r.id));
        this.log(`Stopped ${r.provider} ${r.id}`);
      } catch (error) {
        const e = error as { code?: string; message?: string };
        errors.push({
          provider: r.provider,
          id: r.id,
          code: e.code ?? "provider_failed",
          message: e.message ?? String(error),
        });
        this.progress(`Could not stop ${r.provider} ${r.id}: ${e.message ?? error}`);
      }
    }
    if (errors.length > 0) {
      throw new ProviderError(
        `Could not stop ${errors.length} of ${plan.stop.length} resource(s); they keep billing`,
        {
          code: "stop_failed",
          hint: "See each error in details; retry with `runctl resources stop-all`, or stop them in the provider's console.",
          details: { stopped: stopped.map((r) => r.id), errors },
        },
      );
    }
    return { dryRun: false, stopped, errors, skipped: plan.skipped, failures: inventory.failures };
  }
}
