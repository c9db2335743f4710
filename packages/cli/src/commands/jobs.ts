import { Flags } from "@oclif/core";
import { JobStatusFilter } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { jobsTable, serverFlag } from "../queue.ts";

/** Finished jobs shown under the active ones when no --status is given. */
const RECENT_FINISHED = 10;

export default class Jobs extends RunctlCommand {
  static override summary = "List the job server's jobs: active ones, then the most recently finished.";
  static override description =
    `Without --status: queued and running jobs, then the ${RECENT_FINISHED} most recent finished ones (so a batch that just ended is still in view). --status picks one status, active or all.

--json returns {jobs: [...]} with the server's job objects (docs/job-queue.md); without --status, finished ones are in {recent: [...]}.`;
  static override examples = [
    "<%= config.bin %> jobs",
    "<%= config.bin %> jobs --status failed --limit 100",
    "<%= config.bin %> jobs --status all --json",
  ];
  static override flags = {
    ...serverFlag,
    status: Flags.string({
      description:
        "Which jobs: active (queued and running), all, or one status. Default: active, then recent finished.",
      options: [...JobStatusFilter.options],
    }),
    limit: Flags.integer({ description: "At most this many.", default: 50, min: 1, max: 1000 }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(Jobs);
    const client = await this.queue(flags.server);
    if (flags.status) {
      const jobs = await client.listJobs({ status: flags.status as JobStatusFilter, limit: flags.limit });
      if (!this.jsonEnabled()) {
        if (jobs.length === 0)
          this.progress(`No ${flags.status} jobs. Queue one with \`runctl submit -- cmd\`.`);
        else this.log(jobsTable(jobs));
      }
      return { jobs };
    }
    const jobs = await client.listJobs({ status: "active", limit: flags.limit });
    const newest = await client.listJobs({ status: "all", limit: RECENT_FINISHED + jobs.length });
    const recent = newest
      .filter((j) => j.status !== "queued" && j.status !== "running")
      .slice(0, RECENT_FINISHED);
    if (!this.jsonEnabled()) {
      if (jobs.length === 0) this.log("No active jobs.");
      else this.log(jobsTable(jobs));
      if (recent.length > 0) this.log(`\nRecently finished:\n${jobsTable(recent)}`);
      if (jobs.length === 0 && recent.length === 0) this.progress("Queue a job with `runctl submit -- cmd`.");
      else this.progress("\n`runctl jobs --status all` lists every job; `runctl job <id>` shows one.");
    }
    return { jobs, recent };
  }
}
