/**
 * Run ids: `YYYYMMDD-HHMMSS-xxxxxx` (UTC creation time, 6 random lower-case hex
 * characters). Sortable by creation time and unique without coordination, so
 * several writers on several machines never need to agree on a counter.
 */
import { randomBytes } from "node:crypto";

export const RUN_ID_PATTERN = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-[0-9a-f]{6}$/;

// Ids written by whirr or given by hand need not follow RUN_ID_PATTERN, but they
// become directory names, so they must not be able to name anything else.
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export function newRunId(now: Date = new Date()): string {
  const iso = now.toISOString(); // 2026-11-22T20:15:00.123Z
  const date = iso.slice(0, 10).replaceAll("-", "");
  const time = iso.slice(11, 19).replaceAll(":", "");
  return `${date}-${time}-${randomBytes(3).toString("hex")}`;
}

/** True for ids that are safe as a single path segment (`..`, `/`, hidden names are not). */
export function isSafeRunId(id: string): boolean {
  return SAFE_ID.test(id) && !id.includes("..");
}

/** Creation time encoded in a runctl id; undefined for ids of another shape. */
export function runIdTime(id: string): Date | undefined {
  const m = RUN_ID_PATTERN.exec(id);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
