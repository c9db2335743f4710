import { Args } from "@oclif/core";
import { machineStoreFlag } from "@runctl/command";
import { AwsCommand } from "../../aws-command.ts";

export default class AwsProcesses extends AwsCommand {
  static override summary =
    "Show the ranks of an instance's current run: pid, state, last heartbeat, CPU and memory.";
  static override description =
    "Read from the run's store copy (meta.json's rank process groups and heartbeat, the last system sample), synced every couple of seconds: nothing runs on the instance to answer. The run is found as `runctl aws monitor` finds it.";
  static override examples = ["<%= config.bin %> aws processes i-0123456789abcdef0 --json"];
  static override args = { id: Args.string({ description: "Instance id.", required: true }) };
  static override flags = {
    store: machineStoreFlag({ cloud: "aws" }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(AwsProcesses);
    const [{ machineProcesses }, provider, store] = await Promise.all([
      import("@runctl/agent"),
      this.aws(),
      this.runStore(flags.store),
    ]);
    const found = await machineProcesses(provider, args.id, store, "runctl aws");
    this.log(this.processesText(found));
    return { instance: args.id, ...found };
  }
}
