/**
 * Last-resort error reporting for failures outside a command (unknown command,
 * a broken plugin manifest). Commands report their own errors through
 * RunctlCommand.catch; both end in the same envelope and exit codes.
 */
import { isRunctlError, type RunctlError, toRunctlError, UserError } from "@runctl/core";
import { printError } from "./output.ts";

interface OclifLikeError {
  message?: string;
  oclif?: { exit?: number };
  code?: string;
}

export function fromOclifError(error: unknown, commandId?: string): RunctlError {
  if (isRunctlError(error)) return error;
  const e = error as OclifLikeError | undefined;
  if (e && typeof e === "object" && e.oclif && typeof e.message === "string") {
    const notFound = /command (.+) not found/i.exec(e.message);
    return new UserError(e.message.replace(/\s+See more help with.*$/s, ""), {
      code: notFound ? "unknown_command" : "bad_usage",
      hint: notFound
        ? "Run `runctl --help` to list commands."
        : `See the usage with \`runctl ${commandId ? `${commandId.replaceAll(":", " ")} ` : ""}--help\`.`,
    });
  }
  return toRunctlError(error);
}

export async function reportFatal(error: unknown, argv: string[]): Promise<void> {
  const code = (error as OclifLikeError | undefined)?.code;
  // oclif signals a deliberate `this.exit(n)` with EEXIT; it is not a failure to report.
  if (code === "EEXIT") {
    process.exitCode = (error as { oclif?: { exit?: number } }).oclif?.exit ?? 0;
    return;
  }
  const err = fromOclifError(error);
  printError(err, argv.includes("--json"));
  process.exitCode = err.exitCode;
}
