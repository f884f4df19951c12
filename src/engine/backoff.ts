/** Settings of {@link backoffDelayMs}. */
export interface BackoffPolicy {
  /** Delay ceiling of the first attempt (ms); doubles with each further attempt. */
  baseMs: number;
  /** No delay ceiling grows past this (ms). */
  capMs: number;
}

/**
 * How long to wait before attempt `attempt + 1`, after `attempt` attempts have failed (attempt ≥ 1).
 *
 * Exponential with full jitter: a uniform draw from `[0, min(cap, base · 2^(attempt−1))]`. Full jitter
 * spreads a burst of failures (an upstream outage hitting many units at once) over the whole window instead
 * of sending them back together. A server's `Retry-After` (`retryAfterMs`) is a floor: never sooner.
 * Pure: `random` is injected so tests can pin it.
 */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  options: { retryAfterMs?: number | null; random?: () => number } = {},
): number {
  const n = Math.max(1, Math.floor(attempt));
  // 2^(n−1) overflows to Infinity long before it matters; min() with the cap keeps the result finite.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** (n - 1));
  const r = Math.min(Math.max((options.random ?? Math.random)(), 0), 1);
  const jittered = Math.floor(r * ceiling);
  return Math.max(jittered, Math.max(0, options.retryAfterMs ?? 0));
}
