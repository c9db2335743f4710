/**
 * Validation of configuration layers, and errors that say where a bad value
 * came from: the file and line, the environment variable, or the flag.
 */
import type { z } from "zod";
import { ConfigError } from "../errors.ts";
import type { Issue } from "../validation.ts";
import { ENV_PREFIX } from "./env.ts";
import { locateKey } from "./locate.ts";
import { keysOf, schemaAt } from "./shape.ts";
import { closestMatch } from "./suggest.ts";
import { deepMerge, dottedKey, isPlainObject, type KeyPath, type Tree, valueAt } from "./tree.ts";

export type SourceKind = "defaults" | "user" | "project" | "env" | "flags";

/** One source's contribution before merging. */
export interface Layer {
  kind: Exclude<SourceKind, "defaults">;
  /** The file it was read from (user, project). */
  file?: string;
  /** The file's text, to find lines in. */
  text?: string;
  data: Tree;
  /** Env and flags: the variable or flag that set each key path. */
  names?: ReadonlyArray<{ path: readonly string[]; name: string }>;
}

/** An issue pinned to its origin. */
export interface ConfigIssue extends Issue {
  source: SourceKind;
  file?: string;
  line?: number;
  variable?: string;
  flag?: string;
  /** The known key (dotted) or section this one most likely meant. */
  suggestion?: string;
  hint: string;
}

interface RawIssue {
  path: PropertyKey[];
  message: string;
  unknown: boolean;
}

function rawIssues(error: z.ZodError): RawIssue[] {
  const out: RawIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys)
        out.push({ path: [...issue.path, key], message: "unknown key", unknown: true });
    } else {
      out.push({ path: [...issue.path], message: issue.message, unknown: false });
    }
  }
  return out;
}

export interface LayerCheck {
  config: unknown;
  issues: ConfigIssue[];
}

/**
 * Validates each layer on its own, then the merged result. Per layer, only
 * issues about values that layer actually sets count (unknown keys, bad
 * leaves), so a bad value in the user file is reported even when the project
 * file overrides it, while a provider key required overall need not be in
 * every file. The merged pass catches the rest (missing required keys,
 * cross-key rules) and blames the most specific layer touching the key.
 * With `merged: false` only the per-layer pass runs (for checking one file
 * that is only part of the configuration); `config` is then undefined.
 */
export function checkLayers(
  layers: readonly Layer[],
  schema: z.ZodType,
  sectionNames: readonly string[],
  options: { merged?: boolean } = {},
): LayerCheck {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  const add = (layer: Layer | undefined, raw: RawIssue): void => {
    const id = `${dottedKey(raw.path)}\u0000${raw.message}`;
    if (seen.has(id)) return;
    seen.add(id);
    issues.push(describe(layer, raw, schema, sectionNames));
  };
  for (const layer of layers) {
    const result = schema.safeParse(layer.data);
    if (result.success) continue;
    const from = issues.length;
    for (const raw of rawIssues(result.error)) {
      const value = valueAt(layer.data, raw.path);
      if (raw.unknown || (value !== undefined && !isPlainObject(value))) add(layer, raw);
    }
    // Zod reports in schema order; a file reads top to bottom.
    const ordered = issues.splice(from).sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    issues.push(...ordered);
  }
  if (options.merged === false) return { config: undefined, issues };
  const merged = layers.reduce<Tree>((acc, layer) => deepMerge(acc, layer.data), {});
  const result = schema.safeParse(merged);
  if (!result.success) {
    for (const raw of rawIssues(result.error)) add(blame(layers, raw.path), raw);
  }
  return { config: result.success ? result.data : undefined, issues };
}

/** The layer defining the deepest part of `path`; among equals, the one with the highest precedence. */
function blame(layers: readonly Layer[], path: KeyPath): Layer | undefined {
  let best: Layer | undefined;
  let bestDepth = 0;
  for (const layer of layers) {
    for (let depth = path.length; depth > bestDepth - 1 && depth > 0; depth--) {
      if (valueAt(layer.data, path.slice(0, depth)) !== undefined) {
        if (depth >= bestDepth) {
          best = layer;
          bestDepth = depth;
        }
        break;
      }
    }
  }
  return best;
}

function nameFor(layer: Layer, path: KeyPath): string | undefined {
  const keys = path.filter((p): p is string => typeof p === "string");
  for (const entry of layer.names ?? []) {
    const n = Math.min(entry.path.length, keys.length);
    if (entry.path.slice(0, n).every((p, i) => p === keys[i])) return entry.name;
  }
  return undefined;
}

/** `RUNCTL_AWS__SPOT__MAX_PRICE` style name for a key path, for hints. */
export function envNameFor(path: readonly string[]): string {
  const [section = "", ...rest] = path;
  return `${ENV_PREFIX}${section.toUpperCase()}${rest.length ? "_" : ""}${rest.join("__").toUpperCase()}`;
}

function describe(
  layer: Layer | undefined,
  raw: RawIssue,
  schema: z.ZodType,
  sectionNames: readonly string[],
): ConfigIssue {
  const key = dottedKey(raw.path);
  const stringPath = raw.path.filter((p): p is string => typeof p === "string");
  const issue: ConfigIssue = { path: key, message: raw.message, source: layer?.kind ?? "defaults", hint: "" };
  let where = "configuration";
  if (layer?.file !== undefined) {
    issue.file = layer.file;
    const line = layer.text === undefined ? undefined : locateKey(layer.text, raw.path);
    if (line !== undefined) issue.line = line;
    where = line === undefined ? layer.file : `${layer.file}:${line}`;
  } else if (layer?.kind === "env") {
    const variable = nameFor(layer, raw.path);
    if (variable !== undefined) issue.variable = variable;
    where = `environment variable ${variable ?? "RUNCTL_*"}`;
  } else if (layer?.kind === "flags") {
    const flag = nameFor(layer, raw.path);
    if (flag !== undefined) issue.flag = flag;
    where = `flag ${flag ?? "(unknown)"}`;
  }
  const inFile =
    issue.file === undefined ? "" : ` in ${issue.file}${issue.line ? ` (line ${issue.line})` : ""}`;

  if (raw.unknown && stringPath.length === 1) {
    const name = stringPath[0] ?? "";
    const near = closestMatch(name, sectionNames);
    if (near !== undefined) issue.suggestion = near;
    issue.message = `unknown section${near ? ` (did you mean [${near}]?)` : ""}`;
    issue.hint =
      `[${name}] is not a section runctl knows. If it configures a provider, install that plugin ` +
      `(\`runctl plugins install provider-${name}\`); otherwise ` +
      (near ? `rename it to [${near}]${inFile}.` : `remove it${inFile}.`);
  } else if (raw.unknown) {
    const parent = schemaAt(schema, raw.path.slice(0, -1));
    const siblings = parent === undefined ? undefined : keysOf(parent);
    const near = siblings === undefined ? undefined : closestMatch(String(raw.path.at(-1)), siblings);
    const nearKey = near === undefined ? undefined : dottedKey([...raw.path.slice(0, -1), near]);
    if (nearKey !== undefined) issue.suggestion = nearKey;
    issue.message = `unknown key${nearKey ? ` (did you mean ${nearKey}?)` : ""}`;
    const known = siblings?.length
      ? ` Known keys in [${dottedKey(raw.path.slice(0, -1))}]: ${siblings.join(", ")}.`
      : "";
    if (issue.variable !== undefined) {
      issue.hint = nearKey
        ? `Rename ${issue.variable} to ${envNameFor(nearKey.split("."))}, or unset it.`
        : `Unset ${issue.variable}.${known}`;
    } else if (issue.flag !== undefined) {
      issue.hint = `Remove ${issue.flag}; it sets no known key.${known}`;
    } else {
      issue.hint = nearKey ? `Rename ${key} to ${nearKey}${inFile}.` : `Remove ${key}${inFile}.${known}`;
    }
  } else if (issue.variable !== undefined) {
    issue.hint = `Fix or unset ${issue.variable} (it sets ${key}).`;
  } else if (issue.flag !== undefined) {
    issue.hint = `Fix the value given to ${issue.flag}.`;
  } else {
    issue.hint = `Fix ${key}${inFile}, then run \`runctl config validate\`.`;
  }
  issue.message = `${where}: ${key}: ${issue.message}`;
  return issue;
}

/** One ConfigError (`config_invalid`) for all issues; the first one's location and hint lead. */
export function configErrorFor(issues: readonly ConfigIssue[], prefix = ""): ConfigError {
  const first = issues[0];
  const details: Record<string, unknown> = { issues };
  if (first?.file !== undefined) details.file = first.file;
  if (first !== undefined) details.key = first.path;
  if (first?.line !== undefined) details.line = first.line;
  if (first?.variable !== undefined) details.variable = first.variable;
  if (first?.flag !== undefined) details.flag = first.flag;
  const more =
    issues.length > 1
      ? ` (${issues.length - 1} more problem${issues.length > 2 ? "s" : ""} listed above)`
      : "";
  return new ConfigError(`${prefix}${issues.map((i) => i.message).join("\n")}`, {
    code: "config_invalid",
    hint: `${first?.hint ?? "Run `runctl config validate`."}${more}`,
    details,
  });
}
