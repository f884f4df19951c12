import fs from 'node:fs';
import { inject } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { openPgDb } from '../../src/db/pg-db.js';
import { openPgliteDb } from '../../src/db/pglite-db.js';
import { randomBase36 } from '../../src/ids/new-id.js';
import { withDatabase } from './global-setup.js';

/** A storage backend the whole suite runs against. */
export interface Backend {
  name: 'pglite' | 'postgres';
  /** A fresh, migrated, empty database; `close()` also drops it. */
  open(): Promise<Db>;
}

const pglite: Backend = {
  name: 'pglite',
  async open() {
    const bytes = fs.readFileSync(inject('pgliteTemplatePath'));
    return openPgliteDb({ loadDataDir: new Blob([bytes]) });
  },
};

/** A scratch PostgreSQL database: its URL, and how to drop it. */
export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * Creates a scratch database on the SLUICE_TEST_DATABASE_URL server: a copy of the migrated template, or
 * an empty one when `empty` is set. Shared by the in-process backends and the child-process tests.
 */
export async function createScratchDatabase(prefix: string, opts: { empty?: boolean } = {}): Promise<ScratchDatabase> {
  const url = process.env.SLUICE_TEST_DATABASE_URL;
  if (!url) throw new Error('SLUICE_TEST_DATABASE_URL is not set');
  const template = inject('pgTemplateDatabase');
  if (!template && !opts.empty) throw new Error('no PostgreSQL template database was prepared');
  const name = `${prefix}_${randomBase36(12)}`;
  const admin = await openPgDb({ connectionString: url, max: 1 });
  try {
    // Copies from one template may collide for a moment ("being accessed by other users"): retry, bounded.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(opts.empty ? `CREATE DATABASE ${name}` : `CREATE DATABASE ${name} TEMPLATE ${template}`);
        break;
      } catch (err) {
        if (attempt >= 20 || !/being accessed by other users/.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  } finally {
    await admin.close();
  }
  return {
    url: withDatabase(url, name),
    async drop() {
      const cleanup = await openPgDb({ connectionString: url, max: 1 });
      try {
        await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await cleanup.close();
      }
    },
  };
}

const postgres: Backend = {
  name: 'postgres',
  async open() {
    const scratch = await createScratchDatabase('sluice_t');
    const db = await openPgDb({ connectionString: scratch.url, max: 5 });
    const close = db.close.bind(db);
    return Object.assign(db, {
      async close() {
        await close();
        await scratch.drop();
      },
    });
  },
};

/** PGlite always; PostgreSQL too when SLUICE_TEST_DATABASE_URL is set (as `.ci/run` does). */
export const BACKENDS: Backend[] = process.env.SLUICE_TEST_DATABASE_URL ? [pglite, postgres] : [pglite];
