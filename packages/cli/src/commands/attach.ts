import { Args, Flags } from "@oclif/core";
import { resolveRun } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { followLog } from "../follow-log.ts";

export default class Attach extends RunctlCommand {
  static override summary = "Watch a running run's output; Ctrl-C detaches and leaves the run running.";
  static override description = "To stop the run instead, use `runctl stop <run>`.";
  static override examples = ["<%= config.bin %> attach 20261122-2015"];
  static override args = { run: Args.string({ description: "Run id or unique prefix.", required: true }) };
  static override flags = {
    lines: Flags.integer({
      char: "n",
      description: "Lines of earlier output to show first.",
      default: 20,
      min: 0,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Attach);
    const { runsDir } = await this.runPaths();
    const run = await resolveRun(runsDir, args.run);
    const detach = new AbortController();
    const onInterrupt = () => detach.abort();
    process.once("SIGINT", onInterrupt);
    this.progress(`runctl: attached to ${run.id}; Ctrl-C detaches (the run keeps going)`);
    try {
      const status = await followLog({
        runDir: run.dir,
        follow: true,
        lastLines: flags.lines,
        signal: detach.signal,
        write: (text) => (this.jsonEnabled() ? process.stderr : process.stdout).write(text),
      });
      if (detach.signal.aborted) this.progress(`runctl: detached from ${run.id} (${status})`);
      return { run: run.id, status, detached: detach.signal.aborted };
    } finally {
      process.off("SIGINT", onInterrupt);
    }
  }
}
