import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { createLocalBlobStore } from '../src/blobs/local-blob-store.js';
import type { Db } from '../src/db/db.js';
import { createEngine } from '../src/engine/create-engine.js';
import { createExtractorRegistry } from '../src/extractors/registry.js';
import { buildApp } from '../src/http/app.js';
import { createOrganization } from '../src/organizations/service.js';
import type { BenchTarget } from './index.js';

const OBJECTS = Number(process.env.SLUICE_BENCH_PIPELINE_OBJECTS ?? 10_000);
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/sluice.js');

interface Pipeline {
  bucketId: string;
  batchId: string;
}

/** A bucket of `OBJECTS` metadata-only objects, two passthrough collections (tier 0 → tier 1), a DRAFT batch. */
async function setUp(app: FastifyInstance, headers: Record<string, string>, label: string): Promise<Pipeline> {
  const call = async (method: 'POST' | 'GET', url: string, payload?: unknown) => {
    const res = await app.inject({ method, url, headers, payload: payload as Record<string, unknown> });
    if (res.statusCode !== 200) throw new Error(`${method} ${url}: HTTP ${res.statusCode} ${res.body}`);
    return res.json();
  };
  const bucket = await call('POST', '/v1/buckets', {
    bucket_name: `bench-${label}`,
    bucket_schema: { properties: { n: { type: 'integer' }, title: { type: 'string' } } },
  });
  const first = await call('POST', '/v1/collections', {
    collection_name: `first-${label}`,
    source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
    feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
  });
  await call('POST', '/v1/collections', {
    collection_name: `second-${label}`,
    source: { type: 'collection', collection_ids: [first.collection_id] },
    feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
  });
  const ids: string[] = [];
  for (let start = 0; start < OBJECTS; start += 100) {
    const objects = Array.from({ length: Math.min(100, OBJECTS - start) }, (_, k) => ({ metadata: { n: start + k, title: `object ${start + k}` } }));
    const res = await call('POST', `/v1/buckets/${bucket.bucket_id}/objects/batch`, { objects });
    for (const o of res.succeeded as { object_id: string }[]) ids.push(o.object_id);
  }
  const batch = await call('POST', `/v1/buckets/${bucket.bucket_id}/batches`, { object_ids: ids });
  return { bucketId: bucket.bucket_id, batchId: batch.batch_id };
}

async function waitForBatch(db: Db, batchId: string, timeoutMs = 600_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [row] = await db.query<{ status: string }>('SELECT status FROM batches WHERE id = $1', [batchId]);
    if (row && !['PENDING', 'IN_PROGRESS'].includes(row.status)) return row.status;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`batch ${batchId} did not finish within ${timeoutMs} ms`);
}

/** Peak resident set of a live child process, from /proc (Linux). */
function peakRssMiB(pid: number | undefined): number | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    return Number.isFinite(kb) ? kb / 1024 : undefined;
  } catch {
    return undefined;
  }
}

function report(label: string, status: string, seconds: number, rss: string): void {
  const documents = OBJECTS * 2;
  console.log(
    `pipeline ${label}: ${OBJECTS} objects → ${documents} documents in ${seconds.toFixed(2)} s = ${(documents / seconds).toFixed(0)} documents/s (${status}); ${rss}`,
  );
}

/**
 * Documents per second through a two-tier pipeline of no-op (passthrough) extractors: submit, then wait
 * until the batch is finished. On PGlite the engine runs in this process (the embedded database has one
 * owner); on PostgreSQL it runs in 1 and then 4 `sluice worker` processes.
 */
export async function benchPipeline(target: BenchTarget): Promise<void> {
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-pipeline-'));
  const blobs = createLocalBlobStore(blobDir);
  const app = await buildApp({ db: target.db, blobs });
  try {
    const { adminKey } = await createOrganization(target.db, `bench-pipeline-${Date.now()}`, 'bench@sluice.local');
    const headers = { authorization: `Bearer ${adminKey}`, 'x-namespace': 'pipeline' };
    await app.inject({
      method: 'POST',
      url: '/v1/namespaces',
      headers,
      payload: { namespace_name: 'pipeline', feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
    });
    const submit = async (p: Pipeline) => {
      const res = await app.inject({ method: 'POST', url: `/v1/buckets/${p.bucketId}/batches/${p.batchId}/submit`, headers, payload: {} });
      if (res.statusCode !== 200) throw new Error(`submit: HTTP ${res.statusCode} ${res.body}`);
    };

    if (!target.url) {
      const p = await setUp(app, headers, 'inproc');
      const engine = await createEngine({
        db: target.db,
        blobs,
        extractors: createExtractorRegistry({ allowPrivateUrls: false }),
        autoAttempts: 3,
        backoff: { baseMs: 1000, capMs: 60_000 },
        leaseMs: 60_000,
      });
      const rssBefore = process.memoryUsage().rss / 2 ** 20;
      const t = performance.now();
      await submit(p);
      let stop = false;
      const loop = (async () => {
        while (!stop) if ((await engine.runOnce(8)) === 0) await new Promise((r) => setTimeout(r, 5));
      })();
      const status = await waitForBatch(target.db, p.batchId);
      const seconds = (performance.now() - t) / 1000;
      stop = true;
      await loop;
      await engine.close();
      report('in-process engine (8 concurrent)', status, seconds, `RSS ${rssBefore.toFixed(0)} → ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
      return;
    }

    for (const processes of [1, 4]) {
      const p = await setUp(app, headers, `procs${processes}`);
      const children: ChildProcess[] = [];
      for (let i = 0; i < processes; i++) {
        const child = spawn(process.execPath, [BIN, 'worker'], {
          env: { ...process.env, DATABASE_URL: target.url, SLUICE_WORKERS: '8', SLUICE_LOG_LEVEL: 'warn' },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        children.push(child);
        await new Promise<void>((resolve, reject) => {
          child.stdout!.once('data', () => resolve());
          child.once('exit', (code) => reject(new Error(`sluice worker exited with ${code}`)));
        });
      }
      const t = performance.now();
      await submit(p);
      const status = await waitForBatch(target.db, p.batchId);
      const seconds = (performance.now() - t) / 1000;
      const peaks = children.map((c) => peakRssMiB(c.pid));
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              c.once('exit', () => resolve());
              c.kill('SIGTERM');
            }),
        ),
      );
      report(
        `${processes} worker process${processes > 1 ? 'es' : ''} (8 concurrent each)`,
        status,
        seconds,
        `peak RSS per worker ${peaks.map((m) => (m === undefined ? '?' : `${m.toFixed(0)} MiB`)).join(', ')}`,
      );
    }
  } finally {
    await app.close();
    fs.rmSync(blobDir, { recursive: true, force: true });
  }
}
