/**
 * Where keys are defined in TOML source text.
 *
 * TOML parsers (smol-toml included) return values, not positions, yet an error
 * that says "line 7" saves the user a search. This is a best-effort locator
 * for error messages and for `config set`'s text edits, not a parser: it
 * assumes the text already parsed, understands `[table]` / `[[array]]`
 * headers, `key = value` lines with bare, quoted and dotted keys, comments,
 * and skips over multi-line strings, arrays and inline tables so their
 * contents are never mistaken for keys. Anything it cannot read it skips.
 */

export interface HeaderEntry {
  kind: "header";
  /** Table path of `[a.b]`. */
  path: string[];
  array: boolean;
  line: number;
  /** Offset of the end of the header's line (before the newline). */
  end: number;
}

export interface KeyEntry {
  kind: "key";
  /** Full path: enclosing table + the dotted key. */
  path: string[];
  /** The key as written relative to its table. */
  key: string[];
  line: number;
  /** Offsets of the value text: `source.slice(valueStart, valueEnd)`. */
  valueStart: number;
  valueEnd: number;
  /** Offset of the end of the line the value ends on (before the newline). */
  end: number;
}

export interface CommentEntry {
  kind: "comment";
  /** Text after `#`. */
  text: string;
  line: number;
  end: number;
}

export type OutlineEntry = HeaderEntry | KeyEntry | CommentEntry;

/** The headers, keys and whole-line comments of `source`, in order. Lines are 1-based. */
export function outlineToml(source: string): OutlineEntry[] {
  const entries: OutlineEntry[] = [];
  const lineStarts = [0];
  for (let i = 0; i < source.length; i++) if (source[i] === "\n") lineStarts.push(i + 1);
  const lineOf = (offset: number): number => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((lineStarts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };

  let table: string[] = [];
  let i = 0;
  while (i < source.length) {
    i = skipSpace(source, i);
    const c = source[i];
    if (c === undefined) break;
    if (c === "\n" || c === "\r") {
      i++;
      continue;
    }
    if (c === "#") {
      const end = lineEnd(source, i);
      entries.push({ kind: "comment", text: source.slice(i + 1, end), line: lineOf(i), end });
      i = end;
      continue;
    }
    if (c === "[") {
      const array = source[i + 1] === "[";
      const key = readKey(source, i + (array ? 2 : 1));
      const end = lineEnd(source, i);
      if (key) {
        table = key.parts;
        entries.push({ kind: "header", path: key.parts, array, line: lineOf(i), end });
      }
      i = end;
      continue;
    }
    const key = readKey(source, i);
    if (!key) {
      i = lineEnd(source, i);
      continue;
    }
    let j = skipSpace(source, key.end);
    if (source[j] !== "=") {
      i = lineEnd(source, i);
      continue;
    }
    j = skipSpace(source, j + 1);
    const valueEnd = scanValue(source, j);
    const end = lineEnd(source, valueEnd);
    entries.push({
      kind: "key",
      path: [...table, ...key.parts],
      key: key.parts,
      line: lineOf(i),
      valueStart: j,
      valueEnd,
      end,
    });
    i = end;
  }
  return entries;
}

/**
 * The 1-based line defining `path` (numeric steps, i.e. array indices, are
 * ignored). Prefers the exact key or header; else the first line defining
 * something inside it (a section given only by dotted keys); else the line
 * sharing the longest part of the path (an inline table holding it, or the
 * `[section]` / `[section.sub]` header for a missing key). Undefined when
 * nothing on the path appears in the text.
 */
export function locateKey(source: string, path: readonly PropertyKey[]): number | undefined {
  const target = path.filter((p): p is string => typeof p === "string");
  if (target.length === 0) return undefined;
  let inside: number | undefined;
  let nearest: { line: number; shared: number } | undefined;
  for (const entry of outlineToml(source)) {
    if (entry.kind === "comment") continue;
    const shared = commonPrefix(entry.path, target);
    if (shared === target.length && entry.path.length === target.length) return entry.line;
    if (shared === target.length) inside ??= entry.line;
    else if (shared > 0 && (nearest === undefined || shared > nearest.shared))
      nearest = { line: entry.line, shared };
  }
  return inside ?? nearest?.line;
}

function commonPrefix(a: readonly string[], b: readonly string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

function skipSpace(s: string, i: number): number {
  while (s[i] === " " || s[i] === "\t") i++;
  return i;
}

/** Offset of the `\n` (or `\r\n`) ending the line containing `i`, or the end of text. */
function lineEnd(s: string, i: number): number {
  const nl = s.indexOf("\n", i);
  if (nl < 0) return s.length;
  return s[nl - 1] === "\r" ? nl - 1 : nl;
}

/** Reads a dotted key (`a."b.c".'d'`) starting at `i`. */
function readKey(s: string, i: number): { parts: string[]; end: number } | undefined {
  const parts: string[] = [];
  let j = skipSpace(s, i);
  for (;;) {
    const c = s[j];
    if (c === '"') {
      const end = scanBasicString(s, j);
      const raw = s.slice(j, end);
      parts.push(decodeBasic(raw));
      j = end;
    } else if (c === "'") {
      const close = s.indexOf("'", j + 1);
      if (close < 0) return undefined;
      parts.push(s.slice(j + 1, close));
      j = close + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(s.slice(j, j + 256));
      if (!m) return undefined;
      parts.push(m[0]);
      j += m[0].length;
    }
    const k = skipSpace(s, j);
    if (s[k] !== ".") return { parts, end: j };
    j = skipSpace(s, k + 1);
  }
}

function decodeBasic(quoted: string): string {
  try {
    const value: unknown = JSON.parse(quoted);
    if (typeof value === "string") return value;
  } catch {
    // TOML escapes JSON lacks (\e, \UXXXXXXXX): the raw text is close enough for locating.
  }
  return quoted.slice(1, -1);
}

/** End offset (exclusive) of the `"…"` string starting at `i`; stops at end of line if unterminated. */
function scanBasicString(s: string, i: number): number {
  let j = i + 1;
  while (j < s.length && s[j] !== "\n") {
    if (s[j] === "\\") j += 2;
    else if (s[j] === '"') return j + 1;
    else j++;
  }
  return j;
}

/** End offset (exclusive) of the value starting at `i`, skipping strings, arrays and inline tables. */
function scanValue(s: string, i: number): number {
  if (s.startsWith('"""', i) || s.startsWith("'''", i)) {
    const quote = s.slice(i, i + 3);
    let j = i + 3;
    while (j < s.length) {
      if (quote === '"""' && s[j] === "\\") {
        j += 2;
        continue;
      }
      if (s.startsWith(quote, j)) {
        j += 3;
        // Up to two quotes may directly precede the closing delimiter.
        for (let extra = 0; extra < 2 && s[j] === quote[0]; extra++) j++;
        return j;
      }
      j++;
    }
    return s.length;
  }
  const c = s[i];
  if (c === '"') return scanBasicString(s, i);
  if (c === "'") {
    const close = s.indexOf("'", i + 1);
    const nl = lineEnd(s, i);
    return close < 0 || close > nl ? nl : close + 1;
  }
  if (c === "[" || c === "{") {
    let depth = 0;
    let j = i;
    while (j < s.length) {
      const d = s[j];
      if (d === "[" || d === "{") {
        depth++;
        j++;
      } else if (d === "]" || d === "}") {
        depth--;
        j++;
        if (depth === 0) return j;
      } else if (d === '"' || d === "'") {
        j = scanValue(s, j);
      } else if (d === "#") {
        j = lineEnd(s, j);
      } else {
        j++;
      }
    }
    return s.length;
  }
  // A bare scalar (number, boolean, date) runs to a comment or the end of the line.
  let end = lineEnd(s, i);
  const hash = s.indexOf("#", i);
  if (hash >= 0 && hash < end) end = hash;
  while (end > i && (s[end - 1] === " " || s[end - 1] === "\t")) end--;
  return end;
}
