import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';
import { openPgDb } from '../../src/db/pg-db.js';
import { BACKENDS } from '../helpers/test-db.js';
import { type ProcessDatabase, processDatabase, tempDir } from '../process/sluice-process.js';

/** The real migrations, as `sluice_migrations` records them. */
const REAL = fs
  .readdirSync(MIGRATIONS_DIR)
  .filter((f) => f.endsWith('.sql'))
  .sort()
  .map((f) => ({ file: f, version: Number(f.slice(0, 4)), name: f.slice(5, -4) }));
const REAL_APPLIED = REAL.map(({ version, name }) => ({ version, name }));
/** File-name prefix of the n-th migration after the real ones (1 = the next one). */
const next = (n: number) => String(REAL.length + n).padStart(4, '0');

/** A migrations folder holding the real migrations plus `extra` files (name → SQL). */
function migrationsDir(dirs: string[], extra: Record<string, string>, withReal = true): string {
  const dir = tempDir('migrations');
  dirs.push(dir);
  if (withReal) for (const m of REAL) fs.copyFileSync(path.join(MIGRATIONS_DIR, m.file), path.join(dir, m.file));
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
      expect(await applied(db)).toEqual(REAL_APPLIED);
      expect(await migrate(db)).toEqual([]);
      expect(await migrate(db)).toEqual([]);
      expect(await applied(db)).toEqual(REAL_APPLIED);
    });

    it('applies a new migration once, in order, and records it', async () => {
      const dir = migrationsDir(dirs, { [`${next(1)}_widgets.sql`]: 'CREATE TABLE widgets (id int PRIMARY KEY);' });
      expect(await migrate(db, dir)).toEqual([REAL.length + 1]);
      expect(await migrate(db, dir)).toEqual([]);
      expect(await applied(db)).toEqual([
        ...REAL_APPLIED,
        { version: REAL.length + 1, name: 'widgets' },
      ]);
      expect(await db.query("SELECT to_regclass('widgets') IS NOT NULL AS present")).toEqual([{ present: true }]);
    });

    it('refuses a migrations folder with a gap, naming the file', async () => {
      const dir = migrationsDir(dirs, { [`${next(2)}_skipped_two.sql`]: 'CREATE TABLE skipped (id int);' });
      await expect(migrate(db, dir)).rejects.toThrow(
        new RegExp(`${next(2)}_skipped_two\\.sql .*out of sequence: expected number ${next(1)}`),
      );
      expect(await db.query("SELECT to_regclass('skipped') IS NULL AS absent")).toEqual([{ absent: true }]);
    });

    it('refuses two migrations with the same number', async () => {
      const dir = migrationsDir(dirs, { '0001_again.sql': 'SELECT 1;' });
      await expect(migrate(db, dir)).rejects.toThrow(/out of sequence/);
    });

    it('refuses a .sql file that is not named like a migration instead of skipping it', async () => {
      const dir = migrationsDir(dirs, { [`${next(1)}_Add-Widgets.sql`]: 'CREATE TABLE widgets (id int);', 'README.md': 'notes' });
      await expect(migrate(db, dir)).rejects.toThrow(new RegExp(`${next(1)}_Add-Widgets\\.sql`));
      expect(await applied(db)).toEqual(REAL_APPLIED);
    });

    it('refuses a database holding a migration this version does not know', async () => {
      await db.query(`INSERT INTO sluice_migrations (version, name) VALUES (999, 'from_the_future')`);
      await expect(migrate(db)).rejects.toThrow(/does not know \(999\).*newer version/);
    });

    it('leaves nothing of a failing migration behind', async () => {
      const dir = migrationsDir(dirs, {
        [`${next(1)}_broken.sql`]: 'CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nSELECT no_such_column FROM half_done;',
      });
      await expect(migrate(db, dir)).rejects.toThrow(/no_such_column/);
      expect(await db.query("SELECT to_regclass('half_done') IS NULL AS absent")).toEqual([{ absent: true }]);
      expect(await applied(db)).toEqual(REAL_APPLIED);
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
          expect(results.filter((r) => r.length > 0)).toEqual([REAL.map((m) => m.version)]);
          expect(results.filter((r) => r.length === 0)).toHaveLength(3);
          const check = connections[0]!;
          expect(await applied(check)).toEqual(REAL_APPLIED);
          const tables = await check.query<{ tablename: string }>(
            `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`,
          );
          // Each table exactly once, among them the first migration's and the bookkeeping table.
          const names = tables.map((t) => t.tablename);
          expect(new Set(names).size).toBe(names.length);
          expect(names).toEqual(expect.arrayContaining(['api_keys', 'namespaces', 'organizations', 'sluice_migrations', 'users']));
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
