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

const postgres: Backend = {
  name: 'postgres',
  async open() {
    const url = process.env.SLUICE_TEST_DATABASE_URL!;
    const template = inject('pgTemplateDatabase');
    if (!template) throw new Error('no PostgreSQL template database was prepared');
    const name = `sluice_t_${randomBase36(12)}`;
    const admin = await openPgDb({ connectionString: url, max: 1 });
    try {
      // Copies from one template may collide for a moment ("being accessed by other users"): retry briefly.
      for (let attempt = 0; ; attempt++) {
        try {
          await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
          break;
        } catch (err) {
          if (attempt >= 20 || !/being accessed by other users/.test((err as Error).message)) throw err;
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
        }
      }
    } finally {
      await admin.close();
    }
    const db = await openPgDb({ connectionString: withDatabase(url, name), max: 5 });
    const close = db.close.bind(db);
    return Object.assign(db, {
      async close() {
        await close();
        const cleanup = await openPgDb({ connectionString: url, max: 1 });
        try {
          await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        } finally {
          await cleanup.close();
        }
      },
    });
  },
};

/** PGlite always; PostgreSQL too when SLUICE_TEST_DATABASE_URL is set (as `.ci/run` does). */
export const BACKENDS: Backend[] = process.env.SLUICE_TEST_DATABASE_URL ? [pglite, postgres] : [pglite];
