import { setTimeout as sleep } from "node:timers/promises";
import { Flags } from "@oclif/core";
import { RunctlCommand } from "../command.ts";
import { jobsTable, serverFlag, workersTable } from "../queue.ts";

export default class Watch extends RunctlCommand {
  static override summary = "A live view of the job server: counts, active jobs and workers.";
  static override description =
    "Redraws every --interval seconds until Ctrl-C. --once (or --json, which prints one snapshot {status, jobs, workers}) shows it once.";
  static override examples = [
    "<%= config.bin %> watch",
    "<%= config.bin %> watch --interval 5",
    "<%= config.bin %> watch --json",
  ];
  static override flags = {
    ...serverFlag,
    interval: Flags.integer({ description: "Seconds between refreshes.", default: 2, min: 1 }),
    once: Flags.boolean({ description: "Show one snapshot and exit.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(Watch);
    const client = await this.queue(flags.server);
    const snapshot = async () => {
      const [status, jobs, workers] = await Promise.all([
        client.getStatus(),
        client.listJobs({ status: "active", limit: 200 }),
        client.getWorkers(),
      ]);
      return { status, jobs, workers };
    };
    if (this.jsonEnabled()) return await snapshot();
    const interactive = !flags.once && process.stdout.isTTY === true;
    for (;;) {
      const { status, jobs, workers } = await snapshot();
      const s = status;
      const text = [
        `${new Date().toISOString()}  queued ${s.queued}  running ${s.running}  completed ${s.completed}  failed ${s.failed}  cancelled ${s.cancelled}  workers ${s.workers_online}/${s.workers_total}`,
        "",
        jobs.length > 0 ? jobsTable(jobs) : "No queued or running jobs.",
        "",
        workers.length > 0 ? workersTable(workers) : "No workers registered. Start one with `runctl worker`.",
      ].join("\n");
      // Clear and home the cursor so the table redraws in place; pipes get plain snapshots.
      this.log(interactive ? `\u001b[2J\u001b[H${text}` : text);
      if (flags.once) return { status, jobs, workers };
      await sleep(flags.interval * 1000);
    }
  }
}
