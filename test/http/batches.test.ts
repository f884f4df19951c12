import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WAKE_CHANNEL } from '../../src/engine/create-worker.js';
import { createTestContext, expectEnvelope, type TestContext, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

interface ErrorDetail {
  error_type: string;
  message: string;
  component: string | null;
  stage: string | null;
  timestamp: string;
  affected_document_ids: string[];
  affected_count: number;
  recovery_suggestion: string | null;
  metadata: { code: string | null; transient: boolean; tier_num: number; collection_ids: string[] };
}

interface TierTask {
  tier_num: number;
  task_id: string | null;
  status: string;
  collection_ids: string[];
  source_type: string;
  source_collection_ids: string[] | null;
  parent_task_id: string | null;
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  errors: ErrorDetail[];
  error_summary: Record<string, number> | null;
  documents_written: number | null;
  units_total: number;
  units_completed: number;
  units_failed: number;
  units_pending: number;
  units_canceled: number;
}

interface Batch {
  batch_id: string;
  bucket_id: string;
  status: string;
  object_ids: string[];
  loaded_object_ids: string[] | null;
  collection_ids: string[] | null;
  error: string | null;
  error_summary: Record<string, number> | null;
  type: string;
  task_id: string | null;
  metadata: Record<string, unknown>;
  internal_metadata: Record<string, unknown> | null;
  tier_tasks: TierTask[];
  current_tier: number | null;
  total_tiers: number;
  dag_tiers: string[][] | null;
  created_at: string;
  updated_at: string;
}

interface Task {
  task_id: string;
  task_type: string;
  status: string;
  additional_data: Record<string, unknown> | null;
  error: string | null;
}

const NS = 'batch_tests';
const SCHEMA = { properties: { title: { type: 'string' } } };

for (const backend of BACKENDS) {
  describe(`batches (${backend.name})`, () => {
    let t: TestContext;
    let counter = 0;

    const inNs = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, opts: { namespace?: string; key?: string } = {}) =>
      t.call({
        method,
        url,
        key: opts.key,
        headers: { 'x-namespace': opts.namespace ?? NS },
        ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      });
    const ok = async <T>(res: Awaited<ReturnType<typeof inNs>>): Promise<T> => {
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as T;
    };

    /** A new bucket with `n` objects; answers its id, name and object ids (in creation order). */
    const bucketWithObjects = async (n: number, namespace = NS) => {
      const name = `bkt-${++counter}`;
      const bucket = await ok<{ bucket_id: string }>(await inNs('POST', '/v1/buckets', { bucket_name: name, bucket_schema: SCHEMA }, { namespace }));
      let objectIds: string[] = [];
      if (n > 0) {
        const objects = Array.from({ length: n }, (_, i) => ({ metadata: { title: `object ${i}` } }));
        const made = await ok<{ succeeded: { object_id: string }[] }>(await inNs('POST', `/v1/buckets/${name}/objects/batch`, { objects }, { namespace }));
        objectIds = made.succeeded.map((o) => o.object_id);
      }
      return { id: bucket.bucket_id, name, objectIds };
    };
    const collection = async (source: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
      const made = await ok<{ collection_id: string }>(
        await inNs('POST', '/v1/collections', {
          collection_name: `col-${++counter}`,
          source,
          feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
          ...extra,
        }),
      );
      return made.collection_id;
    };
    const createBatch = async (bucket: string, objectIds: string[]) =>
      ok<Batch>(await inNs('POST', `/v1/buckets/${bucket}/batches`, { object_ids: objectIds }));
    const getBatch = async (bucket: string, batchId: string) => ok<Batch>(await inNs('GET', `/v1/buckets/${bucket}/batches/${batchId}`));
    const submit = (bucket: string, batchId: string, payload?: unknown) => inNs('POST', `/v1/buckets/${bucket}/batches/${batchId}/submit`, payload);

    /** A bucket read by one passthrough collection, and a submitted batch of all its `n` objects. */
    const submittedBatch = async (n: number) => {
      const bucket = await bucketWithObjects(n);
      const col = await collection({ type: 'bucket', bucket_ids: [bucket.id] });
      const batch = await createBatch(bucket.name, bucket.objectIds);
      const task = await ok<Task>(await submit(bucket.name, batch.batch_id));
      return { bucket, col, batch, task };
    };

    beforeAll(async () => {
      t = await createTestContext(backend);
      for (const name of [NS, `${NS}_other`]) {
        const res = await t.call({ method: 'POST', url: '/v1/namespaces', payload: { namespace_name: name, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] } });
        expect(res.statusCode, res.body).toBe(200);
      }
    });
    afterAll(() => t.close());

    describe('create', () => {
      it('creates a DRAFT batch keeping the order of the ids and collapsing duplicates', async () => {
        const bucket = await bucketWithObjects(3);
        const [a, b, c] = bucket.objectIds as [string, string, string];
        const batch = await createBatch(bucket.name, [c, a, c, b, a]);
        expect(batch.batch_id).toMatch(/^btch_/);
        expect(batch).toMatchObject({
          bucket_id: bucket.id,
          status: 'DRAFT',
          object_ids: [c, a, b],
          loaded_object_ids: [c, a, b],
          collection_ids: null,
          error: null,
          error_summary: null,
          type: 'BUCKET',
          task_id: null,
          metadata: {},
          tier_tasks: [],
          current_tier: null,
          total_tiers: 1,
          dag_tiers: null,
        });
        expect(Date.parse(batch.created_at)).not.toBeNaN();
        const rows = await t.db.query<{ object_id: string; position: number }>(
          'SELECT object_id, position FROM batch_objects WHERE batch_id = $1 ORDER BY position',
          [batch.batch_id],
        );
        expect(rows).toEqual([
          { object_id: c, position: 0 },
          { object_id: a, position: 1 },
          { object_id: b, position: 2 },
        ]);
        // The bucket may be named by id too, and GET reads back the same batch.
        expect(await getBatch(bucket.id, batch.batch_id)).toEqual(batch);
      });

      it('takes an empty list, and refuses a body without object_ids (422)', async () => {
        const bucket = await bucketWithObjects(0);
        const empty = await createBatch(bucket.name, []);
        expect(empty.object_ids).toEqual([]);
        const missing = expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches`, {}), 422, 'ValidationError');
        expect(validationIssues(missing)[0]!.location).toEqual(['body', 'object_ids']);
        const wrongType = expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches`, { object_ids: 'obj_1' }), 422, 'ValidationError');
        expect(wrongType.message).toContain('obj_1');
      });

      it('names every id that is not an object of the bucket (404), and creates nothing', async () => {
        const bucket = await bucketWithObjects(1);
        const other = await bucketWithObjects(1);
        const before = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM batches');
        const err = expectEnvelope(
          await inNs('POST', `/v1/buckets/${bucket.name}/batches`, { object_ids: [bucket.objectIds[0], 'obj_nope', other.objectIds[0], 'obj_nope'] }),
          404,
          'NotFoundError',
        );
        expect(err.message).toContain('obj_nope');
        expect(err.message).toContain(other.objectIds[0]);
        expect(err.message).toContain(bucket.name);
        expect(err.details).toMatchObject({ resource: 'object', ids: ['obj_nope', other.objectIds[0]], missing_count: 2 });
        const after = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM batches');
        expect(after[0]!.n).toBe(before[0]!.n);
      });

      it('stores unchecked ids with ?skip_validation=true', async () => {
        const bucket = await bucketWithObjects(1);
        const res = await inNs('POST', `/v1/buckets/${bucket.name}/batches?skip_validation=true`, { object_ids: [bucket.objectIds[0], 'obj_later'] });
        expect((await ok<Batch>(res)).object_ids).toEqual([bucket.objectIds[0], 'obj_later']);
        const bad = expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches?skip_validation=maybe`, { object_ids: [] }), 422, 'ValidationError');
        expect(bad.message).toContain('maybe');
      });

      it('answers 404 for an unknown bucket or one of another namespace, 403 to a read key', async () => {
        const unknown = expectEnvelope(await inNs('POST', '/v1/buckets/no-such-bucket/batches', { object_ids: [] }), 404, 'NotFoundError');
        expect(unknown.message).toContain('no-such-bucket');
        const elsewhere = await bucketWithObjects(0, `${NS}_other`);
        expectEnvelope(await inNs('POST', `/v1/buckets/${elsewhere.name}/batches`, { object_ids: [] }), 404, 'NotFoundError');
        const reader = await t.key(['read']);
        const bucket = await bucketWithObjects(0);
        expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches`, { object_ids: [] }, { key: reader }), 403, 'ForbiddenError');
      });
    });

    describe('add objects', () => {
      it('appends new ids in order, ignoring those already present', async () => {
        const bucket = await bucketWithObjects(4);
        const [a, b, c, d] = bucket.objectIds as [string, string, string, string];
        const batch = await createBatch(bucket.name, [b]);
        const added = await ok<Batch>(await inNs('POST', `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/objects`, { object_ids: [d, b, a, d] }));
        expect(added.object_ids).toEqual([b, d, a]);
        const again = await ok<Batch>(await inNs('POST', `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/objects`, { object_ids: [c, a] }));
        expect(again.object_ids).toEqual([b, d, a, c]);
        const [row] = await t.db.query<{ object_count: number }>('SELECT object_count FROM batches WHERE id = $1', [batch.batch_id]);
        expect(row!.object_count).toBe(4);
        expect(Date.parse(again.updated_at)).toBeGreaterThan(Date.parse(batch.updated_at));
      });

      it('refuses unknown objects (404), an empty list (422), an unknown batch (404)', async () => {
        const bucket = await bucketWithObjects(1);
        const batch = await createBatch(bucket.name, []);
        const url = `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/objects`;
        const err = expectEnvelope(await inNs('POST', url, { object_ids: ['obj_ghost'] }), 404, 'NotFoundError');
        expect(err.message).toContain('obj_ghost');
        expectEnvelope(await inNs('POST', url, { object_ids: [] }), 422, 'ValidationError');
        const unknown = expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches/btch_nope/objects`, { object_ids: bucket.objectIds }), 404, 'NotFoundError');
        expect(unknown.message).toContain('btch_nope');
        // A batch is found only under its own bucket.
        const other = await bucketWithObjects(0);
        expectEnvelope(await inNs('POST', `/v1/buckets/${other.name}/batches/${batch.batch_id}/objects`, { object_ids: bucket.objectIds }), 404, 'NotFoundError');
      });

      it('adds only to a DRAFT batch (400 naming the status)', async () => {
        const { bucket, batch } = await submittedBatch(2);
        const err = expectEnvelope(
          await inNs('POST', `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/objects`, { object_ids: [bucket.objectIds[0]] }),
          400,
          'BadRequestError',
        );
        expect(err.message).toContain('PENDING');
        expect(err.message).toContain(batch.batch_id);
      });
    });

    describe('submit', () => {
      it('derives tiers, writes tier-0 units for every collection × object, and answers a PENDING task', async () => {
        const bucket = await bucketWithObjects(3);
        const colA = await collection({ type: 'bucket', bucket_ids: [bucket.id] });
        const colC = await collection({ type: 'bucket', bucket_ids: [bucket.name] });
        const colB = await collection({ type: 'collection', collection_id: colA });
        // Disabled collections take no part.
        await collection({ type: 'bucket', bucket_ids: [bucket.id] }, { enabled: false });
        const batch = await createBatch(bucket.name, bucket.objectIds);

        const notified: string[] = [];
        const unlisten = await t.db.listen(WAKE_CHANNEL, (payload) => notified.push(payload));
        const task = await ok<Task>(await submit(bucket.name, batch.batch_id, { include_processing_history: false }));
        expect(task).toMatchObject({
          task_type: 'api_buckets_batches_process',
          status: 'PENDING',
          additional_data: { batch_id: batch.batch_id, bucket_id: bucket.id },
        });
        for (let i = 0; i < 50 && notified.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
        await unlisten();
        expect(notified.length).toBeGreaterThan(0);

        const tier0 = [colA, colC].sort();
        const got = await getBatch(bucket.name, batch.batch_id);
        expect(got).toMatchObject({
          status: 'PENDING',
          task_id: task.task_id,
          dag_tiers: [tier0, [colB]],
          collection_ids: [...tier0, colB],
          total_tiers: 2,
          current_tier: 0,
        });
        expect(got.internal_metadata).toMatchObject({ include_processing_history: false });
        expect(got.internal_metadata!.submitted_at).toEqual(expect.any(String));
        expect(got.tier_tasks.map(({ tier_num, status, collection_ids, source_type, source_collection_ids, units_total, units_pending }) => ({
          tier_num,
          status,
          collection_ids,
          source_type,
          source_collection_ids,
          units_total,
          units_pending,
        }))).toEqual([
          { tier_num: 0, status: 'PENDING', collection_ids: tier0, source_type: 'bucket', source_collection_ids: null, units_total: 6, units_pending: 6 },
          { tier_num: 1, status: 'PENDING', collection_ids: [colB], source_type: 'collection', source_collection_ids: [colA], units_total: 0, units_pending: 0 },
        ]);

        const units = await t.db.query<{ collection_id: string; tier_num: number; source_type: string; source_id: string; root_object_id: string; status: string }>(
          `SELECT collection_id, tier_num, source_type, source_id, root_object_id, status FROM units WHERE batch_id = $1 ORDER BY collection_id, source_id`,
          [batch.batch_id],
        );
        expect(units).toHaveLength(6);
        const expected = tier0.flatMap((c) => [...bucket.objectIds].sort().map((o) => ({ collection_id: c, tier_num: 0, source_type: 'object', source_id: o, root_object_id: o, status: 'pending' })));
        expect(units).toEqual(expected);

        const [row] = await t.db.query<{ include_processing_history: boolean }>('SELECT include_processing_history FROM batches WHERE id = $1', [batch.batch_id]);
        expect(row!.include_processing_history).toBe(false);
        // GET /v1/tasks follows the batch.
        expect((await ok<Task>(await t.call({ method: 'GET', url: `/v1/tasks/${task.task_id}` }))).status).toBe('PENDING');
      });

      it('lets exactly one of two concurrent submits through', async () => {
        const bucket = await bucketWithObjects(3);
        await collection({ type: 'bucket', bucket_ids: [bucket.id] });
        const batch = await createBatch(bucket.name, bucket.objectIds);
        const answers = await Promise.all([submit(bucket.name, batch.batch_id), submit(bucket.name, batch.batch_id)]);
        expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 400]);
        const [units] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM units WHERE batch_id = $1', [batch.batch_id]);
        expect(units!.n).toBe(3);
        const [tasks] = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE additional_data->>'batch_id' = $1`, [batch.batch_id]);
        expect(tasks!.n).toBe(1);
      });

      it('takes an omitted body, and refuses a second submit (400 naming PENDING)', async () => {
        const bucket = await bucketWithObjects(1);
        await collection({ type: 'bucket', bucket_ids: [bucket.id] });
        const batch = await createBatch(bucket.name, bucket.objectIds);
        const res = await t.call({ method: 'POST', url: `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/submit`, headers: { 'x-namespace': NS } });
        expect(res.statusCode, res.body).toBe(200);
        expect((await getBatch(bucket.name, batch.batch_id)).internal_metadata).toMatchObject({ include_processing_history: true });
        const again = expectEnvelope(await submit(bucket.name, batch.batch_id), 400, 'BadRequestError');
        expect(again.message).toContain('PENDING');
        const [n] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM units WHERE batch_id = $1', [batch.batch_id]);
        expect(n!.n).toBe(1);
      });

      it('refuses an empty batch and a bucket no enabled collection reads, changing nothing', async () => {
        const bucket = await bucketWithObjects(1);
        const empty = await createBatch(bucket.name, []);
        const noObjects = expectEnvelope(await submit(bucket.name, empty.batch_id), 400, 'BadRequestError');
        expect(noObjects.message).toContain(empty.batch_id);
        expect(noObjects.message).toContain('no objects');

        const batch = await createBatch(bucket.name, bucket.objectIds);
        await collection({ type: 'bucket', bucket_ids: [bucket.id] }, { enabled: false });
        const noTiers = expectEnvelope(await submit(bucket.name, batch.batch_id), 400, 'BadRequestError');
        expect(noTiers.message).toContain(`no enabled collection reads bucket "${bucket.name}"`);
        const got = await getBatch(bucket.name, batch.batch_id);
        expect(got.status).toBe('DRAFT');
        expect(got.task_id).toBeNull();
        const [n] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM batch_tiers WHERE batch_id = $1', [batch.batch_id]);
        expect(n!.n).toBe(0);
      });

      it('validates the body (422 naming the value) and needs write permission', async () => {
        const bucket = await bucketWithObjects(1);
        const batch = await createBatch(bucket.name, bucket.objectIds);
        const bad = expectEnvelope(await submit(bucket.name, batch.batch_id, { include_processing_history: 'yes' }), 422, 'ValidationError');
        expect(bad.message).toContain('yes');
        const reader = await t.key(['read']);
        expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/submit`, {}, { key: reader }), 403, 'ForbiddenError');
      });
    });

    describe('get', () => {
      it('reports per-tier unit counts, documents written and errors grouped by type and code', async () => {
        const { bucket, col, batch } = await submittedBatch(6);
        const ids = bucket.objectIds;
        const setUnits = (objectIds: string[], status: string, extra: Record<string, unknown> = {}) =>
          t.db.query(
            `UPDATE units SET status = $3, documents_written = $4, last_error = $5::jsonb, updated_at = $6::timestamptz
             WHERE batch_id = $1 AND source_id = ANY($2::text[])`,
            [
              batch.batch_id,
              objectIds,
              status,
              extra.documents_written ?? 0,
              extra.last_error ? JSON.stringify(extra.last_error) : null,
              extra.at ?? new Date().toISOString(),
            ],
          );
        await setUnits([ids[0]!, ids[1]!], 'completed', { documents_written: 2 });
        await setUnits([ids[2]!], 'failed', {
          last_error: { error_type: 'network', transient: true, code: 'timeout', message: 'timed out after 30000 ms' },
          at: '2030-01-01T00:00:00.000Z',
        });
        await setUnits([ids[3]!], 'failed', {
          last_error: { error_type: 'network', transient: true, code: 'timeout', message: 'timed out after 10 ms' },
          at: '2030-01-02T00:00:00.000Z',
        });
        await setUnits([ids[4]!], 'failed', {
          last_error: { error_type: 'validation', transient: false, code: 'invalid_input', message: 'title missing' },
          at: '2030-01-03T00:00:00.000Z',
        });
        await setUnits([ids[5]!], 'running');
        await t.db.query(
          `UPDATE batch_tiers SET status = 'IN_PROGRESS', started_at = '2030-01-01T00:00:00Z' WHERE batch_id = $1 AND tier_num = 0`,
          [batch.batch_id],
        );

        const got = await getBatch(bucket.name, batch.batch_id);
        const tier = got.tier_tasks[0]!;
        expect(tier).toMatchObject({
          tier_num: 0,
          status: 'IN_PROGRESS',
          task_id: null,
          parent_task_id: null,
          started_at: '2030-01-01T00:00:00.000Z',
          completed_at: null,
          duration_ms: null,
          documents_written: 4,
          units_total: 6,
          units_completed: 2,
          units_failed: 3,
          units_pending: 1,
          units_canceled: 0,
          error_summary: { network: 2, validation: 1 },
        });
        expect(tier.errors).toHaveLength(2);
        const [network, validation] = tier.errors as [ErrorDetail, ErrorDetail];
        expect(network).toMatchObject({
          error_type: 'network',
          message: 'timed out after 10 ms',
          component: 'passthrough_extractor_v1',
          stage: 'extraction',
          timestamp: '2030-01-02T00:00:00.000Z',
          affected_count: 2,
          metadata: { code: 'timeout', transient: true, tier_num: 0, collection_ids: [col] },
        });
        expect([...network.affected_document_ids].sort()).toEqual([ids[2]!, ids[3]!].sort());
        expect(network.recovery_suggestion).toContain(`/batches/${batch.batch_id}/retry`);
        expect(network.recovery_suggestion).toContain('transient_only');
        expect(validation).toMatchObject({
          error_type: 'validation',
          message: 'title missing',
          affected_document_ids: [ids[4]],
          affected_count: 1,
          metadata: { code: 'invalid_input', transient: false },
        });
        expect(validation.recovery_suggestion).toContain('"all"');
        expect(got.error_summary).toEqual({ network: 2, validation: 1 });
        expect(got.current_tier).toBe(0);

        // Tier 0 finishes: duration and current tier follow.
        await t.db.query(
          `UPDATE batch_tiers SET status = 'COMPLETED_WITH_ERRORS', completed_at = '2030-01-01T00:00:02.5Z' WHERE batch_id = $1 AND tier_num = 0`,
          [batch.batch_id],
        );
        const done = await getBatch(bucket.name, batch.batch_id);
        expect(done.tier_tasks[0]).toMatchObject({ status: 'COMPLETED_WITH_ERRORS', duration_ms: 2500, completed_at: '2030-01-01T00:00:02.500Z' });
        expect(done.current_tier).toBeNull();
      });

      it('lists at most 100 affected ids per error group but counts them all', async () => {
        const bucket = await bucketWithObjects(0);
        await collection({ type: 'bucket', bucket_ids: [bucket.id] });
        const objectIds = Array.from({ length: 130 }, (_, i) => `obj_fake${String(i).padStart(4, '0')}`);
        const batch = await ok<Batch>(await inNs('POST', `/v1/buckets/${bucket.name}/batches?skip_validation=true`, { object_ids: objectIds }));
        await ok(await submit(bucket.name, batch.batch_id));
        await t.db.query(
          `UPDATE units SET status = 'failed', last_error = '{"error_type": "dependency", "transient": false, "code": "source_missing", "message": "object gone"}'
           WHERE batch_id = $1`,
          [batch.batch_id],
        );
        const got = await getBatch(bucket.name, batch.batch_id);
        const [error] = got.tier_tasks[0]!.errors;
        expect(error!.affected_count).toBe(130);
        expect(error!.affected_document_ids).toHaveLength(100);
        expect(error!.recovery_suggestion).toContain('restore');
        expect(got.error_summary).toEqual({ dependency: 130 });
      });

      it('answers 404 naming an unknown batch', async () => {
        const bucket = await bucketWithObjects(0);
        const err = expectEnvelope(await inNs('GET', `/v1/buckets/${bucket.name}/batches/btch_missing`), 404, 'NotFoundError');
        expect(err.message).toContain('btch_missing');
      });
    });

    describe('list', () => {
      it('lists newest first with a status filter, offset and limit; the body may be omitted', async () => {
        const bucket = await bucketWithObjects(1);
        const made: Batch[] = [];
        for (let i = 0; i < 4; i++) made.push(await createBatch(bucket.name, bucket.objectIds));
        await t.db.query(`UPDATE batches SET status = 'COMPLETED' WHERE id = ANY($1::text[])`, [[made[0]!.batch_id, made[2]!.batch_id]]);
        const newestFirst = [...made].reverse().map((b) => b.batch_id);

        const all = await t.call({ method: 'POST', url: `/v1/buckets/${bucket.name}/batches/list`, headers: { 'x-namespace': NS } });
        const allBody = await ok<{ results: Batch[]; total_count: number }>(all);
        expect(allBody.total_count).toBe(4);
        expect(allBody.results.map((b) => b.batch_id)).toEqual(newestFirst);
        expect(allBody.results[0]!.object_ids).toEqual(bucket.objectIds);

        const page = await ok<{ results: Batch[]; total_count: number }>(
          await inNs('POST', `/v1/buckets/${bucket.name}/batches/list`, { offset: 1, limit: 2 }),
        );
        expect(page.total_count).toBe(4);
        expect(page.results.map((b) => b.batch_id)).toEqual(newestFirst.slice(1, 3));

        const completed = await ok<{ results: Batch[]; total_count: number }>(
          await inNs('POST', `/v1/buckets/${bucket.name}/batches/list`, { status: 'COMPLETED' }),
        );
        expect(completed.total_count).toBe(2);
        expect(completed.results.map((b) => b.batch_id)).toEqual([made[2]!.batch_id, made[0]!.batch_id]);
        expect(completed.results.every((b) => b.status === 'COMPLETED')).toBe(true);

        const beyond = await ok<{ results: Batch[]; total_count: number }>(
          await inNs('POST', `/v1/buckets/${bucket.name}/batches/list`, { offset: 10 }),
        );
        expect(beyond).toEqual({ results: [], total_count: 4 });
      });

      it('validates limit and status (422 naming the value)', async () => {
        const bucket = await bucketWithObjects(0);
        const limit = expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches/list`, { limit: 1001 }), 422, 'ValidationError');
        expect(validationIssues(limit)[0]!.location).toEqual(['body', 'limit']);
        const status = expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches/list`, { status: 'DONE' }), 422, 'ValidationError');
        expect(status.message).toContain('DONE');
      });
    });

    describe('patch and delete', () => {
      it('replaces metadata whole; null or absent keeps it', async () => {
        const bucket = await bucketWithObjects(0);
        const batch = await createBatch(bucket.name, []);
        const url = `/v1/buckets/${bucket.name}/batches/${batch.batch_id}`;
        expect((await ok<Batch>(await inNs('PATCH', url, { metadata: { a: 1, b: 2 } }))).metadata).toEqual({ a: 1, b: 2 });
        expect((await ok<Batch>(await inNs('PATCH', url, { metadata: { c: 3 } }))).metadata).toEqual({ c: 3 });
        expect((await ok<Batch>(await inNs('PATCH', url, { metadata: null }))).metadata).toEqual({ c: 3 });
        expect((await ok<Batch>(await inNs('PATCH', url, {}))).metadata).toEqual({ c: 3 });
        const bad = expectEnvelope(await inNs('PATCH', url, { metadata: [1] }), 422, 'ValidationError');
        expect(validationIssues(bad)[0]!.location).toEqual(['body', 'metadata']);
        expectEnvelope(await inNs('PATCH', `/v1/buckets/${bucket.name}/batches/btch_nope`, { metadata: {} }), 404, 'NotFoundError');
      });

      it('deletes a batch in any status with its units and tiers; needs delete permission', async () => {
        const { bucket, batch } = await submittedBatch(2);
        const url = `/v1/buckets/${bucket.name}/batches/${batch.batch_id}`;
        const writer = await t.key(['write']);
        expectEnvelope(await inNs('DELETE', url, undefined, { key: writer }), 403, 'ForbiddenError');
        const res = await ok<{ success: boolean; message: string; batch_id: string; bucket_id: string }>(await inNs('DELETE', url));
        expect(res).toMatchObject({ success: true, batch_id: batch.batch_id, bucket_id: bucket.id });
        for (const table of ['units', 'batch_tiers', 'batch_objects']) {
          const [n] = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE batch_id = $1`, [batch.batch_id]);
          expect(n!.n, table).toBe(0);
        }
        expectEnvelope(await inNs('GET', url), 404, 'NotFoundError');
        const again = expectEnvelope(await inNs('DELETE', url), 404, 'NotFoundError');
        expect(again.message).toContain(batch.batch_id);
        // Objects are untouched.
        const [objects] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM objects WHERE bucket_id = $1', [bucket.id]);
        expect(objects!.n).toBe(2);
      });
    });

    describe('cancel', () => {
      it('cancels pending and running units, unfinished tiers and the batch; keeps completed units', async () => {
        const { bucket, batch, task } = await submittedBatch(3);
        const [done, running] = bucket.objectIds as [string, string, string];
        await t.db.query(`UPDATE units SET status = 'completed', documents_written = 1 WHERE batch_id = $1 AND source_id = $2`, [batch.batch_id, done]);
        await t.db.query(
          `UPDATE units SET status = 'running', lease_owner = 'w1', lease_expires_at = now() + interval '1 minute' WHERE batch_id = $1 AND source_id = $2`,
          [batch.batch_id, running],
        );
        await t.db.query(`UPDATE batches SET status = 'IN_PROGRESS' WHERE id = $1`, [batch.batch_id]);

        const notified: string[] = [];
        const unlisten = await t.db.listen('sluice_cancel', (payload) => notified.push(payload));
        const answer = await ok<Task>(await inNs('POST', `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/cancel`));
        expect(answer).toMatchObject({ task_id: task.task_id, status: 'CANCELED', task_type: 'api_buckets_batches_process' });
        for (let i = 0; i < 50 && notified.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
        await unlisten();
        expect(notified).toContain(batch.batch_id);

        const units = await t.db.query<{ source_id: string; status: string; lease_owner: string | null; lease_expires_at: Date | null }>(
          'SELECT source_id, status, lease_owner, lease_expires_at FROM units WHERE batch_id = $1',
          [batch.batch_id],
        );
        for (const u of units) {
          expect(u.status).toBe(u.source_id === done ? 'completed' : 'canceled');
          expect(u.lease_owner).toBeNull();
          expect(u.lease_expires_at).toBeNull();
        }
        const got = await getBatch(bucket.name, batch.batch_id);
        expect(got.status).toBe('CANCELED');
        expect(got.internal_metadata!.completed_at).toEqual(expect.any(String));
        expect(got.tier_tasks[0]).toMatchObject({ status: 'CANCELED', units_canceled: 2, units_completed: 1, documents_written: 1 });
        expect(got.tier_tasks[0]!.completed_at).not.toBeNull();
        expect((await ok<Task>(await t.call({ method: 'GET', url: `/v1/tasks/${task.task_id}` }))).status).toBe('CANCELED');

        const again = expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/cancel`), 400, 'BadRequestError');
        expect(again.message).toContain('CANCELED');
      });

      it('refuses a terminal batch and changes nothing', async () => {
        const { bucket, batch } = await submittedBatch(2);
        await t.db.query(`UPDATE batches SET status = 'COMPLETED' WHERE id = $1`, [batch.batch_id]);
        const err = expectEnvelope(await inNs('POST', `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/cancel`), 400, 'BadRequestError');
        expect(err.message).toContain('COMPLETED');
        expect(err.details).toMatchObject({ batch_id: batch.batch_id, status: 'COMPLETED' });
        const units = await t.db.query<{ status: string }>('SELECT status FROM units WHERE batch_id = $1', [batch.batch_id]);
        expect(units.map((u) => u.status)).toEqual(['pending', 'pending']);
        const [tier] = await t.db.query<{ status: string }>('SELECT status FROM batch_tiers WHERE batch_id = $1', [batch.batch_id]);
        expect(tier!.status).toBe('PENDING');
      });

      it('cancels a DRAFT batch, recording a CANCELED task for it', async () => {
        const bucket = await bucketWithObjects(1);
        const batch = await createBatch(bucket.name, bucket.objectIds);
        const answer = await ok<Task>(await inNs('POST', `/v1/buckets/${bucket.name}/batches/${batch.batch_id}/cancel`));
        expect(answer).toMatchObject({ status: 'CANCELED', task_type: 'api_buckets_batches_process', additional_data: { batch_id: batch.batch_id } });
        const got = await getBatch(bucket.name, batch.batch_id);
        expect(got).toMatchObject({ status: 'CANCELED', task_id: answer.task_id });
        expectEnvelope(await submit(bucket.name, batch.batch_id), 400, 'BadRequestError');
      });
    });

    describe('bucket batch_stats', () => {
      it('counts the bucket batches by status', async () => {
        const bucket = await bucketWithObjects(1);
        const statuses = ['DRAFT', 'PENDING', 'IN_PROGRESS', 'COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED', 'FAILED', 'CANCELED'];
        for (const status of statuses) {
          const b = await createBatch(bucket.name, bucket.objectIds);
          await t.db.query('UPDATE batches SET status = $2 WHERE id = $1', [b.batch_id, status]);
        }
        const got = await ok<{ batch_stats: unknown }>(await inNs('GET', `/v1/buckets/${bucket.name}`));
        expect(got.batch_stats).toEqual({ total: 8, active: 2, completed: 2, failed: 2 });
        const listed = await ok<{ results: { bucket_id: string; batch_stats: unknown; storage_stats: { total_size_bytes: number } }[] }>(
          await inNs('POST', '/v1/buckets/list', { limit: 1000 }),
        );
        const mine = listed.results.find((b) => b.bucket_id === bucket.id)!;
        expect(mine.batch_stats).toEqual({ total: 8, active: 2, completed: 2, failed: 2 });
        expect(mine.storage_stats.total_size_bytes).toBeGreaterThanOrEqual(0);
        const empty = await bucketWithObjects(0);
        expect((await ok<{ batch_stats: unknown }>(await inNs('GET', `/v1/buckets/${empty.name}`))).batch_stats).toEqual({
          total: 0,
          active: 0,
          completed: 0,
          failed: 0,
        });
      });
    });
  });
}
