/**
 * The fast path of the `runctl` binary: `runctl --version` and `runctl --help`
 * (and a bare `runctl`) are answered from package.json files and oclif
 * manifests, without importing @oclif/core, which alone costs about five times
 * a bare `node -e 0` to load. This module imports Node built-ins only.
 *
 * It answers only what it can answer exactly as oclif would list it: every
 * plugin (core, user-installed, linked) must have an `oclif.manifest.json`;
 * otherwise, or for anything else on the command line, it declines and the
 * caller hands the arguments to oclif.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

interface ManifestCommand {
  id: string;
  summary?: string;
  description?: string;
  hidden?: boolean;
  aliases?: string[];
}

interface TopicConfig {
  description?: string;
  hidden?: boolean;
  subtopics?: Record<string, TopicConfig>;
}

interface PackageJson {
  name: string;
  version: string;
  description?: string;
  oclif?: {
    bin?: string;
    dirname?: string;
    description?: string;
    plugins?: string[];
    topics?: Record<string, TopicConfig>;
    topicSeparator?: string;
    commands?: unknown;
    state?: string;
  };
}

interface UserPluginEntry {
  type?: string;
  name?: string;
  root?: string;
}

export interface HelpCommand {
  id: string;
  summary: string;
  plugin: string;
}

export interface HelpTopic {
  name: string;
  description: string;
}

export interface CommandIndex {
  commands: HelpCommand[];
  topics: HelpTopic[];
}

/** Declines by returning undefined when anything is not as expected. */
class Decline extends Error {}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    throw new Decline(path);
  }
}

/** Where a package lives, resolved the way Node would from `fromDir` (node_modules walk-up). */
function packageRoot(name: string, fromDir: string): string {
  let dir = fromDir;
  for (;;) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Decline(name);
    dir = parent;
  }
}

/** oclif's data dir: `$<BIN>_DATA_DIR`, else `$XDG_DATA_HOME/<dirname>`, else `~/.local/share/<dirname>`. */
export function dataDir(bin: string, dirnameSetting: string): string {
  const scoped = process.env[`${bin.toUpperCase().replaceAll("-", "_")}_DATA_DIR`];
  if (scoped) return scoped;
  const base = process.env.XDG_DATA_HOME || join(process.env.HOME || homedir(), ".local", "share");
  return join(base, dirnameSetting);
}

interface PluginInfo {
  name: string;
  root: string;
  pjson: PackageJson;
}

function pluginInfo(root: string): PluginInfo {
  const pjson = readJson<PackageJson>(join(root, "package.json"));
  return { name: pjson.name, root, pjson };
}

/**
 * The oclif settings of the CLI at `cliRoot` and whether plugins were
 * installed or linked by the user (`runctl plugins install`), from files only.
 */
export function pluginSetup(cliRoot: string): {
  bin: string;
  dataDir: string;
  corePlugins: string[];
  userPlugins: boolean;
} {
  const root = readJson<PackageJson>(join(cliRoot, "package.json"));
  const oclif = root.oclif ?? {};
  const bin = oclif.bin ?? root.name;
  const data = dataDir(bin, oclif.dirname ?? root.name);
  const userPjsonPath = join(data, "package.json");
  let userPlugins = false;
  if (existsSync(userPjsonPath)) {
    const user = readJson<{ oclif?: { plugins?: UserPluginEntry[] } }>(userPjsonPath);
    userPlugins = (user.oclif?.plugins ?? []).length > 0;
  }
  return { bin, dataDir: data, corePlugins: oclif.plugins ?? [], userPlugins };
}

/** Every command and topic a full oclif start would list, from manifests only. */
export function commandIndex(cliRoot: string): CommandIndex {
  const root = pluginInfo(cliRoot);
  const oclif = root.pjson.oclif ?? {};
  const plugins: PluginInfo[] = [root];
  for (const name of oclif.plugins ?? []) plugins.push(pluginInfo(packageRoot(name, cliRoot)));
  const data = dataDir(oclif.bin ?? root.name, oclif.dirname ?? root.name);
  const userPjsonPath = join(data, "package.json");
  if (existsSync(userPjsonPath)) {
    const user = readJson<{ oclif?: { plugins?: UserPluginEntry[] } }>(userPjsonPath);
    for (const entry of user.oclif?.plugins ?? []) {
      if (entry.type === "user" && entry.name)
        plugins.push(pluginInfo(join(data, "node_modules", entry.name)));
      else if (entry.type === "link" && entry.root) plugins.push(pluginInfo(entry.root));
      else throw new Decline("unknown plugin entry");
    }
  }

  const commands = new Map<string, HelpCommand>();
  const topics = new Map<string, HelpTopic>();
  const addTopics = (configured: Record<string, TopicConfig> | undefined, prefix: string) => {
    for (const [name, topic] of Object.entries(configured ?? {})) {
      const full = prefix ? `${prefix}:${name}` : name;
      if (!topic.hidden) {
        const existing = topics.get(full);
        if (!existing || topic.description)
          topics.set(full, { name: full, description: topic.description ?? "" });
      }
      addTopics(topic.subtopics, full);
    }
  };
  for (const plugin of plugins) addTopics(plugin.pjson.oclif?.topics, "");
  for (const plugin of plugins) {
    const hasCommands = plugin.pjson.oclif?.commands !== undefined;
    const manifestPath = join(plugin.root, "oclif.manifest.json");
    if (!existsSync(manifestPath)) {
      if (hasCommands) throw new Decline(`${plugin.name} has no manifest`);
      continue;
    }
    const manifest = readJson<{ commands?: Record<string, ManifestCommand> }>(manifestPath);
    for (const command of Object.values(manifest.commands ?? {})) {
      if (command.hidden) continue;
      const summary = command.summary || (command.description ?? "").split("\n")[0] || "";
      // The CLI and its core plugins come first, and the first of a duplicate id wins (as in oclif).
      if (!commands.has(command.id))
        commands.set(command.id, { id: command.id, summary, plugin: plugin.name });
      const parts = command.id.split(":");
      while (parts.length > 0) {
        const name = parts.join(":");
        if (!topics.has(name))
          topics.set(name, { name, description: command.summary || command.description || "" });
        parts.pop();
      }
    }
  }
  const byName =
    <T>(key: (t: T) => string) =>
    (a: T, b: T) =>
      key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  const ids = [...commands.keys()];
  return {
    commands: [...commands.values()].sort(byName((c) => c.id)),
    // A topic is listed when it has commands under it (a plain command is not a topic).
    topics: [...topics.values()]
      .filter((t) => ids.some((id) => id.startsWith(`${t.name}:`)))
      .sort(byName((t) => t.name)),
  };
}

/** Greedy word wrap to `width` columns. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.length > 0 ? lines : [""];
}

function section(title: string, rows: [string, string][], width: number): string {
  const left = Math.max(...rows.map(([name]) => name.length));
  const textWidth = Math.max(20, width - left - 4);
  const body = rows.map(([name, text]) => {
    const [first = "", ...rest] = wrap(text.split("\n")[0] ?? "", textWidth);
    return [
      `  ${name.padEnd(left)}  ${first}`.trimEnd(),
      ...rest.map((r) => `  ${" ".repeat(left)}  ${r}`),
    ].join("\n");
  });
  return `${title}\n${body.join("\n")}`;
}

export function userAgent(pjson: PackageJson): string {
  const bin = pjson.oclif?.bin ?? pjson.name;
  return `${bin}/${pjson.version} ${process.platform}-${process.arch} node-${process.version}`;
}

export function rootHelp(cliRoot: string, width: number): string {
  const pjson = readJson<PackageJson>(join(cliRoot, "package.json"));
  const bin = pjson.oclif?.bin ?? pjson.name;
  const separator = pjson.oclif?.topicSeparator ?? ":";
  const shown = (id: string) => id.replaceAll(":", separator);
  const index = commandIndex(cliRoot);
  const description = (pjson.oclif?.description || pjson.description || "").split("\n")[0] ?? "";
  const topics = index.topics.filter((t) => !t.name.includes(":"));
  const commands = index.commands.filter((c) => !c.id.includes(":"));
  const parts = [
    description,
    `VERSION\n  ${userAgent(pjson)}`,
    `USAGE\n  $ ${bin} [COMMAND]`,
    topics.length > 0
      ? section(
          "TOPICS",
          topics.map((t) => [shown(t.name), t.description]),
          width,
        )
      : "",
    commands.length > 0
      ? section(
          "COMMANDS",
          commands.map((c) => [shown(c.id), c.summary]),
          width,
        )
      : "",
  ];
  return `${parts.filter(Boolean).join("\n\n")}\n\n`;
}

const VERSION_FLAGS = new Set(["--version", "-v"]);
const HELP_FLAGS = new Set(["--help", "-h"]);

/**
 * Answers `--version`, `--help`, `-h`, `-v` and an empty command line (each
 * optionally with `--json`). Returns false when the arguments are for oclif.
 */
export function fastPath(argv: readonly string[], cliRoot: string): boolean {
  if (process.env.RUNCTL_NO_FAST_PATH) return false;
  const json = argv.includes("--json");
  const rest = argv.filter((a) => a !== "--json");
  if (rest.length > 1) return false;
  const [only] = rest;
  try {
    if (only !== undefined && VERSION_FLAGS.has(only)) {
      const pjson = readJson<PackageJson>(join(cliRoot, "package.json"));
      if (json) {
        const doc = {
          success: true,
          name: pjson.name,
          version: pjson.version,
          userAgent: userAgent(pjson),
          node: process.version,
          platform: process.platform,
          arch: process.arch,
        };
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
      } else process.stdout.write(`${userAgent(pjson)}\n`);
      return true;
    }
    if (only === undefined || HELP_FLAGS.has(only)) {
      if (json) {
        const pjson = readJson<PackageJson>(join(cliRoot, "package.json"));
        const doc = { success: true, version: pjson.version, ...commandIndex(cliRoot) };
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        return true;
      }
      const width = Number(process.env.OCLIF_COLUMNS) || process.stdout.columns || 80;
      process.stdout.write(rootHelp(cliRoot, width));
      return true;
    }
  } catch (error) {
    if (error instanceof Decline) return false;
    throw error;
  }
  return false;
}
