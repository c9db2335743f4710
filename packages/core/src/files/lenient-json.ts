/**
 * JSON.parse that also accepts the bare `NaN`, `Infinity` and `-Infinity`
 * tokens Python's `json` module writes by default. A training script whose loss
 * diverged must not turn its metrics line, or meta.json's summary, into
 * "garbage" for the TypeScript readers. Our own writers emit strict JSON.
 */

import { assertJsonDepth, MAX_JSON_DEPTH } from "../json-depth.ts";

const NON_FINITE = /NaN|Infinity/;
// Stand-ins that survive JSON.parse as strings and are turned back into numbers
// by the reviver. A NUL-prefixed user string with exactly this text is not a
// realistic collision.
const SENTINELS: ReadonlyMap<string, number> = new Map([
  ["\u0000NaN", Number.NaN],
  ["\u0000Infinity", Number.POSITIVE_INFINITY],
  ["\u0000-Infinity", Number.NEGATIVE_INFINITY],
]);

/**
 * Throws json_too_deep (naming the limit) for text nested past
 * MAX_JSON_DEPTH before any parsing: what reads run files (meta.json,
 * config.json, metrics lines) must not overflow on them, nor hand them on to
 * code that would.
 */
export function parseJsonLenient(text: string): unknown {
  assertJsonDepth(text, MAX_JSON_DEPTH, "JSON text");
  try {
    return JSON.parse(text);
  } catch (error) {
    if (!NON_FINITE.test(text)) throw error;
    const rewritten = quoteNonFinite(text);
    if (rewritten === undefined) throw error;
    return JSON.parse(rewritten, (_key, value: unknown) =>
      typeof value === "string" && SENTINELS.has(value) ? SENTINELS.get(value) : value,
    );
  }
}

/** Replaces non-finite tokens outside string literals; undefined when there were none. */
function quoteNonFinite(text: string): string | undefined {
  let out = "";
  let changed = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end;
      continue;
    }
    const token = text.startsWith("NaN", i)
      ? "NaN"
      : text.startsWith("-Infinity", i)
        ? "-Infinity"
        : text.startsWith("Infinity", i)
          ? "Infinity"
          : undefined;
    if (token !== undefined) {
      out += JSON.stringify(`\u0000${token}`);
      i += token.length;
      changed = true;
      continue;
    }
    out += c;
    i++;
  }
  return changed ? out : undefined;
}

/** Index just past the string literal starting at `start` (or the text's end if unterminated). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\") i += 2;
    else if (c === '"') return i + 1;
    else i++;
  }
  return text.length;
}
