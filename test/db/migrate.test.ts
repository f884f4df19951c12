import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';
import { openPgDb } from '../../src/db/pg-db.js';
import { BACKENDS } from '../helpers/test-db.js';
import { type ProcessDatabase, processDatabase, tempDir } from '../process/sluice-process.js';

const FOUNDATION = '0001_foundation.sql';

/** A migrations folder holding the real first migration plus `extra` files (name → SQL). */
function migrationsDir(dirs: string[], extra: Record<string, string>, withFoundation = true): string {
  const dir = tempDir('migrations');
  dirs.push(dir);
  if (withFoundation) fs.copyFileSync(path.join(MIGRATIONS_DIR, FOUNDATION), path.join(dir, FOUNDATION));
  for (const [name, sql] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), sql);
  return dir;
}

async function applied(db: Db): Promise<{ version: number; name: string }[]> {
  return db.query('SELECT version, name FROM sluice_migrations ORDER BY version');
}

for (const backend of BACKENDS) {
  describe(`migrate (${backend.name})`, () => {
    const dirs: string[] = [];
    let db: Db;
    beforeEach(async () => {
      db = await backend.open();
    });
    afterEach(async () => {
      await db.close();
    });
    afterAll(() => {
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('applies nothing to an already migrated database, however often it runs', async () => {
      expect(await applied(db)).toEqual([{ version: 1, name: 'foundation' }]);
      expect(await migrate(db)).toEqual([]);
      expect(await migrate(db)).toEqual([]);
      expect(await applied(db)).toEqual([{ version: 1, name: 'foundation' }]);
    });

    it('applies a new migration once, in order, and records it', async () => {
      const dir = migrationsDir(dirs, { '0002_widgets.sql': 'CREATE TABLE widgets (id int PRIMARY KEY);' });
      expect(await migrate(db, dir)).toEqual([2]);
      expect(await migrate(db, dir)).toEqual([]);
      expect(await applied(db)).toEqual([
        { version: 1, name: 'foundation' },
        { version: 2, name: 'widgets' },
      ]);
      expect(await db.query("SELECT to_regclass('widgets') IS NOT NULL AS present")).toEqual([{ present: true }]);
    });

    it('refuses a migrations folder with a gap, naming the file', async () => {
      const dir = migrationsDir(dirs, { '0003_skipped_two.sql': 'CREATE TABLE skipped (id int);' });
      await expect(migrate(db, dir)).rejects.toThrow(/0003_skipped_two\.sql .*out of sequence: expected number 0002/);
      expect(await db.query("SELECT to_regclass('skipped') IS NULL AS absent")).toEqual([{ absent: true }]);
    });

    it('refuses two migrations with the same number', async () => {
      const dir = migrationsDir(dirs, { '0001_again.sql': 'SELECT 1;' });
      await expect(migrate(db, dir)).rejects.toThrow(/out of sequence/);
    });

    it('refuses a .sql file that is not named like a migration instead of skipping it', async () => {
      const dir = migrationsDir(dirs, { '0002_Add-Widgets.sql': 'CREATE TABLE widgets (id int);', 'README.md': 'notes' });
      await expect(migrate(db, dir)).rejects.toThrow(/0002_Add-Widgets\.sql/);
      expect(await applied(db)).toEqual([{ version: 1, name: 'foundation' }]);
    });

    it('refuses a database holding a migration this version does not know', async () => {
      await db.query(`INSERT INTO sluice_migrations (version, name) VALUES (999, 'from_the_future')`);
      await expect(migrate(db)).rejects.toThrow(/does not know \(999\).*newer version/);
    });

    it('leaves nothing of a failing migration behind', async () => {
      const dir = migrationsDir(dirs, {
        '0002_broken.sql': 'CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nSELECT no_such_column FROM half_done;',
      });
      await expect(migrate(db, dir)).rejects.toThrow(/no_such_column/);
      expect(await db.query("SELECT to_regclass('half_done') IS NULL AS absent")).toEqual([{ absent: true }]);
      expect(await applied(db)).toEqual([{ version: 1, name: 'foundation' }]);
      // The database is still usable after the rollback.
      expect(await migrate(db)).toEqual([]);
    });

    if (backend.name === 'postgres') {
      describe('on an empty database', () => {
        let empty: ProcessDatabase;
        const connections: Db[] = [];
        beforeEach(async () => {
          empty = await processDatabase('postgres', { empty: true });
        });
        afterEach(async () => {
          for (const c of connections.splice(0)) await c.close();
          await empty.drop();
        });

        it('four processes migrating at once: exactly one applies, the others find it done', async () => {
          for (let i = 0; i < 4; i++) connections.push(await openPgDb({ connectionString: empty.url!, max: 2 }));
          const results = await Promise.all(connections.map((c) => migrate(c)));
          expect(results.filter((r) => r.length > 0)).toEqual([[1]]);
          expect(results.filter((r) => r.length === 0)).toHaveLength(3);
          const check = connections[0]!;
          expect(await applied(check)).toEqual([{ version: 1, name: 'foundation' }]);
          const tables = await check.query<{ tablename: string }>(
            `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`,
          );
          expect(tables.map((t) => t.tablename)).toEqual(['api_keys', 'namespaces', 'organizations', 'sluice_migrations', 'users']);
        });

        it('a migration that fails on an empty database leaves it empty', async () => {
          const c = await openPgDb({ connectionString: empty.url!, max: 1 });
          connections.push(c);
          const dir = migrationsDir(dirs, { '0001_broken.sql': 'CREATE TABLE t (id int); SELECT 1/0;' }, false);
          await expect(migrate(c, dir)).rejects.toThrow(/division by zero/);
          const tables = await c.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`);
          expect(tables).toEqual([]);
        });
      });
    }
  });
}
