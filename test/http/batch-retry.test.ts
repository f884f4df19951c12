import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Engine } from '../../src/engine/create-engine.js';
import type { UnitError } from '../../src/engine/fail-units.js';
import { PermanentError, TransientError } from '../../src/extractors/errors.js';
import type { Extractor, ExtractorRegistry } from '../../src/extractors/extractor.js';
import { createExtractorRegistry } from '../../src/extractors/registry.js';
import { buildApp } from '../../src/http/app.js';
import { drain, testEngine } from '../helpers/engine.js';
import { createTestContext, expectEnvelope, type TestContext, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const NS = 'retry_tests';

type Mode = 'ok' | 'transient' | 'permanent';

/** What a source object asks of the scripted extractor in each tier. */
interface Script {
  mode0?: Mode;
  mode1?: Mode;
}

interface RetryResponse {
  batch_id: string;
  status: string;
  retry_mode: string;
  tier_nums: number[];
  max_retry_count: number;
  dry_run: boolean;
  retried_count: number;
  skipped: { permanent: number; max_retries_reached: number };
  by_tier: { tier_num: number; retried: number; skipped_permanent: number; skipped_max_retries: number }[];
  retried_document_ids: string[];
  task_id: string | null;
}

interface FailedDoc {
  document_id: string;
  unit_id: string;
  batch_id: string;
  tier_num: number;
  collection_id: string;
  source_object_id: string | null;
  source_document_id: string | null;
  root_object_id: string;
  status: string;
  attempts: number;
  retry_count: number;
  last_retry_at: string | null;
  next_attempt_at: string | null;
  error: UnitError | null;
  error_history: UnitError[];
}

interface FailedDocs {
  results: FailedDoc[];
  total_count: number;
  limit: number;
  offset: number;
}

interface TierTask {
  tier_num: number;
  status: string;
  started_at: string | null;
  completed_at: string | null;
  units_total: number;
  units_completed: number;
  units_failed: number;
  units_pending: number;
}

interface Batch {
  batch_id: string;
  status: string;
  tier_tasks: TierTask[];
  updated_at: string;
}

interface UnitRow {
  id: number;
  tier_num: number;
  source_id: string;
  root_object_id: string;
  status: string;
  attempts: number;
  retry_count: number;
  last_retry_at: Date | null;
  next_attempt_at: Date;
  last_error: UnitError | null;
  error_history: UnitError[];
}

/**
 * An extractor whose outcome per source is scripted by the test: it reads `mode<tier>` ("ok", "transient",
 * "permanent") from its input, unless the test healed the source's script. It counts runs per unit.
 */
function scriptedExtractor() {
  const state = {
    healed: new Set<string>(),
    runs: new Map<string, number>(),
    extractor: {
      name: 'scripted_extractor',
      version: 'v1',
      id: 'scripted_extractor_v1',
      description: 'Fails or succeeds as the test scripts it.',
      parameters: z.object({ extractor_type: z.string().optional() }),
      supportedInputTypes: ['string'],
      inputSchema: {},
      outputSchema: () => ({}),
      positionFields: [],
      async run({ input, context }) {
        const source = 'object_id' in context.source ? context.source.object_id : context.source.document_id;
        const key = `${context.collectionId}:${source}`;
        state.runs.set(key, (state.runs.get(key) ?? 0) + 1);
        const mode = state.healed.has(String(input.script)) ? 'ok' : input[`mode${context.tierNum}`];
        if (mode === 'transient') throw new TransientError(`upstream timed out for ${source}`, { code: 'timeout', category: 'network' });
        if (mode === 'permanent') throw new PermanentError(`input of ${source} refused`, { code: 'invalid_input', category: 'validation' });
        return [{ ...input }];
      },
    } satisfies Extractor,
  };
  return state;
}

for (const backend of BACKENDS) {
  describe(`batch retry and failed documents (${backend.name})`, () => {
    const scripted = scriptedExtractor();
    const registry: ExtractorRegistry = new Map([
      ...createExtractorRegistry({ allowPrivateUrls: true }),
      [scripted.extractor.id, scripted.extractor as Extractor],
    ]);
    let t: TestContext;
    let engine: Engine;
    let counter = 0;

    const call = (
      method: 'GET' | 'POST',
      url: string,
      payload?: unknown,
      opts: { key?: string; headers?: Record<string, string>; app?: FastifyInstance } = {},
    ): Promise<LightMyRequestResponse> => {
      const headers = { 'x-namespace': NS, ...opts.headers };
      const body = payload === undefined ? {} : { payload: payload as Record<string, unknown> };
      if (opts.app) return opts.app.inject({ method, url, headers: { authorization: `Bearer ${t.adminKey}`, ...headers }, ...body });
      return t.call({ method, url, key: opts.key, headers, ...body });
    };
    const ok = async <T>(res: LightMyRequestResponse | Promise<LightMyRequestResponse>): Promise<T> => {
      const r = await res;
      expect(r.statusCode, r.body).toBe(200);
      return r.json() as T;
    };

    /**
     * A bucket of objects scripted per tier, a tier-0 and a tier-1 collection (scripted or passthrough) and a
     * submitted batch of all objects, run until nothing is left to do.
     */
    const pipeline = async (objects: Script[], kinds: { tier0: 'scripted' | 'passthrough'; tier1: 'scripted' | 'passthrough' }) => {
      const n = ++counter;
      const script = `script-${n}`;
      const bucket = await ok<{ bucket_id: string }>(
        call('POST', '/v1/buckets', {
          bucket_name: `retry-${n}`,
          bucket_schema: { properties: { mode0: { type: 'string' }, mode1: { type: 'string' }, script: { type: 'string' } } },
        }),
      );
      const made = await ok<{ succeeded: { object_id: string }[] }>(
        call('POST', `/v1/buckets/${bucket.bucket_id}/objects/batch`, {
          objects: objects.map((o) => ({ metadata: { mode0: o.mode0 ?? 'ok', mode1: o.mode1 ?? 'ok', script } })),
        }),
      );
      const objectIds = made.succeeded.map((o) => o.object_id);
      const extractorOf = (kind: 'scripted' | 'passthrough') => ({ feature_extractor_name: `${kind}_extractor`, version: 'v1' });
      const col0 = await ok<{ collection_id: string }>(
        call('POST', '/v1/collections', {
          collection_name: `t0-${n}`,
          source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
          feature_extractor: extractorOf(kinds.tier0),
        }),
      );
      const col1 = await ok<{ collection_id: string }>(
        call('POST', '/v1/collections', {
          collection_name: `t1-${n}`,
          source: { type: 'collection', collection_ids: [col0.collection_id] },
          feature_extractor: extractorOf(kinds.tier1),
        }),
      );
      const batch = await ok<{ batch_id: string }>(call('POST', `/v1/buckets/${bucket.bucket_id}/batches`, { object_ids: objectIds }));
      const url = `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}`;
      const task = await ok<{ task_id: string }>(call('POST', `${url}/submit`, {}));
      await drain(engine, t.db);
      const idsOf = (mode: Mode, tier: 0 | 1 = 0) => objectIds.filter((_, i) => (objects[i]![`mode${tier}`] ?? 'ok') === mode);
      return {
        bucketId: bucket.bucket_id,
        col0: col0.collection_id,
        col1: col1.collection_id,
        objectIds,
        idsOf,
        batchId: batch.batch_id,
        taskId: task.task_id,
        script,
        url,
        heal: () => scripted.healed.add(script),
      };
    };

    const units = (batchId: string) =>
      t.db.query<UnitRow>(
        `SELECT id, tier_num, source_id, root_object_id, status, attempts, retry_count, last_retry_at, next_attempt_at, last_error, error_history
           FROM units WHERE batch_id = $1 ORDER BY tier_num, id`,
        [batchId],
      );
    /** Everything of a batch as text: its row, tiers, units, and the documents of its collections. */
    const snapshot = async (batchId: string, collectionIds: string[]) => ({
      batch: await t.db.query('SELECT row_to_json(b)::text AS r FROM batches b WHERE id = $1', [batchId]),
      tiers: await t.db.query('SELECT row_to_json(bt)::text AS r FROM batch_tiers bt WHERE batch_id = $1 ORDER BY tier_num', [batchId]),
      units: await t.db.query('SELECT row_to_json(u)::text AS r FROM units u WHERE batch_id = $1 ORDER BY id', [batchId]),
      documents: await documentsText(collectionIds),
    });
    const documentsText = (collectionIds: string[]) =>
      t.db.query<{ id: string }>(
        `SELECT id, fields::text AS fields, vectors::text AS vectors, lineage::text AS lineage, batch_id,
                created_at::text AS created_at, updated_at::text AS updated_at
           FROM documents WHERE collection_id = ANY($1::text[]) ORDER BY id`,
        [collectionIds],
      );
    const getBatch = (url: string) => ok<Batch>(call('GET', url));
    const retry = (url: string, body?: unknown, headers?: Record<string, string>) => call('POST', `${url}/retry`, body, { headers });

    beforeAll(async () => {
      t = await createTestContext(backend, { extractors: registry, backoff: { baseMs: 1, capMs: 5 } });
      engine = await testEngine(t.db, t.blobs, { extractors: registry, autoAttempts: 1 });
      await ok(
        t.call({ method: 'POST', url: '/v1/namespaces', payload: { namespace_name: NS, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] } }),
      );
    }, 120_000);

    afterAll(async () => {
      await engine?.close();
      await t?.close();
    });

    it('transient_only re-queues transient failures only; reopened, they run again, feed tier 1 and the batch settles', async () => {
      const p = await pipeline(
        [{}, { mode0: 'transient' }, {}, { mode0: 'permanent' }, { mode0: 'transient' }, {}, { mode0: 'permanent' }, { mode0: 'transient' }, {}],
        { tier0: 'scripted', tier1: 'passthrough' },
      );
      const before = await getBatch(p.url);
      expect(before.status).toBe('COMPLETED_WITH_ERRORS');
      expect(before.tier_tasks.map((x) => [x.tier_num, x.status])).toEqual([
        [0, 'COMPLETED_WITH_ERRORS'],
        [1, 'COMPLETED'],
      ]);
      const docsBefore = await documentsText([p.col0, p.col1]);
      expect(docsBefore).toHaveLength(8);
      const transientUnits = (await units(p.batchId)).filter((u) => u.last_error?.transient === true);

      p.heal();
      const answer = await ok<RetryResponse>(retry(p.url));
      expect(answer).toEqual({
        batch_id: p.batchId,
        status: 'IN_PROGRESS',
        retry_mode: 'transient_only',
        tier_nums: [0, 1],
        max_retry_count: 3,
        dry_run: false,
        retried_count: 3,
        skipped: { permanent: 2, max_retries_reached: 0 },
        by_tier: [
          { tier_num: 0, retried: 3, skipped_permanent: 2, skipped_max_retries: 0 },
          { tier_num: 1, retried: 0, skipped_permanent: 0, skipped_max_retries: 0 },
        ],
        retried_document_ids: transientUnits.map((u) => u.source_id),
        task_id: p.taskId,
      });
      expect([...answer.retried_document_ids].sort()).toEqual(p.idsOf('transient').sort());

      // Re-queued in place: pending again, one more retry, attempts reset, the error history kept.
      const after = await units(p.batchId);
      for (const u of after.filter((x) => p.idsOf('transient').includes(x.source_id))) {
        expect(u).toMatchObject({ status: 'pending', retry_count: 1, attempts: 0 });
        expect(u.last_retry_at).toBeInstanceOf(Date);
        expect(u.last_error).toMatchObject({ error_type: 'network', transient: true, code: 'timeout' });
        expect(u.error_history).toHaveLength(1);
      }
      for (const u of after.filter((x) => p.idsOf('permanent').includes(x.source_id))) {
        expect(u).toMatchObject({ status: 'failed', retry_count: 0, attempts: 1, last_retry_at: null });
      }
      // The batch and every tier from the re-queued one on are open again; the task follows.
      const reopened = await getBatch(p.url);
      expect(reopened.status).toBe('IN_PROGRESS');
      expect(reopened.tier_tasks.map((x) => [x.status, x.completed_at])).toEqual([
        ['IN_PROGRESS', null],
        ['IN_PROGRESS', null],
      ]);
      expect((await ok<{ status: string }>(call('GET', `/v1/tasks/${p.taskId}`))).status).toBe('IN_PROGRESS');

      await drain(engine, t.db);
      const settled = await getBatch(p.url);
      expect(settled.status).toBe('COMPLETED_WITH_ERRORS');
      expect(settled.tier_tasks.map((x) => [x.tier_num, x.status, x.units_total, x.units_completed, x.units_failed])).toEqual([
        [0, 'COMPLETED_WITH_ERRORS', 9, 7, 2],
        [1, 'COMPLETED', 7, 7, 0],
      ]);
      for (const tier of settled.tier_tasks) expect(tier.completed_at).not.toBeNull();
      // The healed units wrote tier-0 documents, which fed tier 1.
      const healedDocs = await t.db.query<{ collection_id: string; root_object_id: string }>(
        'SELECT collection_id, root_object_id FROM documents WHERE root_object_id = ANY($1::text[]) ORDER BY collection_id, root_object_id',
        [p.idsOf('transient')],
      );
      expect(healedDocs).toEqual(
        [p.col0, p.col1].flatMap((c) => [...p.idsOf('transient')].sort().map((id) => ({ collection_id: c, root_object_id: id }))).sort((a, b) =>
          a.collection_id === b.collection_id ? 0 : a.collection_id < b.collection_id ? -1 : 1,
        ),
      );
      // Completed documents were not touched, and completed units never ran again.
      const docsAfter = await documentsText([p.col0, p.col1]);
      const kept = new Set(docsBefore.map((d) => d.id));
      expect(docsAfter.filter((d) => kept.has(d.id))).toEqual(docsBefore);
      expect(docsAfter).toHaveLength(8 + 6);
      for (const id of p.idsOf('ok')) expect(scripted.runs.get(`${p.col0}:${id}`)).toBe(1);
      for (const id of p.idsOf('transient')) expect(scripted.runs.get(`${p.col0}:${id}`)).toBe(2);
      for (const id of p.idsOf('permanent')) expect(scripted.runs.get(`${p.col0}:${id}`)).toBe(1);
      const final = await units(p.batchId);
      expect(final.filter((u) => u.tier_num === 0 && u.retry_count === 1).map((u) => [u.source_id, u.status])).toEqual(
        transientUnits.map((u) => [u.source_id, 'completed']),
      );
      expect((await ok<{ status: string }>(call('GET', `/v1/tasks/${p.taskId}`))).status).toBe('COMPLETED_WITH_ERRORS');
    });

    it('all re-queues permanent failures too; after the fix the batch ends COMPLETED', async () => {
      const p = await pipeline([{}, { mode0: 'transient' }, { mode0: 'permanent' }, { mode0: 'permanent' }, {}, { mode0: 'transient' }], {
        tier0: 'scripted',
        tier1: 'passthrough',
      });
      p.heal();
      const answer = await ok<RetryResponse>(retry(p.url, { retry_mode: 'all' }));
      expect(answer).toMatchObject({ retry_mode: 'all', retried_count: 4, skipped: { permanent: 0, max_retries_reached: 0 }, status: 'IN_PROGRESS' });
      expect([...answer.retried_document_ids].sort()).toEqual([...p.idsOf('transient'), ...p.idsOf('permanent')].sort());
      await drain(engine, t.db);
      const settled = await getBatch(p.url);
      expect(settled.status).toBe('COMPLETED');
      expect(settled.tier_tasks.map((x) => [x.status, x.units_completed, x.units_failed])).toEqual([
        ['COMPLETED', 6, 0],
        ['COMPLETED', 6, 0],
      ]);
      const [docs] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM documents WHERE collection_id = $1', [p.col1]);
      expect(docs!.n).toBe(6);
    });

    it('tier_nums selects tiers: a tier-1 failure whose upstream succeeded is retried alone, lower tiers stay closed', async () => {
      const p = await pipeline([{}, { mode1: 'transient' }, {}, { mode1: 'transient' }, {}], { tier0: 'passthrough', tier1: 'scripted' });
      const before = await getBatch(p.url);
      expect(before.status).toBe('COMPLETED_WITH_ERRORS');
      expect(before.tier_tasks.map((x) => x.status)).toEqual(['COMPLETED', 'COMPLETED_WITH_ERRORS']);
      const rowBefore = await snapshot(p.batchId, [p.col0, p.col1]);

      // Tier 0 has no failures: nothing is retried, nothing changes.
      const none = await ok<RetryResponse>(retry(p.url, { tier_nums: [0] }));
      expect(none).toMatchObject({
        status: 'COMPLETED_WITH_ERRORS',
        tier_nums: [0],
        retried_count: 0,
        by_tier: [{ tier_num: 0, retried: 0, skipped_permanent: 0, skipped_max_retries: 0 }],
        retried_document_ids: [],
      });
      expect(await snapshot(p.batchId, [p.col0, p.col1])).toEqual(rowBefore);

      const unknownTier = expectEnvelope(await retry(p.url, { tier_nums: [1, 5] }), 400, 'BadRequestError');
      expect(unknownTier.message).toContain('[5]');
      expect(unknownTier.message).toContain(p.batchId);

      p.heal();
      const failedSources = (await units(p.batchId)).filter((u) => u.status === 'failed').map((u) => u.source_id);
      expect(failedSources).toHaveLength(2);
      const answer = await ok<RetryResponse>(retry(p.url, { tier_nums: [1, 1] }));
      expect(answer).toMatchObject({
        status: 'IN_PROGRESS',
        tier_nums: [1],
        retried_count: 2,
        by_tier: [{ tier_num: 1, retried: 2, skipped_permanent: 0, skipped_max_retries: 0 }],
        retried_document_ids: failedSources,
      });
      // The retried ids are tier-0 documents, whose roots are the scripted objects.
      const roots = (await units(p.batchId)).filter((u) => failedSources.includes(u.source_id)).map((u) => u.root_object_id);
      expect(roots.sort()).toEqual(p.idsOf('transient', 1).sort());
      const reopened = await getBatch(p.url);
      expect(reopened.status).toBe('IN_PROGRESS');
      expect(reopened.tier_tasks.map((x) => [x.status, x.completed_at])).toEqual([
        ['COMPLETED', before.tier_tasks[0]!.completed_at],
        ['IN_PROGRESS', null],
      ]);

      await drain(engine, t.db);
      const settled = await getBatch(p.url);
      expect(settled.status).toBe('COMPLETED');
      expect(settled.tier_tasks.map((x) => [x.status, x.units_completed])).toEqual([
        ['COMPLETED', 5],
        ['COMPLETED', 5],
      ]);
      expect(settled.tier_tasks[0]!.completed_at).toBe(before.tier_tasks[0]!.completed_at);
    });

    it('max_retry_count skips units retried that often; retry_count grows by exactly one per retry', async () => {
      const p = await pipeline([{ mode0: 'transient' }, { mode0: 'permanent' }, { mode0: 'transient' }], { tier0: 'scripted', tier1: 'passthrough' });
      expect((await getBatch(p.url)).status).toBe('FAILED');
      for (const round of [1, 2]) {
        const answer = await ok<RetryResponse>(retry(p.url, { retry_mode: 'all', max_retry_count: 2 }));
        expect(answer).toMatchObject({ retried_count: 3, skipped: { permanent: 0, max_retries_reached: 0 } });
        const requeued = await units(p.batchId);
        expect(requeued.map((u) => [u.status, u.retry_count, u.attempts])).toEqual(Array.from({ length: 3 }, () => ['pending', round, 0]));
        await drain(engine, t.db);
        const failedAgain = await units(p.batchId);
        expect(failedAgain.map((u) => [u.status, u.retry_count, u.attempts, u.error_history.length])).toEqual(
          Array.from({ length: 3 }, () => ['failed', round, 1, round + 1]),
        );
      }
      const exhausted = await ok<RetryResponse>(retry(p.url, { retry_mode: 'all', max_retry_count: 2 }));
      expect(exhausted).toMatchObject({
        status: 'FAILED',
        retried_count: 0,
        skipped: { permanent: 0, max_retries_reached: 3 },
        by_tier: [
          { tier_num: 0, retried: 0, skipped_permanent: 0, skipped_max_retries: 3 },
          { tier_num: 1, retried: 0, skipped_permanent: 0, skipped_max_retries: 0 },
        ],
      });
      // A unit both permanent and exhausted counts once, as permanent.
      const both = await ok<RetryResponse>(retry(p.url, { max_retry_count: 2 }));
      expect(both).toMatchObject({ retried_count: 0, skipped: { permanent: 1, max_retries_reached: 2 } });
      const third = await ok<RetryResponse>(retry(p.url, { max_retry_count: 3 }));
      expect(third).toMatchObject({ retried_count: 2, skipped: { permanent: 1, max_retries_reached: 0 } });
      expect([...third.retried_document_ids].sort()).toEqual(p.idsOf('transient').sort());
      await drain(engine, t.db);
      expect((await units(p.batchId)).map((u) => [u.source_id, u.retry_count]).sort()).toEqual(
        p.objectIds.map((id) => [id, p.idsOf('transient').includes(id) ? 3 : 2]).sort(),
      );
      expect((await getBatch(p.url)).status).toBe('FAILED');
    });

    it('concurrent retries re-queue each unit once in total', async () => {
      const p = await pipeline(
        Array.from({ length: 12 }, () => ({ mode0: 'transient' as const })),
        { tier0: 'scripted', tier1: 'passthrough' },
      );
      const answers = await Promise.all([retry(p.url), retry(p.url), retry(p.url, { retry_mode: 'all' })].map((r) => ok<RetryResponse>(r)));
      expect(answers.reduce((n, a) => n + a.retried_count, 0)).toBe(12);
      const all = answers.flatMap((a) => a.retried_document_ids);
      expect(new Set(all).size).toBe(12);
      expect(all.sort()).toEqual([...p.objectIds].sort());
      const rows = await units(p.batchId);
      expect(rows.map((u) => [u.status, u.retry_count])).toEqual(Array.from({ length: 12 }, () => ['pending', 1]));
      p.heal();
      await drain(engine, t.db);
      expect((await getBatch(p.url)).status).toBe('COMPLETED');
      for (const id of p.objectIds) expect(scripted.runs.get(`${p.col0}:${id}`)).toBe(2);
    });

    it('dry_run answers the counts of a real retry and changes nothing', async () => {
      const p = await pipeline([{}, { mode0: 'transient' }, { mode0: 'permanent' }, { mode0: 'transient' }, {}], {
        tier0: 'scripted',
        tier1: 'passthrough',
      });
      const before = await snapshot(p.batchId, [p.col0, p.col1]);
      const dry = await ok<RetryResponse>(retry(p.url, { dry_run: true }));
      expect(dry).toMatchObject({ dry_run: true, status: 'COMPLETED_WITH_ERRORS', retried_count: 2, skipped: { permanent: 1, max_retries_reached: 0 } });
      expect(await snapshot(p.batchId, [p.col0, p.col1])).toEqual(before);
      const real = await ok<RetryResponse>(retry(p.url));
      expect({ ...real, dry_run: true, status: 'COMPLETED_WITH_ERRORS' }).toEqual(dry);
      expect(real.status).toBe('IN_PROGRESS');
      await drain(engine, t.db);
    });

    it('refuses DRAFT, PENDING and CANCELED batches (400 naming the status) and unknown batches (404)', async () => {
      const n = ++counter;
      const bucket = await ok<{ bucket_id: string }>(
        call('POST', '/v1/buckets', { bucket_name: `retry-${n}`, bucket_schema: { properties: { mode0: { type: 'string' } } } }),
      );
      const made = await ok<{ succeeded: { object_id: string }[] }>(
        call('POST', `/v1/buckets/${bucket.bucket_id}/objects/batch`, { objects: [{ metadata: { mode0: 'ok' } }] }),
      );
      await ok(
        call('POST', '/v1/collections', {
          collection_name: `t0-${n}`,
          source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
          feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
        }),
      );
      const batch = await ok<{ batch_id: string }>(
        call('POST', `/v1/buckets/${bucket.bucket_id}/batches`, { object_ids: made.succeeded.map((o) => o.object_id) }),
      );
      const url = `/v1/buckets/${bucket.bucket_id}/batches/${batch.batch_id}`;
      const draft = expectEnvelope(await retry(url), 400, 'BadRequestError');
      expect(draft.message).toContain('DRAFT');
      expect(draft.message).toContain(batch.batch_id);
      await ok(call('POST', `${url}/submit`, {}));
      expect(expectEnvelope(await retry(url, { retry_mode: 'all' }), 400, 'BadRequestError').message).toContain('PENDING');
      await ok(call('POST', `${url}/cancel`));
      expect(expectEnvelope(await retry(url), 400, 'BadRequestError').message).toContain('CANCELED');
      const missing = expectEnvelope(await retry(`/v1/buckets/${bucket.bucket_id}/batches/btch_nope`), 404, 'NotFoundError');
      expect(missing.message).toContain('btch_nope');
      expectEnvelope(await call('GET', `/v1/buckets/${bucket.bucket_id}/batches/btch_nope/failed-documents`), 404, 'NotFoundError');
    });

    it('422 for max_retry_count 0 and 11, an unknown retry_mode, bad tier_nums and document_ids, a long Idempotency-Key', async () => {
      const p = await pipeline([{ mode0: 'transient' }], { tier0: 'scripted', tier1: 'passthrough' });
      const cases: [unknown, (string | number)[], string][] = [
        [{ max_retry_count: 0 }, ['body', 'max_retry_count'], '0'],
        [{ max_retry_count: 11 }, ['body', 'max_retry_count'], '11'],
        [{ max_retry_count: 2.5 }, ['body', 'max_retry_count'], '2.5'],
        [{ retry_mode: 'sometimes' }, ['body', 'retry_mode'], 'sometimes'],
        [{ tier_nums: [-1] }, ['body', 'tier_nums', 0], '-1'],
        [{ tier_nums: 'all' }, ['body', 'tier_nums'], 'all'],
        [{ document_ids: [] }, ['body', 'document_ids'], '[]'],
        [{ document_ids: Array.from({ length: 10_001 }, (_, i) => `obj_${i}`) }, ['body', 'document_ids'], 'obj_0'],
        [{ dry_run: 'yes' }, ['body', 'dry_run'], 'yes'],
      ];
      for (const [body, location, named] of cases) {
        const err = expectEnvelope(await retry(p.url, body), 422, 'ValidationError');
        expect(validationIssues(err)[0]!.location, JSON.stringify(body).slice(0, 80)).toEqual(location);
        expect(err.message).toContain(named);
      }
      const longKey = 'k'.repeat(256);
      const err = expectEnvelope(await retry(p.url, {}, { 'idempotency-key': longKey }), 422, 'ValidationError');
      expect(validationIssues(err)[0]!.location).toEqual(['header', 'idempotency-key']);
      expect(err.message).toContain('kkkk');
      // Nothing was re-queued by any of them.
      expect((await units(p.batchId)).map((u) => [u.status, u.retry_count])).toEqual([['failed', 0]]);
    });

    it('Idempotency-Key: a replay answers the first response and does nothing; the key with another request is 409', async () => {
      const p = await pipeline([{ mode0: 'transient' }, { mode0: 'transient' }, {}], { tier0: 'scripted', tier1: 'passthrough' });
      const key = { 'idempotency-key': 'retry-once-1' };
      const first = await retry(p.url, {}, key);
      expect(first.statusCode, first.body).toBe(200);
      expect(first.json()).toMatchObject({ retried_count: 2, status: 'IN_PROGRESS' });
      const afterFirst = await snapshot(p.batchId, [p.col0, p.col1]);
      // The same request (defaults written out) replays: same answer, nothing done.
      const replay = await retry(p.url, { retry_mode: 'transient_only', max_retry_count: 3, tier_nums: [] }, key);
      expect(replay.statusCode).toBe(200);
      expect(replay.body).toBe(first.body);
      expect(await snapshot(p.batchId, [p.col0, p.col1])).toEqual(afterFirst);
      // Still so after the units failed again and the batch settled.
      await drain(engine, t.db);
      const settled = await snapshot(p.batchId, [p.col0, p.col1]);
      expect((await retry(p.url, undefined, key)).body).toBe(first.body);
      expect(await snapshot(p.batchId, [p.col0, p.col1])).toEqual(settled);
      expect((await units(p.batchId)).filter((u) => u.status === 'failed').map((u) => u.retry_count)).toEqual([1, 1]);

      const conflict = expectEnvelope(await retry(p.url, { max_retry_count: 5 }, key), 409, 'AlreadyExistsError');
      expect(conflict.message).toContain('retry-once-1');
      // A new key is a new request.
      const other = await ok<RetryResponse>(retry(p.url, {}, { 'idempotency-key': 'retry-once-2' }));
      expect(other.retried_count).toBe(2);
      await drain(engine, t.db);
      expect((await units(p.batchId)).filter((u) => u.status === 'failed').map((u) => u.retry_count)).toEqual([2, 2]);

      // Sent at once with one new key: one does the work, the other waits for it and answers the same.
      const racing = { 'idempotency-key': 'retry-race' };
      const [x, y] = await Promise.all([retry(p.url, {}, racing), retry(p.url, {}, racing)]);
      expect([x.statusCode, y.statusCode]).toEqual([200, 200]);
      expect(x.body).toBe(y.body);
      expect(x.json()).toMatchObject({ retried_count: 2 });
      expect((await units(p.batchId)).filter((u) => u.tier_num === 0 && u.retry_count > 0).map((u) => u.retry_count)).toEqual([3, 3]);
      await drain(engine, t.db);
    });

    it('Idempotency-Key: a key older than 24 hours is a new request; deleting the batch forgets its keys', async () => {
      const p = await pipeline([{ mode0: 'transient' }, {}], { tier0: 'scripted', tier1: 'passthrough' });
      const key = { 'idempotency-key': 'old-key' };
      expect((await ok<RetryResponse>(retry(p.url, {}, key))).retried_count).toBe(1);
      await drain(engine, t.db);
      // Within 24 hours the key replays (nothing re-queued)...
      expect((await ok<RetryResponse>(retry(p.url, {}, key))).retried_count).toBe(1);
      expect((await units(p.batchId)).filter((u) => u.status === 'failed').map((u) => u.retry_count)).toEqual([1]);
      // ...past them it is forgotten: the same key, even with another body, is a new request.
      await t.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old-key'`);
      const fresh = await ok<RetryResponse>(retry(p.url, { max_retry_count: 5 }, key));
      expect(fresh.retried_count).toBe(1);
      expect((await units(p.batchId)).filter((u) => u.tier_num === 0 && u.retry_count > 0).map((u) => u.retry_count)).toEqual([2]);
      await drain(engine, t.db);
      const del = await t.call({ method: 'DELETE', url: p.url, headers: { 'x-namespace': NS } });
      expect(del.statusCode, del.body).toBe(200);
      const [left] = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM idempotency_keys WHERE scope = $1`, [`retry:${p.batchId}`]);
      expect(left!.n).toBe(0);
    });

    it('next_attempt_at lies within the backoff window of the new retry count, never before the last error’s retry_after_ms', async () => {
      const p = await pipeline(
        Array.from({ length: 16 }, () => ({ mode0: 'transient' as const })),
        { tier0: 'scripted', tier1: 'passthrough' },
      );
      const failed = await units(p.batchId);
      await t.db.query(`UPDATE units SET last_error = jsonb_set(last_error, '{retry_after_ms}', '90000') WHERE id = $1`, [failed[0]!.id]);
      await t.db.query(`UPDATE units SET retry_count = 2 WHERE id = ANY($1::bigint[])`, [failed.slice(8).map((u) => u.id)]);
      // An app with production-like backoff, so the window is wide enough to see the jitter.
      const wide = await buildApp({ db: t.db, blobs: t.blobs, extractors: registry, backoff: { baseMs: 10_000, capMs: 25_000 } });
      try {
        const [{ now: start }] = (await t.db.query<{ now: Date }>('SELECT clock_timestamp() AS now')) as [{ now: Date }];
        const answer = await ok<RetryResponse>(call('POST', `${p.url}/retry`, {}, { app: wide }));
        const [{ now: end }] = (await t.db.query<{ now: Date }>('SELECT clock_timestamp() AS now')) as [{ now: Date }];
        expect(answer.retried_count).toBe(16);
        const rows = await t.db.query<{ id: number; retry_count: number; last_retry_at: Date; delay_ms: number }>(
          `SELECT id, retry_count, last_retry_at, extract(epoch FROM next_attempt_at - last_retry_at)::float8 * 1000 AS delay_ms
             FROM units WHERE batch_id = $1 ORDER BY id`,
          [p.batchId],
        );
        for (const r of rows) {
          expect(r.last_retry_at.getTime()).toBeGreaterThanOrEqual(start.getTime() - 1);
          expect(r.last_retry_at.getTime()).toBeLessThanOrEqual(end.getTime() + 1);
        }
        expect(rows[0]).toMatchObject({ retry_count: 1, delay_ms: 90_000 });
        const firstRetry = rows.slice(1, 8);
        const thirdRetry = rows.slice(8);
        for (const r of firstRetry) {
          expect(r.retry_count).toBe(1);
          expect(r.delay_ms).toBeGreaterThanOrEqual(0);
          expect(r.delay_ms).toBeLessThanOrEqual(10_000);
        }
        for (const r of thirdRetry) {
          expect(r.retry_count).toBe(3);
          expect(r.delay_ms).toBeGreaterThanOrEqual(0);
          expect(r.delay_ms).toBeLessThanOrEqual(25_000);
        }
        // Full jitter: the delays spread over the window instead of coinciding.
        expect(new Set(rows.slice(1).map((r) => r.delay_ms)).size).toBeGreaterThan(10);
        expect(Math.max(...thirdRetry.map((r) => r.delay_ms))).toBeGreaterThan(0);
      } finally {
        await wide.close();
        // Not due for a while: cancel, so later drains do not wait for these units.
        await ok(call('POST', `${p.url}/cancel`));
      }
    });

    it('failed-documents lists failed units by (tier_num, id) with filters and paging', async () => {
      const p = await pipeline(
        [
          { mode0: 'transient' },
          { mode0: 'permanent' },
          { mode1: 'transient' },
          {},
          { mode0: 'transient' },
          { mode1: 'transient' },
          { mode0: 'permanent' },
          { mode0: 'transient' },
        ],
        { tier0: 'scripted', tier1: 'scripted' },
      );
      const list = (query = '') => ok<FailedDocs>(call('GET', `${p.url}/failed-documents${query}`));
      const expected = (await units(p.batchId)).filter((u) => u.status === 'failed');
      expect(expected).toHaveLength(7);

      const all = await list();
      expect(all).toMatchObject({ total_count: 7, limit: 100, offset: 0 });
      expect(all.results.map((r) => r.unit_id)).toEqual(expected.map((u) => String(u.id)));
      const tier0 = all.results.find((r) => r.tier_num === 0 && r.error?.transient)!;
      expect(tier0).toEqual({
        document_id: tier0.source_object_id,
        unit_id: tier0.unit_id,
        batch_id: p.batchId,
        tier_num: 0,
        collection_id: p.col0,
        source_object_id: tier0.document_id,
        source_document_id: null,
        root_object_id: tier0.document_id,
        status: 'failed',
        attempts: 1,
        retry_count: 0,
        last_retry_at: null,
        next_attempt_at: expect.any(String),
        error: {
          error_type: 'network',
          transient: true,
          code: 'timeout',
          message: `upstream timed out for ${tier0.document_id}`,
          http_status: null,
          retry_after_ms: null,
          tier_num: 0,
          collection_id: p.col0,
          extractor: 'scripted_extractor_v1',
          attempt: 1,
          timestamp: expect.any(String),
        },
        error_history: [tier0.error],
      });
      expect(p.idsOf('transient')).toContain(tier0.document_id);
      const tier1 = all.results.find((r) => r.tier_num === 1)!;
      expect(tier1).toMatchObject({ collection_id: p.col1, source_object_id: null, source_document_id: tier1.document_id });
      expect(tier1.document_id).toMatch(/^doc_/);
      expect(p.idsOf('transient', 1)).toContain(tier1.root_object_id);

      const count = async (query: string) => {
        const page = await list(query);
        expect(page.results).toHaveLength(page.total_count);
        return page.total_count;
      };
      expect(await count('?tier_num=0')).toBe(5);
      expect(await count('?tier_num=1')).toBe(2);
      expect(await count(`?collection_id=${p.col1}`)).toBe(2);
      expect(await count('?error_type=validation')).toBe(2);
      expect(await count('?error_type=network&tier_num=1')).toBe(2);
      expect(await count('?error_type=dependency')).toBe(0);
      expect(await count('?transient=true')).toBe(5);
      expect(await count('?transient=false')).toBe(2);
      expect(await count('?transient=1&tier_num=0')).toBe(3);
      expect(await count('?collection_id=col_nope')).toBe(0);

      const pages = [await list('?limit=3'), await list('?limit=3&offset=3'), await list('?limit=3&offset=6'), await list('?limit=3&offset=9')];
      expect(pages.map((pg) => [pg.results.length, pg.total_count, pg.limit, pg.offset])).toEqual([
        [3, 7, 3, 0],
        [3, 7, 3, 3],
        [1, 7, 3, 6],
        [0, 7, 3, 9],
      ]);
      expect(pages.flatMap((pg) => pg.results)).toEqual(all.results);

      for (const [query, named] of [
        ['?limit=0', '0'],
        ['?limit=1001', '1001'],
        ['?offset=-1', '-1'],
        ['?tier_num=x', 'x'],
        ['?tier_num=', '""'],
        ['?tier_num=-1', '-1'],
        ['?error_type=bogus', 'bogus'],
        ['?transient=maybe', 'maybe'],
      ] as const) {
        const err = expectEnvelope(await call('GET', `${p.url}/failed-documents${query}`), 422, 'ValidationError');
        expect(err.message, query).toContain(named);
      }

      // A read key lists; retrying needs write.
      const reader = await t.key(['read']);
      await ok(call('GET', `${p.url}/failed-documents`, undefined, { key: reader }));
      expectEnvelope(await call('POST', `${p.url}/retry`, {}, { key: reader }), 403, 'ForbiddenError');

      // Re-queued units leave the list; failing again they come back with their retry recorded.
      const answer = await ok<RetryResponse>(retry(p.url, { tier_nums: [1] }));
      expect(answer.retried_count).toBe(2);
      expect((await list()).total_count).toBe(5);
      await drain(engine, t.db);
      const back = await list('?tier_num=1');
      expect(back.results.map((r) => [r.retry_count, r.error_history.length, r.last_retry_at !== null])).toEqual([
        [1, 2, true],
        [1, 2, true],
      ]);
    });

    it('a batch with nothing failed: 200, retried_count 0, and the batch is left as it was', async () => {
      const p = await pipeline([{}, {}], { tier0: 'scripted', tier1: 'passthrough' });
      const before = await snapshot(p.batchId, [p.col0, p.col1]);
      const answer = await ok<RetryResponse>(retry(p.url, { retry_mode: 'all', document_ids: [...p.objectIds, 'obj_unknown'] }));
      expect(answer).toEqual({
        batch_id: p.batchId,
        status: 'COMPLETED',
        retry_mode: 'all',
        tier_nums: [0, 1],
        max_retry_count: 3,
        dry_run: false,
        retried_count: 0,
        skipped: { permanent: 0, max_retries_reached: 0 },
        by_tier: [
          { tier_num: 0, retried: 0, skipped_permanent: 0, skipped_max_retries: 0 },
          { tier_num: 1, retried: 0, skipped_permanent: 0, skipped_max_retries: 0 },
        ],
        retried_document_ids: [],
        task_id: p.taskId,
      });
      expect(await snapshot(p.batchId, [p.col0, p.col1])).toEqual(before);
    });

    it('document_ids limits the retry to those source items', async () => {
      const p = await pipeline(
        Array.from({ length: 5 }, () => ({ mode0: 'transient' as const })),
        { tier0: 'scripted', tier1: 'passthrough' },
      );
      const chosen = [p.objectIds[1]!, p.objectIds[3]!];
      const answer = await ok<RetryResponse>(retry(p.url, { document_ids: [...chosen, chosen[0]!] }));
      expect(answer.retried_count).toBe(2);
      expect([...answer.retried_document_ids].sort()).toEqual([...chosen].sort());
      expect(answer.skipped).toEqual({ permanent: 0, max_retries_reached: 0 });
      const rows = await units(p.batchId);
      expect(rows.filter((u) => u.status === 'pending').map((u) => u.source_id).sort()).toEqual([...chosen].sort());
      expect(rows.filter((u) => u.status === 'failed')).toHaveLength(3);
      await drain(engine, t.db);
    });
  });
}
