import fs from 'node:fs';
import path from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { lockDataDir } from './data-dir-lock.js';
import type { Db, Queryable, Row } from './db.js';

/** Options for {@link openPgliteDb}. */
export interface PgliteDbOptions {
  /**
   * Directory that holds Sluice's data; the database lives in `<dataDir>/pgdata`. The directory is
   * locked for this process. Omit for an in-memory database (tests).
   */
  dataDir?: string;
  /** A dump made by {@link buildPgliteTemplate} to start from instead of an empty cluster. */
  loadDataDir?: Blob;
}

function queryable(q: PGlite | Transaction): Queryable {
  return {
    async query<R = Row>(sql: string, params?: unknown[]): Promise<R[]> {
      return (await q.query<R>(sql, params as unknown[])).rows;
    },
    async exec(script: string): Promise<void> {
      await q.exec(script);
    },
  };
}

function wrap(pglite: PGlite, release: () => void): Db {
  let closed = false;
  return {
    kind: 'pglite',
    ...queryable(pglite),
    transaction: (fn) => pglite.transaction((tx) => fn(queryable(tx))),
    async listen(channel, onNotify) {
      const unsubscribe = await pglite.listen(channel, onNotify);
      return () => unsubscribe();
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await pglite.close();
      } finally {
        release();
      }
    },
  };
}

/** Opens embedded PostgreSQL (PGlite). One process owns a data directory at a time. */
export async function openPgliteDb(options: PgliteDbOptions = {}): Promise<Db> {
  const release = options.dataDir ? lockDataDir(options.dataDir) : () => {};
  try {
    const pgdata = options.dataDir ? path.join(options.dataDir, 'pgdata') : undefined;
    if (pgdata) fs.mkdirSync(pgdata, { recursive: true });
    return wrap(await PGlite.create({ dataDir: pgdata, loadDataDir: options.loadDataDir }), release);
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * Builds a migrated in-memory database and returns its dump. Opening a dump takes ~0.5 s where a cold
 * PGlite start takes 3–4 s, so tests and benchmarks start each fresh database from one template.
 */
export async function buildPgliteTemplate(prepare: (db: Db) => Promise<void>): Promise<Blob> {
  const pglite = await PGlite.create();
  try {
    await prepare(wrap(pglite, () => {}));
    return await pglite.dumpDataDir('none');
  } finally {
    await pglite.close();
  }
}
