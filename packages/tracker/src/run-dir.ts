/**
 * RunWriter: the one process-side writer of a run directory (the supervisor,
 * or a TypeScript training script). Metadata and JSONL writes are synchronous
 * on purpose: they are small, they keep read-merge-write of meta.json free of
 * interleaving inside one process, and they still work from exit and signal
 * handlers, where a run directory must be left truthful.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { basename, extname, join, resolve } from "node:path";
import {
  type ArtifactInfo,
  type Attempt,
  isSafeRunId,
  type MetricRecord,
  newRunId,
  parseAt,
  RunMeta,
  type RunStatus,
  TERMINAL_STATUSES,
  UserError,
} from "@runctl/core";
import {
  isErrno,
  JsonlAppender,
  type JsonRecord,
  readJsonlSync,
  withFileMutexSync,
  writeJsonAtomicSync,
} from "@runctl/core/internal";
import { copyArtifact } from "./artifacts.ts";
import { RUN_FILES } from "./layout.ts";
import { metaPathOf, readMetaFileSync } from "./meta-file.ts";

/** Who is writing: recorded in meta.json so readers can tell a live run from a lost one. */
export interface WriterIdentity {
  /** Default: this process. */
  pid?: number;
  /** Default: `os.hostname()`. */
  hostname?: string;
  /** `supervisor` or `python` per the spec; default `supervisor`. */
  writer?: string;
}

export type InitialStatus = Extract<RunStatus, "pending" | "provisioning" | "running">;

export interface CreateRunOptions extends WriterIdentity {
  runsDir: string;
  /** Default: a new run id. */
  id?: string;
  /** Default: the script's file name without extension, taken from `command`, else the id. */
  name?: string;
  tags?: string[];
  config?: Record<string, unknown>;
  command?: string[];
  /** Default `running`. */
  status?: InitialStatus;
  /** Further meta.json keys (`git`, `placement`, …), validated with core's RunMeta. */
  meta?: Record<string, unknown>;
  now?: Date;
}

export interface FinishDetail {
  exitCode?: number | null;
  /** For failed runs: the reason and the last lines of output. */
  error?: string | null;
  now?: Date;
  /** Further meta.json keys to record in the same write (e.g. a capture that ended with the run). */
  meta?: Record<string, unknown>;
}

export type MetaPatch = Partial<RunMeta> & Record<string, unknown>;

const RESERVED_METRIC_KEYS = ["_idx", "_timestamp"] as const;
const HEARTBEAT_INTERVAL_MS = 10_000;

export class RunWriter {
  readonly id: string;
  readonly dir: string;
  readonly #metrics: JsonlAppender;
  readonly #system: JsonlAppender;
  // Unknown until the first append when reopening: scanning a large file is only paid if needed.
  #nextIdx: number | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  private constructor(dir: string, id: string, nextIdx: number | undefined) {
    this.dir = dir;
    this.id = id;
    this.#nextIdx = nextIdx;
    this.#metrics = new JsonlAppender(join(dir, RUN_FILES.metrics));
    this.#system = new JsonlAppender(join(dir, RUN_FILES.system));
  }

  /** Creates `<runsDir>/<id>/` with meta.json (attempt 1), config.json, an empty metrics.jsonl and artifacts/. */
  static create(options: CreateRunOptions): RunWriter {
    const now = options.now ?? new Date();
    const status = options.status ?? "running";
    if (options.id !== undefined && !isSafeRunId(options.id)) {
      throw new UserError(`Invalid run id "${options.id}"`, {
        code: "run_bad_id",
        hint: "Use letters, digits, `.`, `_` and `-` only (or leave the id out to get a generated one).",
      });
    }
    const config = options.config ?? {};
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      throw new UserError("The run config must be a JSON object", {
        code: "run_bad_config",
        hint: 'Pass an object such as {"lr": 0.01}.',
      });
    }
    const configText = `${toJsonText(config, "run config", 2)}\n`;
    const runsDir = resolve(options.runsDir);
    mkdirSync(runsDir, { recursive: true });
    const { id, dir } = makeRunDir(runsDir, options.id, now);

    writeFileSync(join(dir, RUN_FILES.config), configText);
    writeFileSync(join(dir, RUN_FILES.metrics), "", { flag: "a" });
    mkdirSync(join(dir, RUN_FILES.artifacts), { recursive: true });

    const startedAt = now.toISOString();
    const attempt: Attempt = { number: 1, started_at: startedAt, finished_at: null, status, exit_code: null };
    const identity = identityOf(options);
    // Spec order for people reading the file; extra keys may fill `git` and
    // friends, but never the keys that define the run and its writer.
    const base: JsonRecord = {
      id,
      name: options.name ?? nameFromCommand(options.command) ?? id,
      tags: options.tags ?? [],
      started_at: startedAt,
      finished_at: null,
      status,
      summary: null,
      config_file: RUN_FILES.config,
      metrics_file: RUN_FILES.metrics,
      artifacts_dir: RUN_FILES.artifacts,
      git: null,
      git_file: null,
      requirements_file: null,
      exit_code: null,
      error: null,
      attempts: [attempt],
      heartbeat_at: startedAt,
      ...identity,
      ...(options.command ? { command: options.command } : {}),
    };
    const raw: JsonRecord = {
      ...base,
      ...options.meta,
      id,
      started_at: startedAt,
      status,
      attempts: [attempt],
      ...identity,
    };
    // meta.json goes last: a run directory without it is a run still being created.
    writeMeta(dir, raw);
    return new RunWriter(dir, id, 0);
  }

  /** Attaches to an existing run (e.g. `RUNCTL_RUN_DIR`); metrics continue after the file's last `_idx`. */
  static open(runDir: string): RunWriter {
    const dir = resolve(runDir);
    const { meta } = readMetaFileSync(dir);
    return new RunWriter(dir, meta.id, undefined);
  }

  /** The current meta.json as stored (no "lost" rule applied: that is for readers). */
  currentMeta(): RunMeta {
    return readMetaFileSync(this.dir).meta;
  }

  /** Appends one line to metrics.jsonl and returns it. `step` overrides a `step` key in `metrics`. */
  appendMetrics(metrics: Record<string, unknown>, step?: number): MetricRecord {
    if (typeof metrics !== "object" || metrics === null || Array.isArray(metrics)) {
      throw new UserError("Metrics must be an object of name → value", {
        code: "metrics_not_object",
        hint: 'Pass an object such as {"loss": 0.42}.',
      });
    }
    for (const key of RESERVED_METRIC_KEYS) {
      if (Object.hasOwn(metrics, key)) {
        throw new UserError(`Metric key "${key}" is reserved`, {
          code: "metrics_reserved_key",
          hint: "runctl sets `_idx` and `_timestamp` itself; rename your key.",
        });
      }
    }
    const { step: ownStep, ...rest } = metrics;
    const effectiveStep = step ?? ownStep;
    if (effectiveStep !== undefined && !Number.isSafeInteger(effectiveStep)) {
      throw new UserError(`Step must be an integer, got ${String(effectiveStep)}`, {
        code: "metrics_bad_step",
        hint: "Pass the global step as an integer (e.g. the optimizer step count).",
      });
    }
    this.#nextIdx ??= nextIdxOf(join(this.dir, RUN_FILES.metrics));
    const record = {
      _idx: this.#nextIdx,
      _timestamp: new Date().toISOString(),
      ...(effectiveStep !== undefined ? { step: effectiveStep } : {}),
      ...rest,
    } as MetricRecord;
    this.#metrics.appendLine(toJsonText(record, "metrics"));
    this.#nextIdx++;
    return record;
  }

  /** Appends one system sample; `_timestamp` is added unless the sample has one. */
  appendSystem(sample: Record<string, unknown>): void {
    const record = { _timestamp: new Date().toISOString(), ...sample };
    this.#system.appendLine(toJsonText(record, "system sample"));
  }

  /**
   * Read, merge (shallow), write meta.json atomically. Keys this version does
   * not know survive; a function patch sees the current meta.
   */
  updateMeta(patch: MetaPatch | ((current: RunMeta) => MetaPatch)): RunMeta {
    return withFileMutexSync(metaPathOf(this.dir), () => {
      const { raw, meta } = readMetaFileSync(this.dir);
      const changes = typeof patch === "function" ? patch(meta) : patch;
      return writeMeta(this.dir, { ...raw, ...changes });
    });
  }

  heartbeat(now: Date = new Date()): void {
    this.updateMeta({ heartbeat_at: now.toISOString() });
  }

  /**
   * Refreshes `heartbeat_at` every `intervalMs` (spec: 10 s) until `finish` or
   * `close`. The timer does not keep the process alive; a failed beat goes to
   * `onError` rather than crashing the training process.
   */
  startHeartbeat(intervalMs: number = HEARTBEAT_INTERVAL_MS, onError?: (error: unknown) => void): void {
    this.stopHeartbeat();
    this.#heartbeat = setInterval(() => {
      try {
        this.heartbeat();
      } catch (error) {
        onError?.(error);
      }
    }, intervalMs);
    this.#heartbeat.unref();
  }

  stopHeartbeat(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  /**
   * Starts attempt n+1 (a resume): the run is running again under this writer.
   * A previous attempt left non-terminal is closed as failed ("lost"), since its
   * writer is by now gone; earlier attempts are otherwise kept as they are.
   */
  startAttempt(options: WriterIdentity & { now?: Date } = {}): Attempt {
    const now = (options.now ?? new Date()).toISOString();
    let started: Attempt | undefined;
    this.updateMeta((meta) => {
      const attempts = [...(meta.attempts ?? [])];
      const last = attempts.at(-1);
      if (last && !TERMINAL_STATUSES.has(last.status)) {
        attempts[attempts.length - 1] = {
          ...last,
          status: "failed",
          finished_at: last.finished_at ?? meta.heartbeat_at ?? now,
          error: `lost: superseded by attempt ${attempts.length + 1}`,
        };
      }
      started = {
        number: (last?.number ?? 0) + 1,
        started_at: now,
        finished_at: null,
        status: "running",
        exit_code: null,
      };
      attempts.push(started);
      return {
        attempts,
        status: "running",
        finished_at: null,
        exit_code: null,
        error: null,
        heartbeat_at: now,
        ...identityOf(options),
      };
    });
    // Another writer may have appended since we counted.
    this.#nextIdx = undefined;
    return started as Attempt;
  }

  /** Ends the run and its current attempt with a terminal status, then closes files and the heartbeat. */
  finish(status: RunStatus, detail: FinishDetail = {}): RunMeta {
    if (!TERMINAL_STATUSES.has(status)) {
      throw new UserError(`Cannot finish a run as "${status}"`, {
        code: "run_bad_status",
        hint: `Finish with one of: ${[...TERMINAL_STATUSES].join(", ")}.`,
      });
    }
    const now = (detail.now ?? new Date()).toISOString();
    const exitCode = detail.exitCode ?? null;
    const meta = this.updateMeta((current) => {
      const attempts = current.attempts ? [...current.attempts] : undefined;
      const last = attempts?.at(-1);
      if (attempts && last) {
        attempts[attempts.length - 1] = { ...last, status, finished_at: now, exit_code: exitCode };
      }
      return {
        ...detail.meta,
        status,
        finished_at: now,
        exit_code: exitCode,
        error: detail.error ?? null,
        ...(attempts ? { attempts } : {}),
      };
    });
    this.close();
    return meta;
  }

  /** Merges `summary` into meta.json's `summary` (later values win). */
  setSummary(summary: Record<string, unknown>): RunMeta {
    return this.updateMeta((meta) => ({ summary: { ...(meta.summary ?? {}), ...summary } }));
  }

  /** Copies a file or directory into `artifacts/` (`name` may contain `/`, never `..`). */
  saveArtifact(source: string, name?: string): Promise<ArtifactInfo> {
    return copyArtifact(this.dir, source, name);
  }

  /** Stops the heartbeat and closes the open JSONL descriptors; later appends reopen them. */
  close(): void {
    this.stopHeartbeat();
    this.#metrics.close();
    this.#system.close();
  }
}

function makeRunDir(runsDir: string, wanted: string | undefined, now: Date): { id: string; dir: string } {
  // Random suffixes make a clash between generated ids astronomically rare; retry anyway.
  for (let attempt = 0; attempt < 8; attempt++) {
    const id = wanted ?? newRunId(now);
    const dir = join(runsDir, id);
    try {
      mkdirSync(dir);
      return { id, dir };
    } catch (error) {
      if (!isErrno(error, "EEXIST")) throw error;
      if (wanted !== undefined) {
        throw new UserError(`Run ${wanted} already exists in ${runsDir}`, {
          code: "run_exists",
          hint: "Pick another id, or resume the existing run instead of creating it again.",
          details: { run_dir: dir },
        });
      }
    }
  }
  throw new UserError(`Could not create a unique run directory in ${runsDir}`, {
    code: "run_dir_unavailable",
    hint: "Check that the runs directory is writable and not full of stale entries.",
  });
}

function writeMeta(dir: string, raw: JsonRecord): RunMeta {
  const meta = parseAt(RunMeta, raw, {
    what: `run metadata for ${dir}`,
    kind: "user",
    code: "run_meta_invalid",
    hint: "A meta.json update had values of the wrong type; see docs/run-directory.md for each key's type.",
  });
  writeJsonAtomicSync(metaPathOf(dir), raw);
  return meta;
}

function identityOf(identity: WriterIdentity): { pid: number; hostname: string; writer: string } {
  return {
    pid: identity.pid ?? process.pid,
    hostname: identity.hostname ?? osHostname(),
    writer: identity.writer ?? "supervisor",
  };
}

/** The spec's default name: the script's file name without extension. */
function nameFromCommand(command: string[] | undefined): string | undefined {
  if (!command || command.length === 0) return undefined;
  const script = command.find((arg) => /\.(py|js|mjs|ts|sh)$/.test(arg)) ?? command[0];
  if (script === undefined) return undefined;
  const name = basename(script, extname(script));
  return name === "" ? undefined : name;
}

function nextIdxOf(metricsPath: string): number {
  let next = 0;
  for (const record of readJsonlSync(metricsPath).records) {
    const idx = record._idx;
    if (typeof idx === "number" && Number.isSafeInteger(idx) && idx >= next) next = idx + 1;
  }
  return next;
}

function toJsonText(value: unknown, what: string, indent?: number): string {
  try {
    return JSON.stringify(value, null, indent);
  } catch (error) {
    throw new UserError(`The ${what} cannot be written as JSON: ${(error as Error).message}`, {
      code: "not_json",
      hint: "Use plain numbers, strings, booleans, arrays and objects (no BigInt, no cycles).",
      cause: error,
    });
  }
}
