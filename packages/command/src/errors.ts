/**
 * oclif's own errors (bad flags, missing arguments, unknown commands) as
 * runctl errors, so they get the same envelope and exit codes as everything else.
 */
import { isRunctlError, type RunctlError, toRunctlError, UserError } from "@runctl/core";

interface OclifLikeError {
  message?: string;
  oclif?: { exit?: number };
  code?: string;
}

export function fromOclifError(error: unknown, commandId?: string, usageHint?: string): RunctlError {
  if (isRunctlError(error)) return error;
  const e = error as OclifLikeError | undefined;
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
