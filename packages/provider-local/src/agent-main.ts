/**
 * The supervisor as a process of its own: `node agent-main.js '<json>'`. The
 * local provider starts it detached for `launch`; it keeps the run directory
 * truthful and needs no CLI. (The remote agent started by a bootstrap is this
 * same entry.)
 */
import { z } from "zod";
import { resolveLaunchCommand } from "./launch-command.ts";
import { Supervisor } from "./supervisor.ts";

const AgentSpec = z.strictObject({
  runId: z.string(),
  cwd: z.string(),
  runsDir: z.string(),
  checkpointDir: z.string(),
  command: z.array(z.string()).min(1),
  tags: z.record(z.string(), z.string()),
});
export type AgentSpec = z.infer<typeof AgentSpec>;

const spec = AgentSpec.parse(JSON.parse(process.argv[2] ?? "{}"));
const [target, ...args] = spec.command;
const launch = resolveLaunchCommand({
  target: target as string,
  args,
  cwd: spec.cwd,
  env: process.env,
  raw: true,
});
// Handlers go in before the ranks exist: a signal that arrives while they are
// being started must stop them, not kill this process and orphan them.
let requested: NodeJS.Signals | undefined;
let supervisor: Supervisor | undefined;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    requested = signal === "SIGHUP" ? "SIGTERM" : signal;
    supervisor?.stop(requested);
  });
}
supervisor = await Supervisor.start({
  launch,
  cwd: spec.cwd,
  runsDir: spec.runsDir,
  runId: spec.runId,
  checkpointDir: spec.checkpointDir,
  env: process.env,
  resourceTags: spec.tags,
});
if (requested) supervisor.stop(requested);
const outcome = await supervisor.done;
process.exitCode = outcome.exitCode;
