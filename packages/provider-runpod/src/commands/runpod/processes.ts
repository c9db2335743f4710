import { Args } from "@oclif/core";
import { machineStoreFlag } from "@runctl/command";
import { RunpodCommand } from "../../runpod-command.ts";

export default class RunpodProcesses extends RunpodCommand {
  static override summary =
    "Show the ranks of a pod's current run: pid, state, last heartbeat, CPU and memory.";
  static override description =
    "Read from the run's store copy (meta.json's rank process groups and heartbeat, the last system sample), synced every couple of seconds: nothing runs on the pod to answer. The run is found as `runctl runpod monitor` finds it.";
  static override examples = ["<%= config.bin %> runpod processes abc123xyz --json"];
  static override args = { id: Args.string({ description: "Pod id.", required: true }) };
  static override flags = {
    store: machineStoreFlag({ cloud: "runpod" }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(RunpodProcesses);
    const [{ machineProcesses }, provider, store] = await Promise.all([
      import("@runctl/agent"),
      this.runpod(),
      this.runStore(flags.store),
    ]);
    const found = await machineProcesses(provider, args.id, store, "runctl runpod");
    this.log(this.processesText(found));
    return { pod: args.id, ...found };
  }
}
