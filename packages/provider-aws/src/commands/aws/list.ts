import { Flags } from "@oclif/core";
import { ResourceState } from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";

export default class AwsList extends AwsCommand {
  static override summary = "List the EC2 instances runctl launched, with state, market and price.";
  static override examples = [
    "<%= config.bin %> aws list",
    "<%= config.bin %> aws list --state running --json",
  ];
  static override flags = {
    state: Flags.string({
      description: "Only instances in this state (repeatable).",
      multiple: true,
      options: ResourceState.options,
    }),
    all: Flags.boolean({ description: "Include instances runctl did not launch.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(AwsList);
    const resources = await (await this.aws()).list({
      managedOnly: !flags.all,
      ...(flags.state ? { states: flags.state.map((s) => ResourceState.parse(s)) } : {}),
    });
    this.log(resources.length === 0 ? "No instances." : this.resourcesTable(resources));
    return { resources };
  }
}
