import type { BlobStore } from '../../src/blobs/blob-store.js';
import type { Db } from '../../src/db/db.js';
import { createEngine, type Engine, type EngineOptions } from '../../src/engine/create-engine.js';
import type { ExtractorRegistry } from '../../src/extractors/extractor.js';
import { createExtractorRegistry } from '../../src/extractors/registry.js';

/** An engine on the test database, with tiny backoffs so automatic retries happen at once. */
export async function testEngine(
  db: Db,
  blobs: BlobStore,
  options: Partial<Omit<EngineOptions, 'db' | 'blobs'>> & { extractors?: ExtractorRegistry } = {},
): Promise<Engine> {
  return createEngine({
    db,
    blobs,
    extractors: options.extractors ?? createExtractorRegistry({ allowPrivateUrls: true }),
    autoAttempts: 3,
    backoff: { baseMs: 1, capMs: 5 },
    leaseMs: 30_000,
    ...options,
  });
}

/**
 * Runs rounds until no unit is pending or running. Bounded: gives up (throws) after `maxMs`, so a bug that
 * leaves units behind fails the test instead of hanging it.
 */
export async function drain(engine: Engine, db: Db, options: { concurrency?: number; maxMs?: number } = {}): Promise<number> {
  const deadline = Date.now() + (options.maxMs ?? 60_000);
  let handled = 0;
  while (Date.now() < deadline) {
    const n = await engine.runOnce(options.concurrency ?? 4);
    handled += n;
    if (n === 0) {
      const [row] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM units WHERE status IN ('pending', 'running')");
      if (row!.n === 0) return handled;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  throw new Error(`units still pending or running after ${options.maxMs ?? 60_000} ms`);
}
