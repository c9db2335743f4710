/**
 * `@runctl/command/output`: runctl's output conventions (the error printer,
 * notes on stderr) without the base command, for a caller that prints like a
 * runctl command without loading oclif (the `runctl local` fast path).
 */
export { note, printError } from "./output.ts";
