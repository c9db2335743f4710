/**
 * Last-resort error reporting for failures outside a command (unknown command,
 * a broken plugin manifest). Commands report their own errors through
 * RunctlCommand.catch; both end in the same envelope and exit codes.
 */
import { fromOclifError as baseFromOclifError, printError } from "@runctl/command";
import type { RunctlError } from "@runctl/core";

interface OclifLikeError {
  message?: string;
  oclif?: { exit?: number };
  code?: string;
}

/** Commands that hand the arguments after `--` to a script or program. */
const PASSES_ARGS_ON = new Set(["local", "exec", "submit", "checkpoint:resume"]);

/**
 * `runctl local train.py --epochs 3`: `--epochs` is the script's flag, given
 * before `--`, so runctl's parser rejected it. The hint shows the command
 * line with `--` in place.
 */
export function scriptFlagHint(
  commandId: string | undefined,
  argv: readonly string[] | undefined,
  message: string,
) {
  if (!commandId || !argv || !PASSES_ARGS_ON.has(commandId) || argv.includes("--")) return undefined;
  const flag = /Nonexistent flags?: (-[^\s,=]+)/.exec(message)?.[1];
  if (!flag) return undefined;
  const at = argv.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (at < 0) return undefined;
  // runctl's own --json stays before `--`, wherever it was typed.
  const json = argv.slice(at).includes("--json") ? ["--json"] : [];
  const fixed = [...argv.slice(0, at), ...json, "--", ...argv.slice(at).filter((a) => a !== "--json")];
  return `If ${flag} is meant for the script, put it after \`--\`: \`runctl ${commandId.replaceAll(":", " ")} ${fixed.join(" ")}\`. Otherwise see \`runctl ${commandId.replaceAll(":", " ")} --help\`.`;
}

/** oclif's errors as runctl's, with the `--` hint for commands that pass arguments on to a script. */
export function fromOclifError(error: unknown, commandId?: string, argv?: readonly string[]): RunctlError {
  const message = (error as OclifLikeError | undefined)?.message ?? "";
  return baseFromOclifError(error, commandId, scriptFlagHint(commandId, argv, message));
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
