/**
 * The `runctl` package's public entry. Plugin authors: extend `RunctlCommand`
 * from `@runctl/command` (re-exported here for existing code) and depend on
 * that package and `@runctl/core`, not on `runctl`: a plugin installed with
 * `runctl plugins install` must not bring a second copy of the CLI.
 */
export { type JsonResult, RunctlCommand, table } from "@runctl/command";
export { providerPackageCandidates } from "./hooks/plugin-name.ts";
