import { Args } from "@oclif/core";
import { confirmFlags, RunpodCommand } from "../../runpod-command.ts";

export default class RunpodTerminate extends RunpodCommand {
  static override summary = "Terminate pods for good (container disk and volume are deleted).";
  static override description =
    "Asks first on a terminal; without one pass --yes, or --dry-run to see what would end. Pods labelled protected (RUNCTL_PROTECTED=1) are refused unless --force.";
  static override examples = [
    "<%= config.bin %> runpod terminate abc123xyz --dry-run",
    "<%= config.bin %> runpod terminate abc123xyz --yes --json",
  ];
  static override strict = false;
  static override args = { id: Args.string({ description: "Pod id(s).", required: true }) };
  static override flags = { ...confirmFlags };

  async run(): Promise<Record<string, unknown>> {
    const { argv, flags } = await this.parse(RunpodTerminate);
    return this.destructive("terminate", argv as string[], flags, (p, id) =>
      p.terminate(id, { force: flags.force }),
    );
  }
}
