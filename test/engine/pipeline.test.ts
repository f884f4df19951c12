import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Extractor, ExtractorRegistry } from '../../src/extractors/extractor.js';
import { createExtractorRegistry } from '../../src/extractors/registry.js';
import { type DocumentLineage, documentId } from '../../src/documents/document-shape.js';
import type { UnitError } from '../../src/engine/fail-units.js';
import { cancelStrandedUnits } from '../../src/engine/lease-statements.js';
import type { Engine } from '../../src/engine/create-engine.js';
import { chunkText } from '../../src/extractors/text-chunker.js';
import { offlineEmbedding } from '../../src/extractors/offline-embedding.js';
import { drain, testEngine } from '../helpers/engine.js';
import { createTestContext, type TestContext } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const NS = 'pipeline_tests';
const OBJECTS = 120;
const CHUNK = { splitBy: 'words' as const, chunkSize: 6, chunkOverlap: 0 };

/** A body of 3–20 words that differs per object, so chunk counts differ too. */
function bodyOf(i: number): string {
  const words = Array.from({ length: 3 + ((i * 7) % 18) }, (_, w) => `w${i}x${w}`);
  return words.join(' ');
}

interface TierTask {
  tier_num: number;
  status: string;
  collection_ids: string[];
  source_type: string;
  source_collection_ids: string[] | null;
  started_at: string | null;
  completed_at: string | null;
  documents_written: number | null;
  units_total: number;
  units_completed: number;
  units_failed: number;
  units_pending: number;
}

/** An extractor that holds every unit until the test opens it, and counts aborts. */
function gateExtractor() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const state = {
    started: 0,
    aborted: 0,
    open,
    extractor: {
      name: 'gate_extractor',
      version: 'v1',
      id: 'gate_extractor_v1',
      description: 'Waits until the test lets it go.',
      parameters: z.object({ extractor_type: z.string().optional() }),
      supportedInputTypes: ['text'],
      inputSchema: {},
      outputSchema: () => ({}),
      positionFields: [],
      async run({ input, signal }) {
        state.started++;
        await new Promise<void>((resolve, reject) => {
          void opened.then(resolve);
          signal.addEventListener('abort', () => {
            state.aborted++;
            reject(signal.reason);
          });
        });
        return [{ ...input }];
      },
    } satisfies Extractor,
  };
  return state;
}

/** One document per number up to the object's `count`: a unit with thousands of outputs. */
const fanout: Extractor<{ extractor_type?: string }> = {
  name: 'fanout_extractor',
  version: 'v1',
  id: 'fanout_extractor_v1',
  description: 'Writes `count` documents per object.',
  parameters: z.object({ extractor_type: z.string().optional() }),
  supportedInputTypes: ['integer'],
  inputSchema: {},
  outputSchema: () => ({ i: { type: 'integer' } }),
  positionFields: ['i'],
  async run({ input }) {
    return Array.from({ length: Number(input.count) }, (_, i) => ({ i }));
  },
};

for (const backend of BACKENDS) {
  describe(`pipeline: bucket → text_extractor → passthrough (${backend.name})`, () => {
    const gate = gateExtractor();
    const registry: ExtractorRegistry = new Map([
      ...createExtractorRegistry({ allowPrivateUrls: true }),
      [gate.extractor.id, gate.extractor as Extractor],
      [fanout.id, fanout as Extractor],
    ]);
    let t: TestContext;
    let engine: Engine;
    let bucketId: string;
    let chunksId: string;
    let copiesId: string;
    const objectIds: string[] = [];

    const call = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) =>
      t.call({ method, url, payload: payload as Record<string, unknown>, headers: { 'x-namespace': NS } });
    const ok = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) => {
      const res = await call(method, url, payload);
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(200);
      return res.json();
    };
    const submitBatch = async (ids: string[]) => {
      const batch = await ok('POST', `/v1/buckets/${bucketId}/batches`, { object_ids: ids });
      const task = await ok('POST', `/v1/buckets/${bucketId}/batches/${batch.batch_id}/submit`, {});
      return { batchId: batch.batch_id as string, task };
    };

    beforeAll(async () => {
      t = await createTestContext(backend, { extractors: registry });
      engine = await testEngine(t.db, t.blobs, { extractors: registry });
      await ok('POST', '/v1/namespaces', { namespace_name: NS, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] });
      const bucket = await ok('POST', '/v1/buckets', {
        bucket_name: 'articles',
        bucket_schema: { properties: { title: { type: 'string' }, body: { type: 'text' } } },
      });
      bucketId = bucket.bucket_id;
      const chunks = await ok('POST', '/v1/collections', {
        collection_name: 'chunks',
        source: { type: 'bucket', bucket_ids: [bucketId] },
        feature_extractor: {
          feature_extractor_name: 'text_extractor',
          version: 'v1',
          parameters: { split_by: 'words', chunk_size: CHUNK.chunkSize, chunk_overlap: 0 },
          input_mappings: { text: 'body' },
          field_passthrough: [{ source_path: 'title' }],
        },
      });
      chunksId = chunks.collection_id;
      const copies = await ok('POST', '/v1/collections', {
        collection_name: 'copies',
        source: { type: 'collection', collection_ids: [chunksId] },
        feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1', input_mappings: { text: 'text', title: 'title' } },
      });
      copiesId = copies.collection_id;
      for (let start = 0; start < OBJECTS; start += 100) {
        const objects = Array.from({ length: Math.min(100, OBJECTS - start) }, (_, k) => ({
          metadata: { title: `article ${start + k}` },
          blobs: [{ property: 'body', type: 'text', data: bodyOf(start + k) }],
        }));
        const res = await ok('POST', `/v1/buckets/${bucketId}/objects/batch`, { objects });
        for (const o of res.succeeded) objectIds.push(o.object_id);
      }
      expect(objectIds).toHaveLength(OBJECTS);
    }, 120_000);

    afterAll(async () => {
      await engine?.close();
      await t?.close();
    });

    it('runs a submitted batch through both tiers to COMPLETED with the exact documents and lineage', async () => {
      const { batchId, task } = await submitBatch(objectIds);
      expect(task.task_type).toBe('api_buckets_batches_process');
      expect(task.status).toBe('PENDING');

      const submitted = await ok('GET', `/v1/buckets/${bucketId}/batches/${batchId}`);
      expect(submitted.status).toBe('PENDING');
      expect(submitted.dag_tiers).toEqual([[chunksId], [copiesId]]);
      expect(submitted.total_tiers).toBe(2);

      await drain(engine, t.db);

      // Expected documents, computed independently from the chunker and the ids' definition.
      const expectedChunks = objectIds.flatMap((objectId, i) =>
        chunkText(bodyOf(i), CHUNK).map((c) => ({ objectId, i, ...c, id: documentId(chunksId, objectId, String(c.chunk_index)) })),
      );
      const chunkDocs = await t.db.query<{ id: string; source_id: string; fields: Record<string, unknown>; vectors: Record<string, number[]>; lineage: DocumentLineage }>(
        'SELECT id, source_id, fields, vectors, lineage FROM documents WHERE collection_id = $1 ORDER BY id',
        [chunksId],
      );
      expect(chunkDocs.map((d) => d.id).sort()).toEqual(expectedChunks.map((c) => c.id).sort());
      const byId = new Map(chunkDocs.map((d) => [d.id, d]));
      for (const c of expectedChunks) {
        const d = byId.get(c.id)!;
        expect(d.fields).toEqual({ title: `article ${c.i}`, text: c.text, chunk_index: c.chunk_index });
        expect(d.vectors.embedding).toEqual(offlineEmbedding(c.text));
        expect(d.lineage).toMatchObject({
          root_object_id: c.objectId,
          root_bucket_id: bucketId,
          source_type: 'bucket',
          source_object_id: c.objectId,
          source_document_id: null,
          path: `${bucketId}/${chunksId}`,
        });
        expect(d.lineage.chain).toEqual([{ collection_id: chunksId, feature_extractor_id: 'text_extractor_v1', document_id: c.id, timestamp: expect.any(String) }]);
      }

      const copyDocs = await t.db.query<{ id: string; source_id: string; fields: Record<string, unknown>; lineage: DocumentLineage }>(
        'SELECT id, source_id, fields, lineage FROM documents WHERE collection_id = $1',
        [copiesId],
      );
      expect(copyDocs).toHaveLength(expectedChunks.length);
      const copyBySource = new Map(copyDocs.map((d) => [d.source_id, d]));
      for (const c of expectedChunks) {
        const d = copyBySource.get(c.id)!;
        expect(d.id).toBe(documentId(copiesId, c.id, 0));
        expect(d.fields).toEqual({ text: c.text, title: `article ${c.i}` });
        expect(d.lineage).toMatchObject({
          root_object_id: c.objectId,
          root_bucket_id: bucketId,
          source_type: 'collection',
          source_object_id: null,
          source_document_id: c.id,
          source_collection_id: chunksId,
          path: `${bucketId}/${chunksId}/${copiesId}`,
        });
        expect(d.lineage.chain.map((s) => [s.collection_id, s.document_id])).toEqual([
          [chunksId, c.id],
          [copiesId, d.id],
        ]);
      }

      const batch = await ok('GET', `/v1/buckets/${bucketId}/batches/${batchId}`);
      expect(batch.status).toBe('COMPLETED');
      expect(batch.error_summary ?? null).toBeNull();
      const tiers = batch.tier_tasks as TierTask[];
      expect(tiers.map((x) => [x.tier_num, x.status, x.collection_ids, x.source_type])).toEqual([
        [0, 'COMPLETED', [chunksId], 'bucket'],
        [1, 'COMPLETED', [copiesId], 'collection'],
      ]);
      expect(tiers[1]!.source_collection_ids).toEqual([chunksId]);
      expect(tiers[0]).toMatchObject({ units_total: OBJECTS, units_completed: OBJECTS, units_failed: 0, units_pending: 0, documents_written: expectedChunks.length });
      expect(tiers[1]).toMatchObject({
        units_total: expectedChunks.length,
        units_completed: expectedChunks.length,
        units_failed: 0,
        units_pending: 0,
        documents_written: expectedChunks.length,
      });
      for (const tier of tiers) {
        expect(Date.parse(tier.completed_at!)).toBeGreaterThanOrEqual(Date.parse(tier.started_at!));
      }
      // Tier 1 cannot finish before tier 0 does.
      expect(Date.parse(tiers[1]!.completed_at!)).toBeGreaterThanOrEqual(Date.parse(tiers[0]!.completed_at!));

      const followed = await ok('GET', `/v1/tasks/${task.task_id}`);
      expect(followed.status).toBe('COMPLETED');
    }, 120_000);

    it('a second batch over the same objects replaces documents and never duplicates them', async () => {
      const before = await t.db.query<{ id: string; fields: unknown; created_at: Date }>(
        'SELECT id, fields, created_at FROM documents WHERE collection_id = ANY($1::text[]) ORDER BY id',
        [[chunksId, copiesId]],
      );
      const { batchId } = await submitBatch(objectIds.slice(0, 40));
      await drain(engine, t.db);
      const after = await t.db.query<{ id: string; fields: unknown; created_at: Date; batch_id: string }>(
        'SELECT id, fields, created_at, batch_id FROM documents WHERE collection_id = ANY($1::text[]) ORDER BY id',
        [[chunksId, copiesId]],
      );
      expect(after.map((d) => d.id)).toEqual(before.map((d) => d.id));
      expect(after.map((d) => d.fields)).toEqual(before.map((d) => d.fields));
      const rewritten = after.filter((d) => d.batch_id === batchId);
      const expected = objectIds.slice(0, 40).reduce((n, _, i) => n + chunkText(bodyOf(i), CHUNK).length, 0);
      expect(rewritten).toHaveLength(expected * 2);
      const batch = await ok('GET', `/v1/buckets/${bucketId}/batches/${batchId}`);
      expect(batch.status).toBe('COMPLETED');
    }, 120_000);

    it('a unit whose source object was deleted fails as dependency/source_missing; the rest complete', async () => {
      const victim = objectIds[5]!;
      const batch = await ok('POST', `/v1/buckets/${bucketId}/batches`, { object_ids: [victim, objectIds[6]!] });
      await ok('DELETE', `/v1/buckets/${bucketId}/objects/${victim}`);
      await ok('POST', `/v1/buckets/${bucketId}/batches/${batch.batch_id}/submit`, {});
      await drain(engine, t.db);
      const got = await ok('GET', `/v1/buckets/${bucketId}/batches/${batch.batch_id}`);
      expect(got.status).toBe('COMPLETED_WITH_ERRORS');
      expect(got.error_summary).toEqual({ dependency: 1 });
      const [unit] = await t.db.query<{ status: string; last_error: UnitError; attempts: number }>(
        'SELECT status, last_error, attempts FROM units WHERE batch_id = $1 AND source_id = $2',
        [batch.batch_id, victim],
      );
      expect(unit).toMatchObject({ status: 'failed', attempts: 1 });
      expect(unit!.last_error).toMatchObject({ error_type: 'dependency', transient: false, code: 'source_missing', tier_num: 0, collection_id: chunksId });
      expect(unit!.last_error.message).toContain(victim);
      expect(got.tier_tasks[0].status).toBe('COMPLETED_WITH_ERRORS');
      expect(got.tier_tasks[1].status).toBe('COMPLETED');

      // The batch's log: its transitions in order, and the failed attempt with its error record.
      const logs = await ok('GET', `/v1/buckets/${bucketId}/batches/${batch.batch_id}/logs`);
      type LogEvent = { event: string; level: string; tier_num: number | null; document_id: string | null; error: UnitError | null; timestamp: string };
      const events = logs.logs as LogEvent[];
      expect(logs).toMatchObject({ batch_id: batch.batch_id, tier_num: null, total_count: events.length, truncated: false });
      const order = events.map((e) => e.event);
      expect(order.filter((e) => e.startsWith('batch_'))).toEqual(['batch_created', 'batch_submitted', 'batch_started', 'batch_finished']);
      expect(order.indexOf('tier_started')).toBeLessThan(order.indexOf('tier_finished'));
      expect(order.at(-1)).toBe('batch_finished');
      const timestamps = events.map((e) => Date.parse(e.timestamp));
      expect(timestamps).toEqual([...timestamps].sort((x, y) => x - y));
      const failure = events.find((e) => e.event === 'attempt_failed')!;
      expect(failure).toMatchObject({ level: 'error', tier_num: 0, document_id: victim });
      expect(failure.error).toMatchObject({ error_type: 'dependency', code: 'source_missing' });
      const tier1 = await ok('GET', `/v1/buckets/${bucketId}/batches/${batch.batch_id}/logs?tier_num=1`);
      expect((tier1.logs as LogEvent[]).map((e) => [e.event, e.tier_num])).toEqual([
        ['tier_started', 1],
        ['tier_finished', 1],
      ]);
      const bad = await call('GET', `/v1/buckets/${bucketId}/batches/${batch.batch_id}/logs?tier_num=x`);
      expect(bad.statusCode).toBe(422);
    }, 60_000);

    it('auto_process=true creates and submits a batch for new objects, single and batch create', async () => {
      const one = await call('POST', `/v1/buckets/${bucketId}/objects?auto_process=true`, {
        metadata: { title: 'auto one' },
        blobs: [{ property: 'body', type: 'text', data: 'alpha beta gamma' }],
      });
      expect(one.statusCode, one.body).toBe(200);
      const batchId = one.headers['x-sluice-batch-id'] as string;
      expect(batchId).toMatch(/^btch_/);
      expect(one.headers['x-sluice-task-id']).toMatch(/^task_/);
      const many = await call('POST', `/v1/buckets/${bucketId}/objects/batch?auto_process=true`, {
        objects: [
          { metadata: { title: 'auto two' }, blobs: [{ property: 'body', type: 'text', data: 'delta epsilon' }] },
          { metadata: { title: 'bad' }, blobs: [{ property: 'nope', type: 'text', data: 'x' }] },
          { metadata: { title: 'auto three' }, blobs: [{ property: 'body', type: 'text', data: 'zeta eta theta' }] },
        ],
      });
      expect(many.statusCode, many.body).toBe(200);
      expect(many.json().failed_count).toBe(1);
      const batch2 = many.headers['x-sluice-batch-id'] as string;
      const submitted = await ok('GET', `/v1/buckets/${bucketId}/batches/${batch2}`);
      // Only the objects that were created are in the batch.
      expect(submitted.object_ids).toEqual(many.json().succeeded.map((o: { object_id: string }) => o.object_id));
      expect(submitted.status).toBe('PENDING');
      await drain(engine, t.db);
      for (const id of [batchId, batch2]) expect((await ok('GET', `/v1/buckets/${bucketId}/batches/${id}`)).status).toBe('COMPLETED');
      const [row] = await t.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM documents WHERE collection_id = $1 AND fields->>'title' LIKE 'auto %'`,
        [chunksId],
      );
      expect(row!.n).toBe(3);
    }, 60_000);

    it('units with thousands of documents each are written completely, in several writes', async () => {
      const bucket = await ok('POST', '/v1/buckets', { bucket_name: 'fanout', bucket_schema: { properties: { count: { type: 'integer' } } } });
      const col = await ok('POST', '/v1/collections', {
        collection_name: 'fanout',
        source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
        feature_extractor: { feature_extractor_name: 'fanout_extractor', version: 'v1' },
      });
      const counts = [1500, 2500, 10, 0];
      const created = await ok('POST', `/v1/buckets/${bucket.bucket_id}/objects/batch`, { objects: counts.map((count) => ({ metadata: { count } })) });
      const ids = (created.succeeded as { object_id: string }[]).map((o) => o.object_id);
      const batch = await ok('POST', `/v1/buckets/${bucket.bucket_id}/batches`, { object_ids: ids });
      await ok('POST', `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}/submit`, {});
      await drain(engine, t.db);
      const rows = await t.db.query<{ source_id: string; n: number; distinct_ids: number; top: number }>(
        `SELECT source_id, count(*)::int AS n, count(DISTINCT id)::int AS distinct_ids, max((fields->>'i')::int) AS top
           FROM documents WHERE collection_id = $1 GROUP BY source_id`,
        [col.collection_id],
      );
      const byObject = new Map(rows.map((r) => [r.source_id, r]));
      counts.forEach((count, k) => {
        const row = byObject.get(ids[k]!);
        if (count === 0) expect(row).toBeUndefined();
        else expect(row).toEqual({ source_id: ids[k], n: count, distinct_ids: count, top: count - 1 });
      });
      const got = await ok('GET', `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}`);
      expect(got.status).toBe('COMPLETED');
      expect(got.tier_tasks[0].documents_written).toBe(4010);
    }, 60_000);

    it('a re-run that produces fewer documents deletes the extra ones and everything derived from them', async () => {
      const bucket = await ok('POST', '/v1/buckets', { bucket_name: 'shrink', bucket_schema: { properties: { count: { type: 'integer' } } } });
      const a = await ok('POST', '/v1/collections', {
        collection_name: 'shrink-a',
        source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
        feature_extractor: { feature_extractor_name: 'fanout_extractor', version: 'v1' },
      });
      const b = await ok('POST', '/v1/collections', {
        collection_name: 'shrink-b',
        source: { type: 'collection', collection_ids: [a.collection_id] },
        feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
      });
      const c = await ok('POST', '/v1/collections', {
        collection_name: 'shrink-c',
        source: { type: 'collection', collection_ids: [b.collection_id] },
        feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
      });
      const created = await ok('POST', `/v1/buckets/${bucket.bucket_id}/objects/batch`, { objects: [{ metadata: { count: 5 } }, { metadata: { count: 3 } }] });
      const [shrinking, steady] = (created.succeeded as { object_id: string }[]).map((o) => o.object_id);
      const run = async () => {
        const batch = await ok('POST', `/v1/buckets/${bucket.bucket_id}/batches`, { object_ids: [shrinking, steady] });
        await ok('POST', `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}/submit`, {});
        await drain(engine, t.db);
        expect((await ok('GET', `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}`)).status).toBe('COMPLETED');
      };
      const counts = async () =>
        Object.fromEntries(
          (
            await t.db.query<{ k: string; n: number }>(
              `SELECT collection_id || '/' || root_object_id AS k, count(*)::int AS n FROM documents
                WHERE collection_id = ANY($1::text[]) GROUP BY 1`,
              [[a.collection_id, b.collection_id, c.collection_id]],
            )
          ).map((r) => [r.k, r.n]),
        );
      const expected = (x: number, y: number) =>
        Object.fromEntries(
          [a, b, c].flatMap((col) => [
            [`${col.collection_id}/${shrinking}`, x],
            [`${col.collection_id}/${steady}`, y],
          ]),
        );
      await run();
      expect(await counts()).toEqual(expected(5, 3));
      await ok('PATCH', `/v1/buckets/${bucket.bucket_id}/objects/${shrinking}`, { metadata: { count: 2 } });
      await run();
      expect(await counts()).toEqual(expected(2, 3));
      // What is left is exactly positions 0 and 1, and every tier-2 document still has its whole chain.
      const [{ broken }] = (await t.db.query<{ broken: number }>(
        `SELECT count(*)::int AS broken FROM documents d
          WHERE d.collection_id = $1 AND NOT EXISTS (SELECT 1 FROM documents p WHERE p.id = d.source_id)`,
        [c.collection_id],
      )) as [{ broken: number }];
      expect(broken).toBe(0);
    }, 60_000);

    it('cancel stops new work at once: running units are aborted, waiting ones never run', async () => {
      const bucket = await ok('POST', '/v1/buckets', { bucket_name: 'gated', bucket_schema: { properties: { body: { type: 'text' } } } });
      const gated = await ok('POST', '/v1/collections', {
        collection_name: 'gated',
        source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
        feature_extractor: { feature_extractor_name: 'gate_extractor', version: 'v1' },
      });
      const created = await ok('POST', `/v1/buckets/${bucket.bucket_id}/objects/batch`, {
        objects: Array.from({ length: 30 }, (_, i) => ({ blobs: [{ property: 'body', type: 'text', data: `gated ${i}` }] })),
      });
      const ids = (created.succeeded as { object_id: string }[]).map((o) => o.object_id);
      const batch = await ok('POST', `/v1/buckets/${bucket.bucket_id}/batches`, { object_ids: ids });
      const task = await ok('POST', `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}/submit`, {});
      // A short lease: if the cancel notification were lost, lease renewal would still notice within a second.
      const slow = await testEngine(t.db, t.blobs, { extractors: registry, claimLimit: 8, leaseMs: 3000 });
      try {
        const round = slow.runOnce(2);
        for (let i = 0; i < 500 && gate.started < 2; i++) await new Promise((r) => setTimeout(r, 10));
        expect(gate.started).toBe(2);
        const cancel = await ok('POST', `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}/cancel`);
        expect(cancel.status).toBe('CANCELED');
        expect(cancel.task_id).toBe(task.task_id);
        // The round ends although the gate never opens: the two running units were aborted.
        await round;
        expect(gate.aborted).toBe(2);
        expect(gate.started).toBe(2);
        const states = await t.db.query<{ status: string; n: number }>(
          'SELECT status, count(*)::int AS n FROM units WHERE batch_id = $1 GROUP BY status',
          [batch.batch_id],
        );
        expect(states).toEqual([{ status: 'canceled', n: 30 }]);
        const [docs] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM documents WHERE collection_id = $1', [gated.collection_id]);
        expect(docs!.n).toBe(0);
        // Later rounds find nothing of it.
        expect(await slow.runOnce(2)).toBe(0);
        const got = await ok('GET', `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}`);
        expect(got.status).toBe('CANCELED');
        expect(got.tier_tasks[0].status).toBe('CANCELED');
        expect((await ok('GET', `/v1/tasks/${task.task_id}`)).status).toBe('CANCELED');

        // A unit queued just as the cancel committed (a racing write or retry) is never claimed, and the
        // lease sweep marks it canceled. An engine with a long lease: after its first round no sweep is due,
        // so only the claim's own check keeps the unit from running.
        const later = await testEngine(t.db, t.blobs, { extractors: registry, leaseMs: 120_000 });
        try {
          expect(await later.runOnce(2)).toBe(0);
          await t.db.query(
            `UPDATE units SET status = 'pending', next_attempt_at = now() WHERE id = (SELECT min(id) FROM units WHERE batch_id = $1)`,
            [batch.batch_id],
          );
          expect(await later.runOnce(2)).toBe(0);
          expect(gate.started).toBe(2);
        } finally {
          await later.close();
        }
        const [{ pending }] = (await t.db.query<{ pending: number }>(
          "SELECT count(*)::int AS pending FROM units WHERE batch_id = $1 AND status = 'pending'",
          [batch.batch_id],
        )) as [{ pending: number }];
        expect(pending).toBe(1);
        expect(await cancelStrandedUnits(t.db)).toBe(1);
        const after = await t.db.query<{ status: string; n: number }>(
          'SELECT status, count(*)::int AS n FROM units WHERE batch_id = $1 GROUP BY status',
          [batch.batch_id],
        );
        expect(after).toEqual([{ status: 'canceled', n: 30 }]);
      } finally {
        gate.open();
        await slow.close();
      }
    }, 60_000);
  });
}
