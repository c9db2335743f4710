/**
 * What the commands of a cloud provider's plugin share (`runctl aws …`, `runctl runpod …`, a
 * third party's): its provider as the registry hands it out (so first-party commands use exactly
 * what a third-party plugin could), the resources table, and the question asked before anything
 * stops or terminates a machine.
 */
import { Flags } from "@oclif/core";
import {
  type ArtifactStore,
  ConfigError,
  isProtected,
  type Provider,
  type Resource,
  UserError,
} from "@runctl/core";
import { RunctlCommand } from "./command.ts";
import { confirmAction } from "./confirm.ts";
import { table } from "./output.ts";

/** `--dry-run`, `--yes` and `--force` of a stop or terminate; `forceDescription` says how protection is marked. */
export function confirmFlags(forceDescription: string) {
  return {
    "dry-run": Flags.boolean({ description: "Show what would be done; change nothing.", default: false }),
    yes: Flags.boolean({ char: "y", description: "Do it without asking.", default: false }),
    force: Flags.boolean({ description: forceDescription, default: false }),
  };
}

export abstract class CloudCommand extends RunctlCommand {
  /** The provider's registered name. */
  protected abstract readonly cloudName: string;
  /** What its resources are called: one (`instance`), several (`machines`). */
  protected abstract readonly resourceNoun: { one: string; many: string };
  /** The heading of the column with `instanceType` (a machine type, a GPU). */
  protected readonly typeColumn: string = "TYPE";

  /**
   * The store this cloud's runs are synced to: `--store` over `[<cloud>] store`, opened through
   * the registry (a cloud command registers the store schemes its machines reach).
   */
  protected async runStore(flag: string | undefined): Promise<ArtifactStore> {
    const { config } = await this.runctlConfig();
    const section = (config as Record<string, unknown>)[this.cloudName] as { store?: unknown } | undefined;
    const url = flag ?? (typeof section?.store === "string" ? section.store : undefined);
    if (url === undefined) {
      throw new ConfigError(`No store to read the ${this.resourceNoun.many}' runs from`, {
        code: "store_missing",
        hint: `Pass --store s3://bucket/prefix or set \`[${this.cloudName}] store\` in .runctl.toml.`,
      });
    }
    return (await this.registry()).openArtifactStore(url);
  }

  /**
   * Where a machine's run output goes: stdout, or (with --json) into the result's `output`;
   * status lines to stderr when following or --json, so stdout carries only the run's bytes.
   */
  protected machineOutput(follow: boolean) {
    const json = this.jsonEnabled();
    const chunks: Buffer[] = [];
    return {
      write: (bytes: Uint8Array) => (json ? chunks.push(Buffer.from(bytes)) : process.stdout.write(bytes)),
      say: (line: string) => (follow || json ? this.progress(line) : this.log(line)),
      note: (line: string) => this.progress(line),
      /** The result's `output` (with --json). */
      output: (): { output?: string } => (json ? { output: Buffer.concat(chunks).toString("utf8") } : {}),
    };
  }

  protected cloud(): Promise<Provider> {
    return this.provider(this.cloudName);
  }

  protected resourcesTable(resources: readonly Resource[]): string {
    return table(
      ["ID", "STATE", this.typeColumn, "MARKET", "$/H", "LAUNCHED", "NAME"],
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

  /** The ranks of a machine's run (`<cloud> processes`), and what they were read from. */
  protected processesText(p: {
    runId: string;
    status: string;
    from: string;
    heartbeatAt: string | null;
    ranks: readonly { rank: number; pid: number | null; state: string }[];
    system: Record<string, unknown> | null;
  }): string {
    const cpu = p.system?.proc_cpu_percent;
    const rss = p.system?.proc_rss_gb;
    const rows = table(
      ["RANK", "PID", "STATE", "LAST HEARTBEAT"],
      p.ranks.map((r) => [
        String(r.rank),
        r.pid === null ? "?" : String(r.pid),
        r.state,
        p.heartbeatAt ?? "",
      ]),
    );
    const usage =
      typeof cpu === "number" || typeof rss === "number"
        ? `\nall ranks: CPU ${typeof cpu === "number" ? `${cpu}%` : "?"}, RSS ${typeof rss === "number" ? `${rss} GB` : "?"} (last system sample)`
        : "";
    return `run ${p.runId} (${p.status}), from its store copy ${p.from}\n${rows}${usage}`;
  }

  /**
   * Stops or terminates each resource after one question (a terminal) or `--yes`; those marked
   * runctl:protected are refused unless `--force`, and `--dry-run` only says what would happen.
   * Returns what was done, per id.
   */
  protected async destructive(
    verb: "stop" | "terminate",
    ids: readonly string[],
    flags: { "dry-run": boolean; yes: boolean; force: boolean },
    act: (provider: Provider, id: string) => Promise<Resource>,
  ): Promise<{ dryRun: boolean; resources: Resource[] }> {
    const provider = await this.cloud();
    const targets = await Promise.all(ids.map((id) => provider.status(id)));
    const protectedOnes = targets.filter((r) => isProtected(r.tags));
    if (protectedOnes.length > 0 && !flags.force) {
      throw new UserError(
        `${protectedOnes.map((r) => r.id).join(", ")} tagged runctl:protected; nothing was done`,
        {
          code: "protected",
          hint: `Pass --force to ${verb} protected ${this.resourceNoun.many} too, or leave them out.`,
        },
      );
    }
    if (flags["dry-run"]) {
      for (const r of targets) this.log(`Would ${verb} ${r.id} (${r.instanceType}, ${r.state})`);
      return { dryRun: true, resources: targets };
    }
    if (!flags.yes) {
      await confirmAction(
        `${verb} ${targets.length} ${this.resourceNoun.one}(s)`,
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
