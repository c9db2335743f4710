/**
 * The job server as a RunSyncTarget (docs/job-queue.md, "Uploads"): a queue
 * worker's run directory mirrored while the job runs, so nobody needs the
 * worker's disk. Every request names the worker and attempt, so a copy whose
 * lease was lost cannot write over its successor.
 */
import { randomBytes } from "node:crypto";
import { type ChunkReader, RunSyncGapError, type RunSyncTarget } from "@runctl/core";
import { type QueueClient, QueueServerError, QueueUnreachableError } from "@runctl/tracker";

/** Bytes per PUT; the server takes up to 64 MiB per request. */
export const UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024;

export interface QueueSyncTargetOptions {
  client: QueueClient;
  runId: string;
  workerId: string;
  attempt: number;
}

export class QueueSyncTarget implements RunSyncTarget {
  readonly location: string;
  readonly #o: QueueSyncTargetOptions;

  constructor(options: QueueSyncTargetOptions) {
    this.#o = options;
    this.location = `${options.client.url}/runs/${options.runId}`;
  }

  async append(path: string, offset: number, data: Uint8Array): Promise<void> {
    try {
      await this.#put(path, data, offset);
    } catch (error) {
      const held = gapSize(error);
      if (held !== undefined) throw new RunSyncGapError(path, held, offset);
      throw error;
    }
  }

  async replace(path: string, size: number, read: ChunkReader): Promise<void> {
    if (size <= UPLOAD_CHUNK_BYTES) {
      await this.#put(path, await read(0, size), undefined);
      return;
    }
    // Staged: the chunks go to a hidden part file on the server, the commit puts the whole
    // file in place, so nobody downloads half a checkpoint.
    const part = randomBytes(8).toString("hex");
    for (let offset = 0; offset < size; ) {
      const chunk = await read(offset, Math.min(UPLOAD_CHUNK_BYTES, size - offset));
      if (chunk.byteLength === 0) break;
      await this.#put(path, chunk, offset, part);
      offset += chunk.byteLength;
    }
    await this.#put(path, new Uint8Array(0), undefined, part, true);
  }

  /** Each attempt's directory on the server starts empty: a recovering worker sends it all again. */
  async heldBytes(): Promise<Record<string, number>> {
    return {};
  }

  /** Lease lost (stop the job), or worth trying again later: the server is away or failing. */
  isTransient(error: unknown): boolean {
    if (error instanceof QueueUnreachableError) return true;
    return error instanceof QueueServerError && (error.code === "lease_lost" || error.status >= 500);
  }

  async #put(
    path: string,
    bytes: Uint8Array,
    offset: number | undefined,
    part?: string,
    commit = false,
  ): Promise<void> {
    const { client, runId, workerId, attempt } = this.#o;
    await client.uploadFile(runId, path, bytes, {
      workerId,
      attempt,
      ...(offset === undefined ? {} : { offset }),
      ...(part === undefined ? {} : { part }),
      ...(commit ? { commit } : {}),
    });
  }
}

/** The server's size from a 409 `upload_gap` (its `detail` names it). */
function gapSize(error: unknown): number | undefined {
  if (!(error instanceof QueueServerError) || error.code !== "upload_gap") return undefined;
  const numbers = error.message.match(/\d+/g);
  const last = numbers?.at(-1);
  return last === undefined ? 0 : Number(last);
}
