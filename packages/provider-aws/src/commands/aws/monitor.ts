import { Args } from "@oclif/core";
import { monitorFlags } from "@runctl/command";
import { AwsCommand } from "../../aws-command.ts";

export default class AwsMonitor extends AwsCommand {
  static override summary =
    "Show an instance and its run's output; --follow keeps following until the run ends.";
  static override description =
    "Finds the instance's run (the host state its agent keeps in the store, else its runctl:run-id tag), prints the instance's line (state, type, market, $/h, uptime) and the run's output from the store. With --follow, follows the run live (NATS telemetry when [nats] url is set, the store copy otherwise) and, holding [nats] account_seed, renews the run's credentials meanwhile; exits with the run's exit code when it ends, 1 when the instance goes away first.";
  static override examples = [
    "<%= config.bin %> aws monitor i-0123456789abcdef0 --follow",
    "<%= config.bin %> aws monitor i-0123456789abcdef0 --json",
  ];
  static override args = { id: Args.string({ description: "Instance id.", required: true }) };
  static override flags = monitorFlags({ cloud: "aws" });

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(AwsMonitor);
    const [{ monitorMachine }, provider, store, { config }] = await Promise.all([
      import("@runctl/agent"),
      this.aws(),
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
      command: "runctl aws",
      tailLines: flags.tail,
      write: out.write,
      say: out.say,
      note: out.note,
    });
    process.exitCode = result.exitCode;
    return { ...result, ...out.output() };
  }
}
