/**
 * `npm run bench`: prints figures, asserts nothing. Each benchmark runs on embedded PGlite and, when
 * SLUICE_BENCH_DATABASE_URL (or SLUICE_TEST_DATABASE_URL) is set, on PostgreSQL in a scratch database.
 * Machines here are small and noisy: compare ratios within one run, not absolute numbers across runs.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { migrate } from '../src/db/migrate.js';
import { openPgDb } from '../src/db/pg-db.js';
import { openPgliteDb } from '../src/db/pglite-db.js';
import type { Db } from '../src/db/db.js';
import { randomBase36 } from '../src/ids/new-id.js';
import { benchRequests } from './requests.js';
import { benchPipeline } from './pipeline.js';
import { benchRetry } from './retry.js';
import { benchRoundTrip } from './round-trip.js';
import { benchUploads } from './uploads.js';

export interface BenchTarget {
  name: string;
  db: Db;
  /** Connection string, for benchmarks that start worker processes (PostgreSQL only). */
  url?: string;
}

async function targets(): Promise<{ list: BenchTarget[]; cleanup: () => Promise<void> }> {
  const list: BenchTarget[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const pglite = await openPgliteDb();
  await migrate(pglite);
  list.push({ name: 'pglite', db: pglite });
  cleanups.push(() => pglite.close());
  const url = process.env.SLUICE_BENCH_DATABASE_URL ?? process.env.SLUICE_TEST_DATABASE_URL;
  if (url) {
    const name = `sluice_bench_${randomBase36(8)}`;
    const admin = await openPgDb({ connectionString: url, max: 1 });
    await admin.query(`CREATE DATABASE ${name}`);
    const u = new URL(url);
    u.pathname = `/${name}`;
    const db = await openPgDb({ connectionString: u.toString(), max: 10 });
    await migrate(db);
    list.push({ name: 'postgres', db, url: u.toString() });
    cleanups.push(async () => {
      await db.close();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    });
  }
  return {
    list,
    cleanup: async () => {
      for (const c of cleanups.reverse()) await c();
    },
  };
}

// Worker processes run the built CLI: build it first when the sources are newer.
execFileSync(process.execPath, ['scripts/ensure-built.mjs'], { stdio: 'inherit' });
const BENCHES: Record<string, (target: BenchTarget) => Promise<void>> = {
  'round-trip': benchRoundTrip,
  requests: benchRequests,
  uploads: benchUploads,
  pipeline: benchPipeline,
  retry: benchRetry,
};
// SLUICE_BENCH_ONLY=pipeline,requests runs a subset.
const only = process.env.SLUICE_BENCH_ONLY?.split(',').map((s) => s.trim());
const { list, cleanup } = await targets();
console.log(`sluice bench — node ${process.version}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
try {
  for (const target of list) {
    console.log(`\n== ${target.name}`);
    for (const [name, run] of Object.entries(BENCHES)) {
      if (!only || only.includes(name)) await run(target);
    }
  }
} finally {
  await cleanup();
}
console.log(`\npeak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
