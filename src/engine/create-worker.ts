import path from 'node:path';
import type { BlobStore } from '../blobs/blob-store.js';
import { createLocalBlobStore } from '../blobs/local-blob-store.js';
import type { SluiceConfig } from '../config/config.js';
import type { Db } from '../db/db.js';
import type { ExtractorRegistry } from '../extractors/extractor.js';
import { createExtractorRegistry } from '../extractors/registry.js';
import { createEngine } from './create-engine.js';
import { startWorkerLoop } from './worker-loop.js';

export { WAKE_CHANNEL } from './worker-loop.js';

/** Options for {@link createWorker}. */
export interface WorkerOptions {
  db: Db;
  /** Attempts, backoff, lease, workers, data dir (for blobs) and extractor settings. */
  config: Pick<
    SluiceConfig,
    | 'workers'
    | 'autoAttempts'
    | 'backoffBaseMs'
    | 'backoffCapMs'
    | 'leaseMs'
    | 'dataDir'
    | 'allowPrivateUrls'
    | 'embeddingsUrl'
    | 'embeddingsModel'
    | 'embeddingsApiKey'
    | 'publicUrl'
  >;
  /** Defaults to the local blob store under the data dir. */
  blobs?: BlobStore;
  /** Defaults to the built-in extractors configured from `config`. */
  extractors?: ExtractorRegistry;
  /** Where extractors fetch stored blobs (signed URLs); defaults to `config.publicUrl`. */
  publicUrl?: string;
  /** Units run at once; defaults to `config.workers` (at least 1). */
  concurrency?: number;
  /** Most units claimed at once (default: 64 per unit of concurrency, at most 500). */
  claimLimit?: number;
  /** Longest sleep between polls when no wake-up arrives (ms). */
  pollIntervalMs?: number;
  onError?: (err: unknown) => void;
}

/** A running worker. */
export interface Worker {
  /** This worker's lease owner name. */
  readonly owner: string;
  /** How many polling rounds have completed (diagnostics, tests). */
  readonly rounds: number;
  /** Graceful stop: claims nothing more, finishes and writes the units it holds. */
  stop(): Promise<void>;
}

/** The built-in extractors as configured (shared by the server and `sluice worker`). */
export function extractorsFromConfig(config: WorkerOptions['config']): ExtractorRegistry {
  return createExtractorRegistry({
    embeddings: config.embeddingsUrl ? { url: config.embeddingsUrl, model: config.embeddingsModel, apiKey: config.embeddingsApiKey } : undefined,
    allowPrivateUrls: config.allowPrivateUrls,
  });
}

/**
 * Starts a worker: the engine (claim, run, write) in a loop that sleeps until a `NOTIFY` or the poll
 * interval when there is nothing to do. Any number of workers, in any number of processes, may run against
 * one PostgreSQL: they coordinate only through the database.
 */
export async function createWorker(options: WorkerOptions): Promise<Worker> {
  const { db, config } = options;
  const engine = await createEngine({
    db,
    blobs: options.blobs ?? createLocalBlobStore(path.join(config.dataDir, 'blobs')),
    extractors: options.extractors ?? extractorsFromConfig(config),
    autoAttempts: config.autoAttempts,
    backoff: { baseMs: config.backoffBaseMs, capMs: config.backoffCapMs },
    leaseMs: config.leaseMs,
    publicUrl: options.publicUrl ?? config.publicUrl,
    claimLimit: options.claimLimit,
    onError: options.onError,
  });
  const loop = await startWorkerLoop({
    db,
    concurrency: Math.max(1, options.concurrency ?? config.workers),
    pollIntervalMs: options.pollIntervalMs,
    runOnce: (concurrency) => engine.runOnce(concurrency),
    stopClaiming: () => engine.stopClaiming(),
    onError: options.onError,
  });
  return {
    owner: engine.owner,
    get rounds() {
      return loop.rounds;
    },
    async stop() {
      await loop.stop();
      await engine.close();
    },
  };
}
