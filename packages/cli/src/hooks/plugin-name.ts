/**
 * `plugins:preinstall` hook: resolves a provider plugin's short name.
 *
 * `runctl plugins install provider-<name>` installs, in this order, the first
 * package the configured npm registry has:
 *   1. `@runctl/provider-<name>`  (first-party scope)
 *   2. `runctl-provider-<name>`   (the third-party convention, like eslint-plugin-*)
 *   3. `provider-<name>`          (the name as typed)
 * Full names (`runctl-provider-gcp`, `@acme/runctl-provider-gcp`) are used as given.
 * oclif's own `scope` expansion only knows `@scope/plugin-*`, hence this hook.
 */
import { execFile } from "node:child_process";
import { UserError } from "@runctl/core";

const SHORT_NAME = /^provider-[a-z0-9][a-z0-9._-]*$/;

export function providerPackageCandidates(shortName: string): string[] {
  return [`@runctl/${shortName}`, `runctl-${shortName}`, shortName];
}

/** Asks the registry npm is configured for (honours .npmrc and npm_config_registry). */
function existsOnRegistry(name: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    execFile("npm", ["view", name, "name"], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout.trim().length > 0);
      if (/E404|404 Not Found|is not in this registry/i.test(`${stderr}${stdout}`)) return resolve(false);
      reject(
        new UserError(
          `Could not ask the npm registry about ${name}: ${stderr.trim().split("\n").pop() ?? error.message}`,
          {
            code: "registry_unreachable",
            hint: "Check your network and npm registry settings (`npm config get registry`).",
          },
        ),
      );
    });
  });
}

interface ParsedPlugin {
  type: string;
  name?: string;
  tag?: string;
}

export default async function resolvePluginName(options: { plugin?: ParsedPlugin }): Promise<void> {
  const plugin = options.plugin;
  if (plugin?.type !== "npm" || !plugin.name || !SHORT_NAME.test(plugin.name)) return;
  const tried = providerPackageCandidates(plugin.name);
  for (const candidate of tried) {
    if (await existsOnRegistry(candidate)) {
      if (candidate !== plugin.name)
        process.stderr.write(`runctl: ${plugin.name} resolves to ${candidate}\n`);
      // oclif installs the object it handed to this hook, so renaming it here is what redirects the install.
      plugin.name = candidate;
      return;
    }
  }
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
