import { Args, Flags } from "@oclif/core";
import type { Resource } from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";

export default class AwsStart extends AwsCommand {
  static override summary = "Start stopped EC2 instances.";
  static override examples = ["<%= config.bin %> aws start i-0123456789abcdef0"];
  static override strict = false;
  static override args = { id: Args.string({ description: "Instance id(s).", required: true }) };
  static override flags = {
    "dry-run": Flags.boolean({ description: "Show what would start; start nothing.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { argv, flags } = await this.parse(AwsStart);
    const aws = await this.aws();
    const resources: Resource[] = [];
    for (const id of argv as string[]) {
      if (flags["dry-run"]) {
        const r = await aws.status(id);
        this.log(`Would start ${r.id} (${r.instanceType}, ${r.state})`);
        resources.push(r);
      } else {
        const r = await aws.start(id);
        this.log(`${r.id}: ${r.state}`);
        resources.push(r);
      }
    }
    return { dryRun: flags["dry-run"], resources };
  }
}
