import { isDeepStrictEqual } from "node:util";
import { Args } from "@oclif/core";
import { type RunMeta, UserError } from "@runctl/core";
import { describeJsonlSkips } from "@runctl/core/internal";
import { RUN_FILES, type RunSource, sourceMeta, sourceMetrics, withEffectiveStatus } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { colorEnabled, flatten, formatValue, paint, table } from "../output.ts";
import { RESERVED_METRIC_KEYS, sourceRunConfig } from "../run-records.ts";
import { fromFlag } from "../run-source-flag.ts";

type ByRun = Record<string, unknown>;

const LOWER_IS_BETTER = ["loss", "error", "perplexity"];

/**
 * Lower is better when a part of the key (split at non-alphanumerics and
 * camelCase humps) contains loss, error or perplexity, or is exactly wer.
 * Whole parts, so `answer_acc` is not mistaken for a word error rate.
 */
export function lowerIsBetter(key: string): boolean {
  const parts = key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/);
  return parts.some((part) => part === "wer" || LOWER_IS_BETTER.some((word) => part.includes(word)));
}

/** The run with the best finite value, or none when fewer than two runs have one or all are equal. */
function bestOf(key: string, values: ByRun, order: readonly string[]): string | undefined {
  const scored = order
    .map((id) => [id, values[id]] as const)
    .filter(
      (entry): entry is readonly [string, number] =>
        typeof entry[1] === "number" && Number.isFinite(entry[1]),
    );
  if (scored.length < 2 || scored.every(([, v]) => v === scored[0]?.[1])) return undefined;
  const lower = lowerIsBetter(key);
  let best = scored[0] as readonly [string, number];
  for (const entry of scored) if (lower ? entry[1] < best[1] : entry[1] > best[1]) best = entry;
  return best[0];
}

/** For every key, its value in each run that has it (absent runs are left out, not null). */
function byKey(perRun: ReadonlyArray<readonly [string, Record<string, unknown>]>): Record<string, ByRun> {
  const keys = new Set<string>();
  for (const [, values] of perRun) for (const key of Object.keys(values)) keys.add(key);
  // No prototypes: keys come from users' configs, and `__proto__` must stay a plain key.
  const out: Record<string, ByRun> = Object.create(null);
  for (const key of [...keys].sort()) {
    const row: ByRun = Object.create(null);
    for (const [id, values] of perRun) if (Object.hasOwn(values, key)) row[id] = values[key];
    out[key] = row;
  }
  return out;
}

export default class Compare extends RunctlCommand {
  static override summary = "Compare two or more runs side by side: config differences and final metrics.";
  static override description =
    `Each <run> is a run id or a unique prefix. The config table has one column per run and one row per config key (nested keys dotted, e.g. optimizer.lr); rows whose values differ are marked with * (and coloured on a terminal, unless NO_COLOR is set). The metrics table holds every summary key and the last logged value of every metric (a summary value wins over a logged one of the same name).

The best value of each metric row is marked with *: the lowest when a part of the key name (split at ".", "_", "-", "/" and camelCase) contains loss, error or perplexity or is exactly wer, the highest otherwise. A row gets no best when fewer than two runs have a finite number there or all are equal; ties go to the run named first.

--json returns {runs: [ids], config: {key: {runId: value}}, differing: [keys], metrics: {key: {runId: value}}, best: {key: runId}}; a run without a key is absent from that key's object.`;
  static override examples = [
    "<%= config.bin %> compare 20261122-2015 20261122-2030",
    "<%= config.bin %> compare a1 b2 c3 --json | jq .differing",
  ];
  static override strict = false;
  static override args = {
    runs: Args.string({ description: "Two or more run ids or unique prefixes." }),
  };
  static override flags = { ...fromFlag };

  async run(): Promise<Record<string, unknown>> {
    const { argv, flags } = await this.parse(Compare);
    const queries = argv.map(String);
    const resolved: Array<{ id: string; source: RunSource }> = [];
    for (const query of queries) {
      const source = await this.runSource(flags.from, query);
      const id = await source.resolve(query);
      // The same run named twice (full id and a prefix) is one column, not a difference with itself.
      if (!resolved.some((r) => r.id === id)) resolved.push({ id, source });
    }
    if (resolved.length < 2) {
      throw new UserError(
        queries.length < 2 ? "compare needs at least two runs" : "compare needs at least two different runs",
        {
          code: "compare_too_few_runs",
          hint: "Pass two or more run ids or unique prefixes, e.g. `runctl compare 20261122-2015 20261122-2030`; `runctl runs` lists them.",
          details: { given: queries },
        },
      );
    }

    const loaded = await Promise.all(
      resolved.map(async ({ id, source }) => {
        const meta = withEffectiveStatus(await sourceMeta(source, id));
        const { config, problem } = await sourceRunConfig(source, id, meta);
        if (problem !== undefined) this.progress(`Warning: ${problem}`);
        const { metrics, skipped } = await finalMetrics(source, id, meta);
        if (skipped !== undefined) this.progress(`Warning: run ${id}: ${skipped}`);
        return { id, meta, config: flatten(config), metrics };
      }),
    );
    const ids = loaded.map((r) => r.id);
    const config = byKey(loaded.map((r) => [r.id, r.config] as const));
    const differing = Object.entries(config)
      .filter(([, row]) =>
        ids.some((id) => !Object.hasOwn(row, id) || !isDeepStrictEqual(row[id], row[ids[0] as string])),
      )
      .map(([key]) => key);
    const metrics = byKey(loaded.map((r) => [r.id, r.metrics] as const));
    const best: Record<string, string> = {};
    for (const [key, row] of Object.entries(metrics)) {
      const winner = bestOf(key, row, ids);
      if (winner !== undefined) best[key] = winner;
    }

    if (!this.jsonEnabled()) this.print(loaded, config, new Set(differing), metrics, best);
    return { runs: ids, config, differing, metrics, best };
  }

  private print(
    runs: ReadonlyArray<{ id: string; meta: RunMeta }>,
    config: Record<string, ByRun>,
    differing: ReadonlySet<string>,
    metrics: Record<string, ByRun>,
    best: Record<string, string>,
  ): void {
    const color = colorEnabled();
    const ids = runs.map((r) => r.id);
    const cell = (row: ByRun, id: string) => (Object.hasOwn(row, id) ? formatValue(row[id]) : "-");

    this.log(
      table(
        ["RUN", "NAME", "STATUS"],
        runs.map((r) => [r.id, formatValue(r.meta.name), r.meta.status]),
      ),
    );
    this.log("");
    const configKeys = Object.keys(config);
    if (configKeys.length === 0) this.log("config: none of these runs has a config");
    else {
      this.log(`config (* = differs; ${differing.size} of ${configKeys.length} keys)`);
      const lines = table(
        ["", "KEY", ...ids],
        configKeys.map((key) => [
          differing.has(key) ? "*" : "",
          key,
          ...ids.map((id) => cell(config[key] as ByRun, id)),
        ]),
      ).split("\n");
      this.log(lines[0] ?? "");
      configKeys.forEach((key, i) => {
        this.log(paint(lines[i + 1] ?? "", "yellow", color && differing.has(key)));
      });
    }
    this.log("");
    const metricKeys = Object.keys(metrics);
    if (metricKeys.length === 0) {
      this.log("metrics: none of these runs has a summary or logged metrics");
      return;
    }
    this.log("metrics (* = best: lowest for loss/error/perplexity/wer keys, highest otherwise)");
    this.log(
      table(
        ["KEY", ...ids],
        metricKeys.map((key) => [
          key,
          ...ids.map((id) => {
            const text = cell(metrics[key] as ByRun, id);
            return best[key] === id ? `${text} *` : text;
          }),
        ]),
      ),
    );
  }
}

/** Summary keys (flattened) over the last logged value of every metric. */
async function finalMetrics(
  source: RunSource,
  id: string,
  meta: RunMeta,
): Promise<{ metrics: Record<string, unknown>; skipped: string | undefined }> {
  const page = await sourceMetrics(source, id);
  const { records } = page;
  const logged: Record<string, unknown> = Object.create(null);
  for (const record of records) {
    for (const [key, value] of Object.entries(record))
      if (!RESERVED_METRIC_KEYS.has(key)) logged[key] = value;
  }
  return {
    metrics: { ...flatten(logged), ...flatten(meta.summary ?? {}) },
    skipped: describeJsonlSkips(RUN_FILES.metrics, page),
  };
}
