/**
 * `plugins:preinstall` hook: resolves a provider plugin's short name, then
 * shows what a third-party package is and asks before it is installed.
 *
 * `runctl plugins install provider-<name>` installs, in this order, the first
 * package the configured npm registry has:
 *   1. `@runctl/provider-<name>`  (first-party scope)
 *   2. `runctl-provider-<name>`   (the third-party convention, like eslint-plugin-*)
 *   3. `provider-<name>`          (the name as typed)
 * Full names (`runctl-provider-gcp`, `@acme/runctl-provider-gcp`) are used as given.
 * oclif's own `scope` expansion only knows `@scope/plugin-*`, hence this hook.
 *
 * Anyone can publish names 2 and 3 (and any full name outside `@runctl/`), so
 * for every package outside the `@runctl` scope the hook prints its name,
 * version, publisher and what it contributes to runctl, and asks; without a
 * terminal to ask on, it refuses unless `--yes` was given.
 */
import { execFile } from "node:child_process";
import { createInterface } from "node:readline/promises";
import { UserError } from "@runctl/core";

const SHORT_NAME = /^provider-[a-z0-9][a-z0-9._-]*$/;
const FIRST_PARTY = /^@runctl\//;

/** Set (to "1") by `runctl plugins install --yes`: install third-party packages without asking. */
export const ASSUME_YES_ENV = "RUNCTL_PLUGINS_INSTALL_YES";

export function providerPackageCandidates(shortName: string): string[] {
  return [`@runctl/${shortName}`, `runctl-${shortName}`, shortName];
}

function npm(args: string[]): Promise<{ ok: true; stdout: string } | { ok: false; output: string }> {
  return new Promise((resolve) => {
    execFile("npm", args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) resolve({ ok: true, stdout });
      else resolve({ ok: false, output: `${stderr}${stdout}` || error.message });
    });
  });
}

function unreachable(name: string, output: string): UserError {
  return new UserError(
    `Could not ask the npm registry about ${name}: ${output.trim().split("\n").pop() ?? ""}`,
    {
      code: "registry_unreachable",
      hint: "Check your network and npm registry settings (`npm config get registry`).",
    },
  );
}

/** Asks the registry npm is configured for (honours .npmrc and npm_config_registry). */
async function existsOnRegistry(name: string): Promise<boolean> {
  const r = await npm(["view", name, "name"]);
  if (r.ok) return r.stdout.trim().length > 0;
  if (/E404|404 Not Found|is not in this registry/i.test(r.output)) return false;
  throw unreachable(name, r.output);
}

export interface PackageSummary {
  name: string;
  version: string;
  description?: string;
  /** The npm user who published this version, as the registry records it (npmjs does; some private registries do not). */
  publisher?: string;
  /** The `author` field the package gives itself: anyone can write anything there. */
  author?: string;
  maintainers: string[];
  /** What the package adds to runctl: command topics, providers, other hooks. */
  contributes: string[];
  registry?: string;
}

interface Person {
  name?: string;
  email?: string;
}

function person(p: Person | string | undefined): string | undefined {
  if (!p) return undefined;
  if (typeof p === "string") return p;
  return [p.name, p.email ? `<${p.email}>` : undefined].filter(Boolean).join(" ") || undefined;
}

interface ViewedManifest {
  name?: string;
  version?: string;
  description?: string;
  author?: Person | string;
  _npmUser?: Person | string;
  maintainers?: (Person | string)[];
  oclif?: {
    commands?: unknown;
    topics?: Record<string, unknown>;
    hooks?: Record<string, unknown>;
  };
  dist?: { tarball?: string };
}

export function summarisePackage(viewed: ViewedManifest): PackageSummary {
  const contributes: string[] = [];
  const oclif = viewed.oclif ?? {};
  const topics = Object.keys(oclif.topics ?? {});
  if (topics.length > 0)
    contributes.push(`commands under ${topics.map((t) => `\`runctl ${t}\``).join(", ")}`);
  else if (oclif.commands) contributes.push("commands");
  for (const hook of Object.keys(oclif.hooks ?? {})) {
    contributes.push(
      hook === "runctl:providers" ? "providers (the runctl:providers hook)" : `the ${hook} hook`,
    );
  }
  const registry = viewed.dist?.tarball ? new URL(viewed.dist.tarball).origin : undefined;
  return {
    name: viewed.name ?? "?",
    version: viewed.version ?? "?",
    ...(viewed.description ? { description: viewed.description } : {}),
    ...(person(viewed._npmUser) ? { publisher: person(viewed._npmUser) } : {}),
    ...(person(viewed.author) ? { author: person(viewed.author) } : {}),
    maintainers: (viewed.maintainers ?? []).map(person).filter((m): m is string => Boolean(m)),
    contributes: contributes.length > 0 ? contributes : ["nothing runctl recognises (no commands, no hooks)"],
    ...(registry ? { registry } : {}),
  };
}

async function describePackage(name: string, tag: string): Promise<PackageSummary> {
  const r = await npm(["view", `${name}@${tag}`, "--json"]);
  if (!r.ok) throw unreachable(name, r.output);
  const parsed = JSON.parse(r.stdout) as ViewedManifest | ViewedManifest[];
  // A range matching several versions gives an array; npm installs the highest, the last one.
  const viewed = Array.isArray(parsed) ? parsed[parsed.length - 1] : parsed;
  if (!viewed) throw unreachable(name, "no version matches");
  return summarisePackage(viewed);
}

export function describeForConsent(pkg: PackageSummary): string {
  return [
    `runctl: ${pkg.name}@${pkg.version} is not a first-party (@runctl/) package; its code will run with your permissions.`,
    ...(pkg.description ? [`  description:  ${pkg.description}`] : []),
    `  published by: ${pkg.publisher ?? "not recorded by the registry"}${pkg.maintainers.length > 0 ? ` (maintainers: ${pkg.maintainers.join(", ")})` : ""}`,
    ...(pkg.author ? [`  author:       ${pkg.author} (as the package states it)`] : []),
    `  contributes:  ${pkg.contributes.join("; ")}`,
    ...(pkg.registry ? [`  from:         ${pkg.registry}`] : []),
  ].join("\n");
}

async function confirm(pkg: PackageSummary): Promise<void> {
  process.stderr.write(`${describeForConsent(pkg)}\n`);
  if (process.env[ASSUME_YES_ENV] === "1") return;
  if (!process.stdin.isTTY) {
    const error = new UserError(`Not installing ${pkg.name}@${pkg.version} without confirmation`, {
      code: "confirmation_required",
      hint: `Check the package above, then run \`runctl plugins install ${pkg.name}@${pkg.version} --yes\`.`,
    });
    throw Object.assign(error, { oclif: { exit: error.exitCode } });
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`Install ${pkg.name}@${pkg.version}? [y/N] `)).trim().toLowerCase();
    if (answer === "y" || answer === "yes") return;
  } finally {
    rl.close();
  }
  const error = new UserError(`Not installing ${pkg.name}: declined`, { code: "install_declined" });
  throw Object.assign(error, { oclif: { exit: error.exitCode } });
}

interface ParsedPlugin {
  type: string;
  name?: string;
  tag?: string;
  url?: string;
}

export default async function resolvePluginName(options: { plugin?: ParsedPlugin }): Promise<void> {
  const plugin = options.plugin;
  if (!plugin) return;
  if (plugin.type !== "npm" || !plugin.name) {
    // A git URL: nothing to look up on a registry, but still someone else's code.
    if (plugin.url && process.env[ASSUME_YES_ENV] !== "1") {
      await confirm({
        name: plugin.url,
        version: "(git)",
        maintainers: [],
        contributes: ["unknown until installed"],
      });
    }
    return;
  }
  if (SHORT_NAME.test(plugin.name)) {
    const tried = providerPackageCandidates(plugin.name);
    let found: string | undefined;
    for (const candidate of tried) {
      if (await existsOnRegistry(candidate)) {
        found = candidate;
        break;
      }
    }
    if (!found) {
      const error = new UserError(
        `No package for ${plugin.name} on the npm registry (tried ${tried.join(", ")})`,
        {
          code: "plugin_not_found",
          hint: "Check the name with `npm search runctl-provider`, or install by full package name.",
        },
      );
      // oclif swallows hook errors unless they carry an exit code.
      throw Object.assign(error, { oclif: { exit: error.exitCode } });
    }
    if (found !== plugin.name) process.stderr.write(`runctl: ${plugin.name} resolves to ${found}\n`);
    // oclif installs the object it handed to this hook, so renaming it here is what redirects the install.
    plugin.name = found;
  }
  if (!FIRST_PARTY.test(plugin.name))
    await confirm(await describePackage(plugin.name, plugin.tag ?? "latest"));
}
