import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createLocalBlobStore } from '../blobs/local-blob-store.js';
import { loadConfig, type SluiceConfig } from '../config/config.js';
import type { Db } from '../db/db.js';
import { migrate } from '../db/migrate.js';
import { openDb } from '../db/open-db.js';
import { createWorker, extractorsFromConfig, type Worker } from '../engine/create-worker.js';
import { buildApp } from '../http/app.js';
import { type BootstrapResult, bootstrap } from '../organizations/service.js';

/** Options for {@link createServer}. */
export interface ServerOptions {
  /** Full configuration; by default read from `process.env` with {@link loadConfig}. */
  config?: SluiceConfig;
  /** Fastify logger setting; defaults to JSON logs at the configured level. */
  logger?: boolean | { level: string };
}

/** A running Sluice: API plus in-process workers. */
export interface SluiceServer {
  app: FastifyInstance;
  db: Db;
  config: SluiceConfig;
  /** `http://host:port` it listens on. */
  url: string;
  bootstrap: BootstrapResult;
  /** Graceful stop: no new connections, in-flight requests finish, workers drain, database closes. */
  close(): Promise<void>;
}

/**
 * Starts Sluice: opens the database (PGlite in the data dir unless `DATABASE_URL`), applies migrations,
 * bootstraps the first admin key, serves the API and runs `SLUICE_WORKERS` in-process workers.
 */
export async function createServer(options: ServerOptions = {}): Promise<SluiceServer> {
  const config = options.config ?? loadConfig();
  const db = await openDb(config, 'sluice-api');
  let app: FastifyInstance | undefined;
  let worker: Worker | undefined;
  try {
    await migrate(db);
    const boot = await bootstrap(db, { bootstrapApiKey: config.bootstrapApiKey, dataDir: config.dataDir });
    const blobs = createLocalBlobStore(path.join(config.dataDir, 'blobs'));
    const extractors = extractorsFromConfig(config);
    app = await buildApp({
      db,
      blobs,
      extractors,
      limits: {
        bodyLimitBytes: config.bodyLimitBytes,
        inlineBlobMaxBytes: config.inlineBlobMaxBytes,
        uploadMaxBytes: config.uploadMaxBytes,
      },
      publicUrl: config.publicUrl,
      backoff: { baseMs: config.backoffBaseMs, capMs: config.backoffCapMs },
      logger: options.logger ?? { level: config.logLevel },
    });
    const address = await app.listen({ port: config.port, host: config.host });
    if (config.workers > 0) {
      const log = app.log;
      // Started after listen, so that without SLUICE_PUBLIC_URL the blob URLs handed to extractors can point
      // at this server's own address.
      worker = await createWorker({
        db,
        config,
        blobs,
        extractors,
        publicUrl: config.publicUrl ?? address,
        onError: (err) => log.error({ err }, 'worker round failed'),
      });
    }
    let closing: Promise<void> | undefined;
    const started = app;
    const startedWorker = worker;
    return {
      app: started,
      db,
      config,
      url: address,
      bootstrap: boot,
      close() {
        closing ??= (async () => {
          await started.close();
          await startedWorker?.stop();
          await db.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    await worker?.stop().catch(() => {});
    await app?.close().catch(() => {});
    await db.close().catch(() => {});
    throw err;
  }
}
