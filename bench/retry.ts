import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requeueFailedUnits } from '../src/batches/retry-units.js';
import { createLocalBlobStore } from '../src/blobs/local-blob-store.js';
import { buildApp } from '../src/http/app.js';
import { createOrganization } from '../src/organizations/service.js';
import type { BenchTarget } from './index.js';

const UNITS = Number(process.env.SLUICE_BENCH_RETRY_UNITS ?? 1_000_000);
const FAILED_EVERY = 10; // one unit in ten failed (transient): 100k of 1M

/**
 * The retry endpoint's statement against its floor: a batch of 1M units of which 100k failed transiently;
 * time to select and re-queue them with `requeueFailedUnits` (filters, per-unit backoff, counts, reopening)
 * next to a bare `UPDATE … SET status = 'pending'` of the same rows. PostgreSQL only (the figure).
 */
export async function benchRetry(target: BenchTarget): Promise<void> {
  if (!target.url) return;
  const { db } = target;
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-retry-'));
  const app = await buildApp({ db, blobs: createLocalBlobStore(blobDir) });
  try {
    const { adminKey } = await createOrganization(db, `bench-retry-${Date.now()}`, 'bench@sluice.local');
    const headers = { authorization: `Bearer ${adminKey}`, 'x-namespace': 'retry' };
    const call = async (url: string, payload: unknown) => {
      const res = await app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });
      if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode} ${res.body}`);
      return res.json();
    };
    await call('/v1/namespaces', { namespace_name: 'retry', feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] });
    const bucket = await call('/v1/buckets', { bucket_name: 'retry', bucket_schema: { properties: { n: { type: 'integer' } } } });
    const collection = await call('/v1/collections', {
      collection_name: 'retry',
      source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
      feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
    });
    const batch = await call(`/v1/buckets/${bucket.bucket_id}/batches?skip_validation=true`, { object_ids: [] });
    const batchId = batch.batch_id as string;

    // A finished batch as the engine leaves it: one tier, 1M units, every tenth failed with a transient error.
    let t = performance.now();
    await db.query(
      `UPDATE batches SET status = 'COMPLETED_WITH_ERRORS', dag_tiers = $2::jsonb, collection_ids = $3::text[],
              submitted_at = now(), started_at = now(), completed_at = now() WHERE id = $1`,
      [batchId, JSON.stringify([[collection.collection_id]]), [collection.collection_id]],
    );
    await db.query(
      `INSERT INTO batch_tiers (batch_id, tier_num, collection_ids, source_type, status, started_at, completed_at)
       VALUES ($1, 0, $2::text[], 'bucket', 'COMPLETED_WITH_ERRORS', now(), now())`,
      [batchId, [collection.collection_id]],
    );
    const error = JSON.stringify({ error_type: 'resource', transient: true, code: 'service_unavailable', message: 'HTTP 503', http_status: 503, retry_after_ms: null });
    for (let start = 0; start < UNITS; start += 100_000) {
      await db.query(
        `INSERT INTO units (batch_id, collection_id, tier_num, source_type, source_id, root_object_id, status, attempts, last_error, completed_at)
         SELECT $1, $2, 0, 'object', 'obj_' || g, 'obj_' || g,
                CASE WHEN g % ${FAILED_EVERY} = 0 THEN 'failed' ELSE 'completed' END, 1,
                CASE WHEN g % ${FAILED_EVERY} = 0 THEN $3::jsonb END, now()
           FROM generate_series($4::int, $5::int) AS g`,
        [batchId, collection.collection_id, error, start + 1, Math.min(UNITS, start + 100_000)],
      );
    }
    await db.query('VACUUM ANALYZE units');
    const failed = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM units WHERE batch_id = $1 AND status = 'failed'", [batchId]))[0]!.n;
    console.log(`retry: ${UNITS} units, ${failed} failed (set up in ${((performance.now() - t) / 1000).toFixed(1)} s)`);

    const reset = async () => {
      await db.query(
        `UPDATE units SET status = 'failed', retry_count = 0, last_retry_at = NULL WHERE batch_id = $1 AND status = 'pending'`,
        [batchId],
      );
      await db.query(`UPDATE batches SET status = 'COMPLETED_WITH_ERRORS' WHERE id = $1`, [batchId]);
      await db.query('VACUUM ANALYZE units');
    };
    const retry: number[] = [];
    const bare: number[] = [];
    for (let round = 0; round < 3; round++) {
      t = performance.now();
      const outcome = await db.transaction((tx) =>
        requeueFailedUnits(tx, { batchId, retryMode: 'transient_only', tierNums: [], maxRetryCount: 3, documentIds: null }, { baseMs: 1000, capMs: 60_000 }),
      );
      retry.push(performance.now() - t);
      const requeued = outcome.tiers.reduce((n, x) => n + x.retried, 0);
      if (requeued !== failed) throw new Error(`retry re-queued ${requeued} units, expected ${failed}`);
      await reset();
      t = performance.now();
      const rows = await db.query<{ n: number }>(
        `WITH u AS (UPDATE units SET status = 'pending' WHERE batch_id = $1 AND status = 'failed' RETURNING 1) SELECT count(*)::int AS n FROM u`,
        [batchId],
      );
      bare.push(performance.now() - t);
      if (rows[0]!.n !== failed) throw new Error(`bare UPDATE touched ${rows[0]!.n} units, expected ${failed}`);
      await reset();
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(
      `retry: re-queue ${failed} failed of ${UNITS} units: retry statement ${median(retry).toFixed(0)} ms, bare UPDATE ${median(bare).toFixed(0)} ms ` +
        `(floor), ratio ${(median(retry) / median(bare)).toFixed(2)}× (median of 3; runs ${retry.map((x) => x.toFixed(0)).join('/')} vs ${bare.map((x) => x.toFixed(0)).join('/')} ms)`,
    );
  } finally {
    await app.close();
    fs.rmSync(blobDir, { recursive: true, force: true });
  }
}
