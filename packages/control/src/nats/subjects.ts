/**
 * Names on the wire (docs/protocol.md, "Subjects" and "Stream"): the subjects
 * of one run under the configured prefix, the one stream that captures them,
 * and the stream's configuration. Pure functions, so every client derives the
 * same names from the same prefix and run id.
 */
import { ConfigError, UserError } from "@runctl/core";

export const DEFAULT_PREFIX = "runctl";

/** Every message carries `v`; a consumer treats any other value as a message it cannot read. */
export const PROTOCOL_VERSION = 1;

/** Stream limits (docs/protocol.md, "Stream"). */
export const STREAM_LIMITS = Object.freeze({
  maxAgeMs: 7 * 24 * 60 * 60 * 1000,
  maxMsgsPerSubject: 100_000,
  duplicateWindowMs: 2 * 60 * 1000,
});

export interface RunSubjects {
  /** `<prefix>.ctl.<run>.cmd`: the run's commands, in its one total order. */
  commands: string;
  /** `<prefix>.ctl.<run>.ack`: every rank's acks. */
  acks: string;
  /** `<prefix>.ctl.<run>.controls`: the registered controls; the last message is the current value. */
  controls: string;
  /** `<prefix>.ctl.<run>.state`: whether the run's commands are still consumed; the last message is the current value. */
  state: string;
}

// A subject token is any run of printable characters without `.`, `*`, `>` or whitespace;
// the prefix keeps to a conservative subset so it is also safe in a stream name.
const PREFIX_TOKEN = /^[A-Za-z0-9_-]+$/;

/** Checks a subject prefix (`runctl`, `team.a`): dot-separated tokens of `[A-Za-z0-9_-]`. */
export function validatePrefix(prefix: string): string {
  if (prefix === "" || !prefix.split(".").every((token) => PREFIX_TOKEN.test(token))) {
    throw new ConfigError(`NATS subject prefix ${JSON.stringify(prefix)} is not valid`, {
      code: "nats_prefix_invalid",
      hint: 'Use dot-separated tokens of letters, digits, "_" and "-", e.g. "runctl" or "team.runctl".',
    });
  }
  return prefix;
}

/** `<prefix>.ctl.>`: what the control stream captures. */
export function controlSubjects(prefix: string): string {
  return `${validatePrefix(prefix)}.ctl.>`;
}

/**
 * The stream of a prefix: upper-cased, every character outside `[A-Z0-9_]`
 * replaced by `_`, then `_CTL` (`runctl` → `RUNCTL_CTL`, `team.a` → `TEAM_A_CTL`).
 */
export function streamName(prefix: string): string {
  return `${validatePrefix(prefix)
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, "_")}_CTL`;
}

/**
 * A run id as one subject token: every UTF-8 byte outside `[A-Za-z0-9_-]` is
 * written `%XX` (upper-case hex). runctl's ids (`20261122-210037-a1b2c3`) are
 * their own token; `exp.1` becomes `exp%2E1`.
 */
export function runToken(runId: string): string {
  if (runId === "") {
    throw new UserError("a run id cannot be empty", { code: "run_id_invalid" });
  }
  let token = "";
  for (const byte of new TextEncoder().encode(runId)) {
    const ch = String.fromCharCode(byte);
    token += /[A-Za-z0-9_-]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return token;
}

export function runSubjects(prefix: string, runId: string): RunSubjects {
  const base = `${validatePrefix(prefix)}.ctl.${runToken(runId)}`;
  return {
    commands: `${base}.cmd`,
    acks: `${base}.ack`,
    controls: `${base}.controls`,
    state: `${base}.state`,
  };
}

export interface TelemetrySubjects {
  /** `<prefix>.tel.<run>.out`: growth of output.log and metrics.jsonl, by offset (telemetry.ts). */
  out: string;
  /** `<prefix>.tel.<run>.status`: the run's status when it changes. */
  status: string;
  /** `<prefix>.tel.<run>.hb`: the agent's heartbeats. */
  hb: string;
  /** `<prefix>.tel.<run>.renew`: requests (with a reply subject) to renew the run's credentials and policies. */
  renew: string;
}

/** The subjects a run's agent publishes telemetry on, under `<prefix>.tel.<run>`. */
export function telemetrySubjects(prefix: string, runId: string): TelemetrySubjects {
  const base = `${validatePrefix(prefix)}.tel.${runToken(runId)}`;
  return { out: `${base}.out`, status: `${base}.status`, hb: `${base}.hb`, renew: `${base}.renew` };
}

/**
 * `<prefix>.host.<host>`: the subjects of one machine (its inbox for the next
 * run, its heartbeats) live below it. The host id is one token, written as a
 * run id is.
 */
export function hostSubjectBase(prefix: string, hostId: string): string {
  return `${validatePrefix(prefix)}.host.${runToken(hostId)}`;
}

/**
 * The reply-inbox prefix of a connection that holds a run's credentials
 * (`_INBOX_<run>`): its credentials let it subscribe below this prefix
 * only, so no other run's client can read its replies, nor it theirs.
 */
export function runInboxPrefix(runId: string): string {
  return `_INBOX_${runToken(runId)}`;
}

/** Nanoseconds, as the JetStream API counts durations. */
export function nanos(ms: number): number {
  return ms * 1_000_000;
}

/** The fields runctl sets on its stream; anything else an operator set is left alone on update. */
export interface ControlStreamConfig {
  name: string;
  subjects: string[];
  retention: "limits";
  storage: "file";
  discard: "old";
  max_age: number;
  max_msgs_per_subject: number;
  duplicate_window: number;
  allow_direct: boolean;
  allow_rollup_hdrs: boolean;
}

export function controlStreamConfig(prefix: string): ControlStreamConfig {
  return {
    name: streamName(prefix),
    subjects: [controlSubjects(prefix)],
    retention: "limits",
    storage: "file",
    discard: "old",
    max_age: nanos(STREAM_LIMITS.maxAgeMs),
    max_msgs_per_subject: STREAM_LIMITS.maxMsgsPerSubject,
    duplicate_window: nanos(STREAM_LIMITS.duplicateWindowMs),
    allow_direct: true,
    allow_rollup_hdrs: true,
  };
}
