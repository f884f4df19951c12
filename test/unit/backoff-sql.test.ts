import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { type BackoffPolicy, backoffDelayMs } from '../../src/engine/backoff.js';
import { BACKENDS } from '../helpers/test-db.js';

interface Case {
  attempt: number;
  policy: BackoffPolicy;
  retryAfterMs: number | null;
  r: number;
}

/** A seeded generator, so a failing case can be reproduced. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POLICIES: BackoffPolicy[] = [
  { baseMs: 1000, capMs: 60_000 },
  { baseMs: 1, capMs: 5 },
  { baseMs: 250, capMs: 250 },
  { baseMs: 0, capMs: 0 },
  { baseMs: 3_600_000, capMs: 86_400_000 },
  { baseMs: 7, capMs: 1_000_003 },
];
const ATTEMPTS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 17, 31, 62, 63, 64, 100, 1024, 1025, 5000, 2_000_000_000];
const RETRY_AFTER = [null, 0, 1, 999, 5000, 60_000, 120_000, 86_400_000];
const EDGE_R = [0, 1, 0.5, 0.25, 0.999_999_999, 1e-9, 0.1, 0.3, 2 ** -52];

function cases(): Case[] {
  const random = mulberry32(0x5eed);
  const out: Case[] = [];
  for (const policy of POLICIES) {
    for (const attempt of ATTEMPTS) {
      for (const retryAfterMs of RETRY_AFTER) {
        for (const r of [...EDGE_R, random(), random(), random()]) out.push({ attempt, policy, retryAfterMs, r });
      }
    }
  }
  return out;
}

for (const backend of BACKENDS) {
  describe(`sluice_backoff_ms mirrors backoffDelayMs (${backend.name})`, () => {
    let db: Db;
    beforeAll(async () => {
      db = await backend.open();
    });
    afterAll(async () => {
      await db?.close();
    });

    it('gives exactly the TypeScript result for every (attempt, policy, retry_after, draw) case, in one statement', async () => {
      const all = cases();
      expect(all.length).toBeGreaterThan(10_000);
      const rows = await db.query<{ ms: number }>(
        `SELECT sluice_backoff_ms(c.attempt, c.base, c.cap, c.retry_after, c.r) AS ms
           FROM unnest($1::integer[], $2::float8[], $3::float8[], $4::float8[], $5::float8[])
                WITH ORDINALITY AS c(attempt, base, cap, retry_after, r, ord)
          ORDER BY c.ord`,
        [
          all.map((c) => c.attempt),
          all.map((c) => c.policy.baseMs),
          all.map((c) => c.policy.capMs),
          all.map((c) => c.retryAfterMs),
          all.map((c) => c.r),
        ],
      );
      const sql = rows.map((row) => row.ms);
      const ts = all.map((c) => backoffDelayMs(c.attempt, c.policy, { retryAfterMs: c.retryAfterMs, random: () => c.r }));
      const mismatches = all.flatMap((c, i) => (sql[i] === ts[i] ? [] : [{ ...c, sql: sql[i], ts: ts[i] }]));
      expect(mismatches.slice(0, 5)).toEqual([]);
      expect(ts.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    });

    it('keeps the documented shape: base · 2^(n−1) window, cap, full jitter, Retry-After floor', async () => {
      const [row] = await db.query<Record<string, number>>(
        `SELECT sluice_backoff_ms(1, 1000, 60000, NULL, 0.999999999) AS first,
                sluice_backoff_ms(4, 1000, 60000, NULL, 0.999999999) AS fourth,
                sluice_backoff_ms(40, 1000, 60000, NULL, 1) AS capped,
                sluice_backoff_ms(3, 1000, 60000, NULL, 0) AS zero_draw,
                sluice_backoff_ms(3, 1000, 60000, 5000, 0) AS floor,
                sluice_backoff_ms(0, 1000, 60000, NULL, 1) AS attempt_zero`,
      );
      expect(row).toEqual({ first: 999, fourth: 7999, capped: 60_000, zero_draw: 0, floor: 5000, attempt_zero: 1000 });
    });

    it('is IMMUTABLE (the random draw is an argument), so the planner may inline and fold it', async () => {
      const [fn] = await db.query<{ provolatile: string; proparallel: string }>(
        `SELECT provolatile, proparallel FROM pg_proc WHERE proname = 'sluice_backoff_ms'`,
      );
      expect(fn).toEqual({ provolatile: 'i', proparallel: 's' });
    });
  });
}
