/**
 * `@runctl/control/queue`: the node-local file queue alone, for a process
 * that watches a run's queue (the supervisor) without loading the NATS
 * client that the package's main entry also exports.
 */
export { FileQueue } from "./file-queue.ts";
