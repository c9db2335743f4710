/**
 * Run sync through a presigned POST policy: what a remote agent holds
 * instead of a store key. The policy lets it write objects under one run's
 * prefix, each up to a size, until it expires; it cannot read, list or
 * delete. The objects it writes use StoreRunSync's layout, so
 * `readStoredRunFile` and the read side read them with no change:
 *
 * - an append-only file is segments `<prefix>/<path>.segments/<offset>`.
 *   Unable to delete, a resend from an earlier offset (an agent restarted
 *   without its state) leaves overlapping segments, which the reader joins
 *   byte for byte, so no metric is ever read twice;
 * - any other file is one object `<prefix>/<path>`, replaced whole by one
 *   POST (so at most the policy's `maxBytes`);
 * - where the store is (bytes held per append-only file) cannot be asked of
 *   the store, so it is kept in a small state file in the run directory's
 *   agent-private area, rewritten atomically after every acknowledged POST.
 *
 * No SDK: plain `fetch` and `FormData`, so the agent bundle stays small.
 */
import { mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { assertSafeKey, PresignedPost } from "./artifacts.ts";
import { ConfigError, ProviderError, type RunctlErrorOptions } from "./errors.ts";
import { writeJsonAtomicSync } from "./files/atomic-write.ts";
import { isErrno } from "./files/errno.ts";
import { type ChunkReader, RunSyncGapError, type RunSyncTarget, storedSegmentKey } from "./run-sync.ts";

/** The run directory's agent-private area: never synced, never read by anyone but the agent. */
export const RUN_SYNC_PRIVATE_DIR = ".sync";

/** Where a PostPolicyRunSync for `runDir` keeps what the store holds. */
export function postSyncStateFile(runDir: string): string {
  return join(runDir, RUN_SYNC_PRIVATE_DIR, "post-state.json");
}

const PostSyncState = z
  .object({
    version: z.literal(1),
    /** The policy's prefix the counts are for: another prefix starts from nothing. */
    keyPrefix: z.string(),
    /** Bytes of each append-only file the store has acknowledged, from 0 without a gap. */
    held: z.record(z.string(), z.number().int().nonnegative()),
  })
  .strict();
type PostSyncState = z.infer<typeof PostSyncState>;

export interface PostPolicyRunSyncOptions {
  /** The policy to write with; `renew()` replaces it. */
  policy: PresignedPost;
  /** The state file (`postSyncStateFile(runDir)`): where a restarted agent continues. */
  stateFile: string;
  /**
   * Called once per policy, on a send, when the policy expires within
   * `renewBeforeMs`: the host asks for a fresh one (over NATS) and calls `renew`.
   */
  onExpiring?: (msLeft: number) => void;
  /** Default 10 minutes. */
  renewBeforeMs?: number;
  /** Per POST; default 5 minutes (a 16 MiB chunk on a slow uplink). A timeout is transient. */
  requestTimeoutMs?: number;
}

/** Why a POST failed; `transient` ones are retried after a pause or a renewed policy, with nothing lost. */
export class PostPolicySyncError extends ProviderError {
  readonly transient: boolean;
  /** The S3 error code, where the store sent one. */
  readonly s3Code: string | undefined;
  readonly status: number | undefined;

  constructor(
    message: string,
    options: RunctlErrorOptions & { transient: boolean; s3Code?: string; status?: number },
  ) {
    super(message, options);
    this.transient = options.transient;
    this.s3Code = options.s3Code;
    this.status = options.status;
  }
}

export class PostPolicyRunSync implements RunSyncTarget {
  readonly #stateFile: string;
  readonly #onExpiring: ((msLeft: number) => void) | undefined;
  readonly #renewBeforeMs: number;
  readonly #timeoutMs: number;
  #policy: PresignedPost;
  #warned = false;
  #held: Map<string, number> | undefined;

  constructor(options: PostPolicyRunSyncOptions) {
    this.#policy = PresignedPost.parse(options.policy);
    this.#stateFile = options.stateFile;
    this.#onExpiring = options.onExpiring;
    this.#renewBeforeMs = options.renewBeforeMs ?? 10 * 60_000;
    this.#timeoutMs = options.requestTimeoutMs ?? 5 * 60_000;
  }

  get location(): string {
    return `${this.#policy.url.replace(/\/+$/, "")}/${this.#base}`;
  }

  /** When the current policy stops working (ISO 8601). */
  get expiresAt(): string {
    return this.#policy.expiresAt;
  }

  /**
   * Swaps in a fresh policy for the same prefix (sends after this use it);
   * sends refused as expired are retried by the caller with nothing lost.
   */
  renew(policy: PresignedPost): void {
    const next = PresignedPost.parse(policy);
    if (trimSlashes(next.keyPrefix) !== this.#base) {
      throw new ConfigError(
        `A renewed POST policy is for "${next.keyPrefix}", not this run's "${this.#policy.keyPrefix}"`,
        {
          code: "post_policy_prefix",
          hint: "Renew with a policy made for the same run prefix (ArtifactStore.presignPost of the run's prefix).",
        },
      );
    }
    this.#policy = next;
    this.#warned = false;
  }

  async heldBytes(): Promise<Record<string, number>> {
    this.#held = await this.#readState();
    return Object.fromEntries(this.#held);
  }

  async append(path: string, offset: number, data: Uint8Array): Promise<void> {
    assertSafeKey(path);
    const held = await this.#heldMap();
    const has = held.get(path) ?? 0;
    if (offset > has) throw new RunSyncGapError(path, has, offset);
    // One POST carries at most maxBytes: a larger chunk goes as several segments.
    const step = Math.max(1, this.#policy.maxBytes);
    let at = 0;
    do {
      const piece = data.subarray(at, at + step);
      await this.#post(storedSegmentKey(this.#base, path, offset + at), piece, path);
      at += piece.byteLength;
      // What the sender resent from here is now what the store has (the contract's "replaces from there").
      held.set(path, offset + at);
      this.#writeState(held);
    } while (at < data.byteLength);
  }

  async replace(path: string, size: number, read: ChunkReader): Promise<void> {
    assertSafeKey(path);
    const max = this.#policy.maxBytes;
    if (size > max) {
      throw new PostPolicySyncError(
        `${path} is ${size} bytes; the run's POST policy allows at most ${max} bytes per object`,
        {
          code: "sync_too_large",
          transient: false,
          hint: "Large files (checkpoints) are not the run sync's job: upload them through the checkpoint store, or issue the policy with a larger maxBytes.",
          details: { path, size, maxBytes: max },
        },
      );
    }
    const parts: Uint8Array[] = [];
    let offset = 0;
    while (offset < size) {
      const chunk = await read(offset, size - offset);
      if (chunk.byteLength === 0) break;
      parts.push(chunk);
      offset += chunk.byteLength;
    }
    await this.#post(`${this.#base}/${path}`, Buffer.concat(parts), path);
  }

  isTransient(error: unknown): boolean {
    return error instanceof PostPolicySyncError && error.transient;
  }

  get #base(): string {
    return trimSlashes(this.#policy.keyPrefix);
  }

  async #heldMap(): Promise<Map<string, number>> {
    this.#held ??= await this.#readState();
    return this.#held;
  }

  async #readState(): Promise<Map<string, number>> {
    let text: string;
    try {
      text = await readFile(this.#stateFile, "utf8");
    } catch (error) {
      if (isErrno(error, "ENOENT")) return new Map();
      throw error;
    }
    let state: PostSyncState;
    try {
      state = PostSyncState.parse(JSON.parse(text));
    } catch {
      // Unreadable state costs a resend from 0, never a duplicate: the reader joins overlaps.
      return new Map();
    }
    return trimSlashes(state.keyPrefix) === this.#base ? new Map(Object.entries(state.held)) : new Map();
  }

  #writeState(held: Map<string, number>): void {
    const state: PostSyncState = {
      version: 1,
      keyPrefix: this.#policy.keyPrefix,
      held: Object.fromEntries(held),
    };
    mkdirSync(dirname(this.#stateFile), { recursive: true });
    // Atomic but not fsynced: after a power loss an older or missing state only
    // makes the agent resend bytes the store has, which readers join away. The
    // two fsyncs per POST cost more than the POST itself (bench/run-sync).
    writeJsonAtomicSync(this.#stateFile, state, { durable: false });
  }

  async #post(key: string, body: Uint8Array, path: string): Promise<void> {
    const policy = this.#policy;
    const msLeft = Date.parse(policy.expiresAt) - Date.now();
    if (!this.#warned && msLeft <= this.#renewBeforeMs) {
      this.#warned = true;
      this.#onExpiring?.(msLeft);
    }
    const form = new FormData();
    for (const [name, value] of Object.entries(policy.fields)) form.append(name, value);
    form.set("key", key);
    // The file goes last: S3 ignores fields after it.
    form.append("file", new Blob([body as Uint8Array<ArrayBuffer>]), key.slice(key.lastIndexOf("/") + 1));
    let response: Response;
    try {
      response = await fetch(policy.url, {
        method: "POST",
        body: form,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new PostPolicySyncError(`Could not reach the store at ${policy.url} to write ${path}`, {
        code: "store_unreachable",
        transient: true,
        hint: "Sync resumes when the store is reachable again; nothing is lost.",
        cause: error,
      });
    }
    if (response.ok) {
      await response.body?.cancel();
      return;
    }
    throw await refusal(response.status, await response.text().catch(() => ""), key, path, policy);
  }
}

const S3ErrorBody = z.object({
  Error: z.object({ Code: z.string(), Message: z.string().optional() }),
});

type XmlParser = { parse(text: string): unknown };
let xml: Promise<XmlParser> | undefined;

/**
 * S3's `<Error><Code>…</Code><Message>…</Message></Error>`, or nothing where
 * the body is not one. fast-xml-parser (what the AWS SDK and our S3 emulator
 * use) is loaded on the first error only: it is most of a 150 KB addition to
 * the agent bundle that a healthy sync never needs at start.
 */
export async function parseS3ErrorBody(
  text: string,
): Promise<{ code: string; message: string | undefined } | undefined> {
  xml ??= import("fast-xml-parser").then(
    ({ XMLParser }) => new XMLParser({ parseTagValue: false, ignoreAttributes: true, processEntities: true }),
  );
  try {
    const parsed = S3ErrorBody.safeParse((await xml).parse(text));
    return parsed.success ? { code: parsed.data.Error.Code, message: parsed.data.Error.Message } : undefined;
  } catch {
    return undefined;
  }
}

async function refusal(
  status: number,
  text: string,
  key: string,
  path: string,
  policy: PresignedPost,
): Promise<PostPolicySyncError> {
  const body = await parseS3ErrorBody(text);
  const s3Code = body?.code;
  const said = body?.message ?? (text.slice(0, 200) || `HTTP ${status}`);
  const base = { s3Code, status, details: { key, path, status, s3Code, keyPrefix: policy.keyPrefix } };
  // S3 answers an expired policy with 403 AccessDenied "Invalid according to Policy: Policy expired.";
  // the temporary credential that signed it expiring reads ExpiredToken. Either way a renewal fixes it.
  if (s3Code === "ExpiredToken" || (s3Code === "AccessDenied" && /policy expired/i.test(said))) {
    return new PostPolicySyncError(`The run's POST policy has expired (it ran until ${policy.expiresAt})`, {
      ...base,
      code: "post_policy_expired",
      transient: true,
      hint: "The agent asks for a fresh policy before expiry; sync resumes with it and nothing is lost.",
    });
  }
  if (status >= 500 || s3Code === "SlowDown") {
    return new PostPolicySyncError(
      `The store could not take ${path} now (${status} ${s3Code ?? ""}): ${said}`,
      {
        ...base,
        code: status === 503 || s3Code === "SlowDown" ? "throttled" : "store_unavailable",
        transient: true,
        hint: "Sync retries later; nothing is lost.",
      },
    );
  }
  if (s3Code === "EntityTooLarge") {
    return new PostPolicySyncError(
      `${path}: the store refused ${key} as larger than the POST policy allows (${policy.maxBytes} bytes)`,
      { ...base, code: "sync_too_large", transient: false, hint: "Issue the policy with a larger maxBytes." },
    );
  }
  return new PostPolicySyncError(
    `The store refused ${key} under the run's POST policy (it allows keys under "${policy.keyPrefix}"): ${said}`,
    {
      ...base,
      code: "post_policy_refused",
      transient: false,
      hint: `The policy writes only keys that start with "${policy.keyPrefix}", each up to ${policy.maxBytes} bytes, until ${policy.expiresAt}.`,
    },
  );
}

function trimSlashes(prefix: string): string {
  return prefix.replace(/\/+$/, "");
}
