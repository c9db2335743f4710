import { Args, Flags } from "@oclif/core";
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
      if (flags.follow) {
        throw new UserError(`-f follows runs on this machine; ${args.run} is read from ${source.location}`, {
          code: "follow_remote",
          hint: "Leave out -f to print what its synced output.log holds now.",
        });
      }
      return this.remote(source, args.run, flags.lines);
    }
    const run = await resolveRun(source.runsDir, args.run);
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

  /** A run elsewhere: what its synced output.log holds now (following needs telemetry, not a copy). */
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
