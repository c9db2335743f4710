/**
 * One complete line of `commands.jsonl` to an entry. The checks that do not
 * depend on what is registered happen here, in docs/control.md's order: a line
 * that is not a JSON object (check 1), `args` not a list (2), `kwargs` not an
 * object (3). Op and path are left to the consumer (checks 4–5), so the
 * supervisor's `signal` command, which has no path, still reads as a command.
 */
import { type ControlCommand, type ControlEntry, jsonDepth, MAX_JSON_DEPTH } from "@runctl/core";

const utf8 = new TextDecoder("utf-8", { fatal: true });
/** The first `"id": "<string>"` of a line that is not JSON. */
const ID_FIELD = /"id"\s*:\s*("(?:[^"\\]|\\.)*")/;

/** The entry of one line (without its `\n`) at `seq`, or undefined for a blank line. */
export function parseCommandLine(bytes: Uint8Array, seq: number): ControlEntry | undefined {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return malformed(
      seq,
      idFromText(Buffer.from(bytes).toString("utf8")) ?? fallbackId(seq),
      "invalid UTF-8",
    );
  }
  if (text.trim() === "") return undefined;

  let value: unknown;
  try {
    // Strict JSON, as publishers write it: NaN/Infinity make a line malformed.
    value = JSON.parse(text);
  } catch (error) {
    return malformed(seq, idFromText(text) ?? fallbackId(seq), errorMessage(error));
  }
  if (!isPlainObject(value)) return malformed(seq, idFromText(text) ?? fallbackId(seq), "not a JSON object");
  // Readers of the entry (JSON.stringify, zod, tables) recurse; a hostile depth must stop here.
  if (jsonDepth(value) > MAX_JSON_DEPTH) {
    return malformed(
      seq,
      idFromText(text) ?? fallbackId(seq),
      `nested more than ${MAX_JSON_DEPTH} levels deep`,
    );
  }

  const id = typeof value.id === "string" && value.id !== "" ? value.id : fallbackId(seq);
  // A non-string op is kept as its JSON text: check 4 rejects it as `unsupported op: <json>`.
  const op = !("op" in value) ? "set" : typeof value.op === "string" ? value.op : JSON.stringify(value.op);
  const path = typeof value.path === "string" ? value.path : null;
  // runtimectl's first format carried one `value` instead of `args`.
  const args = "args" in value ? value.args : "value" in value ? [value.value] : [];
  const kwargs = "kwargs" in value ? value.kwargs : {};
  const rejected = (reason: string): ControlEntry => ({
    kind: "malformed",
    seq,
    id,
    op,
    path,
    reason,
    fromObject: true,
  });
  if (!Array.isArray(args)) return rejected("args must be a list");
  if (!isPlainObject(kwargs)) return rejected("kwargs must be an object");
  const ts = typeof value.ts === "number" ? value.ts : 0;
  const command: ControlCommand = { ...value, id, ts, op, path, args, kwargs };
  return { kind: "command", seq, command };
}

/** An entry every consumer acks `rejected` with `malformed command: <reason>`. */
export function malformed(seq: number, id: string, reason: string): ControlEntry {
  return {
    kind: "malformed",
    seq,
    id,
    op: "invalid",
    path: null,
    reason: `malformed command: ${reason}`,
    fromObject: false,
  };
}

/** The id of a line that has none: `seq-<seq>`. */
export function fallbackId(seq: number): string {
  return `seq-${seq}`;
}

function idFromText(text: string): string | undefined {
  const literal = ID_FIELD.exec(text)?.[1];
  if (literal === undefined) return undefined;
  try {
    const id: unknown = JSON.parse(literal);
    return typeof id === "string" && id !== "" ? id : undefined;
  } catch {
    return undefined;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
