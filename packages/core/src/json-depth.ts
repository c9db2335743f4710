/**
 * The nesting limit for JSON at runctl's boundaries (HTTP bodies, `--config`,
 * `--kwargs`, metrics lines, NATS payloads). Deeply nested JSON is an attack,
 * not data: recursive code on the reading side (zod's schemas, Python's
 * `json`, `JSON.stringify`) overflows its stack on a few thousand levels, and
 * `JSON.parse` itself may on deeper ones. So depth is checked on the raw text
 * first, by a bracket scan that respects strings and never recurses, and only
 * then parsed; `assertJsonDepth` does the same for values built in memory.
 */
import { UserError } from "./errors.ts";

/** Containers (objects, arrays) nested inside one another; real configs and metrics stay far below. */
export const MAX_JSON_DEPTH = 64;

export const JSON_TOO_DEEP = "json_too_deep";

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The deepest nesting of objects and arrays in JSON `text` (0 for a scalar),
 * counting brackets outside string literals; it stops early once past
 * `stopAbove`. Linear, no recursion, no allocation; it does not validate the
 * JSON (the parser that runs next does).
 */
export function jsonTextDepth(text: string, stopAbove = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > stopAbove) return deepest;
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return deepest;
}

/** The deepest nesting of arrays and plain objects in `value`, walked with a stack instead of recursion. */
export function jsonValueDepth(value: unknown, stopAbove = Number.POSITIVE_INFINITY): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [item, above] = stack.pop() as [unknown, number];
    if (typeof item !== "object" || item === null) continue;
    const depth = above + 1;
    if (depth > deepest) {
      deepest = depth;
      if (deepest > stopAbove) return deepest;
    }
    const children = Array.isArray(item) ? item : Object.values(item);
    for (const child of children) {
      if (typeof child === "object" && child !== null) stack.push([child, depth]);
    }
  }
  return deepest;
}

/** How deeply `value` nests arrays and objects, looking no further than `max + 1` levels. */
export function jsonDepth(value: unknown, max = MAX_JSON_DEPTH): number {
  return jsonValueDepth(value, max);
}

/** The error every boundary raises for JSON nested past the limit: code `json_too_deep`, naming the limit. */
export function jsonTooDeepError(what: string, max: number): UserError {
  return new UserError(`${what} is nested more than ${max} levels deep (the limit for JSON in runctl)`, {
    code: JSON_TOO_DEEP,
    hint: `Flatten it to at most ${max} levels of nested objects and arrays.`,
    details: { max_depth: max },
  });
}

/**
 * Throws `json_too_deep` (a UserError naming `what` and `max`) when `value` is
 * nested deeper than `max`. A string is taken as JSON text and scanned
 * before anything parses it; anything else is walked as a parsed value.
 */
export function assertJsonDepth(value: unknown, max = MAX_JSON_DEPTH, what = "value"): void {
  const depth = typeof value === "string" ? jsonTextDepth(value, max) : jsonValueDepth(value, max);
  if (depth > max) throw jsonTooDeepError(what, max);
}

/** `JSON.parse(text)` after the depth check, so a hostile text never reaches the parser. */
export function parseJsonWithDepthLimit(text: string, what: string, max = MAX_JSON_DEPTH): unknown {
  assertJsonDepth(text, max, what);
  return JSON.parse(text);
}
