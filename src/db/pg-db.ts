import pg from 'pg';
import type { Db, Queryable, Row } from './db.js';

const INT8_OID = 20;

// Per-pool type parsers, so Sluice never changes the process-wide `pg.types` of an embedding application.
// int8 comes back as a number (counts and sizes stay far below 2^53); everything else as pg defaults.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/** Options for {@link openPgDb}. */
export interface PgDbOptions {
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
  /** `application_name`, visible in `pg_stat_activity`. */
  applicationName?: string;
}

/** Opens a pooled connection to PostgreSQL and checks it answers. */
export async function openPgDb(options: PgDbOptions): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'sluice',
    types,
  });
  // An idle client that loses its server must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => {});
    throw new Error(`cannot connect to PostgreSQL at ${redact(options.connectionString)}: ${(err as Error).message}`);
  }

  let listener: pg.Client | undefined;
  const handlers = new Map<string, Set<(payload: string) => void>>();
  let closed = false;

  async function listenerClient(): Promise<pg.Client> {
    if (listener) return listener;
    const client = new pg.Client({ connectionString: options.connectionString, types });
    client.on('error', () => {
      // Dropped: the next listen() reconnects; pollers cover the gap.
      if (listener === client) listener = undefined;
    });
    client.on('notification', (msg) => {
      for (const handler of handlers.get(msg.channel) ?? []) handler(msg.payload ?? '');
    });
    await client.connect();
    listener = client;
    return client;
  }

  const db: Db = {
    kind: 'postgres',
    async query<R = Row>(sql: string, params?: unknown[]): Promise<R[]> {
      const result = await pool.query(sql, params as unknown[]);
      return result.rows as R[];
    },
    async exec(script: string): Promise<void> {
      await pool.query(script);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          async query<R = Row>(sql: string, params?: unknown[]): Promise<R[]> {
            return (await client.query(sql, params as unknown[])).rows as R[];
          },
          async exec(script: string): Promise<void> {
            // Without parameters pg uses the simple query protocol, which accepts several statements.
            await client.query(script);
          },
        };
        const value = await fn(tx);
        await client.query('COMMIT');
        return value;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async listen(channel, onNotify) {
      const client = await listenerClient();
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      set.add(onNotify);
      return async () => {
        set.delete(onNotify);
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await listener?.end().catch(() => {});
      await pool.end();
    },
  };
  return db;
}

/** The connection string without its password, for messages. */
export function redact(connectionString: string): string {
  try {
    const u = new URL(connectionString);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable connection string>';
  }
}
