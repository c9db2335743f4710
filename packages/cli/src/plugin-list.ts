/**
 * Installed plugins as runctl lists them (`runctl plugins --json`): name,
 * version, type and where it lives, instead of oclif's full plugin objects
 * (hundreds of kilobytes of manifests).
 *
 * User-installed and linked plugins are read from oclif's own record of them,
 * `<dataDir>/package.json`, so a list taken right after an install or an
 * uninstall in the same process is current.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "@oclif/core";

export interface PluginRow {
  name: string;
  version: string;
  /** `core` ships with runctl; `user` came from `runctl plugins install`; `link` from `runctl plugins link`. */
  type: string;
  root: string;
}

interface UserPluginEntry {
  type?: string;
  name?: string;
  root?: string;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

function versionAt(root: string): string {
  const pjson = readJson(join(root, "package.json")) as { version?: string } | undefined;
  return pjson?.version ?? "?";
}

export function userPlugins(dataDir: string): PluginRow[] {
  const pjson = readJson(join(dataDir, "package.json")) as
    | { oclif?: { plugins?: UserPluginEntry[] } }
    | undefined;
  const rows: PluginRow[] = [];
  for (const entry of pjson?.oclif?.plugins ?? []) {
    if (!entry.name) continue;
    const root = entry.type === "link" && entry.root ? entry.root : join(dataDir, "node_modules", entry.name);
    rows.push({ name: entry.name, version: versionAt(root), type: entry.type ?? "user", root });
  }
  return rows;
}

export function pluginRows(config: Config, options: { core: boolean }): PluginRow[] {
  const core = options.core
    ? config
        .getPluginsList()
        .filter((p) => !p.isRoot && p.type === "core")
        .map((p) => ({ name: p.name, version: p.version, type: p.type, root: p.root }))
    : [];
  return [...core, ...userPlugins(config.dataDir)].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
}
