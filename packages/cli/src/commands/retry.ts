import { Args } from "@oclif/core";
import { RunctlCommand } from "../command.ts";
import { jobId, serverFlag } from "../queue.ts";

export default class Retry extends RunctlCommand {
  static override summary = "Queue a finished job again, as a new job linked to it.";
  static override description =
    "The new job has the same command, workdir, config, tags, priority, GPUs, timeout and retry policy, and `retry_of` set to the old job. --json returns {job_id, run_id, run_dir, retry_of}.";
  static override examples = ["<%= config.bin %> retry 42"];
  static override args = { id: Args.string({ description: "Job id.", required: true }) };
  static override flags = { ...serverFlag };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Retry);
    const client = await this.queue(flags.server);
    const created = await client.retryJob(jobId(args.id));
    this.progress(`Job ${created.job_id} queued as a retry of job ${created.retry_of}.`);
    return { ...created };
  }
}
