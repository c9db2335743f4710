import { Args, Flags } from "@oclif/core";
import { UserError } from "@runctl/core";
import { RunctlCommand } from "../command.ts";
import { jobId, jobsTable, serverFlag } from "../queue.ts";

export default class Cancel extends RunctlCommand {
  static override summary = "Cancel a job of the job server, or every queued job.";
  static override description =
    `A queued job is cancelled at once. A running job is stopped by its worker at its next heartbeat (SIGTERM to the job's process group, SIGKILL after the grace period) and ends \`cancelled\`; --wait waits for that.

--json returns {job_id, previous_status, status} or, with --all-queued, {cancelled: [ids]}.`;
  static override examples = [
    "<%= config.bin %> cancel 42",
    "<%= config.bin %> cancel 42 --wait",
    "<%= config.bin %> cancel --all-queued --dry-run",
  ];
  static override args = { id: Args.string({ description: "Job id." }) };
  static override flags = {
    ...serverFlag,
    "all-queued": Flags.boolean({
      description: "Cancel every queued job (running ones go on).",
      default: false,
    }),
    "dry-run": Flags.boolean({
      description: "With --all-queued: list what would be cancelled.",
      default: false,
    }),
    wait: Flags.boolean({ description: "Wait until a running job has stopped.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Cancel);
    if ((args.id === undefined) === !flags["all-queued"]) {
      throw new UserError(args.id === undefined ? "Which job?" : "Give a job id or --all-queued, not both", {
        code: "bad_arguments",
        hint: "runctl cancel <id>, or runctl cancel --all-queued.",
      });
    }
    const client = await this.queue(flags.server);
    if (args.id === undefined) {
      if (flags["dry-run"]) {
        const queued = await client.listJobs({ status: "queued", limit: 1000 });
        if (!this.jsonEnabled() && queued.length > 0) this.log(jobsTable(queued));
        this.progress(`Would cancel ${queued.length} queued job(s); nothing changed (--dry-run).`);
        return { dry_run: true, cancelled: queued.map((j) => j.id) };
      }
      const result = await client.cancelQueued();
      this.progress(`Cancelled ${result.cancelled.length} queued job(s).`);
      return { cancelled: result.cancelled };
    }
    const id = jobId(args.id);
    const result = await client.cancelJob(id);
    let status = result.status ?? (result.previous_status === "queued" ? "cancelled" : "running");
    if (status === "running") {
      this.progress(`Job ${id} is running: its worker stops it at the next heartbeat.`);
      if (flags.wait) status = (await client.waitForJob(id)).status;
    }
    this.progress(`Job ${id}: ${result.previous_status} → ${status}.`);
    return { job_id: id, previous_status: result.previous_status, status };
  }
}
