/**
 * Sluice's public surface: start a server, start workers, read configuration. Everything else is internal.
 */
export { loadConfig, ConfigError, type SluiceConfig } from './config/config.js';
export { createServer, type ServerOptions, type SluiceServer } from './server/create-server.js';
export { createWorker, type Worker, type WorkerOptions } from './engine/create-worker.js';
export type { Db, Queryable } from './db/db.js';
