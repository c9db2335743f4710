import { Args, Flags } from "@oclif/core";
import type { Resource } from "@runctl/core";
import { RunpodCommand } from "../../runpod-command.ts";

export default class RunpodStart extends RunpodCommand {
  static override summary = "Start stopped pods (an interruptible pod at the bid it had).";
  static override examples = ["<%= config.bin %> runpod start abc123xyz"];
  static override strict = false;
  static override args = { id: Args.string({ description: "Pod id(s).", required: true }) };
  static override flags = {
    "dry-run": Flags.boolean({ description: "Show what would start; start nothing.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { argv, flags } = await this.parse(RunpodStart);
    const runpod = await this.runpod();
    const resources: Resource[] = [];
    for (const id of argv as string[]) {
      if (flags["dry-run"]) {
        const r = await runpod.status(id);
        this.log(`Would start ${r.id} (${r.instanceType}, ${r.state})`);
        resources.push(r);
      } else {
        const r = await runpod.start(id);
        this.log(`${r.id}: ${r.state}`);
        resources.push(r);
      }
    }
    return { dryRun: flags["dry-run"], resources };
  }
}
