import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { openDb } from '../../src/db/open-db.js';
import { BACKENDS } from '../helpers/test-db.js';
import {
  api,
  killAll,
  namespaceBody,
  type ProcessDatabase,
  processDatabase,
  randomBootstrapKey,
  type SluiceProcess,
  startServer,
  startSluice,
  tempDir,
  waitForOutput,
} from './sluice-process.js';

const OBJECTS = 150;
const LEASE_MS = '2000';

/**
 * A model endpoint on 127.0.0.1 that takes 20 ms per call and answers one document derived from the input,
 * counting calls per object so the test can see which units ran twice.
 */
async function slowModel(): Promise<{ url: string; calls: Map<string, number>; total(): number; close(): Promise<void> }> {
  const calls = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => {
      const { source, input } = JSON.parse(body) as { source: { object_id: string }; input: { body: string } };
      calls.set(source.object_id, (calls.get(source.object_id) ?? 0) + 1);
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ documents: [{ label: input.body.toUpperCase(), words: input.body.split(' ').length }] }));
      }, 20);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/extract`,
    calls,
    total: () => [...calls.values()].reduce((a, b) => a + b, 0),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// A worker process SIGKILLed in the middle of a batch: its leased units must run again elsewhere, and the
// batch must end with every document exactly once. On PostgreSQL the killed process is a `sluice worker`
// beside an API-only server; on PGlite it is the one `sluice serve` process, restarted on the same data dir.
for (const backend of BACKENDS) {
  describe(`a worker killed mid-batch (${backend.name})`, { timeout: 240_000 }, () => {
    const dirs: string[] = [];
    const databases: ProcessDatabase[] = [];
    afterAll(async () => {
      await killAll();
      for (const db of databases) await db.drop();
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('loses nothing and duplicates nothing', async () => {
      const model = await slowModel();
      const dataDir = tempDir('kill');
      dirs.push(dataDir);
      const database = await processDatabase(backend.name);
      databases.push(database);
      const key = randomBootstrapKey();
      const env = {
        SLUICE_BOOTSTRAP_API_KEY: key,
        SLUICE_ALLOW_PRIVATE_URLS: 'true',
        SLUICE_LEASE_MS: LEASE_MS,
        SLUICE_LOG_LEVEL: 'warn',
        ...database.env,
      };
      const postgres = backend.name === 'postgres';
      const startWorker = (): SluiceProcess => startSluice(['worker'], { ...env, SLUICE_WORKERS: '4' });
      let { proc: server, baseUrl } = await startServer(dataDir, { ...env, SLUICE_WORKERS: postgres ? '0' : '4' });
      try {
        const ns = { 'x-namespace': 'kill' };
        const call = async (method: string, url: string, body?: unknown) => {
          const res = await api(baseUrl, method, url, { key, body, headers: ns });
          expect(res.status, `${method} ${url}: ${JSON.stringify(res.body)}`).toBe(200);
          return res.body as Record<string, unknown>;
        };
        expect((await api(baseUrl, 'POST', '/v1/namespaces', { key, body: namespaceBody('kill') })).status).toBe(200);
        const bucket = await call('POST', '/v1/buckets', { bucket_name: 'b', bucket_schema: { properties: { body: { type: 'text' } } } });
        const bucketId = bucket.bucket_id as string;
        const labels = await call('POST', '/v1/collections', {
          collection_name: 'labels',
          source: { type: 'bucket', bucket_ids: [bucketId] },
          feature_extractor: { feature_extractor_name: 'webhook_extractor', version: 'v1', parameters: { url: model.url } },
        });
        const copies = await call('POST', '/v1/collections', {
          collection_name: 'copies',
          source: { type: 'collection', collection_ids: [labels.collection_id] },
          feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
        });
        const objectIds: string[] = [];
        for (let start = 0; start < OBJECTS; start += 100) {
          const res = await call('POST', `/v1/buckets/${bucketId}/objects/batch`, {
            objects: Array.from({ length: Math.min(100, OBJECTS - start) }, (_, k) => ({
              blobs: [{ property: 'body', type: 'text', data: `object number ${start + k}` }],
            })),
          });
          for (const o of res.succeeded as { object_id: string }[]) objectIds.push(o.object_id);
        }
        const batch = await call('POST', `/v1/buckets/${bucketId}/batches`, { object_ids: objectIds });
        const batchId = batch.batch_id as string;

        let worker = postgres ? startWorker() : undefined;
        if (worker) await waitForOutput(worker, /running/);
        await call('POST', `/v1/buckets/${bucketId}/batches/${batchId}/submit`, {});

        // Mid-batch: some units done, many not.
        await until('the first 30 model calls', async () => (model.total() >= 30 ? true : undefined));
        const victim = worker ?? server;
        victim.child.kill('SIGKILL');
        expect((await victim.exited).signal).toBe('SIGKILL');
        const callsAtKill = model.total();
        expect(callsAtKill).toBeLessThan(OBJECTS);

        if (postgres) {
          worker = startWorker();
          await waitForOutput(worker, /running/);
        } else {
          ({ proc: server, baseUrl } = await startServer(dataDir, { ...env, SLUICE_WORKERS: '4' }));
        }
        const done = await until('the batch to finish', async () => {
          const got = await call('GET', `/v1/buckets/${bucketId}/batches/${batchId}`);
          return ['COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED'].includes(got.status as string) ? got : undefined;
        });
        expect(done.status).toBe('COMPLETED');
        await worker?.stop('SIGTERM', 30_000);
        await server.stop('SIGTERM', 30_000);

        // Every object reached the model; some of those the dead worker held ran twice.
        expect(new Set(model.calls.keys())).toEqual(new Set(objectIds));
        await model.close();

        const db: Db = await openDb({ dataDir, databaseUrl: database.url });
        try {
          const units = await db.query<{ tier_num: number; status: string; n: number; docs: number }>(
            `SELECT tier_num, status, count(*)::int AS n, sum(documents_written)::int AS docs
               FROM units WHERE batch_id = $1 GROUP BY tier_num, status ORDER BY tier_num`,
            [batchId],
          );
          expect(units).toEqual([
            { tier_num: 0, status: 'completed', n: OBJECTS, docs: OBJECTS },
            { tier_num: 1, status: 'completed', n: OBJECTS, docs: OBJECTS },
          ]);
          // The dead worker's leases ran out and other workers took its units: each such unit says so.
          const [lost] = await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM units
              WHERE batch_id = $1 AND attempts >= 2 AND error_history @> '[{"code": "worker_lost"}]'`,
            [batchId],
          );
          expect(lost!.n).toBeGreaterThan(0);

          const docs = await db.query<{ collection_id: string; n: number; sources: number; ids: number }>(
            `SELECT collection_id, count(*)::int AS n, count(DISTINCT source_id)::int AS sources, count(DISTINCT id)::int AS ids
               FROM documents GROUP BY collection_id ORDER BY collection_id`,
          );
          expect(docs.map(({ n, sources, ids }) => ({ n, sources, ids }))).toEqual([
            { n: OBJECTS, sources: OBJECTS, ids: OBJECTS },
            { n: OBJECTS, sources: OBJECTS, ids: OBJECTS },
          ]);
          const labelDocs = await db.query<{ source_id: string; fields: { label: string; words: number } }>(
            'SELECT source_id, fields FROM documents WHERE collection_id = $1',
            [labels.collection_id],
          );
          const byObject = new Map(labelDocs.map((d) => [d.source_id, d.fields]));
          objectIds.forEach((id, i) => {
            expect(byObject.get(id)).toEqual({ label: `OBJECT NUMBER ${i}`, words: 3 });
          });
          const [copyCount] = await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM documents c JOIN documents l ON l.id = c.source_id
              WHERE c.collection_id = $1 AND l.collection_id = $2 AND c.fields = l.fields`,
            [copies.collection_id, labels.collection_id],
          );
          expect(copyCount!.n).toBe(OBJECTS);
        } finally {
          await db.close();
        }
      } finally {
        await model.close().catch(() => {});
      }
    });
  });
}
