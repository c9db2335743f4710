import { Args } from "@oclif/core";
import { RunctlCommand } from "../command.ts";
import { formatValue, table } from "../output.ts";
import { jobId, serverFlag } from "../queue.ts";

export default class Job extends RunctlCommand {
  static override summary = "Show one job of the job server, with every attempt's run.";
  static override description =
    "--json returns {job, runs: [...]}: the job and the run record of each attempt.";
  static override examples = ["<%= config.bin %> job 42", "<%= config.bin %> job 42 --json"];
  static override args = { id: Args.string({ description: "Job id.", required: true }) };
  static override flags = { ...serverFlag };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Job);
    const client = await this.queue(flags.server);
    const job = await client.getJob(jobId(args.id));
    const runs = await Promise.all(job.runs.map((id) => client.getRun(id)));
    if (!this.jsonEnabled()) {
      const fields: [string, unknown][] = [
        ["id", job.id],
        ["name", job.name ?? "-"],
        [
          "status",
          job.cancel_requested && job.status === "running" ? "running (cancel requested)" : job.status,
        ],
        ["command", job.command_argv.join(" ")],
        ["workdir", job.workdir],
        ["attempt", job.attempt],
        ["priority", job.priority],
        ["gpus", job.assigned_gpus?.length ? `${job.gpus} (${job.assigned_gpus.join(",")})` : job.gpus],
        ["worker", job.worker_id ?? "-"],
        ["created", job.created_at ?? "-"],
        ["started", job.started_at ?? "-"],
        ["finished", job.finished_at ?? "-"],
        ["exit code", job.exit_code ?? "-"],
        ["error", job.error_message ?? "-"],
        ["retries", `${job.max_retries} (backoff ${job.retry_backoff_seconds}s)`],
        ["timeout", job.timeout_seconds == null ? "-" : `${job.timeout_seconds}s`],
        ["retry of", job.retry_of ?? "-"],
        ["tags", (job.tags ?? []).join(",") || "-"],
      ];
      this.log(fields.map(([k, v]) => `${k.padEnd(10)} ${formatValue(v, 200)}`).join("\n"));
      if (runs.length > 0) {
        this.log("");
        this.log(
          table(
            ["RUN", "ATTEMPT", "STATUS", "WORKER", "EXIT", "ERROR"],
            runs.map((r) => [
              r.id,
              String(r.attempt ?? "-"),
              r.status,
              formatValue(r.worker_id ?? "-", 30),
              r.exit_code == null ? "-" : String(r.exit_code),
              formatValue(r.error_message ?? "-", 50),
            ]),
          ),
        );
      }
    }
    return { job, runs };
  }
}
