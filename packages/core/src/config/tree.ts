/**
 * Plain-object trees as TOML produces them: tables are plain objects, arrays
 * and scalars are leaves. Paths are arrays of keys so keys containing dots
 * (legal when quoted in TOML) stay unambiguous.
 */

import { UserError } from "../errors.ts";

export type Tree = Record<string, unknown>;
export type KeyPath = readonly PropertyKey[];

/**
 * Keys that reach into JavaScript's object machinery instead of a table:
 * walking `__proto__.polluted` would write onto Object.prototype and make
 * every object of the process appear to have the key. No config key has these
 * names, so they are refused wherever a key path comes from outside.
 */
export const UNSAFE_CONFIG_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** Throws `config_unsafe_key` (naming `source`) when a part of `path` is one of UNSAFE_CONFIG_KEYS. */
export function assertSafeKeyPath(path: readonly string[], source: string): void {
  const bad = path.find((part) => UNSAFE_CONFIG_KEYS.has(part));
  if (bad === undefined) return;
  throw new UserError(`${source}: "${bad}" cannot be part of a config key`, {
    code: "config_unsafe_key",
    hint: `runctl has no config key named ${[...UNSAFE_CONFIG_KEYS].join(", ")}; check the key with \`runctl config show\`.`,
    details: { key: path.join("."), part: bad },
  });
}

export function isPlainObject(value: unknown): value is Tree {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The value at `path`, or undefined; numeric keys index arrays. */
export function valueAt(root: unknown, path: KeyPath): unknown {
  let node = root;
  for (const key of path) {
    if (Array.isArray(node) && typeof key === "number") {
      node = node[key];
    } else if (isPlainObject(node) && typeof key === "string" && Object.hasOwn(node, key)) {
      node = node[key];
    } else {
      return undefined;
    }
  }
  return node;
}

/** Sets `path` in `root`, creating (or replacing non-object) intermediate tables. */
export function setAt(root: Tree, path: readonly string[], value: unknown): void {
  assertSafeKeyPath(path, "config key");
  let node = root;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (isPlainObject(next)) {
      node = next;
    } else {
      const created: Tree = {};
      node[key] = created;
      node = created;
    }
  }
}

/**
 * Merges `over` onto `base` into a new tree: tables merge key by key, while
 * arrays and scalars replace, so a file listing `exclude = ["data"]` means
 * exactly that list rather than an accumulation across files.
 */
export function deepMerge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [key, value] of Object.entries(over)) {
    // A TOML file may quote "__proto__" as a key: assigning it would swap `out`'s prototype.
    assertSafeKeyPath([key], "config file key");
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? deepMerge(prev, value) : value;
  }
  return out;
}

/** Paths of every leaf (a non-table value) in `root`; empty tables contribute none. */
export function leafPaths(root: Tree, prefix: string[] = []): string[][] {
  const out: string[][] = [];
  for (const [key, value] of Object.entries(root)) {
    const path = [...prefix, key];
    if (isPlainObject(value)) out.push(...leafPaths(value, path));
    else if (value !== undefined) out.push(path);
  }
  return out;
}

/** `a.b.c`; keys that are not bare TOML keys are quoted so the result reads back. */
export function dottedKey(path: KeyPath): string {
  return path
    .filter((k): k is string | number => typeof k !== "symbol")
    .map((k) => (typeof k === "number" ? `[${k}]` : /^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k)))
    .join(".")
    .replace(/\.\[/g, "[");
}

/**
 * Splits `a.b."c.d"` into `["a", "b", "c.d"]`; undefined when malformed.
 * Throws `config_unsafe_key` for `__proto__`, `constructor` or `prototype`,
 * before any caller walks the path.
 */
export function splitDottedKey(key: string): string[] | undefined {
  const parts = splitParts(key);
  if (parts !== undefined) assertSafeKeyPath(parts, `Config key ${key}`);
  return parts;
}

function splitParts(key: string): string[] | undefined {
  const parts: string[] = [];
  let i = 0;
  while (i <= key.length) {
    if (key[i] === '"') {
      const end = key.indexOf('"', i + 1);
      if (end < 0) return undefined;
      parts.push(key.slice(i + 1, end));
      i = end + 1;
    } else {
      let end = key.indexOf(".", i);
      if (end < 0) end = key.length;
      const part = key.slice(i, end).trim();
      if (part === "") return undefined;
      parts.push(part);
      i = end;
      if (i === key.length) break;
    }
    if (i === key.length) break;
    if (key[i] !== ".") return undefined;
    i++;
    if (i === key.length) return undefined;
  }
  return parts.length > 0 ? parts : undefined;
}

/**
 * Structural equality of parsed TOML trees. Unlike util.isDeepStrictEqual it
 * ignores prototypes: smol-toml builds tables with a null prototype while
 * trees built here use `{}`, and both are the same table.
 */
export function sameTree(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameTree(v, b[i]))
    );
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameTree(a[k], b[k]))
    );
  }
  // TOML dates and times: equal when they print the same.
  if (a instanceof Date && b instanceof Date)
    return a.constructor === b.constructor && Object.is(a.getTime(), b.getTime()) && String(a) === String(b);
  return false;
}
