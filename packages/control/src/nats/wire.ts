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
import { Ack, Command, ControlDescriptor } from "@runctl/core";
import { Packr, Unpackr } from "msgpackr";
import { z } from "zod";
import { fallbackId, isPlainObject, malformed, parseCommandLine } from "../command-line.ts";
import { PROTOCOL_VERSION } from "./subjects.ts";

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  bundleStrings: false,
  structuredClone: false,
  // fixmap for small maps, as most encoders write them (map16 is also standard, just longer).
  variableMapSize: true,
  encodeUndefinedAsNil: true,
});

const unpackr = new Unpackr({
  useRecords: false,
  moreTypes: false,
  bundleStrings: false,
  structuredClone: false,
  mapsAsObjects: true,
  int64AsType: "number",
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
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  const issue = modelIssue(value, 0);
  return issue === undefined ? { ok: true, value } : { ok: false, reason: issue };
}

const MAX_DEPTH = 256;

/** Why a decoded value is outside JSON's data model, or undefined when it is inside. */
function modelIssue(value: unknown, depth: number): string | undefined {
  if (depth > MAX_DEPTH) return "nested too deeply";
  if (value === null) return undefined;
  switch (typeof value) {
    case "boolean":
    case "string":
      return undefined;
    case "number":
      // JSON has no NaN or Infinity, and consumers read commands as strict JSON.
      return Number.isFinite(value) ? undefined : "non-finite number";
    case "bigint":
      return "integer out of range";
    case "object":
      break;
    default:
      return `unsupported msgpack value (${typeof value})`;
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      const issue = modelIssue(item, depth + 1);
      if (issue !== undefined) return issue;
    }
    return undefined;
  }
  if (value instanceof Uint8Array) return "binary values are not allowed";
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    return "extension types and reserved bytes are not allowed";
  }
  for (const item of Object.values(value)) {
    const issue = modelIssue(item, depth + 1);
    if (issue !== undefined) return issue;
  }
  return undefined;
}

function versionIssue(map: Record<string, unknown>): string | undefined {
  if (!("v" in map)) return "missing protocol version";
  const { v } = map;
  if (v === PROTOCOL_VERSION) return undefined;
  return `unsupported protocol version ${typeof v === "number" ? String(v) : JSON.stringify(v)}`;
}

/** Core's Command as a consumer reads it: `path` is null for commands without one (`signal`). */
const ReadCommand = Command.extend({ path: z.string().nullable() });

/**
 * The entry of one message on a run's command subject at `seq`. A message
 * that cannot be decoded, holds something outside JSON's data model, is not
 * a map, or has a protocol version other than 1 is `malformed command:
 * <reason>` (check 1); its id is the map's `id` when that is a non-empty
 * string, else the `Nats-Msg-Id` header, else `seq-<seq>`. Any other map goes
 * through `parseCommandLine` as the JSON line it stands for, so a command
 * means exactly what it would in `commands.jsonl`.
 */
export function commandEntry(bytes: Uint8Array, seq: number, msgId?: string): ControlEntry {
  const headerId = msgId !== undefined && msgId !== "" ? msgId : fallbackId(seq);
  const decoded = decodeValue(bytes);
  if (!decoded.ok) return malformed(seq, headerId, decoded.reason);
  const { value } = decoded;
  if (!isPlainObject(value)) return malformed(seq, headerId, "not a map");
  const id = typeof value.id === "string" && value.id !== "" ? value.id : headerId;
  const version = versionIssue(value);
  if (version !== undefined) return malformed(seq, id, version);
  const { v: _v, ...line } = value;
  const entry = parseCommandLine(Buffer.from(JSON.stringify(line), "utf8"), seq);
  if (entry === undefined) return malformed(seq, id, "not a map");
  if (entry.kind !== "command") return entry;
  const parsed = ReadCommand.safeParse(entry.command);
  if (!parsed.success) return malformed(seq, id, z.prettifyError(parsed.error));
  return { kind: "command", seq, command: parsed.data };
}

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
