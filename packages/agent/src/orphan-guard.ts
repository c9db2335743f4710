/**
 * A supervisor killed with SIGKILL cannot stop its ranks, and ranks left
 * running keep a GPU (and the bill) busy. So the supervisor starts a guard: a
 * tiny shell in its own process group that the kernel signals when the
 * supervisor dies (util-linux `setpriv --pdeathsig`, Linux). The guard then
 * sends SIGTERM to every rank's process group, and SIGKILL after the grace
 * period — children of ranks included. A supervisor that ends normally
 * dismisses the guard first; a guard whose ranks are all gone leaves by itself.
 *
 * A supervisor running inside a foreground CLI (not an agent process of its
 * own) also gives the guard a command to run once the ranks are stopped:
 * agent-main's `orphaned` mode, which records the run as cancelled, as the
 * supervisor itself would have on a Ctrl-C, instead of leaving it to read as lost.
 */
import { spawn } from "node:child_process";
import { findOnPath } from "./launch-command.ts";

export interface OrphanGuard {
  dismiss(): void;
}

/** A command the guard runs after stopping the ranks, with variables of its own. */
export interface OrphanedCommand {
  argv: readonly string[];
  env: Readonly<Record<string, string>>;
}

export function startOrphanGuard(
  pgids: readonly number[],
  graceSeconds: number,
  env: Readonly<Record<string, string | undefined>>,
  then?: OrphanedCommand,
): OrphanGuard | undefined {
  if (process.platform !== "linux" || pgids.length === 0) return undefined;
  const setpriv = findOnPath("setpriv", { PATH: `${env.PATH ?? ""}:/usr/bin:/bin` });
  if (!setpriv) return undefined;
  const groups = pgids.map((pgid) => `-${Math.trunc(pgid)}`).join(" ");
  // Numeric signals: dash's kill takes `-15 -PGID` but neither `--` nor `-TERM -PGID`.
  const grace = Math.max(0, Math.trunc(graceSeconds));
  // The guard also leaves on its own once no rank group has a process left, so
  // it can never outlive the run by more than one poll.
  const anyAlive = pgids.map((pgid) => `kill -0 -${Math.trunc(pgid)} 2>/dev/null`).join(" || ");
  // The command's words travel as positional parameters ("$@"): nothing of them is parsed by sh.
  const after = then ? `"$@";` : "";
  const onOrphaned = `kill $! 2>/dev/null; kill -15 ${groups} 2>/dev/null; i=0; while [ $i -lt ${grace} ] && { ${anyAlive}; }; do sleep 1; i=$((i+1)); done; kill -9 ${groups} 2>/dev/null; ${after} exit 0`;
  const script = `trap '${onOrphaned}' TERM; while ${anyAlive}; do sleep 5 & wait $!; done; exit 0`;
  const guard = spawn(
    setpriv,
    ["--pdeathsig", "SIGTERM", "--", "/bin/sh", "-c", script, "runctl-orphan-guard", ...(then?.argv ?? [])],
    {
      detached: true,
      stdio: "ignore",
      ...(then ? { env: { ...process.env, ...then.env } } : {}),
    },
  );
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
