import type { BenchTarget } from './index.js';

/** The cost every design decision rests on: one statement round trip, and a batched statement for contrast. */
export async function benchRoundTrip({ db }: BenchTarget): Promise<void> {
  const n = 2000;
  await db.query('SELECT 1');
  let t = performance.now();
  for (let i = 0; i < n; i++) await db.query('SELECT $1::int AS v', [i]);
  const single = (performance.now() - t) / n;
  const ids = Array.from({ length: n }, (_, i) => i);
  t = performance.now();
  await db.query('SELECT count(*) FROM unnest($1::int[]) AS v', [ids]);
  const batched = performance.now() - t;
  console.log(
    `round trip: ${single.toFixed(3)} ms/statement; ${n} values in one unnest statement: ${batched.toFixed(2)} ms ` +
      `(${((single * n) / batched).toFixed(0)}x fewer ms than one statement per value)`,
  );
}
