/**
 * Readers of one run directory. They run beside live writers, so they never
 * crash on partial data: a torn last line is left for the next read, garbage
 * lines are skipped, a missing metrics file reads as empty. meta.json is never
 * modified by a reader, not even to repair it.
 */
import { join } from "node:path";
import { MetricRecord, type MetricsPage, type RunMeta } from "@runctl/core";
import { type JsonlPage, readJsonl } from "@runctl/core/internal";
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

/** metrics.jsonl records with `_idx >= since`, in file order; `cursor` is the next `_idx` to ask for. */
export async function readMetrics(runDir: string, since = 0): Promise<MetricsPage> {
  const page = await readJsonl(join(runDir, RUN_FILES.metrics));
  const records: MetricRecord[] = [];
  let cursor = since;
  for (const raw of page.records) {
    const parsed = MetricRecord.safeParse(raw);
    // A line without a valid `_idx` cannot be placed against a cursor: skip it like garbage.
    if (!parsed.success || parsed.data._idx < since) continue;
    records.push(parsed.data);
    if (parsed.data._idx >= cursor) cursor = parsed.data._idx + 1;
  }
  return { records, cursor };
}

/** system.jsonl from byte offset `since` (pass back the returned `offset`). */
export function readSystem(runDir: string, since = 0): Promise<JsonlPage> {
  return readJsonl(join(runDir, RUN_FILES.system), { since });
}
