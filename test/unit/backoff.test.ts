import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../src/engine/backoff.js';

const policy = { baseMs: 1000, capMs: 60_000 };

describe('backoffDelayMs', () => {
  it('grows the ceiling exponentially from the base: base · 2^(attempt−1)', () => {
    const top = (attempt: number) => backoffDelayMs(attempt, policy, { random: () => 0.999_999_999 });
    expect([1, 2, 3, 4, 5].map(top)).toEqual([999, 1999, 3999, 7999, 15_999]);
  });

  it('never exceeds the cap, however many attempts', () => {
    for (const attempt of [7, 10, 50, 1000, 1e9]) {
      expect(backoffDelayMs(attempt, policy, { random: () => 0.999_999 })).toBeLessThanOrEqual(60_000);
      expect(backoffDelayMs(attempt, policy, { random: () => 0.999_999 })).toBeGreaterThan(59_000);
    }
  });

  it('uses full jitter: the draw scales the whole window, from 0 up', () => {
    expect(backoffDelayMs(3, policy, { random: () => 0 })).toBe(0);
    expect(backoffDelayMs(3, policy, { random: () => 0.5 })).toBe(2000);
    expect(backoffDelayMs(3, policy, { random: () => 0.25 })).toBe(1000);
  });

  it('spreads real draws over the window', () => {
    const draws = Array.from({ length: 2000 }, () => backoffDelayMs(4, policy));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThanOrEqual(8000);
    // Full jitter, not "equal jitter": a good share of draws falls in the lower half of the window.
    expect(draws.filter((d) => d < 4000).length).toBeGreaterThan(600);
    expect(draws.filter((d) => d >= 4000).length).toBeGreaterThan(600);
  });

  it("never goes below the server's Retry-After", () => {
    expect(backoffDelayMs(1, policy, { random: () => 0, retryAfterMs: 5000 })).toBe(5000);
    expect(backoffDelayMs(1, policy, { random: () => 0.9, retryAfterMs: 120_000 })).toBe(120_000);
    // A Retry-After shorter than the drawn delay changes nothing.
    expect(backoffDelayMs(5, policy, { random: () => 0.5, retryAfterMs: 10 })).toBe(8000);
    expect(backoffDelayMs(2, policy, { random: () => 0.5, retryAfterMs: null })).toBe(1000);
  });

  it('treats attempt numbers below 1 as the first attempt and clamps odd random values', () => {
    expect(backoffDelayMs(0, policy, { random: () => 0.5 })).toBe(500);
    expect(backoffDelayMs(-3, policy, { random: () => 0.5 })).toBe(500);
    expect(backoffDelayMs(1, policy, { random: () => 1.5 })).toBe(1000);
    expect(backoffDelayMs(1, policy, { random: () => -1 })).toBe(0);
  });

  it('works with a zero base (tests and tight loops): always 0 unless Retry-After says otherwise', () => {
    expect(backoffDelayMs(10, { baseMs: 0, capMs: 0 }, { random: () => 0.7 })).toBe(0);
    expect(backoffDelayMs(10, { baseMs: 0, capMs: 0 }, { random: () => 0.7, retryAfterMs: 30 })).toBe(30);
  });
});
