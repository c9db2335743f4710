/**
 * agent-main's `orphaned` mode: the orphan guard of a run supervised inside a
 * foreground CLI runs it once that CLI was killed outright (SIGKILL) and the
 * ranks are stopped. The run is recorded as the supervisor records a run
 * stopped by SIGTERM (cancelled, exit code 143), so `runctl runs` says what
 * happened rather than "lost". Only a run still open and still written by the
 * dead process is touched: a later attempt or a finished run is left alone.
 */
import { TERMINAL_STATUSES } from "@runctl/core";
import { isPidAlive, RunWriter } from "@runctl/tracker";
import { exitCodeOfSignal } from "./exit-status.ts";
import { ORPHANED_PID_VARIABLE, ORPHANED_RUN_DIR_VARIABLE } from "./supervisor.ts";

export function finishOrphanedRun(env: Readonly<Record<string, string | undefined>>): void {
  const runDir = env[ORPHANED_RUN_DIR_VARIABLE];
  const pid = Number(env[ORPHANED_PID_VARIABLE]);
  if (!runDir || !Number.isInteger(pid) || pid <= 0 || isPidAlive(pid)) return;
  const writer = RunWriter.open(runDir);
  const meta = writer.currentMeta();
  if (TERMINAL_STATUSES.has(meta.status) || meta.pid !== pid) return;
  writer.finish("cancelled", {
    exitCode: exitCodeOfSignal("SIGTERM"),
    error: "the runctl process supervising the run was killed; its ranks were stopped",
  });
}
