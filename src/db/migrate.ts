import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from './db.js';

/** The folder of numbered `NNNN_name.sql` migrations, shipped beside `src/` and `dist/`. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

/** An arbitrary constant: the advisory-lock key every Sluice process uses to serialise migrations. */
const MIGRATION_LOCK_KEY = 0x51_1c_e0_01;

interface Migration {
  version: number;
  name: string;
  sql: string;
}

function readMigrations(dir: string): Migration[] {
  const sqlFiles = fs.readdirSync(dir).filter((f) => f.endsWith('.sql'));
  // A misnamed migration would otherwise be skipped without a word, and the schema silently lack it.
  const misnamed = sqlFiles.filter((f) => !/^\d{4}_[a-z0-9_]+\.sql$/.test(f));
  if (misnamed.length > 0) {
    throw new Error(`migration file ${misnamed.join(', ')} in ${dir} is not named NNNN_lowercase_name.sql`);
  }
  const files = sqlFiles.sort();
  return files.map((file, index) => {
    const version = Number(file.slice(0, 4));
    if (version !== index + 1) {
      throw new Error(`migration ${file} in ${dir} is out of sequence: expected number ${String(index + 1).padStart(4, '0')}`);
    }
    return { version, name: file.slice(5, -4), sql: fs.readFileSync(path.join(dir, file), 'utf8') };
  });
}

/**
 * Applies every migration not yet applied, in order, forward only. Safe when several processes start at
 * once: everything runs in one transaction holding a transaction-level advisory lock, so the second
 * process waits, then finds the versions already recorded. DDL is transactional in PostgreSQL, so a
 * failing migration leaves nothing half-applied. Returns the versions this call applied.
 */
export async function migrate(db: Db, dir: string = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = readMigrations(dir);
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.query(`CREATE TABLE IF NOT EXISTS sluice_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const rows = await tx.query<{ version: number }>('SELECT version FROM sluice_migrations');
    const done = new Set(rows.map((r) => r.version));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...done].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new Error(
        `the database has migrations this Sluice does not know (${unknown.join(', ')}): it was created by a newer version`,
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO sluice_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    return applied;
  });
}
