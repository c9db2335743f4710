import { Flags } from "@oclif/core";
import { UserError } from "@runctl/core";
import type { JobCreate } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { parseJsonObjectFlag } from "../flag-values.ts";
import { parseDurationSeconds, serverFlag } from "../queue.ts";

export default class Submit extends RunctlCommand {
  static override summary = "Queue a job on the job server; a `runctl worker` runs it.";
  static override description =
    `The command after \`--\` runs on a worker, in --workdir (default: this directory, which must exist on the worker's machine too), under the supervisor: its run directory is uploaded to the server as it goes (\`runctl job <id>\`, the clients' get_metrics/get_artifact).

Jobs run highest --priority first, first come first served among equals, on a worker with --gpus free GPUs. A failed attempt is retried --retries times (backoff doubling from --retry-backoff). --wait follows the job to its end and exits with its exit code.

--json returns {job_id, run_id, run_dir} (and {job} with --wait).`;
  static override examples = [
    "<%= config.bin %> submit -- python train.py --lr 0.1",
    "<%= config.bin %> submit --name big --gpus 2 --priority 10 --timeout 6h -- python train.py",
    "<%= config.bin %> submit --tags baseline,sweep-1 --config '{\"lr\": 0.1}' --wait -- python train.py",
  ];
  static override strict = false;
  static override flags = {
    ...serverFlag,
    name: Flags.string({ description: "Job name (default: the command)." }),
    tags: Flags.string({ description: "Comma-separated tags (repeatable).", multiple: true, default: [] }),
    config: Flags.string({ description: "Run config as a JSON object (recorded in the run's config.json)." }),
    priority: Flags.integer({ description: "Higher runs first.", default: 0, min: -1000, max: 1000 }),
    gpus: Flags.integer({ description: "GPUs the job needs on one worker.", default: 0, min: 0, max: 64 }),
    timeout: Flags.string({ description: "Limit of one attempt: seconds or 30m, 6h, 2d." }),
    retries: Flags.integer({
      description: "Automatic retries after a failed attempt.",
      default: 0,
      min: 0,
      max: 100,
    }),
    "retry-backoff": Flags.string({
      description: "Delay before the first retry (doubles after).",
      default: "10s",
    }),
    workdir: Flags.string({ description: "Working directory on the worker (default: this directory)." }),
    wait: Flags.boolean({
      description: "Wait for the job to finish; exit with its exit code.",
      default: false,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags, argv } = await this.parse(Submit);
    const command = argv as string[];
    if (command.length === 0) {
      throw new UserError("No command to queue", {
        code: "no_command",
        hint: "Put it after --, e.g. runctl submit -- python train.py --lr 0.1.",
      });
    }
    const body: JobCreate = {
      command_argv: command,
      workdir: flags.workdir ?? process.cwd(),
      name: flags.name ?? null,
      tags: flags.tags.flatMap((t) => t.split(",")).filter((t) => t !== ""),
      config:
        flags.config === undefined
          ? null
          : parseJsonObjectFlag(flags.config, "--config", "bad_run_config", '{"lr": 0.1}'),
      priority: flags.priority,
      gpus: flags.gpus,
      timeout_seconds: flags.timeout === undefined ? null : parseDurationSeconds(flags.timeout, "--timeout"),
      max_retries: flags.retries,
      retry_backoff_seconds: parseDurationSeconds(flags["retry-backoff"], "--retry-backoff"),
    };
    const client = await this.queue(flags.server);
    const created = await client.submitJob(body);
    this.progress(`Job ${created.job_id} queued (run ${created.run_id}).`);
    if (!flags.wait) return { ...created };
    this.progress(`Waiting for job ${created.job_id}… (Ctrl-C stops waiting, not the job)`);
    const job = await client.waitForJob(created.job_id);
    this.progress(`Job ${job.id} ${job.status}${job.exit_code == null ? "" : ` (exit ${job.exit_code})`}.`);
    if (job.status !== "completed") process.exitCode = job.exit_code && job.exit_code > 0 ? job.exit_code : 1;
    return { ...created, job };
  }
}
