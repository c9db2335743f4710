/**
 * `runctl config set`: changes one key in a TOML file as text, so comments,
 * ordering and layout survive, and never leaves an invalid file behind.
 */
import { randomUUID } from "node:crypto";
import { chmod, mkdir, realpath, rename, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ConfigError, InternalError, UserError } from "../errors.ts";
import { checkLayers, configErrorFor, type Layer } from "./layers.ts";
import { parseConfigText, readConfigFile } from "./load.ts";
import { type HeaderEntry, type KeyEntry, outlineToml } from "./locate.ts";
import { PROJECT_CONFIG_NAME } from "./paths.ts";
import { CORE_SECTIONS, type ConfigSections, configSchemaWith } from "./schema.ts";
import { schemaAt } from "./shape.ts";
import { dottedKey, sameTree, setAt, splitDottedKey, type Tree, valueAt } from "./tree.ts";
import { parseConfigValueFor, tomlValueText } from "./value.ts";

export interface SetConfigValueOptions {
  file: string;
  /** Dotted key, at least `section.key`. */
  key: string;
  /** The value as typed; read like an environment value (`100`, `true`, `["a"]`, else a string). */
  value: string;
  sections?: ConfigSections;
}

export interface SetConfigValueResult {
  file: string;
  key: string;
  /** The value written, as parsed. */
  value: unknown;
  /** The value before, if the key was set in this file. */
  previous?: unknown;
  created: boolean;
}

/**
 * Sets `key` in `file`: replaces the value on the key's line when the key is
 * there; else inserts `key = value` in its table (after a commented-out
 * example of the key, as `runctl init` writes them, or after the table's last
 * key); else appends a new `[section]`. The result is re-parsed, checked to
 * differ from the original in exactly that key, and validated before it
 * replaces the file (temp file + rename), so on any error the file is
 * untouched. Creates the file (and its directory) if missing.
 */
export async function setConfigValue(options: SetConfigValueOptions): Promise<SetConfigValueResult> {
  const sections = options.sections ?? {};
  const schema = configSchemaWith(sections);
  const sectionNames = [...CORE_SECTIONS, ...Object.keys(sections)];
  const path = splitDottedKey(options.key);
  if (path === undefined || path.length < 2) {
    throw new UserError(`Not a config key: ${options.key}`, {
      code: "config_unknown_key",
      hint: "Give section.key, e.g. `runctl config set nats.url nats://127.0.0.1:4222`.",
      details: { key: options.key },
    });
  }
  const file = await resolveLink(options.file);
  const kind = basename(file) === PROJECT_CONFIG_NAME ? "project" : "user";
  const value = parseConfigValueFor(options.value, schemaAt(schema, path));

  // An unknown key is refused before editing, so the message is about the
  // key rather than about a line that exists only in the would-be file.
  if (schemaAt(schema, path) === undefined) {
    const probe: Tree = {};
    setAt(probe, path, value);
    const { issues } = checkLayers([{ kind, file, data: probe }], schema, sectionNames, { merged: false });
    if (issues.length > 0) throw configErrorFor(issues, "Not changed: ");
  }

  const existing = await readConfigFile(file);
  const text = existing?.text ?? "";
  const valueText = tomlValueText(value);
  if (valueText === undefined) {
    throw new UserError(`Cannot set ${options.key} to a table`, {
      code: "config_value_unsupported",
      hint: `Set one key at a time, e.g. \`runctl config set ${options.key}.<key> <value>\`.`,
      details: { key: options.key },
    });
  }
  const next = editText(text, path, valueText, file);

  let nextData: Tree;
  try {
    nextData = parseConfigText(next, file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `Not changed: setting ${options.key} this way would make invalid TOML (${reason})`,
      {
        code: "config_parse",
        hint: `Edit ${file} by hand; the key is probably also defined in another form (a dotted key or [table]).`,
        details: { file, key: options.key },
        cause: error,
      },
    );
  }
  // A fresh parse, not a clone: TOML dates are class instances a clone would flatten.
  const expected = text === "" ? {} : parseConfigText(text, file);
  setAt(expected, path, value);
  if (!sameTree(nextData, expected)) {
    throw new InternalError(`Not changed: editing ${file} as text did not set exactly ${options.key}`, {
      code: "config_edit_failed",
      hint: `Edit ${file} by hand and report this with the file's contents.`,
      details: { file, key: options.key },
    });
  }

  // Lines come from the current text, which is what the user has in front of them.
  const layer: Layer = { kind, file, text, data: nextData };
  const { issues } = checkLayers([layer], schema, sectionNames, { merged: false });
  if (issues.length > 0) {
    const key = dottedKey(path);
    for (const issue of issues) {
      if (issue.path === key || issue.path.startsWith(`${key}.`) || issue.path.startsWith(`${key}[`)) {
        issue.hint = `Choose a valid value for ${key}; ${file} was not changed.`;
      }
    }
    throw configErrorFor(issues, "Not changed: ");
  }

  await writeAtomically(file, next, existing === undefined ? newFileMode(path) : undefined);
  const result: SetConfigValueResult = { file, key: dottedKey(path), value, created: existing === undefined };
  const previous = existing === undefined ? undefined : valueAt(existing.data, path);
  if (previous !== undefined) result.previous = previous;
  return result;
}

/** Edits the TOML text so that `path` holds `valueText`. */
export function editText(text: string, path: readonly string[], valueText: string, file = "config"): string {
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const outline = outlineToml(text);
  const keys = outline.filter((e): e is KeyEntry => e.kind === "key");

  const exact = keys.find((e) => samePath(e.path, path));
  if (exact) return text.slice(0, exact.valueStart) + valueText + text.slice(exact.valueEnd);

  const enclosing = keys.find((e) => isPrefix(e.path, path));
  if (enclosing) {
    throw new ConfigError(
      `${file}:${enclosing.line}: ${dottedKey(enclosing.path)} is set as one value there; cannot set ${dottedKey(path)} inside it`,
      {
        code: "config_edit_unsupported",
        hint: `Edit ${file} line ${enclosing.line} by hand (inline tables are replaced as a whole).`,
        details: { file, key: dottedKey(path), line: enclosing.line },
      },
    );
  }

  let header: HeaderEntry | undefined;
  let headerIndex = -1;
  for (const [i, e] of outline.entries()) {
    if (e.kind !== "header" || e.array || e.path.length >= path.length || !isPrefix(e.path, path)) continue;
    if (header === undefined || e.path.length > header.path.length) {
      header = e;
      headerIndex = i;
    }
  }
  if (header) {
    const rel = path.slice(header.path.length);
    const nextHeader = outline.findIndex((e, i) => i > headerIndex && e.kind === "header");
    const body = outline.slice(headerIndex + 1, nextHeader < 0 ? undefined : nextHeader);
    const example = new RegExp(`^\\s*${escapeRegExp(dottedKey(rel))}\\s*=`);
    const commented = body.find((e) => e.kind === "comment" && example.test(e.text));
    const lastKey = body.filter((e) => e.kind === "key").at(-1);
    const anchor = commented ?? lastKey;
    const indent = anchor ? indentOf(text, anchor.end) : "";
    return insertLineAfter(text, anchor?.end ?? header.end, `${indent}${dottedKey(rel)} = ${valueText}`, eol);
  }

  // A section written only as dotted keys in the root table (`nats.url = …`)
  // cannot also get a `[nats]` header, so the new key joins them.
  const rootSibling = keys.filter((e) => e.key.length === e.path.length && e.path[0] === path[0]).at(-1);
  if (rootSibling) {
    return insertLineAfter(
      text,
      rootSibling.end,
      `${indentOf(text, rootSibling.end)}${dottedKey(path)} = ${valueText}`,
      eol,
    );
  }

  let out = text;
  if (out.length > 0 && !out.endsWith("\n")) out += eol;
  if (out.trim().length > 0 && !/\n[ \t]*\r?\n$/.test(out)) out += eol;
  return `${out}[${dottedKey(path.slice(0, 1))}]${eol}${dottedKey(path.slice(1))} = ${valueText}${eol}`;
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/** True when `prefix` is a proper prefix of `path`. */
function isPrefix(prefix: readonly string[], path: readonly string[]): boolean {
  return prefix.length < path.length && prefix.every((p, i) => p === path[i]);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Leading whitespace of the line containing `offset`. */
function indentOf(text: string, offset: number): string {
  const start = text.lastIndexOf("\n", offset - 1) + 1;
  return /^[ \t]*/.exec(text.slice(start))?.[0] ?? "";
}

/** Inserts `line` after the line ending at `offset` (the offset of its newline, or the end of text). */
function insertLineAfter(text: string, offset: number, line: string, eol: string): string {
  const nl = text.indexOf("\n", offset);
  if (nl < 0) return `${text}${eol}${line}${eol}`;
  return `${text.slice(0, nl + 1)}${line}${eol}${text.slice(nl + 1)}`;
}

/** Writes through a symlink to its target, so dotfile managers keep their links. */
async function resolveLink(file: string): Promise<string> {
  try {
    return await realpath(file);
  } catch {
    return file;
  }
}

// A new file may be about to hold a token; keep it private from the start.
function newFileMode(path: readonly string[]): number {
  return path.some((p) => /secret|token|password|seed/i.test(p)) ? 0o600 : 0o644;
}

async function writeAtomically(file: string, text: string, mode: number | undefined): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const finalMode = mode ?? (await stat(file)).mode & 0o777;
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o600 });
    await chmod(tmp, finalMode);
    await rename(tmp, file);
  } catch (error) {
    await unlink(tmp).catch(() => {});
    throw error;
  }
}
