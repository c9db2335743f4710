/**
 * `@runctl/agent/supervisor`: the supervisor alone, for a process that runs a
 * run spec itself (a foreground `runctl local`), without the remote launch,
 * run sync and NATS modules the package's main entry also exports.
 */
export { type RanksOutcome, type RunOutcome, Supervisor, type SupervisorHooks } from "./supervisor.ts";
