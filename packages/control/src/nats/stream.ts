/**
 * The control stream of a prefix, created or brought up to runctl's settings
 * idempotently: any number of clients may call ensureControlStream at once.
 * An existing stream is only ever made more capable, never less: limits larger
 * than runctl's defaults (an operator's choice for runs that need more) are
 * kept, and its subjects are never rewritten, so two prefixes whose names map
 * to the same stream (`team.a`, `team-a`) cannot take each other's stream
 * over: the second is refused. Fields runctl does not set (replicas,
 * placement, max_bytes …) are an operator's to choose and are left as they are.
 */

import {
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { ConfigError } from "@runctl/core";
import { connectNats } from "./connect.ts";
import type { NatsSettings } from "./settings.ts";
import { type ControlStreamConfig, controlStreamConfig, DEFAULT_PREFIX } from "./subjects.ts";

const STREAM_NOT_FOUND = 10059;
const STREAM_NAME_IN_USE = 10058;

export interface EnsureStreamOptions {
  /** Replicas when the stream is created (default 1); an existing stream keeps its own. */
  replicas?: number;
}

export async function ensureControlStream(
  jsm: JetStreamManager,
  prefix: string,
  options: EnsureStreamOptions = {},
): Promise<StreamInfo> {
  const want = controlStreamConfig(prefix);
  let info = await streamInfo(jsm, want.name);
  if (info === null) {
    try {
      return await jsm.streams.add({ ...want, num_replicas: options.replicas ?? 1 });
    } catch (error) {
      // Someone else created it first (with another config, or the server would have said yes).
      if (!(error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE)) throw error;
      info = await streamInfo(jsm, want.name);
      if (info === null) throw error;
    }
  }
  const { config } = info;
  if (config.storage !== want.storage || config.retention !== want.retention) {
    throw new ConfigError(
      `NATS stream ${want.name} exists with ${config.storage} storage and ${config.retention} retention; runctl needs file storage and limits retention`,
      {
        code: "nats_stream_incompatible",
        hint: `Delete it (\`nats stream rm ${want.name}\`) so runctl can create it, or use another nats.prefix.`,
      },
    );
  }
  const subjects = config.subjects ?? [];
  if (!want.subjects.every((subject) => subjects.includes(subject))) {
    throw new ConfigError(
      `NATS stream ${want.name} exists for other subjects (${subjects.join(", ")}), not ${want.subjects.join(", ")}`,
      {
        code: "nats_stream_conflict",
        hint: `Another prefix maps to the same stream name; choose a nats.prefix that differs in more than case, "." or "-", or add ${want.subjects.join(", ")} to the stream yourself.`,
      },
    );
  }
  const update = drift(config, want);
  if (update === undefined) return info;
  return await jsm.streams.update(want.name, update);
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | null> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) return null;
    throw error;
  }
}

/**
 * The fields to change so `have` offers at least what runctl needs, or
 * undefined when it does: limits are raised to runctl's when smaller (0 or -1
 * is "unlimited", never smaller), never lowered; direct get and rollups are
 * turned on; discard becomes `old` (a full stream must drop old commands, not
 * refuse new ones).
 */
function drift(have: StreamConfig, want: ControlStreamConfig): Partial<StreamConfig> | undefined {
  const update: Partial<StreamConfig> = {};
  if (smaller(have.max_age, want.max_age)) update.max_age = want.max_age;
  if (smaller(have.max_msgs_per_subject, want.max_msgs_per_subject)) {
    update.max_msgs_per_subject = want.max_msgs_per_subject;
  }
  if ((have.duplicate_window ?? 0) < want.duplicate_window) update.duplicate_window = want.duplicate_window;
  if (have.discard !== want.discard) update.discard = want.discard;
  if (have.allow_direct !== want.allow_direct) update.allow_direct = want.allow_direct;
  if (have.allow_rollup_hdrs !== want.allow_rollup_hdrs) update.allow_rollup_hdrs = want.allow_rollup_hdrs;
  return Object.keys(update).length > 0 ? update : undefined;
}

/** Whether limit `have` is below `want`; 0 and negative values mean unlimited. */
function smaller(have: number | undefined, want: number): boolean {
  if (have === undefined) return true;
  return have > 0 && have < want;
}

/**
 * Connects with `settings` (the launching side's own credentials), makes sure
 * the prefix's control stream exists, and disconnects: a machine whose
 * credential is scoped to its run may use the stream but not create it.
 */
export async function prepareControlStream(
  settings: NatsSettings,
  options: EnsureStreamOptions = {},
): Promise<void> {
  const nc = await connectNats(settings);
  try {
    await ensureControlStream(await jetstreamManager(nc), settings.prefix ?? DEFAULT_PREFIX, options);
  } finally {
    await nc.close();
  }
}
