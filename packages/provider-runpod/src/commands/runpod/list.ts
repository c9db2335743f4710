import { Flags } from "@oclif/core";
import { ResourceState } from "@runctl/core";
import { RunpodCommand } from "../../runpod-command.ts";

export default class RunpodList extends RunpodCommand {
  static override summary = "List the RunPod pods runctl created, with state, market and price.";
  static override examples = [
    "<%= config.bin %> runpod list",
    "<%= config.bin %> runpod list --state running --json",
  ];
  static override flags = {
    state: Flags.string({
      description: "Only pods in this state (repeatable).",
      multiple: true,
      options: ResourceState.options,
    }),
    all: Flags.boolean({ description: "Include pods runctl did not create.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(RunpodList);
    const resources = await (await this.runpod()).list({
      managedOnly: !flags.all,
      ...(flags.state ? { states: flags.state.map((s) => ResourceState.parse(s)) } : {}),
    });
    this.log(resources.length === 0 ? "No pods." : this.resourcesTable(resources));
    return { resources };
  }
}
