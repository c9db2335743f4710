/**
 * Values typed on a command line or in an environment variable: read as TOML
 * when they are TOML, else as plain strings; and written back as TOML.
 */
import { parse, stringify } from "smol-toml";
import type { z } from "zod";
import { isPlainObject } from "./tree.ts";

/**
 * Reads `text` as a TOML value (`100` → number, `true` → boolean,
 * `["a","b"]` → array, `"quoted"` → string) and falls back to the text itself
 * when it is not one (`nats://host:4222`, `us-east-1`). Dates stay text: no
 * runctl key holds a date, and a TomlDate would only fail validation.
 */
export function parseConfigValue(text: string): unknown {
  let doc: Record<string, unknown>;
  try {
    doc = parse(`v = ${text}`);
  } catch {
    return text;
  }
  // `1\nother = 2` parses as a document with two keys; that is not one value.
  if (Object.keys(doc).length !== 1) return text;
  const parsed = doc.v;
  if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) && !isPlainObject(parsed)) {
    return text;
  }
  return parsed;
}

/**
 * Like parseConfigValue, but when the key's schema rejects the TOML reading
 * and accepts the raw text, the text wins: `RUNCTL_NATS_TOKEN=123456` is a
 * token, not a number, and `RUNCTL_PROJECT_NAME=true` is a name.
 */
export function parseConfigValueFor(text: string, schema: z.ZodType | undefined): unknown {
  const parsed = parseConfigValue(text);
  if (schema === undefined || typeof parsed === "string") return parsed;
  if (!schema.safeParse(parsed).success && schema.safeParse(text).success) return text;
  return parsed;
}

/**
 * The TOML text of a single value (`"x"`, `100`, `[ "a", "b" ]`), taken from
 * smol-toml's rendering of a one-key document so quoting and escaping follow
 * the library; undefined for tables and arrays of tables, which cannot sit
 * on the right-hand side of one `key = value` line in that rendering.
 */
export function tomlValueText(value: unknown): string | undefined {
  const rendered = stringify({ v: value });
  const prefix = "v = ";
  if (!rendered.startsWith(prefix)) return undefined;
  const text = rendered.slice(prefix.length).replace(/\r?\n$/, "");
  return text.includes("\n") ? undefined : text;
}
