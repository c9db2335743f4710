import { Args, Flags } from "@oclif/core";
import { ProviderError, type Resource, ResourceState } from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";

export default class AwsWait extends AwsCommand {
  static override summary = "Wait until an EC2 instance reaches a state (default: running).";
  static override description =
    "Exits 0 once the instance is in the state, 2 (code wait_timeout) when --timeout passes first, and 1 when it reaches terminated while waiting for anything else.";
  static override examples = [
    "<%= config.bin %> aws wait i-0123456789abcdef0",
    "<%= config.bin %> aws wait i-0123456789abcdef0 --state stopped --timeout 300 --json",
  ];
  static override args = { id: Args.string({ description: "Instance id.", required: true }) };
  static override flags = {
    state: Flags.string({
      description: "State to wait for.",
      default: "running",
      options: ResourceState.options,
    }),
    timeout: Flags.integer({ description: "Give up after this many seconds.", default: 600, min: 1 }),
    interval: Flags.integer({ description: "Seconds between checks.", default: 5, min: 1, max: 300 }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(AwsWait);
    const want = ResourceState.parse(flags.state);
    const aws = await this.aws();
    const deadline = Date.now() + flags.timeout * 1000;
    let resource: Resource = await aws.status(args.id);
    while (resource.state !== want) {
      if (resource.state === "terminated") {
        throw new ProviderError(`${args.id} was terminated while waiting for ${want}`, {
          code: "terminated",
          hint: "Check why with `runctl aws status`; a reclaimed spot instance shows a spot-termination reason.",
        });
      }
      if (Date.now() >= deadline) {
        throw new ProviderError(`${args.id} is ${resource.state}, not ${want}, after ${flags.timeout} s`, {
          code: "wait_timeout",
          hint: "Wait longer with --timeout, or look at it with `runctl aws status`.",
        });
      }
      await new Promise((r) =>
        setTimeout(r, Math.min(flags.interval * 1000, Math.max(0, deadline - Date.now()))),
      );
      resource = await aws.status(args.id);
    }
    this.log(`${resource.id}: ${resource.state}`);
    return { resource };
  }
}
