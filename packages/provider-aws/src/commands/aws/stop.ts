import { Args } from "@oclif/core";
import { AwsCommand, confirmFlags } from "../../aws-command.ts";

export default class AwsStop extends AwsCommand {
  static override summary = "Stop EC2 instances (the disk is kept; start them again later).";
  static override description =
    "Asks first on a terminal; without one pass --yes, or --dry-run to see what would stop. Machines tagged runctl:protected are left alone unless --force. One-time spot instances cannot stop: terminate them.";
  static override examples = ["<%= config.bin %> aws stop i-0123456789abcdef0 --yes"];
  static override strict = false;
  static override args = { id: Args.string({ description: "Instance id(s).", required: true }) };
  static override flags = { ...confirmFlags };

  async run(): Promise<Record<string, unknown>> {
    const { argv, flags } = await this.parse(AwsStop);
    return this.destructive("stop", argv as string[], flags, (p, id) => p.stop(id));
  }
}
