import { Args, Flags } from "@oclif/core";
import type { NatsSettings } from "@runctl/control";
import { UserError } from "@runctl/core";
import { DirRunSource, type RunSource, resolveRun, sourceMeta, withEffectiveStatus } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { followLog } from "../follow-log.ts";
import { fromFlag } from "../run-source-flag.ts";

export default class Logs extends RunctlCommand {
  static override summary = "Print a run's output (all ranks); -f follows it until the run ends.";
  static override examples = [
    "<%= config.bin %> logs 20261122-2015",
    "<%= config.bin %> logs 20261122-2015 -f",
    "<%= config.bin %> logs 20261122-2015 --lines 50 --json",
  ];
  static override args = { run: Args.string({ description: "Run id or unique prefix.", required: true }) };
  static override flags = {
    ...fromFlag,
    follow: Flags.boolean({
      char: "f",
      description: "Keep printing new output until the run ends.",
      default: false,
    }),
    lines: Flags.integer({
      char: "n",
      description: "Only the last N lines of what is already there.",
      min: 0,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Logs);
    const source = await this.runSource(flags.from, args.run);
    if (!(source instanceof DirRunSource)) {
      if (flags.follow) return this.followElsewhere(source, args.run, flags.from);
      return this.remote(source, args.run, flags.lines);
    }
    const run = await resolveRun(source.runsDir, args.run).catch(async (error: unknown) => {
      // Not on this disk: with NATS configured it may be running on another machine.
      if (!flags.follow || (error as { code?: unknown }).code !== "run_not_found") throw error;
      if ((await this.natsSettings(undefined)) === undefined) throw error;
      return undefined;
    });
    if (run === undefined) return this.followElsewhere(undefined, args.run);
    const json = this.jsonEnabled();
    let output = "";
    const status = await followLog({
      runDir: run.dir,
      follow: flags.follow,
      lastLines: flags.lines,
      write: (text) => {
        if (json) output += text;
        else process.stdout.write(text);
      },
    });
    return { run: run.id, status, ...(json ? { output } : {}) };
  }

  /** A run on another machine, followed over NATS from what its store copy (if any) holds. */
  private async followElsewhere(source: RunSource | undefined, query: string, from?: string) {
    const settings = await this.natsSettings(undefined);
    if (settings === undefined && source === undefined) {
      throw new UserError(`-f follows a run on another machine over NATS, and no NATS server is configured`, {
        code: "follow_remote",
        hint: "Set `[nats] url` (or RUNCTL_NATS_URL) to the server the run's agent reports to, or follow its store copy with --from.",
      });
    }
    // A run just launched has no store copy yet; over NATS its id is all it takes.
    const id = source
      ? await source.resolve(query).catch((error: unknown) => {
          if (settings === undefined || (error as { code?: unknown }).code !== "run_not_found") throw error;
          return query;
        })
      : query;
    const json = this.jsonEnabled();
    const chunks: Buffer[] = [];
    const write = (bytes: Uint8Array) => {
      if (json) chunks.push(Buffer.from(bytes));
      else process.stdout.write(bytes);
    };
    const { followRemote, followRenewalFrom, followStore } = await import("@runctl/agent");
    const note = (message: string) => this.progress(message);
    // Holding the account seed, this side answers the run's renewals while it follows.
    const renew =
      settings === undefined
        ? undefined
        : await followRenewalFrom(
            (await this.runctlConfig()).config.nats,
            from !== undefined && !/^https?:\/\//.test(from)
              ? await (await this.registry()).openArtifactStore(from)
              : undefined,
            id,
            note,
          );
    const status =
      settings === undefined && source !== undefined
        ? await followStore({ runId: id, source, write })
        : await followRemote({
            runId: id,
            settings: settings as NatsSettings,
            source,
            write,
            note,
            ...(renew ? { renew } : {}),
          });
    return { run: id, status, ...(json ? { output: Buffer.concat(chunks).toString("utf8") } : {}) };
  }

  /** A run elsewhere: what its synced output.log holds now. */
  private async remote(source: RunSource, query: string, lines: number | undefined) {
    const id = await source.resolve(query);
    const meta = withEffectiveStatus(await sourceMeta(source, id));
    let output = ((await source.readFile(id, "output.log")) ?? Buffer.alloc(0)).toString("utf8");
    if (lines !== undefined)
      output = output
        .split(/(?<=\n)/)
        .slice(-lines)
        .join("");
    if (!this.jsonEnabled()) process.stdout.write(output);
    return { run: id, status: meta.status, ...(this.jsonEnabled() ? { output } : {}) };
  }
}
