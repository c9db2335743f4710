import { Args, Flags } from "@oclif/core";
import { machineStoreFlag, terminalSafeLines } from "@runctl/command";
import { RunpodCommand } from "../../runpod-command.ts";

export default class RunpodLogs extends RunpodCommand {
  static override summary = "Print a pod's run output and its bootstrap's failure, from the store.";
  static override description =
    "RunPod's API has no container log, so this reads what the pod's run left in the store: its output.log and, when the bootstrap failed before the run started, the reason it uploaded. The run is found as `runctl runpod monitor` finds it.";
  static override examples = [
    "<%= config.bin %> runpod logs abc123xyz",
    "<%= config.bin %> runpod logs abc123xyz --tail 50 --json",
  ];
  static override args = { id: Args.string({ description: "Pod id.", required: true }) };
  static override flags = {
    tail: Flags.integer({ char: "n", description: "Only the last N lines of the run's output.", min: 1 }),
    store: machineStoreFlag({ cloud: "runpod" }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(RunpodLogs);
    const [{ machineStoreLogs }, provider, store] = await Promise.all([
      import("@runctl/agent"),
      this.runpod(),
      this.runStore(flags.store),
    ]);
    const logs = await machineStoreLogs(provider, args.id, store, "runctl runpod", flags.tail);
    this.progress(
      `RunPod has no log API: run ${logs.runId}'s output from ${store.url} (the container's own log is in RunPod's web console)`,
    );
    if (!this.jsonEnabled()) {
      process.stdout.write(terminalSafeLines(logs.output));
      if (logs.bootstrapError) {
        this.log(
          `bootstrap failed (${logs.bootstrapError.code}) at ${logs.bootstrapError.at}: ${terminalSafeLines(logs.bootstrapError.reason)}`,
        );
      }
    }
    return { pod: args.id, source: "store", ...logs };
  }
}
