/**
 * The default Tracker: runs as directories under one runs directory. Runs
 * created (or first written) through this object keep an open RunWriter so
 * metric appends reuse their descriptors; `close()` releases them.
 */
import { resolve } from "node:path";
import type {
  ArtifactInfo,
  CreateRunInput,
  MetricRecord,
  MetricsPage,
  RunMeta,
  RunStatus,
  Tracker,
} from "@runctl/core";
import { listArtifacts } from "./artifacts.ts";
import { type LivenessOptions, withEffectiveStatus } from "./liveness.ts";
import { readMeta, readMetrics } from "./read.ts";
import { RunWriter, type WriterIdentity } from "./run-dir.ts";
import { listRuns, runDirOf } from "./runs.ts";

export interface FileTrackerOptions extends WriterIdentity {
  runsDir: string;
  /** For tests and for readers judging runs of another host; see effectiveStatus. */
  liveness?: LivenessOptions;
  /** Start a 10 s heartbeat for runs this tracker creates (default true). */
  heartbeat?: boolean;
}

export class FileTracker implements Tracker {
  readonly runsDir: string;
  readonly #options: FileTrackerOptions;
  readonly #writers = new Map<string, RunWriter>();

  constructor(options: FileTrackerOptions) {
    this.runsDir = resolve(options.runsDir);
    this.#options = options;
  }

  async createRun(input: CreateRunInput): Promise<RunMeta> {
    const { pid, hostname, writer } = this.#options;
    const run = RunWriter.create({
      runsDir: this.runsDir,
      ...(input.id !== undefined ? { id: input.id } : {}),
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.tags !== undefined ? { tags: input.tags } : {}),
      ...(input.config !== undefined ? { config: input.config } : {}),
      ...(pid !== undefined ? { pid } : {}),
      ...(hostname !== undefined ? { hostname } : {}),
      ...(writer !== undefined ? { writer } : {}),
    });
    if (this.#options.heartbeat !== false) run.startHeartbeat();
    this.#writers.set(run.id, run);
    return run.currentMeta();
  }

  async logMetrics(runId: string, metrics: Record<string, unknown>, step?: number): Promise<MetricRecord> {
    return this.#writer(runId).appendMetrics(metrics, step);
  }

  async setSummary(runId: string, summary: Record<string, unknown>): Promise<void> {
    this.#writer(runId).setSummary(summary);
  }

  async saveArtifact(runId: string, sourcePath: string, name?: string): Promise<ArtifactInfo> {
    return this.#writer(runId).saveArtifact(sourcePath, name);
  }

  async finishRun(
    runId: string,
    status: RunStatus,
    detail: { exitCode?: number; error?: string } = {},
  ): Promise<RunMeta> {
    const meta = this.#writer(runId).finish(status, detail);
    this.#writers.delete(runId);
    return meta;
  }

  async getRun(runId: string): Promise<RunMeta> {
    return withEffectiveStatus(await readMeta(runDirOf(this.runsDir, runId)), this.#options.liveness);
  }

  async listRuns(filter: { status?: RunStatus[]; tags?: string[]; last?: number } = {}): Promise<RunMeta[]> {
    return listRuns(this.runsDir, { ...this.#options.liveness, ...filter });
  }

  async getMetrics(runId: string, since?: number): Promise<MetricsPage> {
    return readMetrics(runDirOf(this.runsDir, runId), since);
  }

  async listArtifacts(runId: string): Promise<ArtifactInfo[]> {
    const dir = runDirOf(this.runsDir, runId);
    await readMeta(dir); // an unknown run is an error, not an empty list
    return listArtifacts(dir);
  }

  /** Closes every open writer (descriptors and heartbeats); runs stay as they are on disk. */
  close(): void {
    for (const writer of this.#writers.values()) writer.close();
    this.#writers.clear();
  }

  #writer(runId: string): RunWriter {
    let writer = this.#writers.get(runId);
    if (writer === undefined) {
      writer = RunWriter.open(runDirOf(this.runsDir, runId));
      this.#writers.set(runId, writer);
    }
    return writer;
  }
}
