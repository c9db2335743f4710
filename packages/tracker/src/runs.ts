/**
 * The runs directory as a collection: where it is, listing its runs and
 * turning what a user typed (an id or a unique prefix) into one run.
 */
import type { Dirent } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { isSafeRunId, type RunMeta, type RunStatus, runIdTime, UserError } from "@runctl/core";
import { isErrno } from "@runctl/core/internal";
import { RUN_FILES } from "./layout.ts";
import { type LivenessOptions, withEffectiveStatus } from "./liveness.ts";
import { readMetaFile } from "./meta-file.ts";

export const RUNS_DIR_ENV = "RUNCTL_RUNS_DIR";

export interface ResolveRunsDirOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** `local.runs_dir` from the loaded configuration, as written. */
  configRunsDir?: string;
  /** Directory holding the project's `.runctl.toml`, when there is one. */
  projectRoot?: string;
  cwd?: string;
}

/**
 * `$RUNCTL_RUNS_DIR` (relative to cwd), else `local.runs_dir` (relative to the
 * project root, or cwd without a project), else `runs` in the same place, so
 * that the configuration's default and "no key at all" agree.
 */
export function resolveRunsDir(options: ResolveRunsDirOptions = {}): string {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const fromEnv = env[RUNS_DIR_ENV];
  if (fromEnv) return resolve(cwd, expandHome(fromEnv));
  const base = options.projectRoot ?? cwd;
  return resolve(base, expandHome(options.configRunsDir ?? "runs"));
}

function expandHome(path: string): string {
  return path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path;
}

/** `<runsDir>/<id>`, refusing ids that could name anything outside it. */
export function runDirOf(runsDir: string, runId: string): string {
  if (!isSafeRunId(runId)) {
    throw new UserError(`Invalid run id "${runId}"`, {
      code: "run_bad_id",
      hint: "Run ids look like 20261122-201500-a1b2c3; `runctl runs` lists them.",
    });
  }
  return join(runsDir, runId);
}

/**
 * Where one run's files are, for every launch path (foreground, detached,
 * provider launches, queue jobs): the run directory (docs/run-directory.md)
 * and the agent's own log, which holds what the agent said before the run
 * directory existed or after it could no longer write there.
 */
export interface RunLayout {
  runDir: string;
  agentLog: string;
}

export function runLayout(runsDir: string, runId: string): RunLayout {
  return { runDir: runDirOf(runsDir, runId), agentLog: join(runsDir, `.agent-${runId}.log`) };
}

export interface ListRunsOptions extends LivenessOptions {
  /** Keep runs whose effective status is one of these. */
  status?: RunStatus | readonly RunStatus[];
  /** Keep runs carrying every one of these tags. */
  tags?: readonly string[];
  /** Keep only the newest N (after filtering). */
  last?: number;
}

export const CORRUPT_META_ERROR = "corrupt meta.json";

// Enough parallel reads to hide latency without exhausting descriptors on big runs dirs.
const READ_CONCURRENCY = 32;

/**
 * Runs newest first, with the "lost" rule applied. A run whose meta.json is
 * unreadable is listed, not skipped: as `failed` with error
 * `corrupt meta.json: …`, so it stays visible and `runctl show` can explain it.
 * Directories without meta.json (a run being created, or not a run) and hidden
 * entries are ignored. A missing runs directory lists as empty.
 */
export async function listRuns(runsDir: string, options: ListRunsOptions = {}): Promise<RunMeta[]> {
  const names = await runDirNames(runsDir);
  const metas: Array<RunMeta | undefined> = new Array(names.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < names.length; i = next++) {
      const name = names[i] as string;
      metas[i] = await readListed(join(runsDir, name), name);
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, names.length) }, worker));

  const statuses = options.status === undefined ? undefined : ([] as RunStatus[]).concat(options.status);
  const tags = options.tags ?? [];
  let runs = metas
    .filter((m): m is RunMeta => m !== undefined)
    .map((m) => withEffectiveStatus(m, options))
    .filter((m) => statuses === undefined || statuses.includes(m.status))
    .filter((m) => tags.every((t) => m.tags.includes(t)))
    .sort(newestFirst);
  if (options.last !== undefined) runs = runs.slice(0, Math.max(0, options.last));
  return runs;
}

async function runDirNames(runsDir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(runsDir, { withFileTypes: true });
  } catch (error) {
    if (isErrno(error, "ENOENT", "ENOTDIR")) return [];
    throw error;
  }
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith(".")).map((e) => e.name);
}

async function readListed(runDir: string, name: string): Promise<RunMeta | undefined> {
  try {
    return (await readMetaFile(runDir)).meta;
  } catch (error) {
    if (error instanceof UserError && error.code === "run_not_found") return undefined;
    // Corrupt or unreadable (permissions, I/O): one bad run must not hide the others.
    return await corruptPlaceholder(runDir, name, error instanceof Error ? error.message : String(error));
  }
}

async function corruptPlaceholder(runDir: string, name: string, message: string): Promise<RunMeta> {
  let startedAt = runIdTime(name);
  if (startedAt === undefined) {
    try {
      startedAt = (await stat(runDir)).mtime;
    } catch {
      startedAt = new Date(0);
    }
  }
  return {
    id: name,
    name,
    tags: [],
    started_at: startedAt.toISOString(),
    finished_at: null,
    status: "failed",
    error: `${CORRUPT_META_ERROR}: ${message}`,
    config_file: RUN_FILES.config,
    metrics_file: RUN_FILES.metrics,
    artifacts_dir: RUN_FILES.artifacts,
  };
}

function newestFirst(a: RunMeta, b: RunMeta): number {
  const ta = Date.parse(a.started_at);
  const tb = Date.parse(b.started_at);
  if (!Number.isNaN(ta) && !Number.isNaN(tb) && ta !== tb) return tb - ta;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export interface ResolvedRun {
  id: string;
  dir: string;
}

const MAX_LISTED_CANDIDATES = 10;

/**
 * The run named by a full id or a unique id prefix. An exact id wins even if
 * it is also the prefix of others. Unknown → UserError `run_not_found`;
 * several matches → UserError `run_ambiguous` listing them.
 */
export async function resolveRun(runsDir: string, idOrPrefix: string): Promise<ResolvedRun> {
  const query = idOrPrefix.trim();
  const notFound = () =>
    new UserError(`No run matches "${idOrPrefix}" in ${runsDir}`, {
      code: "run_not_found",
      hint: "Run `runctl runs` to list run ids (any unique prefix works).",
      details: { runs_dir: runsDir, query: idOrPrefix },
    });
  // Ids are directory names; a query with separators or `..` could only name something else.
  if (query === "" || query.includes("/") || query.includes("\\") || query.includes("..")) throw notFound();
  const names = await runDirNames(runsDir);
  const withMeta = async (name: string): Promise<boolean> => {
    try {
      return (await stat(join(runsDir, name, RUN_FILES.meta))).isFile();
    } catch {
      return false;
    }
  };
  if (names.includes(query) && (await withMeta(query))) return { id: query, dir: join(runsDir, query) };
  const candidates: string[] = [];
  for (const name of names.filter((n) => n.startsWith(query)).sort()) {
    if (await withMeta(name)) candidates.push(name);
  }
  const [only] = candidates;
  if (only !== undefined && candidates.length === 1) return { id: only, dir: join(runsDir, only) };
  if (candidates.length === 0) throw notFound();
  const shown = candidates.slice(0, MAX_LISTED_CANDIDATES).join(", ");
  const more =
    candidates.length > MAX_LISTED_CANDIDATES ? ` and ${candidates.length - MAX_LISTED_CANDIDATES} more` : "";
  throw new UserError(`"${idOrPrefix}" matches ${candidates.length} runs: ${shown}${more}`, {
    code: "run_ambiguous",
    hint: `Type more of the id, e.g. \`${candidates[0]}\`.`,
    details: { query: idOrPrefix, candidates },
  });
}
