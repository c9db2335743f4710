import { Args, Flags } from "@oclif/core";
import { resolveRun } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { followLog } from "../follow-log.ts";

export default class Logs extends RunctlCommand {
  static override summary = "Print a run's output (all ranks); -f follows it until the run ends.";
  static override examples = [
    "<%= config.bin %> logs 20261122-2015",
    "<%= config.bin %> logs 20261122-2015 -f",
    "<%= config.bin %> logs 20261122-2015 --lines 50 --json",
  ];
  static override args = { run: Args.string({ description: "Run id or unique prefix.", required: true }) };
  static override flags = {
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
    const { runsDir } = await this.runPaths();
    const run = await resolveRun(runsDir, args.run);
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
}
