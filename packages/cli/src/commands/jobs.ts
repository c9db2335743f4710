import { Flags } from "@oclif/core";
import { JobStatusFilter } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { jobsTable, serverFlag } from "../queue.ts";

export default class Jobs extends RunctlCommand {
  static override summary = "List the job server's jobs, newest first.";
  static override description =
    "--json returns {jobs: [...]} with the server's job objects (docs/job-queue.md).";
  static override examples = [
    "<%= config.bin %> jobs",
    "<%= config.bin %> jobs --status failed --limit 100",
    "<%= config.bin %> jobs --status all --json",
  ];
  static override flags = {
    ...serverFlag,
    status: Flags.string({
      description: "Which jobs: active (queued and running), all, or one status.",
      options: [...JobStatusFilter.options],
      default: "active",
    }),
    limit: Flags.integer({ description: "At most this many.", default: 50, min: 1, max: 1000 }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(Jobs);
    const client = await this.queue(flags.server);
    const jobs = await client.listJobs({ status: flags.status as JobStatusFilter, limit: flags.limit });
    if (!this.jsonEnabled()) {
      if (jobs.length === 0)
        this.progress(`No ${flags.status} jobs. Queue one with \`runctl submit -- cmd\`.`);
      else this.log(jobsTable(jobs));
    }
    return { jobs };
  }
}
