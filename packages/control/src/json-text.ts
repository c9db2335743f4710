/**
 * JSON typed by a user (`runctl ctl` arguments, `--kwargs`), read so that what
 * is sent is exactly what was typed: JSON.parse silently turns `1e999` into
 * Infinity (then sent as null) and rounds integers beyond 2^53, and the
 * writers after it recurse without limit. Each of those is refused with the
 * reason instead.
 */
import { jsonDepth, MAX_JSON_DEPTH, UserError } from "@runctl/core";

// A JSON number token; strings are skipped by the scanner, so digits inside them never match.
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/**
 * Why JSON `text` (already known to parse) would not be carried exactly, or
 * undefined: a number that is not finite as a double, an integer literal
 * beyond ±(2^53 − 1), or nesting deeper than MAX_JSON_DEPTH.
 */
export function jsonTextIssue(text: string): string | undefined {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      continue;
    }
    if (ch === "[" || ch === "{") {
      depth++;
      if (depth > MAX_JSON_DEPTH) return `nested more than ${MAX_JSON_DEPTH} levels deep`;
      continue;
    }
    if (ch === "]" || ch === "}") {
      depth--;
      continue;
    }
    if (ch !== "-" && !(ch !== undefined && ch >= "0" && ch <= "9")) continue;
    NUMBER.lastIndex = i;
    const match = NUMBER.exec(text);
    if (match === null) continue;
    const token = match[0];
    const value = Number(token);
    if (!Number.isFinite(value)) return `${token} is too large for a JSON number (it would be sent as null)`;
    if (match[1] === undefined && match[2] === undefined && !Number.isSafeInteger(value)) {
      return `the integer ${token} is beyond 2^53 and would be rounded; send it as a string`;
    }
    i += token.length - 1;
  }
  return undefined;
}

/**
 * A command argument as runtimectl reads it: JSON when it parses, else the
 * string itself; JSON that would not be carried exactly is refused
 * (UserError `bad_argument`).
 */
export function parseCommandArgument(text: string, what = "argument"): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text;
  }
  checkJsonText(text, value, what, "bad_argument");
  return value;
}

/** Throws UserError `code` when parsed JSON `text` would not be carried exactly. */
export function checkJsonText(text: string, value: unknown, what: string, code: string): void {
  const issue = jsonTextIssue(text) ?? (jsonDepth(value) > MAX_JSON_DEPTH ? "nested too deeply" : undefined);
  if (issue !== undefined) {
    throw new UserError(`${what} ${truncate(text)}: ${issue}`, {
      code,
      hint: `Pass JSON that means exactly what it says (finite numbers, integers within ±2^53, at most ${MAX_JSON_DEPTH} levels), or quote it to send a string.`,
    });
  }
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 37)}…` : text;
}
