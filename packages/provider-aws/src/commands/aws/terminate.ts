import { Args } from "@oclif/core";
import { AwsCommand, confirmFlags } from "../../aws-command.ts";

export default class AwsTerminate extends AwsCommand {
  static override summary = "Terminate EC2 instances for good (their disks are deleted).";
  static override description =
    "Asks first on a terminal; without one pass --yes, or --dry-run to see what would end. Machines tagged runctl:protected are refused unless --force.";
  static override examples = [
    "<%= config.bin %> aws terminate i-0123456789abcdef0 --dry-run",
    "<%= config.bin %> aws terminate i-0123456789abcdef0 --yes --json",
  ];
  static override strict = false;
  static override args = { id: Args.string({ description: "Instance id(s).", required: true }) };
  static override flags = { ...confirmFlags };

  async run(): Promise<Record<string, unknown>> {
    const { argv, flags } = await this.parse(AwsTerminate);
    return this.destructive("terminate", argv as string[], flags, (p, id) =>
      p.terminate(id, { force: flags.force }),
    );
  }
}
