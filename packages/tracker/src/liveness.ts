/**
 * The spec's "lost" rule: a run that is not terminal but whose writer is gone
 * (its pid is dead on this host, or its heartbeat is older than 60 s) is
 * reported as failed. Readers apply it on the fly and never rewrite meta.json.
 */
import { hostname as osHostname } from "node:os";
import { type RunMeta, type RunStatus, TERMINAL_STATUSES } from "@runctl/core";

export const HEARTBEAT_STALE_MS = 60_000;

/** `kill(pid, 0)`: no signal is sent; EPERM means it exists but belongs to someone else. */
export function isPidAlive(pid: number): boolean {
  // 0 and negatives address process groups, which would make anything look alive.
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface LivenessOptions {
  now?: Date;
  /** This machine's name; pids are only checked for runs written here. */
  hostname?: string;
  isAlive?: (pid: number) => boolean;
  staleAfterMs?: number;
}

export interface EffectiveStatus {
  status: RunStatus;
  error: string | null;
  lost: boolean;
}

export function effectiveStatus(meta: RunMeta, options: LivenessOptions = {}): EffectiveStatus {
  const recorded: EffectiveStatus = { status: meta.status, error: meta.error ?? null, lost: false };
  if (TERMINAL_STATUSES.has(meta.status)) return recorded;
  const host = options.hostname ?? osHostname();
  const isAlive = options.isAlive ?? isPidAlive;
  if (meta.pid !== undefined && meta.hostname === host && !isAlive(meta.pid)) {
    return { status: "failed", error: `lost: writer pid ${meta.pid} on ${host} is not running`, lost: true };
  }
  const beat = meta.heartbeat_at ? Date.parse(meta.heartbeat_at) : Number.NaN;
  if (!Number.isNaN(beat)) {
    const now = (options.now ?? new Date()).getTime();
    const age = now - beat;
    if (age > (options.staleAfterMs ?? HEARTBEAT_STALE_MS)) {
      const where = meta.hostname ? ` from ${meta.hostname}` : "";
      return {
        status: "failed",
        error: `lost: no heartbeat${where} for ${Math.round(age / 1000)} s (last at ${meta.heartbeat_at})`,
        lost: true,
      };
    }
  }
  return recorded;
}

/** `meta` with the effective status and error in place of the recorded ones. */
export function withEffectiveStatus(meta: RunMeta, options: LivenessOptions = {}): RunMeta {
  const effective = effectiveStatus(meta, options);
  return effective.lost ? { ...meta, status: effective.status, error: effective.error } : meta;
}
