/**
 * Retries with capped full-jitter exponential backoff (the AWS Architecture Blog's "full
 * jitter"): the SDK's own retries are off, so a throttling storm costs a bounded, known number
 * of calls, and RunInstances is only ever retried with the same ClientToken.
 */
export interface BackoffPolicy {
  /** Retries after the first call; 0 = never retry. */
  attempts: number;
  baseMs: number;
  capMs: number;
}

export function backoffDelay(
  policy: BackoffPolicy,
  retry: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

export async function withRetries<T>(
  policy: BackoffPolicy,
  call: () => Promise<T>,
  retryable: (error: unknown) => boolean,
  signal?: AbortSignal,
): Promise<T> {
  for (let retry = 0; ; retry++) {
    try {
      return await call();
    } catch (error) {
      if (retry >= policy.attempts || !retryable(error) || signal?.aborted) throw error;
      const delay = backoffDelay(policy, retry);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        signal?.addEventListener(
          "abort",
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
    }
  }
}
