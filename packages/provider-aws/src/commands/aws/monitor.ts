import { Args, Flags } from "@oclif/core";
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
  static override flags = {
    follow: Flags.boolean({ char: "f", description: "Follow the run until it ends.", default: false }),
    tail: Flags.integer({
      char: "n",
      description: "Only the last N lines of what is there (without --follow).",
      min: 0,
    }),
    store: Flags.string({
      description: "Artifact store the run syncs to, s3://bucket/prefix (default: [aws] store).",
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(AwsMonitor);
    const [{ monitorMachine }, provider, store, { config }] = await Promise.all([
      import("@runctl/agent"),
      this.aws(),
      this.runStore(flags.store),
      this.runctlConfig(),
    ]);
    const json = this.jsonEnabled();
    const chunks: Buffer[] = [];
    const result = await monitorMachine({
      provider,
      machineId: args.id,
      store,
      follow: flags.follow,
      natsConfig: config.nats,
      command: "runctl aws",
      tailLines: flags.tail,
      write: (bytes) => (json ? chunks.push(Buffer.from(bytes)) : process.stdout.write(bytes)),
      say: (line) => (flags.follow || json ? this.progress(line) : this.log(line)),
      note: (line) => this.progress(line),
    });
    process.exitCode = result.exitCode;
    return { ...result, ...(json ? { output: Buffer.concat(chunks).toString("utf8") } : {}) };
  }
}
