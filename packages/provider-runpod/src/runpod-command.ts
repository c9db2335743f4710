/**
 * What every `runctl runpod …` command shares: the `runpod` provider as the registry hands it out
 * (so the commands use exactly what a third-party plugin could), the resources table, and the
 * question asked before anything stops or terminates a machine.
 */
import { Flags } from "@oclif/core";
import { confirmAction, RunctlCommand, table } from "@runctl/command";
import { isProtected, type Provider, type Resource, UserError } from "@runctl/core";

export const confirmFlags = {
  "dry-run": Flags.boolean({ description: "Show what would be done; change nothing.", default: false }),
  yes: Flags.boolean({ char: "y", description: "Do it without asking.", default: false }),
  force: Flags.boolean({
    description: "Include pods labelled RUNCTL_PROTECTED=1 (runctl:protected).",
    default: false,
  }),
};

export abstract class RunpodCommand extends RunctlCommand {
  protected runpod(): Promise<Provider> {
    return this.provider("runpod");
  }

  protected resourcesTable(resources: readonly Resource[]): string {
    return table(
      ["ID", "STATE", "GPU", "MARKET", "$/H", "LAUNCHED", "NAME"],
      resources.map((r) => [
        r.id,
        r.state,
        r.instanceType,
        r.market,
        r.pricePerHour === null ? "?" : r.pricePerHour.toFixed(4),
        r.launchedAt ?? "",
        r.name ?? "",
      ]),
    );
  }

  /**
   * Stops or terminates each pod after one question (a terminal) or `--yes`; pods
   * tagged runctl:protected are refused unless `--force`, and `--dry-run` only says what would
   * happen. Returns what was done, per id.
   */
  protected async destructive(
    verb: "stop" | "terminate",
    ids: readonly string[],
    flags: { "dry-run": boolean; yes: boolean; force: boolean },
    act: (provider: Provider, id: string) => Promise<Resource>,
  ): Promise<{ dryRun: boolean; resources: Resource[] }> {
    const provider = await this.runpod();
    const targets = await Promise.all(ids.map((id) => provider.status(id)));
    const protectedOnes = targets.filter((r) => isProtected(r.tags));
    if (protectedOnes.length > 0 && !flags.force) {
      throw new UserError(
        `${protectedOnes.map((r) => r.id).join(", ")} tagged runctl:protected; nothing was done`,
        {
          code: "protected",
          hint: `Pass --force to ${verb} protected pods too, or leave them out.`,
        },
      );
    }
    if (flags["dry-run"]) {
      for (const r of targets) this.log(`Would ${verb} ${r.id} (${r.instanceType}, ${r.state})`);
      return { dryRun: true, resources: targets };
    }
    if (!flags.yes) {
      await confirmAction(
        `${verb} ${targets.length} pod(s)`,
        targets.map((r) => `  ${verb} ${r.id} (${r.instanceType}, ${r.market}, ${r.state})`),
      );
    }
    const done: Resource[] = [];
    for (const id of ids) {
      const r = await act(provider, id);
      this.log(`${r.id}: ${r.state}`);
      done.push(r);
    }
    return { dryRun: false, resources: done };
  }
}
