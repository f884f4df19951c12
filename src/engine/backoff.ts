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
  // The exponent stops at 62: past it base · 2^(n−1) is beyond any cap for base ≥ cap / 2^62 (every real
  // setting), and a base of 0 stays 0 instead of 0 · Infinity = NaN. The SQL mirror, sluice_backoff_ms
  // (migrations/0006_retry.sql), needs the same bound: PostgreSQL raises an error on float overflow.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(n - 1, 62));
  const r = Math.min(Math.max((options.random ?? Math.random)(), 0), 1);
  const jittered = Math.floor(r * ceiling);
  return Math.max(jittered, Math.max(0, options.retryAfterMs ?? 0));
}
