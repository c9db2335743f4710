import { Args } from "@oclif/core";
import { RunpodCommand } from "../../runpod-command.ts";

export default class RunpodStatus extends RunpodCommand {
  static override summary = "Show one pod: state, GPU type, market, price, labels.";
  static override examples = ["<%= config.bin %> runpod status abc123xyz --json"];
  static override args = { id: Args.string({ description: "Pod id.", required: true }) };

  async run(): Promise<Record<string, unknown>> {
    const { args } = await this.parse(RunpodStatus);
    const resource = await (await this.runpod()).status(args.id);
    this.log(this.resourcesTable([resource]));
    for (const [key, value] of Object.entries(resource.tags)) this.log(`  ${key}=${value}`);
    return { resource };
  }
}
