import { join } from "node:path";
import { isSafeRunId } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { formatAgo, formatDuration, formatValue, table } from "../output.ts";
import {
  KEY_METRICS,
  keyMetrics,
  latestMetricValues,
  metricsFileOf,
  numericCount,
  runDurationMs,
  runFilterFlags,
  selectRuns,
} from "../run-records.ts";

export default class Runs extends RunctlCommand {
  static override summary = "List runs, newest first.";
  static override description =
    `Reads the runs directory ($RUNCTL_RUNS_DIR, else local.runs_dir, else ./runs). STATUS is the effective status: a run whose writer is gone (its pid is dead on this machine, or its heartbeat is older than 60 s) shows as failed; a run whose meta.json cannot be read is listed as failed too, and \`runctl show\` explains why. METRICS holds up to two numeric values: summary keys first, then the latest logged metrics.

--json returns {runs: [meta.json objects with the effective status]}.`;
  static override examples = [
    "<%= config.bin %> runs",
    "<%= config.bin %> runs --status running --status failed",
    "<%= config.bin %> runs --tag baseline --last 5 --json",
  ];
  static override flags = runFilterFlags;

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(Runs);
    const { runsDir } = await this.runPaths();
    const runs = await selectRuns(runsDir, flags);
    if (runs.length === 0) {
      const filtered = flags.status !== undefined || flags.tag !== undefined;
      this.progress(
        filtered
          ? `No runs in ${runsDir} match the filters.`
          : `No runs in ${runsDir} yet. Start one with \`runctl local train.py\`.`,
      );
      return { runs };
    }
    if (!this.jsonEnabled()) {
      const now = new Date();
      const rows = await Promise.all(
        runs.map(async (meta) => {
          // Only open metrics.jsonl when the summary alone cannot fill the column; an id
          // that could name a path outside the runs dir is not followed at all.
          const latest =
            numericCount(meta.summary) >= KEY_METRICS || !isSafeRunId(meta.id)
              ? {}
              : await latestMetricValues(metricsFileOf(join(runsDir, meta.id), meta));
          const duration = runDurationMs(meta, now);
          const started = new Date(meta.started_at);
          return [
            meta.id,
            formatValue(meta.name, 30),
            meta.status,
            formatAgo(started, now),
            duration === undefined ? "-" : formatDuration(duration),
            keyMetrics(meta, latest)
              .map(([k, v]) => `${k}=${formatValue(v)}`)
              .join(" "),
            formatValue(meta.tags.join(","), 40),
          ];
        }),
      );
      this.log(table(["ID", "NAME", "STATUS", "STARTED", "DURATION", "METRICS", "TAGS"], rows));
    }
    return { runs };
  }
}
