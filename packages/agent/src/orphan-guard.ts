/**
 * A supervisor killed with SIGKILL cannot stop its ranks, and ranks left
 * running keep a GPU (and the bill) busy. So the supervisor starts a guard: a
 * tiny shell in its own process group that the kernel signals when the
 * supervisor dies (util-linux `setpriv --pdeathsig`, Linux). The guard then
 * sends SIGTERM to every rank's process group, and SIGKILL after the grace
 * period — children of ranks included. A supervisor that ends normally
 * dismisses the guard first; a guard whose ranks are all gone leaves by itself.
 */
import { spawn } from "node:child_process";
import { findOnPath } from "./launch-command.ts";

export interface OrphanGuard {
  dismiss(): void;
}

export function startOrphanGuard(
  pgids: readonly number[],
  graceSeconds: number,
  env: Readonly<Record<string, string | undefined>>,
): OrphanGuard | undefined {
  if (process.platform !== "linux" || pgids.length === 0) return undefined;
  const setpriv = findOnPath("setpriv", { PATH: `${env.PATH ?? ""}:/usr/bin:/bin` });
  if (!setpriv) return undefined;
  const groups = pgids.map((pgid) => `-${Math.trunc(pgid)}`).join(" ");
  // Numeric signals: dash's kill takes `-15 -PGID` but neither `--` nor `-TERM -PGID`.
  const grace = Math.max(0, Math.trunc(graceSeconds));
  const onOrphaned = `kill $! 2>/dev/null; kill -15 ${groups} 2>/dev/null; sleep ${grace}; kill -9 ${groups} 2>/dev/null; exit 0`;
  // The guard also leaves on its own once no rank group has a process left, so
  // it can never outlive the run by more than one poll.
  const anyAlive = pgids.map((pgid) => `kill -0 -${Math.trunc(pgid)} 2>/dev/null`).join(" || ");
  const script = `trap '${onOrphaned}' TERM; while ${anyAlive}; do sleep 5 & wait $!; done; exit 0`;
  const guard = spawn(setpriv, ["--pdeathsig", "SIGTERM", "--", "/bin/sh", "-c", script], {
    detached: true,
    stdio: "ignore",
  });
  guard.on("error", () => undefined);
  guard.unref();
  return {
    dismiss: () => {
      if (guard.pid === undefined) return;
      try {
        process.kill(-guard.pid, "SIGKILL");
      } catch {
        // already gone
      }
    },
  };
}
