import { Args } from "@oclif/core";
import { confirmFlags, RunpodCommand } from "../../runpod-command.ts";

export default class RunpodStop extends RunpodCommand {
  static override summary =
    "Stop pods (the volume is kept, the container disk is not; start them again later).";
  static override description =
    "Asks first on a terminal; without one pass --yes, or --dry-run to see what would stop. Pods labelled protected are left alone unless --force.";
  static override examples = ["<%= config.bin %> runpod stop abc123xyz --yes"];
  static override strict = false;
  static override args = { id: Args.string({ description: "Pod id(s).", required: true }) };
  static override flags = { ...confirmFlags };

  async run(): Promise<Record<string, unknown>> {
    const { argv, flags } = await this.parse(RunpodStop);
    return this.destructive("stop", argv as string[], flags, (p, id) => p.stop(id));
  }
}
