/**
 * Telemetry of a run that is not on this disk (docs/protocol.md,
 * "Telemetry"): the agent publishes the growth of `output.log` and
 * `metrics.jsonl` by byte offset, the run's status when it changes, and
 * heartbeats, on plain NATS subjects (no stream: the run directory synced to
 * the store is the durable copy). Offsets make the stream idempotent and
 * gap-aware: a follower keeps what it has, drops what it has seen, and knows
 * exactly which bytes to fetch from the store when it missed some (it
 * started late, or the server was down).
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { RunStatus, type RunSyncTarget, TERMINAL_STATUSES, UserError } from "@runctl/core";
import { Unpackr } from "msgpackr";
import { z } from "zod";
import { connectionState } from "./connection-state.ts";
import { hostSubjectBase, PROTOCOL_VERSION, type TelemetrySubjects, telemetrySubjects } from "./subjects.ts";
import { packr } from "./wire.ts";

/** Files whose growth travels as telemetry; everything else waits for the store. */
export const TELEMETRY_FILES = ["output.log", "metrics.jsonl"] as const;
export type TelemetryFile = (typeof TELEMETRY_FILES)[number];

/** Below NATS's default 1 MiB max_payload with room for the envelope. */
export const MAX_TELEMETRY_CHUNK = 256 * 1024;

export interface HostSubjects {
  /** `<prefix>.host.<host>.inbox`: requests to start a run on a live machine. */
  inbox: string;
  /** `<prefix>.host.<host>.status`: the machine's state (busy, idle, shutting down). */
  status: string;
}

export function hostSubjects(prefix: string, hostId: string): HostSubjects {
  const base = hostSubjectBase(prefix, hostId);
  return { inbox: `${base}.inbox`, status: `${base}.status` };
}

// Chunks carry raw bytes as msgpack bin (standard msgpack, any library reads
// it): output is bytes, and a chunk may end inside a UTF-8 character. So they
// are packed as they are, not through JSON as commands are (wire.ts).
const unpackr = new Unpackr({
  useRecords: false,
  moreTypes: false,
  bundleStrings: false,
  mapsAsObjects: true,
});

const Version = z.literal(PROTOCOL_VERSION);
const Bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, "expected bytes");

export const TelemetryChunk = z.object({
  v: Version,
  file: z.enum(TELEMETRY_FILES),
  offset: z.number().int().nonnegative(),
  data: Bytes,
});
export type TelemetryChunk = z.infer<typeof TelemetryChunk>;

export const TelemetryStatus = z.object({
  v: Version,
  status: RunStatus,
  at: z.string(),
  exit_code: z.number().int().nullish(),
  host: z.string().optional(),
  /** Final sizes of the telemetry files: a follower knows when it has everything. */
  sizes: z.record(z.string(), z.number().int().nonnegative()).optional(),
});
export type TelemetryStatus = z.infer<typeof TelemetryStatus>;

export const TelemetryHeartbeat = z.object({
  v: Version,
  at: z.string(),
  host: z.string(),
  status: RunStatus,
});
export type TelemetryHeartbeat = z.infer<typeof TelemetryHeartbeat>;

export function encodeTelemetry(body: TelemetryChunk | TelemetryStatus | TelemetryHeartbeat): Uint8Array {
  return packr.pack(body);
}

function decode<T>(schema: z.ZodType<T>, bytes: Uint8Array): T | undefined {
  try {
    const parsed = schema.safeParse(unpackr.unpack(bytes));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function disconnected(): UserError {
  return new UserError("NATS is disconnected; telemetry resumes from the same offset", {
    code: "nats_disconnected",
  });
}

/**
 * The publishing side, as a run-sync target: RunDirSync (with
 * `only: isTelemetryFile`) sends each file's growth here by offset, and
 * meta.json whole, from which the status is published when it changes (the
 * end only by publishEnd, after the last pass, with the final sizes). While
 * the connection is down every send fails as transient, so RunDirSync sends
 * the same bytes again once it is back: nothing is skipped, and a follower
 * that saw them already drops them by offset.
 */
export class NatsTelemetry implements RunSyncTarget {
  readonly location: string;
  readonly subjects: TelemetrySubjects;
  readonly #nc: NatsConnection;
  readonly #host: string;
  #status: RunStatus | undefined;
  #sizes: Record<string, number> = {};

  constructor(nc: NatsConnection, prefix: string, runId: string, host: string) {
    this.#nc = nc;
    this.#host = host;
    this.subjects = telemetrySubjects(prefix, runId);
    this.location = `nats:${this.subjects.out}`;
  }

  /** The last status published from meta.json (undefined before the first). */
  get status(): RunStatus | undefined {
    return this.#status;
  }

  async heldBytes(): Promise<Record<string, number>> {
    return {};
  }

  async append(path: string, offset: number, data: Uint8Array): Promise<void> {
    const file = TELEMETRY_FILES.find((name) => name === path);
    if (file === undefined) return;
    for (let at = 0; at < data.byteLength || (at === 0 && data.byteLength === 0); at += MAX_TELEMETRY_CHUNK) {
      this.#publish(
        this.subjects.out,
        encodeTelemetry({
          v: PROTOCOL_VERSION,
          file,
          offset: offset + at,
          data: data.subarray(at, at + MAX_TELEMETRY_CHUNK),
        }),
      );
      if (data.byteLength === 0) break;
    }
    this.#sizes[file] = offset + data.byteLength;
  }

  async replace(path: string, size: number, read: (offset: number, length: number) => Promise<Uint8Array>) {
    if (path !== "meta.json" || size > 1024 * 1024) return;
    const meta = MetaStatus.safeParse(parseJson(Buffer.from(await read(0, size)).toString("utf8")));
    if (!meta.success || meta.data.status === this.#status) return;
    // The end goes out once, from publishEnd after the last pass: sent from here it could precede
    // output of the same pass (meta.json may be listed first), and a follower would stop short.
    if (TERMINAL_STATUSES.has(meta.data.status)) return;
    this.#publishStatus(meta.data.status, meta.data.exit_code ?? null);
  }

  /**
   * The run's end, with the final sizes, once every byte was sent: waits (at most `waitMs`) for
   * a connection that is down, so followers are not left waiting for an end never sent. False
   * when it could not be sent; followers then learn it from the store copy.
   */
  async publishEnd(status: RunStatus, exitCode: number | null, waitMs = 60_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const up = await Promise.race([
      connectionState(this.#nc)
        .whenConnected()
        .then(
          () => true,
          () => false,
        ),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), waitMs);
      }),
    ]);
    clearTimeout(timer);
    if (!up) return false;
    this.#publishStatus(status, exitCode);
    await this.#nc.flush().catch(() => undefined);
    return true;
  }

  #publishStatus(status: RunStatus, exitCode: number | null): void {
    this.#status = status;
    this.#publish(
      this.subjects.status,
      encodeTelemetry({
        v: PROTOCOL_VERSION,
        status,
        at: new Date().toISOString(),
        exit_code: exitCode,
        host: this.#host,
        ...(TERMINAL_STATUSES.has(status) ? { sizes: { ...this.#sizes } } : {}),
      }),
    );
  }

  heartbeat(): void {
    if (!connectionState(this.#nc).connected) return;
    this.#publish(
      this.subjects.hb,
      encodeTelemetry({
        v: PROTOCOL_VERSION,
        at: new Date().toISOString(),
        host: this.#host,
        status: this.#status ?? "running",
      }),
    );
  }

  isTransient(error: unknown): boolean {
    return (error as { code?: unknown } | undefined)?.code === "nats_disconnected";
  }

  #publish(subject: string, payload: Uint8Array): void {
    // nats.js drops what is published while disconnected: fail, so the bytes are sent again.
    if (!connectionState(this.#nc).connected) throw disconnected();
    this.#nc.publish(subject, payload);
  }
}

export function isTelemetryFile(path: string): boolean {
  return path === "meta.json" || (TELEMETRY_FILES as readonly string[]).includes(path);
}

const MetaStatus = z.object({ status: RunStatus, exit_code: z.number().int().nullish() });

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface TelemetryHandlers {
  /** New bytes of `file` from `offset` (never bytes delivered before; `offset` may skip ahead: a gap). */
  onBytes?: (file: TelemetryFile, offset: number, data: Uint8Array) => void;
  onStatus?: (status: TelemetryStatus) => void;
  onHeartbeat?: (beat: TelemetryHeartbeat) => void;
}

export interface TelemetryFollower {
  /** Bytes of each file delivered so far (contiguous from where following started). */
  readonly received: Readonly<Record<string, number>>;
  /** Counts bytes already had by other means (the store), so telemetry continues after them. */
  skipTo(file: TelemetryFile, offset: number): void;
  stop(): void;
}

/**
 * Follows a run's telemetry. Each file's bytes are delivered once, in order:
 * a chunk that overlaps what was delivered is trimmed, one entirely seen is
 * dropped; a chunk past the end is delivered as it is (the caller sees the
 * gap in `offset` and may fill it from the store first).
 */
export function followTelemetry(
  nc: NatsConnection,
  prefix: string,
  runId: string,
  handlers: TelemetryHandlers,
): TelemetryFollower {
  const subjects = telemetrySubjects(prefix, runId);
  const received: Record<string, number> = {};
  const subs: Subscription[] = [];
  const listen = (subject: string, on: (bytes: Uint8Array) => void) => {
    subs.push(nc.subscribe(subject, { callback: (_error, msg) => on(msg.data) }));
  };
  listen(subjects.out, (bytes) => {
    const chunk = decode(TelemetryChunk, bytes);
    if (chunk === undefined) return;
    const had = received[chunk.file];
    const end = chunk.offset + chunk.data.byteLength;
    if (had !== undefined && end <= had) return;
    const from = had !== undefined && chunk.offset < had ? had : chunk.offset;
    received[chunk.file] = end;
    handlers.onBytes?.(chunk.file, from, chunk.data.subarray(from - chunk.offset));
  });
  listen(subjects.status, (bytes) => {
    const status = decode(TelemetryStatus, bytes);
    if (status) handlers.onStatus?.(status);
  });
  listen(subjects.hb, (bytes) => {
    const beat = decode(TelemetryHeartbeat, bytes);
    if (beat) handlers.onHeartbeat?.(beat);
  });
  return {
    received,
    skipTo(file, offset) {
      received[file] = Math.max(received[file] ?? 0, offset);
    },
    stop() {
      for (const sub of subs) sub.unsubscribe();
    },
  };
}
