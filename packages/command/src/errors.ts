/**
 * oclif's own errors (bad flags, missing arguments, unknown commands) as
 * runctl errors, so they get the same envelope and exit codes as everything else.
 */
import { ConfigError, isRunctlError, type RunctlError, toRunctlError, UserError } from "@runctl/core";

interface OclifLikeError {
  name?: string;
  message?: string;
  oclif?: { exit?: number };
  code?: string;
}

export function fromOclifError(error: unknown, commandId?: string, usageHint?: string): RunctlError {
  if (isRunctlError(error)) return error;
  const e = error as OclifLikeError | undefined;
  // A command or hook whose module does not load: an installation problem (a plugin built
  // against a package it did not declare, a half-finished install), not the user's typing.
  if (
    e &&
    typeof e === "object" &&
    (e.name === "ModuleLoadError" || e.code === "MODULE_NOT_FOUND" || e.code === "ERR_MODULE_NOT_FOUND")
  ) {
    return new ConfigError((e.message ?? "A module did not load").replace(/^\[MODULE_NOT_FOUND\]\s*/, ""), {
      code: "plugin_load_failed",
      hint: "A plugin's code did not load. `runctl plugins` lists plugins; reinstall the one named above (`runctl plugins install <name>`) or remove it (`runctl plugins uninstall <name>`).",
    });
  }
  if (e && typeof e === "object" && e.oclif && typeof e.message === "string") {
    const notFound = /command (.+) not found/i.exec(e.message);
    return new UserError(e.message.replace(/\s+See more help with.*$/s, ""), {
      code: notFound ? "unknown_command" : "bad_usage",
      hint: notFound
        ? "Run `runctl --help` to list commands."
        : (usageHint ??
          `See the usage with \`runctl ${commandId ? `${commandId.replaceAll(":", " ")} ` : ""}--help\`.`),
    });
  }
  return toRunctlError(error);
}
