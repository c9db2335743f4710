/**
 * When to poll. Under the multi-rank agreement poll points are decided by call
 * count (docs/control.md): every rank polls at call 0 and then every `k` calls,
 * `k` chosen by rank 0 from its measured time per call so that polls are about
 * `everyS` apart. A rank on its own polls at most once every `everyS` seconds
 * (runtimectl's throttle).
 */

/** The longest gap between poll points, in calls. */
export const MAX_CALLS_BETWEEN_POLLS = 1_000_000;

export interface PollMark {
  call: number;
  /** `performance.now()` at that call. */
  atMs: number;
}

/**
 * Rank 0's next `k`: 1 at the first poll or when `everyS <= 0`; else
 * `floor(everyS / seconds-per-call since the previous poll)`, at least 1, at
 * most double the previous `k` (a burst of fast calls, e.g. warm-up, cannot
 * push the next poll far into the slow steps that follow) and at most
 * MAX_CALLS_BETWEEN_POLLS.
 */
export function nextCallsBetweenPolls(
  previousK: number,
  previous: PollMark | undefined,
  now: PollMark,
  everyS: number,
): number {
  if (!(everyS > 0) || previous === undefined || now.call <= previous.call) return 1;
  const perCallS = (now.atMs - previous.atMs) / 1000 / (now.call - previous.call);
  const target = perCallS > 0 ? Math.floor(everyS / perCallS) : MAX_CALLS_BETWEEN_POLLS;
  return Math.max(1, Math.min(target, 2 * Math.max(1, previousK), MAX_CALLS_BETWEEN_POLLS));
}
