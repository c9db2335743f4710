/**
 * Readers of one run directory. They run beside live writers, so they never
 * crash on partial data: a torn last line is left for the next read, garbage
 * lines are skipped, a missing metrics file reads as empty. meta.json is never
 * modified by a reader, not even to repair it.
 */
import { join } from "node:path";
import { MetricRecord, type MetricsPage, type RunMeta } from "@runctl/core";
import { type JsonlPage, type JsonlSkip, readJsonl } from "@runctl/core/internal";
import { RUN_FILES } from "./layout.ts";
import { readMetaFile } from "./meta-file.ts";

/**
 * meta.json as stored (the "lost" rule is not applied; see effectiveStatus).
 * Missing → UserError `run_not_found`; unparsable or invalid → UserError
 * `run_meta_corrupt` naming the file.
 */
export async function readMeta(runDir: string): Promise<RunMeta> {
  return (await readMetaFile(runDir)).meta;
}

/** What readMetrics returns: the page, and the lines it skipped for the caller to report. */
export interface MetricsRead extends MetricsPage {
  /** Complete lines that were not metrics (too long, too deep, not JSON, no `_idx`). */
  skipped: number;
  /** The first of the unreadable lines (see describeJsonlSkips). */
  skips: JsonlSkip[];
}

/**
 * metrics.jsonl records with `_idx >= since`, in file order; `cursor` is the
 * next `_idx` to ask for. Reads in time linear in the file, holding at most
 * one line of MAX_JSONL_LINE_BYTES beyond the records.
 */
export async function readMetrics(runDir: string, since = 0): Promise<MetricsRead> {
  return metricsFrom(await readJsonl(join(runDir, RUN_FILES.metrics)), since);
}

/**
 * The metric records of a page of metrics.jsonl with `_idx >= since`; a line
 * without a valid `_idx` cannot be placed against a cursor, so it is counted
 * with the page's skipped lines, like garbage.
 */
export function metricsFrom(
  page: Pick<JsonlPage, "records" | "skipped" | "skips">,
  since: number,
): MetricsRead {
  let skipped = page.skipped;
  const records: MetricRecord[] = [];
  let cursor = since;
  for (const raw of page.records) {
    const parsed = MetricRecord.safeParse(raw);
    if (!parsed.success) skipped++;
    if (!parsed.success || parsed.data._idx < since) continue;
    records.push(parsed.data);
    if (parsed.data._idx >= cursor) cursor = parsed.data._idx + 1;
  }
  return { records, cursor, skipped, skips: page.skips };
}

/** system.jsonl from byte offset `since` (pass back the returned `offset`). */
export function readSystem(runDir: string, since = 0): Promise<JsonlPage> {
  return readJsonl(join(runDir, RUN_FILES.system), { since });
}
