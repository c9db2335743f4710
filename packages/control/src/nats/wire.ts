/**
 * Message bodies on the wire (docs/protocol.md, "Payloads"): standard msgpack
 * maps that carry `v`, the protocol version. Encoding goes through JSON first,
 * so only JSON's data model reaches the wire (nil, bool, int, float, str,
 * array, map with string keys) and a command means the same on NATS as in
 * `commands.jsonl`; msgpackr is configured to emit nothing but standard
 * msgpack (no records, no bundled strings, no extension types).
 *
 * Decoding accepts what any standard encoder writes for that model and turns
 * everything else into a reason, which the command path reports the way the
 * file queue reports a malformed line (docs/control.md, checks 1–3).
 */

import type { ControlEntry } from "@runctl/core";
import { Ack, Command, ControlDescriptor, MAX_JSON_DEPTH } from "@runctl/core";
import { Packr, Unpackr } from "msgpackr";
import { z } from "zod";
import { fallbackId, isPlainObject, malformed, parseCommandLine } from "../command-line.ts";
import { MAX_COMMAND_BYTES } from "../layout.ts";
import { PROTOCOL_VERSION } from "./subjects.ts";

/** Standard msgpack only: no records, bundled strings or extension types (telemetry.ts packs bytes with it too). */
export const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  bundleStrings: false,
  structuredClone: false,
  // fixmap for small maps, as most encoders write them (map16 is also standard, just longer).
  variableMapSize: true,
  encodeUndefinedAsNil: true,
});

// Maps come back as Map objects so their keys keep their msgpack type (a map
// with an integer key is not a JSON object) and a `__proto__` key stays data;
// 64-bit integers come back as BigInt so one beyond 2^53 is refused, not rounded.
const unpackr = new Unpackr({
  useRecords: false,
  moreTypes: false,
  bundleStrings: false,
  structuredClone: false,
  mapsAsObjects: false,
  int64AsType: "bigint",
});

/** `body` as a msgpack map with `v` first; throws TypeError for values JSON cannot hold (BigInt, cycles). */
export function encodeMessage(body: Record<string, unknown>): Uint8Array {
  return packr.pack({ v: PROTOCOL_VERSION, ...toJsonModel(body) });
}

/** A value reduced to JSON's data model, exactly as `JSON.stringify` would write it. */
export function toJsonModel<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export type Decoded = { ok: true; body: Record<string, unknown> } | { ok: false; reason: string };

/**
 * A message body to a map without `v`, or the reason it is not one this
 * client can read: not msgpack, a type outside JSON's model, not a map, `v`
 * missing or other than PROTOCOL_VERSION.
 */
export function decodeMessage(bytes: Uint8Array): Decoded {
  const first = decodeValue(bytes);
  if (!first.ok) return first;
  const { value } = first;
  if (!isPlainObject(value)) return { ok: false, reason: "not a map" };
  const version = versionIssue(value);
  if (version !== undefined) return { ok: false, reason: version };
  const { v: _v, ...body } = value;
  return { ok: true, body };
}

function decodeValue(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; reason: string } {
  if (bytes.length === 0) return { ok: false, reason: "empty payload" };
  let raw: unknown;
  try {
    raw = unpackr.unpack(bytes);
  } catch (error) {
    // A hostile nesting depth overflows the decoder's stack: that is a reason too.
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  try {
    return { ok: true, value: jsonModel(raw, 0) };
  } catch (error) {
    if (error instanceof OutsideJson) return { ok: false, reason: error.message };
    throw error;
  }
}

class OutsideJson extends Error {}

/**
 * A decoded msgpack value as the JSON value it stands for, or OutsideJson with
 * the reason it stands for none: non-string map keys, integers beyond 2^53
 * (they would be rounded), NaN/Infinity, binary, extension types, or nesting
 * deeper than MAX_JSON_DEPTH.
 */
function jsonModel(value: unknown, depth: number): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case "boolean":
    case "string":
      return value;
    case "number":
      // JSON has no NaN or Infinity, and consumers read commands as strict JSON.
      if (!Number.isFinite(value)) throw new OutsideJson("non-finite number");
      return value;
    case "bigint":
      if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new OutsideJson(`integer ${value} is beyond 2^53 and cannot be carried exactly`);
      }
      return Number(value);
    case "object":
      break;
    default:
      throw new OutsideJson(`unsupported msgpack value (${typeof value})`);
  }
  if (depth >= MAX_JSON_DEPTH) throw new OutsideJson(`nested more than ${MAX_JSON_DEPTH} levels deep`);
  if (Array.isArray(value)) return value.map((item) => jsonModel(item, depth + 1));
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of value) {
      if (typeof key !== "string") throw new OutsideJson("map keys must be strings");
      // defineProperty, so a key named `__proto__` is an ordinary key, as in JSON.parse.
      Object.defineProperty(out, key, {
        value: jsonModel(item, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  if (value instanceof Uint8Array) throw new OutsideJson("binary values are not allowed");
  throw new OutsideJson("extension types and reserved bytes are not allowed");
}

function versionIssue(map: Record<string, unknown>): string | undefined {
  if (!("v" in map)) return "missing protocol version";
  const { v } = map;
  if (v === PROTOCOL_VERSION) return undefined;
  return `unsupported protocol version ${typeof v === "number" ? String(v) : JSON.stringify(v)}`;
}

/** Core's Command as a consumer reads it: `path` is null for commands without one (`signal`). */
const ReadCommand = Command.extend({ path: z.string().nullable() });

/** A message of a run's command subject, read: its entry, and for a command the `commands.jsonl` line it stands for. */
export interface WireCommand {
  entry: ControlEntry;
  /**
   * The line (without newline) the bridge appends, for a message that passed
   * checks 1–5 (a command, or a map the ranks reject themselves): the map
   * without `v`, `id` filled in from the header.
   */
  line?: string;
}

/**
 * The entry of one message on a run's command subject at `seq`
 * (docs/protocol.md, "Reading"). Checks, in order:
 * 1. not decodable, outside JSON's data model (non-string keys, integers
 *    beyond 2^53, NaN, binary, ext, nesting over 64 levels) or trailing bytes;
 * 2. not a map; 3. `v` missing or not 1 → `malformed command: <reason>`, id
 *    the map's `id` when a non-empty string, else the `Nats-Msg-Id` header,
 *    else `seq-<seq>`;
 * then the command's id must be a valid NATS id (1–1024 characters, no
 * control characters; the header's when the map has none) and its line must
 * fit in 64 KiB: a consumer cannot apply, and the bridge cannot write, one
 * that does not. Anything else goes through `parseCommandLine` as the JSON line
 * it stands for, so a command means exactly what it would in `commands.jsonl`.
 */
export function decodeCommand(bytes: Uint8Array, seq: number, msgId?: string): WireCommand {
  const headerId = msgId !== undefined && msgId !== "" ? msgId : undefined;
  const decoded = decodeValue(bytes);
  if (!decoded.ok) return { entry: malformed(seq, headerId ?? fallbackId(seq), decoded.reason) };
  const { value } = decoded;
  if (!isPlainObject(value)) return { entry: malformed(seq, headerId ?? fallbackId(seq), "not a map") };
  const ownId = typeof value.id === "string" && value.id !== "" ? value.id : headerId;
  const version = versionIssue(value);
  if (version !== undefined) return { entry: malformed(seq, ownId ?? fallbackId(seq), version) };
  const { v: _v, ...body } = value;
  if (ownId === undefined || !isValidCommandId(ownId)) {
    const reason =
      ownId === undefined
        ? "missing id (the map's id or the Nats-Msg-Id header)"
        : "id must be 1–1024 characters without control characters";
    return { entry: malformed(seq, fallbackId(seq), reason) };
  }
  const line = JSON.stringify({ ...body, id: ownId });
  const bytesOfLine = Buffer.byteLength(line, "utf8") + 1;
  const entry = parseCommandLine(Buffer.from(line, "utf8"), seq);
  if (entry === undefined) return { entry: malformed(seq, ownId, "not a map") };
  if (bytesOfLine > MAX_COMMAND_BYTES) {
    return {
      entry: {
        kind: "malformed",
        seq,
        id: ownId,
        op: entry.kind === "command" ? entry.command.op : entry.op,
        path: entry.kind === "command" ? entry.command.path : entry.path,
        reason: `payload_too_large: the command is ${bytesOfLine} bytes as a commands.jsonl line; the limit is ${MAX_COMMAND_BYTES}`,
        fromObject: true,
      },
    };
  }
  // args not a list, kwargs not a map: every rank rejects the line itself (control.md checks 2–3).
  if (entry.kind !== "command") return { entry, line };
  const parsed = ReadCommand.safeParse(entry.command);
  if (!parsed.success) return { entry: malformed(seq, ownId, z.prettifyError(parsed.error)) };
  // The checked command itself, not zod's copy: a copy would drop a `__proto__` key.
  return { entry, line };
}

/** The entry alone (see decodeCommand). */
export function commandEntry(bytes: Uint8Array, seq: number, msgId?: string): ControlEntry {
  return decodeCommand(bytes, seq, msgId).entry;
}

/** 1–1024 characters, none of them a control character: a command id fits the Nats-Msg-Id header. */
export function isValidCommandId(id: string): boolean {
  if (id.length === 0 || id.length > MAX_ID_LENGTH) return false;
  for (let i = 0; i < id.length; i++) {
    const code = id.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return false;
  }
  return true;
}

/** Longest command id: it travels in the `Nats-Msg-Id` header. */
export const MAX_ID_LENGTH = 1024;

/** An ack message, or undefined for a message that is not one (skipped by readers, as in `acks.jsonl`). */
export function decodeAck(bytes: Uint8Array): Ack | undefined {
  const decoded = decodeMessage(bytes);
  if (!decoded.ok) return undefined;
  const parsed = Ack.safeParse(decoded.body);
  return parsed.success ? parsed.data : undefined;
}

/** The body of a controls message (docs/protocol.md, "Controls"); unknown keys are kept. */
export const ControlsMessage = z
  .object({
    controls: z.array(z.object(ControlDescriptor.shape)),
    updated_at: z.string().optional(),
    pid: z.number().optional(),
    host: z.string().optional(),
  })
  .loose();
export type ControlsMessage = z.infer<typeof ControlsMessage>;

export function decodeControls(
  bytes: Uint8Array,
): { ok: true; message: ControlsMessage } | { ok: false; reason: string } {
  const decoded = decodeMessage(bytes);
  if (!decoded.ok) return decoded;
  const parsed = ControlsMessage.safeParse(decoded.body);
  if (!parsed.success) return { ok: false, reason: z.prettifyError(parsed.error) };
  return { ok: true, message: parsed.data };
}

/** What a run's bridge says about it: its commands are consumed (`running`) or no longer (`ended`). */
export const RunState = z.enum(["running", "ended"]);
export type RunState = z.infer<typeof RunState>;

/** The body of a run state message (docs/protocol.md, "Run state"); unknown keys are kept. */
export const RunStateMessage = z
  .object({ state: RunState, ts: z.number(), pid: z.number().optional(), host: z.string().optional() })
  .loose();
export type RunStateMessage = z.infer<typeof RunStateMessage>;

/** A run state message, or undefined for one this client cannot read (a newer state, another version). */
export function decodeRunState(bytes: Uint8Array): RunStateMessage | undefined {
  const decoded = decodeMessage(bytes);
  if (!decoded.ok) return undefined;
  const parsed = RunStateMessage.safeParse(decoded.body);
  return parsed.success ? parsed.data : undefined;
}
