import { Args } from "@oclif/core";
import { AwsCommand } from "../../aws-command.ts";

export default class AwsStatus extends AwsCommand {
  static override summary = "Show one EC2 instance: state, type, market, price, tags.";
  static override examples = ["<%= config.bin %> aws status i-0123456789abcdef0 --json"];
  static override args = { id: Args.string({ description: "Instance id.", required: true }) };

  async run(): Promise<Record<string, unknown>> {
    const { args } = await this.parse(AwsStatus);
    const resource = await (await this.aws()).status(args.id);
    this.log(this.resourcesTable([resource]));
    for (const [key, value] of Object.entries(resource.tags)) this.log(`  ${key}=${value}`);
    return { resource };
  }
}
