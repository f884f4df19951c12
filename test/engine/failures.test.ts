import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { documentId } from '../../src/documents/document-shape.js';
import { type Engine, MAX_RATE_LIMITED_ATTEMPTS, MAX_RETRY_DELAY_MS } from '../../src/engine/create-engine.js';
import type { UnitError } from '../../src/engine/fail-units.js';
import type { Extractor, ExtractorRegistry } from '../../src/extractors/extractor.js';
import { createExtractorRegistry } from '../../src/extractors/registry.js';
import { FaultServer, type RecordedRequest } from '../extractors/fault-server.js';
import { drain, testEngine } from '../helpers/engine.js';
import { createTestContext, type TestContext } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const NS = 'failure_tests';
/**
 * Timeouts of the two webhook collections. Faults other than hangs go to a generous one, so a busy test
 * machine cannot turn an answer into a timeout; hangs go to a short one, so each of their attempts is quick.
 */
const HOOK_TIMEOUT_MS = 10_000;
const SLOW_TIMEOUT_MS = 300;
/** Retry-After of the always-429 fault: fractional seconds keep its 50 rate-limited attempts quick. */
const FAST_RETRY_AFTER = '0.01';

interface UnitRow {
  id: string | number;
  source_id: string;
  collection_id: string;
  status: string;
  attempts: number;
  rate_limited_attempts: number;
  next_attempt_at: Date;
  updated_at: Date;
  documents_written: number;
  last_error: UnitError | null;
  error_history: UnitError[];
}

interface ErrorDetail {
  error_type: string;
  message: string;
  component: string | null;
  affected_count: number;
  affected_document_ids: string[];
  recovery_suggestion: string | null;
  metadata: { code: string; transient: boolean; tier_num: number; collection_ids: string[] };
}

/**
 * What the fault server does for one request, by the object's `fault` metadata and the number of calls it
 * has had for that object so far (1 for the first).
 */
type Behaviour = (call: number, res: ServerResponse) => void;

const answer = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
const ok = (res: ServerResponse, call: number) => answer(res, 200, { documents: [{ label: 'ok', call }] });
const hang = () => {
  // Never answers: the client gives up after timeout_ms.
};
const reset = (res: ServerResponse) => res.socket?.destroy();
const failFirst = (n: number, fault: (res: ServerResponse) => void): Behaviour => (call, res) => (call <= n ? fault(res) : ok(res, call));

const BEHAVIOURS: Record<string, Behaviour> = {
  ok: (call, res) => ok(res, call),
  rate_limited: (_call, res) => answer(res, 429, { error: 'slow down' }, { 'retry-after': FAST_RETRY_AFTER }),
  unavailable: (_call, res) => answer(res, 503, { error: 'overloaded' }),
  hang,
  reset: (_call, res) => reset(res),
  // Headers and part of the body, then the connection drops.
  reset_mid_body: (_call, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
    res.write('{"documents": [', () => setTimeout(() => reset(res), 20));
  },
  bad_request: (_call, res) => answer(res, 400, { error: 'field x is wrong' }),
  unauthorized: (_call, res) => answer(res, 401, { error: 'bad key' }),
  malformed_json: (_call, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"documents": [{"label": '),
  wrong_shape: (_call, res) => answer(res, 200, { docs: [{ label: 'x' }] }),
  flaky_503: failFirst(2, (res) => answer(res, 503, { error: 'warming up' })),
  flaky_reset: failFirst(2, reset),
  flaky_timeout: failFirst(2, hang),
  rate_limited_4: failFirst(4, (res) => answer(res, 429, {}, { 'retry-after': '0' })),
  rate_limited_1s: failFirst(1, (res) => answer(res, 429, {}, { 'retry-after': '1' })),
  // 10^30 seconds (past PostgreSQL's timestamp range) and a number that parses to Infinity.
  rate_limited_aeons: failFirst(1, (res) => answer(res, 429, {}, { 'retry-after': '9'.repeat(30) })),
  rate_limited_infinite: failFirst(1, (res) => answer(res, 429, {}, { 'retry-after': '9'.repeat(400) })),
};

/** A test-only extractor with a bug: it throws a plain Error. */
const boomExtractor = {
  name: 'boom_extractor',
  version: 'v1',
  id: 'boom_extractor_v1',
  description: 'Throws a plain Error for every unit.',
  parameters: z.object({ extractor_type: z.string().optional() }),
  supportedInputTypes: ['text'],
  inputSchema: {},
  outputSchema: () => ({}),
  positionFields: [],
  async run({ context }) {
    throw new Error(`cannot read property of undefined while handling ${JSON.stringify(context.source)}`);
  },
} satisfies Extractor;

for (const backend of BACKENDS) {
  describe(`failure model through the engine (${backend.name})`, () => {
    const registry: ExtractorRegistry = new Map([...createExtractorRegistry({ allowPrivateUrls: true }), [boomExtractor.id, boomExtractor as Extractor]]);
    let t: TestContext;
    let engine: Engine;
    let server: FaultServer;
    let hooksBucket: string;
    let slowBucket: string;
    let slowId: string;
    let hooksId: string;
    /** Calls the fault server had, per object id. */
    const calls = new Map<string, number>();
    /** When each of those calls arrived (ms). */
    const callTimes = new Map<string, number[]>();

    const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) =>
      t.call({ method, url, payload: payload as Record<string, unknown>, headers: { 'x-namespace': NS } });
    const okCall = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
      const res = await call(method, url, payload);
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(200);
      return res.json();
    };
    const createObjects = async (bucketId: string, objects: unknown[]): Promise<string[]> => {
      const res = await okCall('POST', `/v1/buckets/${bucketId}/objects/batch`, { objects });
      expect(res.succeeded).toHaveLength(objects.length);
      return (res.succeeded as { object_id: string }[]).map((o) => o.object_id);
    };
    /** One object per fault in the hooks bucket; returns fault → object id. */
    const faultObjects = async <F extends string>(faults: F[], bucketId = hooksBucket): Promise<Record<F, string>> => {
      const ids = await createObjects(
        bucketId,
        faults.map((fault) => ({ metadata: { fault } })),
      );
      return Object.fromEntries(faults.map((f, i) => [f, ids[i]!])) as Record<F, string>;
    };
    const submit = async (bucketId: string, objectIds: string[]): Promise<string> => {
      const batch = await okCall('POST', `/v1/buckets/${bucketId}/batches`, { object_ids: objectIds });
      await okCall('POST', `/v1/buckets/${bucketId}/batches/${batch.batch_id}/submit`, {});
      return batch.batch_id as string;
    };
    const unitsOf = async (batchId: string): Promise<Map<string, UnitRow>> => {
      const rows = await t.db.query<UnitRow>(
        `SELECT id, source_id, collection_id, status, attempts, rate_limited_attempts, next_attempt_at, updated_at,
                documents_written, last_error, error_history
           FROM units WHERE batch_id = $1 ORDER BY id`,
        [batchId],
      );
      return new Map(rows.map((r) => [`${r.collection_id}/${r.source_id}`, r]));
    };

    beforeAll(async () => {
      server = await FaultServer.start();
      server.handler = (req: RecordedRequest, res) => {
        const body = req.body as { source: { object_id: string }; input: { fault?: string } };
        const objectId = body.source.object_id;
        const n = (calls.get(objectId) ?? 0) + 1;
        calls.set(objectId, n);
        callTimes.set(objectId, [...(callTimes.get(objectId) ?? []), Date.now()]);
        const behaviour = BEHAVIOURS[body.input.fault ?? ''];
        if (!behaviour) return answer(res, 500, { error: `test bug: no behaviour ${body.input.fault}` });
        behaviour(n, res);
      };
      t = await createTestContext(backend, { extractors: registry });
      engine = await testEngine(t.db, t.blobs, { extractors: registry, autoAttempts: 3, backoff: { baseMs: 1, capMs: 5 } });
      await okCall('POST', '/v1/namespaces', {
        namespace_name: NS,
        feature_extractors: [
          { feature_extractor_name: 'text_extractor', version: 'v1' },
          { feature_extractor_name: 'webhook_extractor', version: 'v1' },
        ],
      });
      const bucket = await okCall('POST', '/v1/buckets', { bucket_name: 'hooks', bucket_schema: { properties: { fault: { type: 'string' } } } });
      hooksBucket = bucket.bucket_id;
      const hooks = await okCall('POST', '/v1/collections', {
        collection_name: 'hooked',
        source: { type: 'bucket', bucket_ids: [hooksBucket] },
        feature_extractor: {
          feature_extractor_name: 'webhook_extractor',
          version: 'v1',
          parameters: { extractor_type: 'webhook_extractor', url: `${server.url}/extract`, timeout_ms: HOOK_TIMEOUT_MS },
        },
      });
      hooksId = hooks.collection_id;
      const slow = await okCall('POST', '/v1/buckets', { bucket_name: 'slow_hooks', bucket_schema: { properties: { fault: { type: 'string' } } } });
      slowBucket = slow.bucket_id;
      const slowHooks = await okCall('POST', '/v1/collections', {
        collection_name: 'hooked_slow',
        source: { type: 'bucket', bucket_ids: [slowBucket] },
        feature_extractor: {
          feature_extractor_name: 'webhook_extractor',
          version: 'v1',
          parameters: { extractor_type: 'webhook_extractor', url: `${server.url}/extract`, timeout_ms: SLOW_TIMEOUT_MS },
        },
      });
      slowId = slowHooks.collection_id;
    }, 120_000);

    afterAll(async () => {
      await engine?.close();
      await t?.close();
      await server?.close();
    });

    it('each webhook fault lands in its category and class; transient ones fail after the budget, permanent ones after 1 attempt', async () => {
      const ids = await faultObjects(['ok', 'rate_limited', 'unavailable', 'reset', 'reset_mid_body', 'bad_request', 'unauthorized', 'malformed_json', 'wrong_shape']);
      const batchId = await submit(hooksBucket, Object.values(ids));
      const started = Date.now();
      await drain(engine, t.db, { maxMs: 60_000 });
      const units = await unitsOf(batchId);
      const unit = (fault: keyof typeof ids) => units.get(`${hooksId}/${ids[fault]}`)!;

      expect(unit('ok')).toMatchObject({ status: 'completed', attempts: 1, documents_written: 1, last_error: null, error_history: [] });

      const expected: Record<string, { error_type: string; code: string; transient: boolean; http_status: number | null; retry_after_ms: number | null; attempts: number; message: RegExp }> = {
        // Rate-limited attempts do not use up the budget of 3; the rate-limit cap ends them.
        rate_limited: { error_type: 'resource', code: 'rate_limited', transient: true, http_status: 429, retry_after_ms: 10, attempts: MAX_RATE_LIMITED_ATTEMPTS, message: /HTTP 429: \{"error":"slow down"\}/ },
        unavailable: { error_type: 'resource', code: 'service_unavailable', transient: true, http_status: 503, retry_after_ms: null, attempts: 3, message: /HTTP 503: \{"error":"overloaded"\}/ },
        reset: { error_type: 'network', code: 'connection_reset', transient: true, http_status: null, retry_after_ms: null, attempts: 3, message: /reset the connection/ },
        reset_mid_body: { error_type: 'network', code: 'connection_reset', transient: true, http_status: null, retry_after_ms: null, attempts: 3, message: /reset the connection/ },
        bad_request: { error_type: 'validation', code: 'invalid_input', transient: false, http_status: 400, retry_after_ms: null, attempts: 1, message: /HTTP 400: \{"error":"field x is wrong"\}/ },
        unauthorized: { error_type: 'authentication', code: 'upstream_unauthorized', transient: false, http_status: 401, retry_after_ms: null, attempts: 1, message: /HTTP 401/ },
        malformed_json: { error_type: 'runtime', code: 'invalid_response', transient: false, http_status: 200, retry_after_ms: null, attempts: 1, message: /body is not JSON/ },
        // The shape is checked after postJson has returned the parsed body, which carries no status.
        wrong_shape: { error_type: 'runtime', code: 'invalid_response', transient: false, http_status: 200, retry_after_ms: null, attempts: 1, message: /expected a JSON object \{"documents": \[\.\.\.\]\}/ },
      };
      for (const [fault, e] of Object.entries(expected)) {
        const u = unit(fault as keyof typeof ids);
        const objectId = ids[fault as keyof typeof ids];
        expect(u.status, fault).toBe('failed');
        expect(u.attempts, fault).toBe(e.attempts);
        // Every attempt reached the server, none more.
        expect(calls.get(objectId), fault).toBe(e.attempts);
        expect(u.rate_limited_attempts, fault).toBe(fault === 'rate_limited' ? MAX_RATE_LIMITED_ATTEMPTS : 0);
        expect(u.documents_written, fault).toBe(0);
        expect(u.last_error, fault).toEqual({
          error_type: e.error_type,
          transient: e.transient,
          code: e.code,
          message: expect.stringMatching(e.message),
          http_status: e.http_status,
          retry_after_ms: e.retry_after_ms,
          tier_num: 0,
          collection_id: hooksId,
          extractor: 'webhook_extractor_v1',
          attempt: e.attempts,
          timestamp: expect.any(String),
        });
        expect(u.last_error!.message, fault).toContain(`${server.url}/extract`);
        const at = Date.parse(u.last_error!.timestamp);
        expect(at, fault).toBeGreaterThanOrEqual(started - 1000);
        expect(at, fault).toBeLessThanOrEqual(Date.now() + 1000);
        // The history holds each attempt's error, oldest first, bounded.
        const history = u.error_history;
        expect(history.length, fault).toBe(Math.min(e.attempts, 10));
        expect(history.at(-1), fault).toEqual(u.last_error);
        expect(
          history.map((h) => [h.code, h.attempt]),
          fault,
        ).toEqual(Array.from({ length: history.length }, (_, i) => [e.code, e.attempts - history.length + 1 + i]));
      }
      const [docs] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM documents WHERE batch_id = $1', [batchId]);
      expect(docs!.n).toBe(1);

      // The batch as the API shows it: mixed outcomes, errors grouped per (category, code) with their objects.
      const batch = await okCall('GET', `/v1/buckets/${hooksBucket}/batches/${batchId}`);
      expect(batch.status).toBe('COMPLETED_WITH_ERRORS');
      expect(batch.error_summary).toEqual({ resource: 2, network: 2, validation: 1, authentication: 1, runtime: 2 });
      const [tier] = batch.tier_tasks;
      expect(tier).toMatchObject({ tier_num: 0, status: 'COMPLETED_WITH_ERRORS', units_total: 9, units_completed: 1, units_failed: 8, units_pending: 0, documents_written: 1 });
      expect(tier.error_summary).toEqual(batch.error_summary);
      const errors = tier.errors as ErrorDetail[];
      const byCode = new Map(errors.map((e) => [e.metadata.code, e]));
      expect([...byCode.keys()].sort()).toEqual(['connection_reset', 'invalid_input', 'invalid_response', 'rate_limited', 'service_unavailable', 'upstream_unauthorized']);
      const group = (code: string, faults: (keyof typeof ids)[]) => {
        const e = byCode.get(code)!;
        expect(e.affected_count, code).toBe(faults.length);
        expect([...e.affected_document_ids].sort(), code).toEqual(faults.map((f) => ids[f]).sort());
        expect(e.error_type, code).toBe(expected[faults[0]!]!.error_type);
        expect(e.metadata.transient, code).toBe(expected[faults[0]!]!.transient);
        expect(e.metadata.collection_ids, code).toEqual([hooksId]);
        expect(e.component, code).toBe('webhook_extractor_v1');
        // The group's message is that of its most recent failure, whichever of its units that was.
        expect(
          faults.some((f) => expected[f]!.message.test(e.message)),
          `${code}: ${e.message}`,
        ).toBe(true);
        expect(e.recovery_suggestion, code).toContain(`/v1/buckets/${hooksBucket}/batches/${batchId}/retry`);
      };
      group('rate_limited', ['rate_limited']);
      group('service_unavailable', ['unavailable']);
      group('connection_reset', ['reset', 'reset_mid_body']);
      group('invalid_input', ['bad_request']);
      group('upstream_unauthorized', ['unauthorized']);
      group('invalid_response', ['malformed_json', 'wrong_shape']);
      expect(byCode.get('connection_reset')!.recovery_suggestion).toContain('transient_only');
      expect(byCode.get('invalid_input')!.recovery_suggestion).toContain('"all"');
    }, 90_000);

    it('transient faults heal within the attempt budget: completed on attempt 3 with the two failures in the history', async () => {
      const ids = await faultObjects(['flaky_503', 'flaky_reset']);
      const batchId = await submit(hooksBucket, Object.values(ids));
      await drain(engine, t.db);
      const units = await unitsOf(batchId);
      const codes: Record<string, string> = { flaky_503: 'service_unavailable', flaky_reset: 'connection_reset' };
      for (const [fault, objectId] of Object.entries(ids)) {
        const u = units.get(`${hooksId}/${objectId}`)!;
        expect(u, fault).toMatchObject({ status: 'completed', attempts: 3, rate_limited_attempts: 0, documents_written: 1 });
        expect(calls.get(objectId), fault).toBe(3);
        expect(
          u.error_history.map((h) => [h.code, h.transient, h.attempt]),
          fault,
        ).toEqual([
          [codes[fault], true, 1],
          [codes[fault], true, 2],
        ]);
        // The last error stays on record for the operator although the unit completed.
        expect(u.last_error, fault).toMatchObject({ code: codes[fault], attempt: 2 });
        const docs = await t.db.query<{ id: string; fields: unknown }>('SELECT id, fields FROM documents WHERE collection_id = $1 AND source_id = $2', [hooksId, objectId]);
        // The answer of the third call is what was stored.
        expect(docs, fault).toEqual([{ id: documentId(hooksId, objectId, 0), fields: { label: 'ok', call: 3 } }]);
      }
      const batch = await okCall('GET', `/v1/buckets/${hooksBucket}/batches/${batchId}`);
      expect(batch.status).toBe('COMPLETED');
      expect(batch.error_summary).toBeNull();
      expect(batch.tier_tasks[0]).toMatchObject({ status: 'COMPLETED', units_completed: 2, units_failed: 0, documents_written: 2, errors: [] });
    }, 60_000);

    it('a hang past timeout_ms is network/timeout: failed after 3 attempts, or healed when the third call answers', async () => {
      const ids = await faultObjects(['hang', 'flaky_timeout'], slowBucket);
      const batchId = await submit(slowBucket, Object.values(ids));
      const started = Date.now();
      await drain(engine, t.db);
      // Three attempts of the hanging unit, each cut off at the timeout.
      expect(Date.now() - started).toBeGreaterThanOrEqual(3 * SLOW_TIMEOUT_MS);
      const units = await unitsOf(batchId);
      const hung = units.get(`${slowId}/${ids.hang}`)!;
      expect(hung).toMatchObject({ status: 'failed', attempts: 3, rate_limited_attempts: 0, documents_written: 0 });
      expect(calls.get(ids.hang)).toBe(3);
      expect(hung.last_error).toEqual({
        error_type: 'network',
        transient: true,
        code: 'timeout',
        message: `webhook ${server.url}/extract did not answer within ${SLOW_TIMEOUT_MS} ms`,
        http_status: null,
        retry_after_ms: null,
        tier_num: 0,
        collection_id: slowId,
        extractor: 'webhook_extractor_v1',
        attempt: 3,
        timestamp: expect.any(String),
      });
      expect(hung.error_history.map((h) => [h.code, h.attempt])).toEqual([
        ['timeout', 1],
        ['timeout', 2],
        ['timeout', 3],
      ]);
      const healed = units.get(`${slowId}/${ids.flaky_timeout}`)!;
      expect(healed).toMatchObject({ status: 'completed', attempts: 3, documents_written: 1 });
      expect(healed.error_history.map((h) => [h.code, h.transient, h.attempt])).toEqual([
        ['timeout', true, 1],
        ['timeout', true, 2],
      ]);
      const docs = await t.db.query<{ fields: unknown }>('SELECT fields FROM documents WHERE collection_id = $1 AND source_id = $2', [slowId, ids.flaky_timeout]);
      expect(docs).toEqual([{ fields: { label: 'ok', call: 3 } }]);

      const batch = await okCall('GET', `/v1/buckets/${slowBucket}/batches/${batchId}`);
      expect(batch.status).toBe('COMPLETED_WITH_ERRORS');
      expect(batch.error_summary).toEqual({ network: 1 });
      expect(batch.tier_tasks[0].errors).toEqual([
        expect.objectContaining({
          error_type: 'network',
          affected_count: 1,
          affected_document_ids: [ids.hang],
          message: hung.last_error!.message,
          recovery_suggestion: expect.stringContaining('transient_only'),
          metadata: expect.objectContaining({ code: 'timeout', transient: true, collection_ids: [slowId] }),
        }),
      ]);
    }, 60_000);

    it('rate-limited attempts do not use up the budget: four 429s then success completes with autoAttempts 2', async () => {
      const ids = await faultObjects(['rate_limited_4', 'unavailable']);
      const batchId = await submit(hooksBucket, Object.values(ids));
      const tight = await testEngine(t.db, t.blobs, { extractors: registry, autoAttempts: 2, backoff: { baseMs: 1, capMs: 5 } });
      try {
        await drain(tight, t.db);
      } finally {
        await tight.close();
      }
      const units = await unitsOf(batchId);
      const limited = units.get(`${hooksId}/${ids.rate_limited_4}`)!;
      expect(limited).toMatchObject({ status: 'completed', attempts: 5, rate_limited_attempts: 4, documents_written: 1 });
      expect(limited.error_history.map((h) => [h.code, h.http_status, h.retry_after_ms])).toEqual(Array.from({ length: 4 }, () => ['rate_limited', 429, 0]));
      // The same budget of 2 stops an always-503 unit after exactly 2 attempts.
      const unavailable = units.get(`${hooksId}/${ids.unavailable}`)!;
      expect(unavailable).toMatchObject({ status: 'failed', attempts: 2, rate_limited_attempts: 0 });
      expect(calls.get(ids.unavailable)).toBe(2);
      const batch = await okCall('GET', `/v1/buckets/${hooksBucket}/batches/${batchId}`);
      expect(batch.status).toBe('COMPLETED_WITH_ERRORS');
      expect(batch.error_summary).toEqual({ resource: 1 });
    }, 60_000);

    it('Retry-After is honoured: the unit waits at least that long before its next attempt', async () => {
      const ids = await faultObjects(['rate_limited_1s']);
      const batchId = await submit(hooksBucket, [ids.rate_limited_1s]);
      const before = Date.now();
      expect(await engine.runOnce(4)).toBe(1);
      let [u] = [...(await unitsOf(batchId)).values()];
      expect(u).toMatchObject({ status: 'pending', attempts: 1, rate_limited_attempts: 1 });
      expect(u!.last_error).toMatchObject({ error_type: 'resource', code: 'rate_limited', transient: true, http_status: 429, retry_after_ms: 1000, attempt: 1 });
      // next_attempt_at and updated_at come from the same statement's now(): the gap is the delay decided.
      expect(u!.next_attempt_at.getTime() - u!.updated_at.getTime()).toBeGreaterThanOrEqual(1000);
      expect(u!.next_attempt_at.getTime()).toBeGreaterThanOrEqual(before + 1000 - 50);
      // Before then, nothing is claimed.
      expect(await engine.runOnce(4)).toBe(0);
      expect(calls.get(ids.rate_limited_1s)).toBe(1);
      await drain(engine, t.db, { maxMs: 10_000 });
      [u] = [...(await unitsOf(batchId)).values()];
      expect(u).toMatchObject({ status: 'completed', attempts: 2, rate_limited_attempts: 1 });
      expect(calls.get(ids.rate_limited_1s)).toBe(2);
      const batch = await okCall('GET', `/v1/buckets/${hooksBucket}/batches/${batchId}`);
      expect(batch.status).toBe('COMPLETED');
      // The second call reached the server no sooner than Retry-After allowed.
      const [first, second] = callTimes.get(ids.rate_limited_1s)!;
      expect(second! - first!).toBeGreaterThanOrEqual(1000 - 50);
    }, 30_000);

    it('an absurd Retry-After is honoured up to MAX_RETRY_DELAY_MS and recorded as a rate-limited attempt', async () => {
      const ids = await faultObjects(['rate_limited_aeons', 'rate_limited_infinite', 'ok']);
      const batchId = await submit(hooksBucket, Object.values(ids));
      const errors: unknown[] = [];
      const watched = await testEngine(t.db, t.blobs, { extractors: registry, onError: (err) => errors.push(err) });
      try {
        expect(await watched.runOnce(4)).toBe(3);
      } finally {
        await watched.close();
      }
      // Before the ceiling, writing these failures threw ("interval out of range", or a NULL next_attempt_at),
      // so nothing of them was recorded until their leases ran out.
      expect(errors).toEqual([]);
      const units = await unitsOf(batchId);
      for (const fault of ['rate_limited_aeons', 'rate_limited_infinite'] as const) {
        const u = units.get(`${hooksId}/${ids[fault]}`)!;
        expect(u, fault).toMatchObject({ status: 'pending', attempts: 1, rate_limited_attempts: 1 });
        expect(u.last_error, fault).toMatchObject({ code: 'rate_limited', transient: true, http_status: 429, retry_after_ms: MAX_RETRY_DELAY_MS });
        expect(u.next_attempt_at.getTime() - u.updated_at.getTime(), fault).toBe(MAX_RETRY_DELAY_MS);
      }
      expect(units.get(`${hooksId}/${ids.ok}`)).toMatchObject({ status: 'completed', documents_written: 1 });
      // Not due for a day: cancel the batch so later drains do not wait for it.
      await okCall('POST', `/v1/buckets/${hooksBucket}/batches/${batchId}/cancel`);
      expect((await okCall('GET', `/v1/buckets/${hooksBucket}/batches/${batchId}`)).status).toBe('CANCELED');
    });

    it('text_extractor refuses a missing, empty or non-string text: validation, permanent, one attempt', async () => {
      const bucket = await okCall('POST', '/v1/buckets', { bucket_name: 'notes', bucket_schema: { properties: { note: { type: 'string' } } } });
      const fromNote = await okCall('POST', '/v1/collections', {
        collection_name: 'note_chunks',
        source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
        feature_extractor: { feature_extractor_name: 'text_extractor', version: 'v1', input_mappings: { text: 'note' } },
      });
      // A literal binding is the one way to hand text_extractor a number: a number field mapped to text is refused at creation.
      const literal = await call('POST', '/v1/collections', {
        collection_name: 'literal_text',
        source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
        feature_extractor: { feature_extractor_name: 'text_extractor', version: 'v1', input_mappings: [{ input_key: 'text', source_type: 'literal', override: 42 }] },
      });
      expect(literal.statusCode, literal.body).toBe(200);
      const literalId = (literal.json() as { collection_id: string }).collection_id;

      const [missing, empty, blank, fine] = await createObjects(bucket.bucket_id, [{ metadata: {} }, { metadata: { note: '' } }, { metadata: { note: '  \n ' } }, { metadata: { note: 'hello there world' } }]);
      const batchId = await submit(bucket.bucket_id, [missing!, empty!, blank!, fine!]);
      await drain(engine, t.db);
      const units = await unitsOf(batchId);
      const expectFailure = (collectionId: string, objectId: string, code: string, message: RegExp) => {
        const u = units.get(`${collectionId}/${objectId}`)!;
        expect(u, `${collectionId}/${objectId}`).toMatchObject({ status: 'failed', attempts: 1, documents_written: 0 });
        expect(u.last_error).toMatchObject({ error_type: 'validation', transient: false, code, http_status: null, extractor: 'text_extractor_v1', collection_id: collectionId, attempt: 1 });
        expect(u.last_error!.message).toMatch(message);
        expect(u.error_history).toHaveLength(1);
      };
      expectFailure(fromNote.collection_id, missing!, 'missing_field', /input field "text" is missing/);
      expectFailure(fromNote.collection_id, empty!, 'invalid_input', /input field "text" is empty/);
      expectFailure(fromNote.collection_id, blank!, 'invalid_input', /input field "text" is empty/);
      expect(units.get(`${fromNote.collection_id}/${fine}`)).toMatchObject({ status: 'completed', attempts: 1, documents_written: 1 });
      for (const objectId of [missing!, empty!, blank!, fine!]) {
        expectFailure(literalId, objectId, 'invalid_input', /input field "text" must be a string \(got number\)/);
      }

      const batch = await okCall('GET', `/v1/buckets/${bucket.bucket_id}/batches/${batchId}`);
      expect(batch.status).toBe('COMPLETED_WITH_ERRORS');
      expect(batch.error_summary).toEqual({ validation: 7 });
      const errors = batch.tier_tasks[0].errors as ErrorDetail[];
      const missingGroup = errors.find((e) => e.metadata.code === 'missing_field')!;
      expect(missingGroup).toMatchObject({ error_type: 'validation', affected_count: 1, affected_document_ids: [missing] });
      const invalid = errors.find((e) => e.metadata.code === 'invalid_input')!;
      expect(invalid.affected_count).toBe(6);
      expect([...invalid.affected_document_ids].sort()).toEqual([empty, blank, missing, empty, blank, fine].sort());
      expect(invalid.metadata.collection_ids.sort()).toEqual([fromNote.collection_id, literalId].sort());
      expect(invalid.recovery_suggestion).toMatch(/fix the source objects or the collection's input mappings/);
    }, 60_000);

    it('an extractor that throws a plain Error fails as runtime/extractor_error, permanent; all units failed → batch FAILED', async () => {
      const bucket = await okCall('POST', '/v1/buckets', { bucket_name: 'boom', bucket_schema: { properties: { n: { type: 'integer' } } } });
      const boom = await okCall('POST', '/v1/collections', {
        collection_name: 'boom',
        source: { type: 'bucket', bucket_ids: [bucket.bucket_id] },
        feature_extractor: { feature_extractor_name: 'boom_extractor', version: 'v1' },
      });
      const objectIds = await createObjects(bucket.bucket_id, [{ metadata: { n: 1 } }, { metadata: { n: 2 } }]);
      const batchId = await submit(bucket.bucket_id, objectIds);
      await drain(engine, t.db);
      const units = await unitsOf(batchId);
      for (const objectId of objectIds) {
        const u = units.get(`${boom.collection_id}/${objectId}`)!;
        expect(u).toMatchObject({ status: 'failed', attempts: 1 });
        expect(u.last_error).toEqual({
          error_type: 'runtime',
          transient: false,
          code: 'extractor_error',
          message: `cannot read property of undefined while handling {"object_id":"${objectId}"}`,
          http_status: null,
          retry_after_ms: null,
          tier_num: 0,
          collection_id: boom.collection_id,
          extractor: 'boom_extractor_v1',
          attempt: 1,
          timestamp: expect.any(String),
        });
      }
      const batch = await okCall('GET', `/v1/buckets/${bucket.bucket_id}/batches/${batchId}`);
      expect(batch.status).toBe('FAILED');
      expect(batch.error_summary).toEqual({ runtime: 2 });
      expect(batch.tier_tasks[0]).toMatchObject({ status: 'FAILED', units_failed: 2, units_completed: 0 });
      const [detail] = batch.tier_tasks[0].errors as ErrorDetail[];
      expect(detail).toMatchObject({ error_type: 'runtime', affected_count: 2, component: 'boom_extractor_v1', metadata: { code: 'extractor_error', transient: false } });
      expect([...detail!.affected_document_ids].sort()).toEqual([...objectIds].sort());
      expect(detail!.message).toMatch(/^cannot read property of undefined while handling \{"object_id":"obj_/);
      expect(detail!.recovery_suggestion).toMatch(/fix the extractor/);
    }, 60_000);
  });
}
