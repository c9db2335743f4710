/**
 * Loading configuration from every source.
 *
 * Precedence, lowest to highest:
 *   1. built-in defaults (the schema's),
 *   2. the user config file (`$XDG_CONFIG_HOME/runctl/config.toml`, else
 *      `~/.config/runctl/config.toml`),
 *   3. the project file: the nearest `.runctl.toml` walking up from cwd,
 *   4. `RUNCTL_*` environment variables (see env.ts for the mapping),
 *   5. flags given by the CLI.
 * The issue that asked for this listed the project file before the user file;
 * we read it as "more specific wins": settings that travel with a repository
 * override personal defaults, the way git's repo config overrides ~/.gitconfig.
 * Sources are deep-merged: tables merge key by key, arrays and scalars replace.
 */
import { readFile } from "node:fs/promises";
import { parse, TomlError } from "smol-toml";
import { ConfigError } from "../errors.ts";
import { configEnvEntries } from "./env.ts";
import { checkLayers, configErrorFor, type Layer, type SourceKind } from "./layers.ts";
import { findProjectConfig, userConfigPath } from "./paths.ts";
import {
  CORE_SECTIONS,
  type ConfigSections,
  configSchemaWith,
  defaultConfig,
  type LoadedRunctlConfig,
} from "./schema.ts";
import { schemaAt } from "./shape.ts";
import { dottedKey, leafPaths, setAt, splitDottedKey, type Tree } from "./tree.ts";
import { parseConfigValueFor } from "./value.ts";

export interface LoadConfigOptions {
  /** Where to start looking for `.runctl.toml`. */
  cwd: string;
  /** Usually `process.env`; an input so tests and embedders control it. */
  env: Readonly<Record<string, string | undefined>>;
  /** Usually `os.homedir()`. */
  homedir: string;
  /**
   * Values from CLI flags, keyed by dotted config key (`{"nats.url": "…"}`).
   * Undefined values (flags not given) are skipped; strings are read like
   * environment values, so `"50"` for a number key is 50.
   */
  flags?: Readonly<Record<string, unknown>>;
  /** How each flag is spelt, for messages (`{"output.color": "--no-color"}`); default `--nats-url` for `nats.url`. */
  flagNames?: Readonly<Record<string, string>>;
  /** Provider sections (`aws` → its zod schema). */
  sections?: ConfigSections;
}

export interface ConfigSource {
  kind: SourceKind;
  /** The file, for `user` and `project`. */
  path?: string;
  /** Dotted keys this source set. */
  keys: string[];
}

export interface LoadedConfig {
  config: LoadedRunctlConfig;
  /** Sources that contributed, lowest precedence first. */
  sources: ConfigSource[];
  projectFile?: string;
  /** Where the user file is or would be, whether or not it exists. */
  userFile: string;
}

/** Reads, merges and validates configuration; throws ConfigError naming the file and line, variable or flag. */
export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const sections = options.sections ?? {};
  const schema = configSchemaWith(sections);
  const sectionNames = [...CORE_SECTIONS, ...Object.keys(sections)];
  const userFile = userConfigPath(options.env, options.homedir);
  const projectFile = await findProjectConfig(options.cwd);

  const layers: Layer[] = [];
  const user = await readConfigFile(userFile);
  if (user) layers.push({ kind: "user", file: userFile, ...user });
  if (projectFile !== undefined && projectFile !== userFile) {
    const project = await readConfigFile(projectFile);
    if (project) layers.push({ kind: "project", file: projectFile, ...project });
  }
  const env = envLayer(options.env, new Set(sectionNames), schema);
  if (env) layers.push(env);
  const flags = flagLayer(options.flags ?? {}, options.flagNames ?? {}, schema);
  if (flags) layers.push(flags);

  const { config, issues } = checkLayers(layers, schema, sectionNames);
  if (issues.length > 0 || config === undefined) throw configErrorFor(issues);

  const sources: ConfigSource[] = [{ kind: "defaults", keys: keysOf(defaultConfig()) }];
  for (const layer of layers) {
    const source: ConfigSource = { kind: layer.kind, keys: keysOf(layer.data) };
    if (layer.file !== undefined) source.path = layer.file;
    sources.push(source);
  }
  const loaded: LoadedConfig = { config: config as LoadedRunctlConfig, sources, userFile };
  if (projectFile !== undefined) loaded.projectFile = projectFile;
  return loaded;
}

function keysOf(tree: Tree): string[] {
  return leafPaths(tree).map(dottedKey);
}

/** Text and parsed table of a TOML file; undefined when it does not exist. */
export async function readConfigFile(file: string): Promise<{ text: string; data: Tree } | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new ConfigError(`Cannot read ${file}: ${(error as Error).message}`, {
      code: "config_unreadable",
      hint: `Check that ${file} is a readable file (permissions, not a directory).`,
      details: { file },
      cause: error,
    });
  }
  return { text, data: parseConfigText(text, file) };
}

/** Parses TOML text, turning syntax errors into `config_parse` errors with file, line and column. */
export function parseConfigText(text: string, file: string): Tree {
  try {
    return parse(text, { unsafeKeyBehaviour: "throw" });
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    const reason = error.message.split("\n")[0]?.replace(/^Invalid TOML document: /, "") ?? "syntax error";
    throw new ConfigError(`${file}: invalid TOML at line ${error.line}, column ${error.column}: ${reason}`, {
      code: "config_parse",
      hint: `Fix the syntax at ${file}:${error.line}:${error.column} (TOML reference: https://toml.io/en/v1.0.0).`,
      details: { file, line: error.line, column: error.column, excerpt: error.codeblock },
      cause: error,
    });
  }
}

function envLayer(
  env: Readonly<Record<string, string | undefined>>,
  known: ReadonlySet<string>,
  schema: ReturnType<typeof configSchemaWith>,
): Layer | undefined {
  const entries = configEnvEntries(env, known);
  if (entries.length === 0) return undefined;
  const data: Tree = {};
  for (const entry of entries)
    setAt(data, entry.path, parseConfigValueFor(entry.raw, schemaAt(schema, entry.path)));
  return { kind: "env", data, names: entries.map((e) => ({ path: e.path, name: e.variable })) };
}

function flagLayer(
  flags: Readonly<Record<string, unknown>>,
  flagNames: Readonly<Record<string, string>>,
  schema: ReturnType<typeof configSchemaWith>,
): Layer | undefined {
  const data: Tree = {};
  const names: { path: string[]; name: string }[] = [];
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const name = flagNames[key] ?? `--${key.replace(/[._]/g, "-")}`;
    const path = splitDottedKey(key);
    if (path === undefined) {
      throw new ConfigError(`flag ${name}: "${key}" is not a config key`, {
        code: "config_invalid",
        hint: "Config keys look like section.key, e.g. nats.url.",
        details: { flag: name, key },
      });
    }
    setAt(data, path, typeof value === "string" ? parseConfigValueFor(value, schemaAt(schema, path)) : value);
    names.push({ path, name });
  }
  return names.length > 0 ? { kind: "flags", data, names } : undefined;
}
