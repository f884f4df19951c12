import type { SluiceConfig } from '../config/config.js';
import type { Db } from './db.js';
import { openPgDb } from './pg-db.js';
import { openPgliteDb } from './pglite-db.js';

/** Opens the database the configuration names: PostgreSQL for `DATABASE_URL`, else PGlite in the data dir. */
export function openDb(config: Pick<SluiceConfig, 'databaseUrl' | 'dataDir'>, applicationName = 'sluice'): Promise<Db> {
  return config.databaseUrl
    ? openPgDb({ connectionString: config.databaseUrl, applicationName })
    : openPgliteDb({ dataDir: config.dataDir });
}
