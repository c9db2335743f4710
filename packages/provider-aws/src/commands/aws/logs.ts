import { Args, Flags } from "@oclif/core";
import { terminalSafeLines } from "@runctl/command";
import { UserError } from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";

export default class AwsLogs extends AwsCommand {
  static override summary =
    "Print an instance's console: the bootstrap's lines, for machines that fail before their run syncs.";
  static override description =
    "EC2's GetConsoleOutput: the last 64 KiB of the instance's serial console (cloud-init's output: how the bootstrap fetched Node, the agent and the code, and why it stopped), also after the instance stopped. EC2 fills it some minutes after boot. A run's own output is read with `runctl aws monitor <instance>`.";
  static override examples = [
    "<%= config.bin %> aws logs i-0123456789abcdef0",
    "<%= config.bin %> aws logs i-0123456789abcdef0 --tail 50 --json",
  ];
  static override args = { id: Args.string({ description: "Instance id.", required: true }) };
  static override flags = {
    tail: Flags.integer({ char: "n", description: "Only the last N lines.", min: 1 }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(AwsLogs);
    const provider = await this.aws();
    if (!provider.logs) {
      throw new UserError("This aws provider does not read consoles", {
        code: "unsupported",
        hint: "Update the aws plugin (`runctl plugins update`).",
      });
    }
    const output = await provider.logs(args.id, flags.tail === undefined ? {} : { tailLines: flags.tail });
    if (output === "")
      this.progress(`${args.id}: the console is empty so far (EC2 fills it some minutes after boot)`);
    // A console holds whatever the machine printed: control sequences are shown, not obeyed.
    if (!this.jsonEnabled()) process.stdout.write(terminalSafeLines(output));
    return { instance: args.id, source: "console", output };
  }
}
