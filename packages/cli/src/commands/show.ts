import { Args, Flags } from "@oclif/core";
import { type Attempt, type MetricRecord, type RunMeta, UserError } from "@runctl/core";
import { describeJsonlSkips } from "@runctl/core/internal";
import { RUN_FILES, sourceMeta, sourceMetrics, withEffectiveStatus } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { asciiChart, flatten, formatAgo, formatDuration, formatNumber, formatValue } from "../output.ts";
import { RESERVED_METRIC_KEYS, runDurationMs, sourceRunConfig } from "../run-records.ts";
import { fromFlag } from "../run-source-flag.ts";

interface SeriesPoint {
  step: number;
  value: number;
}

const LABEL_WIDTH = 10;

export default class Show extends RunctlCommand {
  static override summary =
    "Show one run: status, attempts, command, git, config, summary, latest metrics and a chart.";
  static override description =
    `<run> is a run id or any unique prefix of one. The status is the effective one: a run whose writer is gone shows as failed, with the reason. The chart plots one metric over steps (the record's \`step\`, else its \`_idx\`): --metric, else \`loss\` when logged, else the first numeric metric; each column averages the points that fall into it, and the exact min, max and last values are printed above it.

--json returns {run: meta.json with the effective status, config, metrics: {count, last, series?: {name, points: [{step, value}]}}, attempts}; series holds every point of the charted metric.`;
  static override examples = [
    "<%= config.bin %> show 20261122-2015",
    "<%= config.bin %> show 20261122-201500-a1b2c3 --metric val_acc --lines 15",
    "<%= config.bin %> show 20261122-2015 --json | jq '.metrics.series.points[-1]'",
    "<%= config.bin %> show job-3 --from http://queue.internal:8080",
  ];
  static override args = {
    run: Args.string({ description: "Run id or unique prefix.", required: true }),
  };
  static override flags = {
    ...fromFlag,
    metric: Flags.string({
      char: "m",
      description: "Metric to chart (default: loss, else the first numeric one).",
    }),
    lines: Flags.integer({
      char: "n",
      description: "Height of the chart in lines; 0 leaves it out.",
      default: 10,
      min: 0,
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Show);
    const source = await this.runSource(flags.from, args.run);
    const id = await source.resolve(args.run);
    const meta = withEffectiveStatus(await sourceMeta(source, id));
    const { config, problem } = await sourceRunConfig(source, id, meta);
    if (problem !== undefined) this.progress(`Warning: ${problem}`);
    const metrics = await sourceMetrics(source, id);
    const skippedNote = describeJsonlSkips(RUN_FILES.metrics, metrics);
    if (skippedNote !== undefined) this.progress(`Warning: ${skippedNote}`);
    const { records } = metrics;
    const last = records.at(-1) ?? null;
    const numeric = numericKeys(records);
    if (flags.metric !== undefined && !numeric.includes(flags.metric)) {
      throw new UserError(`Run ${meta.id} has no numeric metric "${flags.metric}"`, {
        code: "metric_not_found",
        hint:
          numeric.length > 0
            ? `Logged numeric metrics: ${numeric.join(", ")}.`
            : "This run has not logged any numeric metric yet.",
        details: { run: meta.id, metric: flags.metric, available: numeric },
      });
    }
    const chosen = flags.metric ?? (numeric.includes("loss") ? "loss" : numeric[0]);
    const series = chosen === undefined ? undefined : { name: chosen, points: seriesOf(records, chosen) };
    const attempts = meta.attempts ?? [];

    if (!this.jsonEnabled()) this.print(meta, config, records.length, last, attempts, series, flags.lines);
    return {
      run: meta,
      config,
      metrics: { count: records.length, last, ...(series ? { series } : {}) },
      attempts,
    };
  }

  private print(
    meta: RunMeta,
    config: Record<string, unknown>,
    count: number,
    last: MetricRecord | null,
    attempts: Attempt[],
    series: { name: string; points: SeriesPoint[] } | undefined,
    height: number,
  ): void {
    const now = new Date();
    const field = (label: string, value: string) => {
      const [first = "", ...rest] = value.split("\n");
      this.log(`${label.padEnd(LABEL_WIDTH)} ${first}`.trimEnd());
      for (const line of rest) this.log(`${" ".repeat(LABEL_WIDTH + 1)}${line}`.trimEnd());
    };
    field("id", meta.id);
    field("name", meta.name);
    field("status", meta.status);
    if (meta.error) field("error", meta.error);
    if (meta.status === "preempted") field("preempted", preemptionText(meta));
    field("started", `${meta.started_at} (${formatAgo(new Date(meta.started_at), now)})`);
    if (meta.finished_at) field("finished", meta.finished_at);
    const duration = runDurationMs(meta, now);
    if (duration !== undefined) field("duration", formatDuration(duration));
    if (meta.exit_code !== undefined && meta.exit_code !== null) field("exit code", String(meta.exit_code));
    if (meta.cost_usd !== undefined && meta.cost_usd !== null) field("cost", `$${meta.cost_usd.toFixed(4)}`);
    if (attempts.length > 0) field("attempts", attempts.map(attemptLine).join("\n"));
    if (meta.command && meta.command.length > 0) field("command", meta.command.map(shellQuote).join(" "));
    field("tags", meta.tags.length > 0 ? meta.tags.join(", ") : "-");
    if (meta.git) {
      const hash = meta.git.short_hash ?? meta.git.commit.slice(0, 7);
      const branch = meta.git.branch ? ` on ${meta.git.branch}` : "";
      field("git", `${hash}${branch}${meta.git.dirty ? " (dirty)" : ""}`);
    }

    this.section("config", flatten(config));
    this.section("summary", flatten(meta.summary ?? {}));
    if (last === null) {
      this.log("");
      this.log("metrics    (none logged)");
    } else {
      const { _idx, _timestamp, step, ...values } = last;
      const at = step === undefined ? "" : `step ${step}, `;
      this.section(
        `last metrics (${at}_idx ${_idx}, ${count} records, at ${String(_timestamp)})`,
        flatten(values),
      );
    }
    if (series && height > 0) this.chart(series, height);
  }

  private section(title: string, values: Record<string, unknown>): void {
    this.log("");
    const entries = Object.entries(values);
    if (entries.length === 0) {
      this.log(`${title.padEnd(LABEL_WIDTH)} -`);
      return;
    }
    this.log(title);
    const width = Math.max(...entries.map(([k]) => k.length));
    for (const [key, value] of entries)
      this.log(`  ${key.padEnd(width)}  ${formatValue(value, 100)}`.trimEnd());
  }

  private chart(series: { name: string; points: SeriesPoint[] }, height: number): void {
    const finite = series.points.filter((p) => Number.isFinite(p.value));
    this.log("");
    if (finite.length === 0) {
      this.log(`${series.name}: no finite values to chart`);
      return;
    }
    let min = finite[0] as SeriesPoint;
    let max = min;
    for (const p of finite) {
      if (p.value < min.value) min = p;
      if (p.value > max.value) max = p;
    }
    const lastPoint = series.points.at(-1) as SeriesPoint;
    this.log(
      `${series.name} over steps: min ${formatNumber(min.value)} at step ${min.step}, max ${formatNumber(max.value)} at step ${max.step}, last ${formatNumber(lastPoint.value)} (${series.points.length} points)`,
    );
    for (const line of asciiChart(
      finite.map((p) => ({ x: p.step, y: p.value })),
      { height, width: 60 },
    )) {
      this.log(`  ${line}`);
    }
  }
}

/** Numeric metric keys in the order they were first logged. */
function numericKeys(records: readonly MetricRecord[]): string[] {
  const keys = new Set<string>();
  for (const record of records) {
    for (const [key, value] of Object.entries(record)) {
      if (typeof value === "number" && !RESERVED_METRIC_KEYS.has(key)) keys.add(key);
    }
  }
  return [...keys];
}

function seriesOf(records: readonly MetricRecord[], name: string): SeriesPoint[] {
  const points: SeriesPoint[] = [];
  for (const record of records) {
    const value = record[name];
    if (typeof value === "number") points.push({ step: record.step ?? record._idx, value });
  }
  return points;
}

function attemptLine(a: Attempt): string {
  const start = Date.parse(a.started_at);
  const end = a.finished_at ? Date.parse(a.finished_at) : Number.NaN;
  const ran = Number.isNaN(start) || Number.isNaN(end) ? "" : `  ran ${formatDuration(end - start)}`;
  const exit = a.exit_code === undefined || a.exit_code === null ? "" : `  exit ${a.exit_code}`;
  const error = typeof a.error === "string" && a.error !== "" ? `  (${formatValue(a.error, 80)})` : "";
  return `#${a.number}  ${a.status.padEnd(9)}  ${a.started_at}${ran}${exit}${error}`;
}

/** The command as one could paste it into a POSIX shell. */
function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** When a preempted run heard its machine was reclaimed, and why (meta.json `preempted_at`, `preemption`). */
function preemptionText(meta: RunMeta): string {
  const at = typeof meta.preempted_at === "string" ? meta.preempted_at : (meta.finished_at ?? "-");
  const preemption = meta.preemption as { reason?: unknown } | undefined;
  return typeof preemption?.reason === "string" ? `${at} (${preemption.reason})` : at;
}
