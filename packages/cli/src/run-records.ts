/**
 * Reading runs for the commands that list, show, compare and export them:
 * the shared filter flags, a run's config, its latest metric values, durations.
 */
import { open } from "node:fs/promises";
import { join } from "node:path";
import { Flags } from "@oclif/core";
import { type RunMeta, RunStatus, TERMINAL_STATUSES, UserError } from "@runctl/core";
import { parseJsonLenient } from "@runctl/core/internal";
import { listRuns, RUN_FILES, type RunSource } from "@runctl/tracker";

// Shared by `runs` and `export`, which select runs the same way.
export const runFilterFlags = {
  status: Flags.string({
    description: `Only runs with this status (repeatable or comma-separated): ${RunStatus.options.join(", ")}. A lost run counts as failed.`,
    multiple: true,
    delimiter: ",",
  }),
  tag: Flags.string({
    description: "Only runs carrying this tag (repeatable: every tag must be present).",
    multiple: true,
  }),
  last: Flags.integer({ description: "Only the newest N runs (after the other filters).", min: 1 }),
};

/** `--status` values, checked here rather than in the flag parser so the error reads cleanly. */
export function parseStatuses(values: readonly string[] | undefined): RunStatus[] | undefined {
  if (values === undefined || values.length === 0) return undefined;
  return values.map((value) => {
    const parsed = RunStatus.safeParse(value.trim().toLowerCase());
    if (parsed.success) return parsed.data;
    throw new UserError(`Unknown run status "${value}"`, {
      code: "bad_status",
      hint: `Use one of: ${RunStatus.options.join(", ")}.`,
      details: { status: value, valid: RunStatus.options },
    });
  });
}

/** A file named by meta.json, or the spec's name when the stored one could point outside the run. */
function runFile(dir: string, named: string | null | undefined, fallback: string): string {
  const ok = typeof named === "string" && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(named);
  return join(dir, ok ? named : fallback);
}

export interface RunConfig {
  config: Record<string, unknown>;
  /** Why config.json could not be used, when it could not. */
  problem?: string;
}

/** config.json of a run; a missing file is an empty config (whirr runs without config have none). */
/** config.json of a run from any RunSource; what keeps it from being used is a `problem`, not an error. */
export async function sourceRunConfig(source: RunSource, runId: string, meta: RunMeta): Promise<RunConfig> {
  const name = runFile("", meta.config_file, RUN_FILES.config);
  const file = `${source.location}/${runId}/${name}`;
  let raw: Buffer | null;
  try {
    raw = await source.readFile(runId, name);
  } catch (error) {
    return { config: {}, problem: `${file}: ${(error as Error).message}` };
  }
  return raw === null ? { config: {} } : parseRunConfig(raw.toString("utf8"), file);
}

function parseRunConfig(text: string, file: string): RunConfig {
  try {
    const value = parseJsonLenient(text);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      return { config: value as Record<string, unknown> };
    }
    return { config: {}, problem: `${file} is not a JSON object` };
  } catch (error) {
    return { config: {}, problem: `${file} is not JSON (${(error as Error).message})` };
  }
}

export function metricsFileOf(dir: string, meta: RunMeta): string {
  return runFile(dir, meta.metrics_file, RUN_FILES.metrics);
}

export const RESERVED_METRIC_KEYS: ReadonlySet<string> = new Set(["_idx", "_timestamp", "step"]);

// Enough for the last few records of any realistic run; a listing must not read whole metric files.
const TAIL_BYTES = 64 * 1024;

/**
 * The latest value of each metric key found in the last complete lines of
 * metrics.jsonl (read from its end only), oldest line first so later values win.
 */
export async function latestMetricValues(file: string): Promise<Record<string, unknown>> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, "r");
  } catch {
    return {};
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const lines = buffer.toString("utf8").split("\n");
    // The last piece has no newline yet (a write in progress); the first may be cut by the window.
    lines.pop();
    if (length < size) lines.shift();
    const latest: Record<string, unknown> = Object.create(null);
    for (const line of lines) {
      try {
        const value = parseJsonLenient(line);
        if (typeof value === "object" && value !== null && !Array.isArray(value))
          Object.assign(latest, value);
      } catch {
        // Garbage lines are skipped, as every reader of metrics.jsonl does.
      }
    }
    for (const key of RESERVED_METRIC_KEYS) delete latest[key];
    return latest;
  } finally {
    await handle.close();
  }
}

/** Wall time of the run: to its end, to its last heartbeat when it was lost, or to now while live. */
export function runDurationMs(meta: RunMeta, now: Date = new Date()): number | undefined {
  const start = Date.parse(meta.started_at);
  const endText = meta.finished_at ?? (TERMINAL_STATUSES.has(meta.status) ? meta.heartbeat_at : undefined);
  const end = endText ? Date.parse(endText) : TERMINAL_STATUSES.has(meta.status) ? Number.NaN : now.getTime();
  return Number.isNaN(start) || Number.isNaN(end) ? undefined : Math.max(0, end - start);
}

export const KEY_METRICS = 2;

/** Up to two numeric values worth a glance: summary keys first, then the latest metrics. */
export function keyMetrics(meta: RunMeta, latest: Record<string, unknown>): Array<[string, number]> {
  const picked: Array<[string, number]> = [];
  for (const source of [meta.summary ?? {}, latest]) {
    for (const [key, value] of Object.entries(source)) {
      if (picked.length >= KEY_METRICS) return picked;
      if (typeof value === "number" && !picked.some(([k]) => k === key)) picked.push([key, value]);
    }
  }
  return picked;
}

export function numericCount(values: Record<string, unknown> | null | undefined): number {
  return Object.values(values ?? {}).filter((v) => typeof v === "number").length;
}

export interface RunFilterFlags {
  status?: string[] | undefined;
  tag?: string[] | undefined;
  last?: number | undefined;
}

/** The runs `runFilterFlags` select, newest first, with their effective status. */
export async function selectRuns(runsDir: string, flags: RunFilterFlags): Promise<RunMeta[]> {
  const status = parseStatuses(flags.status);
  return listRuns(runsDir, {
    ...(status ? { status } : {}),
    ...(flags.tag ? { tags: flags.tag } : {}),
    ...(flags.last !== undefined ? { last: flags.last } : {}),
  });
}
