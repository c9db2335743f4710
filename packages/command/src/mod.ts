/**
 * @runctl/command: the base command of runctl and of its plugins.
 *
 * ```ts
 * import { RunctlCommand } from "@runctl/command";
 *
 * export default class List extends RunctlCommand {
 *   static override summary = "List my cloud's machines.";
 *   async run() {
 *     await this.parse(List);
 *     return { resources: await (await this.provider("mycloud")).list() };
 *   }
 * }
 * ```
 */
export { CloudCommand, confirmFlags } from "./cloud-command.ts";
export { type JsonResult, RunctlCommand } from "./command.ts";
export { confirmAction } from "./confirm.ts";
export { fromOclifError } from "./errors.ts";
export { type FallbackReport, type FallbackStepEvent, fallbackReport } from "./fallback-report.ts";
export { machineStoreFlag, monitorFlags } from "./machine-flags.ts";
export { note, printError, table } from "./output.ts";
export { loadProviders, type ProviderLoad } from "./providers.ts";
export { remoteTrainFlags } from "./remote-train-flags.ts";
export { terminalSafe, terminalSafeLines } from "./terminal-text.ts";
