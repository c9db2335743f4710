import { Args } from "@oclif/core";
import { monitorFlags } from "@runctl/command";
import { RunpodCommand } from "../../runpod-command.ts";

export default class RunpodMonitor extends RunpodCommand {
  static override summary = "Show a pod and its run's output; --follow keeps following until the run ends.";
  static override description =
    "Finds the pod's run (the host state its agent keeps in the store, else its runctl:run-id label (RUNCTL_TAGS)), prints the pod's line (state, type, market, $/h, uptime) and the run's output from the store. With --follow, follows the run live (NATS telemetry when [nats] url is set, the store copy otherwise) and, holding [nats] account_seed, renews the run's credentials meanwhile; exits with the run's exit code when it ends, 1 when the pod goes away first.";
  static override examples = [
    "<%= config.bin %> runpod monitor abc123xyz --follow",
    "<%= config.bin %> runpod monitor abc123xyz --json",
  ];
  static override args = { id: Args.string({ description: "Pod id.", required: true }) };
  static override flags = monitorFlags({ cloud: "runpod" });

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(RunpodMonitor);
    const [{ monitorMachine }, provider, store, { config }] = await Promise.all([
      import("@runctl/agent"),
      this.runpod(),
      this.runStore(flags.store),
      this.runctlConfig(),
    ]);
    const out = this.machineOutput(flags.follow);
    const result = await monitorMachine({
      provider,
      machineId: args.id,
      store,
      follow: flags.follow,
      natsConfig: config.nats,
      command: "runctl runpod",
      tailLines: flags.tail,
      write: out.write,
      say: out.say,
      note: out.note,
    });
    process.exitCode = result.exitCode;
    return { ...result, ...out.output() };
  }
}
