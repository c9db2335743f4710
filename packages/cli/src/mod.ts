/**
 * The `runctl` package's public entry, for plugin authors: extend RunctlCommand
 * so a plugin's commands get `--json`, the envelope and the exit codes for free.
 */
export { type JsonResult, RunctlCommand } from "./command.ts";
export { providerPackageCandidates } from "./hooks/plugin-name.ts";
export { table } from "./output.ts";
