import { writeFile } from "node:fs/promises";
import { extname, resolve } from "node:path";
import { Args, Flags } from "@oclif/core";
import { type RunMeta, UserError } from "@runctl/core";
import { DirRunSource, isSafeRunId } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { flatten } from "../output.ts";
import { runFilterFlags, selectRuns, sourceRunConfig } from "../run-records.ts";

const BASE_COLUMNS = ["id", "name", "status", "started_at", "finished_at", "duration_s", "tags"] as const;

type Row = Record<string, unknown>;

/** One CSV field per RFC 4180: quoted when it holds a comma, a quote or a line break, quotes doubled. */
export function csvField(value: unknown): string {
  let text: string;
  if (value === undefined || value === null) text = "";
  else if (typeof value === "string") text = value;
  else if (typeof value === "number" || typeof value === "boolean") text = String(value);
  else text = JSON.stringify(value) ?? "";
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function toCsv(columns: readonly string[], rows: readonly Row[]): string {
  const line = (cells: unknown[]) => `${cells.map(csvField).join(",")}\r\n`;
  return line([...columns]) + rows.map((row) => line(columns.map((c) => row[c]))).join("");
}

function durationSeconds(meta: RunMeta): number | null {
  const start = Date.parse(meta.started_at);
  const end = meta.finished_at ? Date.parse(meta.finished_at) : Number.NaN;
  return Number.isNaN(start) || Number.isNaN(end) ? null : Math.max(0, end - start) / 1000;
}

function prefixed(prefix: string, values: Record<string, unknown>): Row {
  const out: Row = Object.create(null);
  for (const [key, value] of Object.entries(flatten(values))) out[`${prefix}.${key}`] = value;
  return out;
}

export default class Export extends RunctlCommand {
  static override summary =
    "Write runs to a CSV or JSON file, one row per run, for spreadsheets and notebooks.";
  static override description =
    `Selects runs like \`runctl runs\` (--status, --tag, --last; newest first). Columns: id, name, status (effective: a lost run is failed), started_at, finished_at, duration_s (finished runs only), tags, then config.<key> and summary.<key> for every key of any selected run (nested keys dotted, e.g. config.optimizer.lr), sorted.

The format follows the file's extension. .csv: RFC 4180 (header row, CRLF line ends, fields with commas, quotes or line breaks quoted), tags joined with ";", objects and arrays as JSON, missing values empty. .json: an array of objects with the same columns, values keeping their JSON types, tags as an array, missing values null.

An existing file is never replaced unless --force is given. --json returns {path, runs: N, columns: [...]}.`;
  static override examples = [
    "<%= config.bin %> export runs.csv",
    "<%= config.bin %> export sweep.json --tag sweep-3 --status completed",
    "<%= config.bin %> export runs.csv --last 20 --force",
  ];
  static override args = {
    file: Args.string({ description: "Output file: .csv or .json.", required: true }),
  };
  static override flags = {
    ...runFilterFlags,
    force: Flags.boolean({ description: "Replace the file if it exists.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Export);
    const path = resolve(args.file);
    const format = extname(path).toLowerCase();
    if (format !== ".csv" && format !== ".json") {
      throw new UserError(`Cannot tell the export format of ${args.file}`, {
        code: "export_bad_format",
        hint: "Name the output file *.csv or *.json, e.g. `runctl export runs.csv`.",
        details: { path },
      });
    }
    const { runsDir } = await this.runPaths();
    const runs = await selectRuns(runsDir, flags);
    if (runs.length === 0) this.progress(`Warning: no runs in ${runsDir} match; writing only the header.`);

    const source = new DirRunSource(runsDir);
    const configKeys = new Set<string>();
    const summaryKeys = new Set<string>();
    const rows: Row[] = await Promise.all(
      runs.map(async (meta) => {
        // A listed run whose id could name a path outside the runs dir has no config we may read.
        const { config, problem } = isSafeRunId(meta.id)
          ? await sourceRunConfig(source, meta.id, meta)
          : { config: {}, problem: undefined };
        if (problem !== undefined) this.progress(`Warning: ${problem}`);
        const configColumns = prefixed("config", config);
        const summaryColumns = prefixed("summary", meta.summary ?? {});
        for (const key of Object.keys(configColumns)) configKeys.add(key);
        for (const key of Object.keys(summaryColumns)) summaryKeys.add(key);
        return {
          ...configColumns,
          ...summaryColumns,
          id: meta.id,
          name: meta.name,
          status: meta.status,
          started_at: meta.started_at,
          finished_at: meta.finished_at ?? null,
          duration_s: durationSeconds(meta),
          tags: format === ".csv" ? meta.tags.join(";") : meta.tags,
        };
      }),
    );
    const columns = [...BASE_COLUMNS, ...[...configKeys].sort(), ...[...summaryKeys].sort()];
    const text =
      format === ".csv"
        ? toCsv(columns, rows)
        : `${JSON.stringify(
            rows.map((row) => Object.fromEntries(columns.map((c) => [c, row[c] ?? null]))),
            null,
            2,
          )}\n`;
    await writeExport(path, text, flags.force);
    this.log(
      `Wrote ${runs.length} run${runs.length === 1 ? "" : "s"} (${columns.length} columns) to ${path}`,
    );
    return { path, runs: runs.length, columns };
  }
}

async function writeExport(path: string, text: string, force: boolean): Promise<void> {
  try {
    // `wx` makes "does it exist?" and "create it" one step, so nothing written meanwhile is clobbered.
    await writeFile(path, text, { flag: force ? "w" : "wx" });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      throw new UserError(`${path} already exists`, {
        code: "export_exists",
        hint: "Pass --force to replace it, or choose another file name.",
        details: { path },
      });
    }
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") {
      throw new UserError(
        `Cannot write ${path}: ${code === "EISDIR" ? "it is a directory" : "its directory does not exist"}`,
        {
          code: "export_unwritable",
          hint: "Pass a file path in an existing directory.",
          details: { path },
          cause: error,
        },
      );
    }
    throw error;
  }
}
