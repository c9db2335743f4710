/**
 * The read side of runs, wherever a run directory lives: this disk, the job
 * server (workers upload run directories to it), or an artifact store that a
 * remote agent syncs to (core's StoreRunSync). `runctl show`, `logs` and
 * `compare` read through a RunSource, so `runctl show job-3` works from a
 * laptop that only knows the server's URL.
 *
 * A source hands out files of a run directory; meta.json and metrics.jsonl are
 * parsed here with the same rules for every source.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type ArtifactStore,
  BOOTSTRAP_ERROR_FILE,
  BootstrapReport,
  listStoredRunFiles,
  RunMeta,
  readStoredRunFile,
  UserError,
} from "@runctl/core";
import { isErrno, type JsonRecord, parseJsonlLines } from "@runctl/core/internal";
import { RUN_FILES } from "./layout.ts";
import { parseMetaText, runNotFound } from "./meta-file.ts";
import type { QueueClient } from "./queue-client.ts";
import { QueueServerError } from "./queue-client.ts";
import { type MetricsRead, metricsFrom, readMetrics } from "./read.ts";
import { resolveRun } from "./runs.ts";

export interface RunSource {
  /** Where runs are read from, for messages: a directory, a server URL, a store URL. */
  readonly location: string;
  /** The id of the run that `idOrPrefix` names; `run_not_found` when there is none. */
  resolve(idOrPrefix: string): Promise<string>;
  /** A whole file of the run's directory (`meta.json`, `output.log`, …), or null when it has none. */
  readFile(runId: string, path: string): Promise<Buffer | null>;
  /** metrics.jsonl streamed where the source can (memory bounded by the line cap, not the file). */
  metrics?(runId: string, since: number): Promise<MetricsRead>;
}

/**
 * meta.json of a run from any source, parsed and checked as on this disk. A
 * remote run whose machine never started it has no meta.json, only the report
 * its bootstrap uploaded before shutting the machine down: it reads as failed,
 * with the bootstrap's reason.
 */
export async function sourceMeta(source: RunSource, runId: string): Promise<RunMeta> {
  const raw = await source.readFile(runId, RUN_FILES.meta);
  if (raw === null) {
    const report = await source.readFile(runId, BOOTSTRAP_ERROR_FILE).catch(() => null);
    const failed = report === null ? undefined : bootstrapFailure(runId, report);
    if (failed) return failed;
    throw runNotFound(`${source.location}/${runId}`);
  }
  return parseMetaText(raw.toString("utf8"), `${source.location}/${runId}/${RUN_FILES.meta}`).meta;
}

function bootstrapFailure(runId: string, raw: Buffer): RunMeta | undefined {
  let report: BootstrapReport;
  try {
    report = BootstrapReport.parse(JSON.parse(raw.toString("utf8")));
  } catch {
    return undefined;
  }
  return RunMeta.parse({
    id: runId,
    name: runId,
    started_at: report.at,
    finished_at: report.at,
    status: "failed",
    error: `the machine's bootstrap failed (${report.code}): ${report.reason}`,
  });
}

/** metrics.jsonl of a run from any source: records with `_idx >= since`; unreadable lines counted, not returned. */
export async function sourceMetrics(source: RunSource, runId: string, since = 0): Promise<MetricsRead> {
  if (source.metrics) return source.metrics(runId, since);
  const raw = (await source.readFile(runId, RUN_FILES.metrics)) ?? Buffer.alloc(0);
  const records: JsonRecord[] = [];
  const page = parseJsonlLines(raw, (record) => records.push(record));
  return metricsFrom({ records, skipped: page.skipped, skips: page.skips }, since);
}

/** Runs in a runs directory on this machine. */
export class DirRunSource implements RunSource {
  readonly location: string;

  constructor(readonly runsDir: string) {
    this.location = runsDir;
  }

  async resolve(idOrPrefix: string): Promise<string> {
    return (await resolveRun(this.runsDir, idOrPrefix)).id;
  }

  metrics(runId: string, since: number): Promise<MetricsRead> {
    return readMetrics(join(this.runsDir, runId), since);
  }

  async readFile(runId: string, path: string): Promise<Buffer | null> {
    try {
      return await readFile(join(this.runsDir, runId, ...path.split("/")));
    } catch (error) {
      if (isErrno(error, "ENOENT", "ENOTDIR")) return null;
      throw error;
    }
  }
}

/** Runs uploaded to the job server by its workers (`job-<id>`, `job-<id>-<attempt>`). */
export class ServerRunSource implements RunSource {
  readonly location: string;
  readonly #client: QueueClient;

  constructor(client: QueueClient) {
    this.#client = client;
    this.location = client.url;
  }

  async resolve(idOrPrefix: string): Promise<string> {
    try {
      return (await this.#client.getRun(idOrPrefix)).id;
    } catch (error) {
      if (error instanceof QueueServerError && error.status === 404) {
        throw new UserError(`No run ${idOrPrefix} on ${this.location}`, {
          code: "run_not_found",
          hint: "The server names runs after their jobs: job-<id>, job-<id>-<attempt>. `runctl job <id>` lists a job's runs.",
          cause: error,
        });
      }
      throw error;
    }
  }

  async readFile(runId: string, path: string): Promise<Buffer | null> {
    try {
      return Buffer.from(await (await this.#client.getArtifact(runId, path)).arrayBuffer());
    } catch (error) {
      if (error instanceof QueueServerError && error.status === 404) return null;
      throw error;
    }
  }
}

/** Runs a remote agent synced to an artifact store under `<prefix>/<run-id>/` (core's StoreRunSync). */
export class StoreRunSource implements RunSource {
  readonly location: string;
  readonly #store: ArtifactStore;
  readonly #prefix: string;

  constructor(store: ArtifactStore, prefix = "runs") {
    this.#store = store;
    this.#prefix = prefix.replace(/\/+$/, "");
    this.location = `${store.url.replace(/\/+$/, "")}/${this.#prefix}`;
  }

  async resolve(idOrPrefix: string): Promise<string> {
    const ids = new Set(
      (await this.#store.list(`${this.#prefix}/${idOrPrefix}`)).map(
        (o) => o.key.slice(this.#prefix.length + 1).split("/")[0] as string,
      ),
    );
    const matches = [...ids].filter((id) => id.startsWith(idOrPrefix));
    const exact = matches.find((id) => id === idOrPrefix);
    if (exact) return exact;
    if (matches.length === 1) return matches[0] as string;
    throw new UserError(
      matches.length === 0
        ? `No run ${idOrPrefix} in ${this.location}`
        : `"${idOrPrefix}" names several runs`,
      {
        code: matches.length === 0 ? "run_not_found" : "run_ambiguous",
        hint:
          matches.length === 0
            ? "Check the id and the store URL."
            : `Candidates: ${matches.slice(0, 10).join(", ")}`,
      },
    );
  }

  readFile(runId: string, path: string): Promise<Buffer | null> {
    return readStoredRunFile(this.#store, `${this.#prefix}/${runId}`, path);
  }

  /** The files the store holds for a run. */
  files(runId: string): Promise<string[]> {
    return listStoredRunFiles(this.#store, `${this.#prefix}/${runId}`);
  }
}
