import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, expectEnvelope, type TestContext } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const SCHEMA = {
  properties: {
    title: { type: 'string' },
    genre: { type: 'string' },
    n: { type: 'integer' },
    price: { type: 'number' },
    tags: { type: 'array', items: { type: 'string' } },
    published: { type: 'boolean' },
    info: { type: 'object', properties: { author: { type: 'string' } } },
    body: { type: 'text' },
    cover: { type: 'image' },
  },
};

/** Twelve objects: metadata varied enough for every operator to select a different subset. */
const SEED = [
  { title: 'Alpha', genre: 'Rock', n: 1, price: 9.5, tags: ['old', 'live'], published: true, info: { author: 'Ann' } },
  { title: 'Beta', genre: 'rock', n: 2, price: 12, tags: ['new'], published: false },
  { title: 'Gamma', genre: 'Jazz', n: 3, price: 30, tags: [], published: true, info: { author: 'Bob' } },
  { title: 'Delta', genre: 'Pop', n: 10, price: 5, tags: ['live'] },
  { title: 'Epsilon', genre: 'Jazz', n: 20, tags: ['new', 'live'], published: true },
  { title: 'Zeta 50%_off', genre: 'Pop', n: 7, price: 0 },
  { title: 'Eta', n: 8, price: 100, published: false },
  { title: 'Theta', genre: 'Classical', n: 9, price: 45.25, tags: ['old'] },
  { title: 'Iota', genre: 'Rock', n: 11, price: 15, published: true, info: { author: 'ann' } },
  { title: 'Kappa', genre: null, n: 12, price: 1 },
  { title: 'Lambda', genre: 'Jazz', n: 13, price: 2, tags: ['live'] },
  { title: 'Mu', genre: 'Pop', n: 14, price: 3, published: false },
];

interface Listed {
  object_id: string;
  bucket_id: string;
  key_prefix?: string | null;
  metadata?: Record<string, unknown>;
  blobs?: { property: string }[];
  status?: string;
  created_at?: string;
}

interface ListAnswer {
  results: Listed[];
  pagination: {
    total: number | null;
    page: number | null;
    page_size: number | null;
    total_pages: number | null;
    next_page: string | null;
    previous_page: string | null;
    next_cursor: string | null;
  };
  stats: { total_objects: number; total_blobs: number; avg_blobs_per_object: number; objects_by_status: Record<string, number> } | null;
}

for (const backend of BACKENDS) {
  describe(`object lists (${backend.name})`, () => {
    let t: TestContext;
    const NS = 'obj_list_tests';
    /** Object id by title, in creation order. */
    const ids: Record<string, string> = {};
    const order: string[] = [];

    const list = (body: unknown, query = '', bucket = 'catalog') =>
      t.call({ method: 'POST', url: `/v1/buckets/${bucket}/objects/list${query}`, payload: body as Record<string, unknown>, headers: { 'x-namespace': NS } });
    const listOk = async (body: unknown, query = ''): Promise<ListAnswer> => {
      const res = await list(body, query);
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };
    /** Titles matched by a filter (all pages), sorted by n so that expectations read simply. */
    const titles = async (filters: unknown, extra: Record<string, unknown> = {}): Promise<string[]> => {
      const answer = await listOk({ filters, ...extra, sort: { field: 'metadata.n', direction: 'asc' } }, '?limit=100');
      return answer.results.map((r) => r.metadata!.title as string);
    };

    beforeAll(async () => {
      t = await createTestContext(backend);
      const headers = { 'x-namespace': NS };
      const ns = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: { namespace_name: NS, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
      });
      expect(ns.statusCode, ns.body).toBe(200);
      for (const name of ['catalog', 'empty']) {
        const b = await t.call({ method: 'POST', url: '/v1/buckets', headers, payload: { bucket_name: name, bucket_schema: SCHEMA } });
        expect(b.statusCode, b.body).toBe(200);
      }
      // One by one, so that creation order (the default sort) is known.
      for (const [i, metadata] of SEED.entries()) {
        const blobs = i % 3 === 0 ? [{ property: 'body', type: 'text', data: `text of ${metadata.title}` }] : [];
        if (i === 0) blobs.push({ property: 'cover', type: 'image', data: 'https://example.com/cover.png' });
        const res = await t.call({
          method: 'POST',
          url: '/v1/buckets/catalog/objects',
          headers,
          payload: { key_prefix: i < 4 ? `/music/${metadata.title.toLowerCase()}` : `/other/${i}`, metadata, blobs },
        });
        expect(res.statusCode, res.body).toBe(200);
        ids[metadata.title] = res.json().object_id;
        order.push(metadata.title);
      }
      // A status other than DRAFT, as the processing engine will set it; creation times one second apart,
      // so that the default order (created_at, then id) is the creation order whatever the clock did.
      await t.db.query(`UPDATE objects SET status = 'COMPLETED' WHERE id = ANY($1::text[])`, [[ids.Alpha, ids.Beta]]);
      await t.db.query(
        `UPDATE objects o SET created_at = '2024-01-01T00:00:00Z'::timestamptz + (x.i * interval '1 second'), updated_at = now()
         FROM unnest($1::text[]) WITH ORDINALITY AS x(id, i) WHERE o.id = x.id`,
        [order.map((title) => ids[title])],
      );
    });
    afterAll(() => t.close());

    it('lists every object in creation order with blobs, pagination and stats', async () => {
      const answer = await listOk({});
      expect(answer.results.map((r) => r.metadata!.title)).toEqual(order);
      expect(answer.results[0]!.blobs!.map((b) => b.property)).toEqual(['body', 'cover']);
      expect(answer.results[1]!.blobs).toEqual([]);
      expect(answer.pagination).toEqual({
        total: 12,
        page: 1,
        page_size: 100,
        total_pages: 1,
        next_page: null,
        previous_page: null,
        next_cursor: null,
      });
      expect(answer.stats).toEqual({
        total_objects: 12,
        total_blobs: 5,
        avg_blobs_per_object: 5 / 12,
        objects_by_status: { DRAFT: 10, COMPLETED: 2 },
      });
      // No body at all works as generated SDKs send it.
      const bare = await t.call({ method: 'POST', url: '/v1/buckets/catalog/objects/list', headers: { 'x-namespace': NS, 'content-type': 'application/json' } });
      expect(bare.json().results).toHaveLength(12);
    });

    it('answers an empty list for an empty bucket and 404 for an unknown one', async () => {
      const res = await list({}, '', 'empty');
      expect(res.json()).toMatchObject({ results: [], stats: { total_objects: 0, total_blobs: 0, avg_blobs_per_object: 0, objects_by_status: {} } });
      expectEnvelope(await list({}, '', 'nope'), 404, 'NotFoundError');
    });

    it('filters metadata with shorthand equality (case-insensitive by default) and Mongo operators', async () => {
      expect(await titles({ 'metadata.genre': 'rock' })).toEqual(['Alpha', 'Beta', 'Iota']);
      expect(await titles({ 'metadata.genre': 'Rock', case_sensitive: true })).toEqual(['Alpha', 'Iota']);
      expect(await titles({ 'metadata.n': { $gt: 10, $lte: 13 } })).toEqual(['Iota', 'Kappa', 'Lambda']);
      expect(await titles({ 'metadata.genre': { $in: ['jazz', 'classical'] } })).toEqual(['Gamma', 'Theta', 'Lambda', 'Epsilon']);
      expect(await titles({ 'metadata.genre': ['Pop'] })).toEqual(['Zeta 50%_off', 'Delta', 'Mu']);
      expect(await titles({ 'metadata.genre': { $nin: ['rock', 'jazz', 'pop'] } })).toEqual(['Eta', 'Theta', 'Kappa']);
      expect(await titles({ 'metadata.published': true })).toEqual(['Alpha', 'Gamma', 'Iota', 'Epsilon']);
      expect(await titles({ 'metadata.genre': null })).toEqual(['Eta', 'Kappa']);
      expect(await titles({ 'metadata.info.author': 'ANN' })).toEqual(['Alpha', 'Iota']);
      expect(await titles({ 'metadata.title': { $regex: '^[A-E]' } })).toEqual(['Alpha', 'Beta', 'Eta', 'Delta', 'Epsilon']);
      expect(await titles({ 'metadata.published': { $exists: false } })).toEqual(['Zeta 50%_off', 'Theta', 'Delta', 'Kappa', 'Lambda']);
    });

    it('filters with FilterCondition operators and AND / OR / NOT', async () => {
      const cond = (field: string, operator: string, value: unknown) => ({ AND: [{ field, operator, value }] });
      expect(await titles(cond('metadata.price', 'gte', 30))).toEqual(['Gamma', 'Eta', 'Theta']);
      expect(await titles(cond('metadata.price', 'lt', 3))).toEqual(['Zeta 50%_off', 'Kappa', 'Lambda']);
      expect(await titles(cond('metadata.tags', 'contains', 'live'))).toEqual(['Alpha', 'Delta', 'Lambda', 'Epsilon']);
      expect(await titles(cond('metadata.title', 'contains', '50%_'))).toEqual(['Zeta 50%_off']);
      expect(await titles(cond('metadata.title', 'starts_with', 'e'))).toEqual(['Eta', 'Epsilon']);
      expect(await titles(cond('metadata.title', 'ends_with', 'TA'))).toEqual(['Beta', 'Eta', 'Theta', 'Delta', 'Iota']);
      expect(await titles(cond('metadata.genre', 'ne', 'jazz'))).toEqual(['Alpha', 'Beta', 'Zeta 50%_off', 'Eta', 'Theta', 'Delta', 'Iota', 'Kappa', 'Mu']);
      expect(await titles(cond('metadata.info', 'is_null', false))).toEqual(['Alpha', 'Gamma', 'Iota']);
      expect(await titles(cond('key_prefix', 'starts_with', '/music/'))).toEqual(['Alpha', 'Beta', 'Gamma', 'Delta']);
      expect(await titles(cond('status', 'eq', 'COMPLETED'))).toEqual(['Alpha', 'Beta']);
      expect(await titles(cond('object_id', 'in', [ids.Mu, ids.Eta]))).toEqual(['Eta', 'Mu']);
      expect(
        await titles({
          OR: [
            { AND: [{ field: 'metadata.genre', operator: 'eq', value: 'pop' }, { field: 'metadata.n', operator: 'gt', value: 10 }] },
            { field: 'metadata.title', operator: 'eq', value: 'Alpha' },
          ],
        }),
      ).toEqual(['Alpha', 'Mu']);
      expect(
        await titles({
          'metadata.genre': 'jazz',
          NOT: [{ field: 'metadata.n', operator: 'lt', value: 5 }, { field: 'metadata.tags', operator: 'contains', value: 'new' }],
        }),
      ).toEqual(['Lambda']);
    });

    it('filters on timestamps', async () => {
      const all = await listOk({}, '?limit=100');
      const sixth = all.results[5]!.created_at!;
      const later = await listOk({ filters: { AND: [{ field: 'created_at', operator: 'gt', value: sixth }] } }, '?limit=100');
      expect(later.results.map((r) => r.metadata!.title)).toEqual(order.slice(6));
      const exact = await listOk({ filters: { created_at: sixth } });
      expect(exact.results.map((r) => r.metadata!.title)).toEqual([order[5]]);
      const none = await listOk({ filters: { updated_at: { $lt: '2000-01-01T00:00:00Z' } } });
      expect(none.results).toEqual([]);
    });

    it('refuses unknown fields (422), bad operators and values (400/422), never a 500', async () => {
      const unknown = expectEnvelope(await list({ filters: { colour: 'red' } }), 422, 'ValidationError');
      expect(unknown.message).toContain('colour');
      expectEnvelope(await list({ filters: { AND: [{ field: 'metadata.n', operator: 'near', value: 1 }] } }), 422, 'ValidationError');
      expectEnvelope(await list({ filters: { 'metadata.title': { $regex: '([' } } }), 400, 'BadRequestError');
      expectEnvelope(await list({ filters: { created_at: { $gt: 5 } } }), 400, 'BadRequestError');
      expectEnvelope(await list({ filters: { created_at: 'yesterday-ish' } }), 400, 'BadRequestError');
      expectEnvelope(await list({ filters: { "metadata.a'b": 1 } }), 422, 'ValidationError');
      expectEnvelope(await list({ sort: { field: 'colour' } }), 422, 'ValidationError');
    });

    it('searches id, key_prefix and metadata text', async () => {
      // Quoted, so that no random base36 id can match.
      const byMeta = await listOk({ search: '"ann"' });
      expect(byMeta.results.map((r) => r.metadata!.title)).toEqual(['Alpha', 'Iota']);
      const byPrefix = await listOk({ search: '/music/gam' });
      expect(byPrefix.results.map((r) => r.metadata!.title)).toEqual(['Gamma']);
      const byId = await listOk({ search: ids.Theta!.slice(4) });
      expect(byId.results.map((r) => r.metadata!.title)).toEqual(['Theta']);
      expect((await listOk({ search: '%' })).results.map((r) => r.metadata!.title)).toEqual(['Zeta 50%_off']);
    });

    it('sorts by metadata paths and columns, both directions', async () => {
      const byN = await listOk({ sort: { field: 'metadata.n', direction: 'desc' } });
      expect(byN.results.map((r) => r.metadata!.n)).toEqual([...SEED.map((s) => s.n)].sort((a, b) => b - a));
      const byPrice = await listOk({ sort: { field: 'metadata.price' } });
      const prices = byPrice.results.map((r) => r.metadata!.price);
      // Objects without a price come last.
      expect(prices).toEqual([0, 1, 2, 3, 5, 9.5, 12, 15, 30, 45.25, 100, undefined]);
      const byPrefix = await listOk({ sort: { field: 'key_prefix', direction: 'desc' }, filters: { key_prefix: { $regex: '^/music' } } });
      expect(byPrefix.results.map((r) => r.key_prefix)).toEqual(['/music/gamma', '/music/delta', '/music/beta', '/music/alpha']);
      const newest = await listOk({ sort: { field: 'created_at', direction: 'desc' } }, '?limit=3');
      expect(newest.results.map((r) => r.metadata!.title)).toEqual(order.slice(-3).reverse());
    });

    it('walks every page through next_cursor, each object once, in order', async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = `?limit=5${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const page = await listOk({ sort: { field: 'metadata.n', direction: 'asc' } }, query);
        expect(page.pagination.total).toBe(12);
        expect(page.pagination.page).toBe(pages + 1);
        seen.push(...page.results.map((r) => r.metadata!.title as string));
        cursor = page.pagination.next_cursor;
        pages++;
      } while (cursor && pages < 10);
      expect(pages).toBe(3);
      expect(seen).toEqual([...SEED].sort((a, b) => a.n - b.n).map((s) => s.title));
      // Offsets page the same way, and a cursor it did not issue is refused.
      const second = await listOk({ sort: { field: 'metadata.n' } }, '?limit=5&offset=5');
      expect(second.results.map((r) => r.metadata!.title)).toEqual(seen.slice(5, 10));
      expect(second.pagination.previous_page).toBe('1');
      expectEnvelope(await list({}, '?cursor=garbage'), 400, 'BadRequestError');
      expectEnvelope(await list({}, '?limit=0'), 422, 'ValidationError');
    });

    it('projects the selected fields, always with object_id and bucket_id', async () => {
      const answer = await listOk({ select: ['metadata.title', 'status'], filters: { 'metadata.title': 'alpha' } });
      expect(answer.results).toEqual([{ object_id: ids.Alpha, bucket_id: expect.stringMatching(/^bkt_/), status: 'COMPLETED', metadata: { title: 'Alpha' } }]);
      const nested = await listOk({ select: ['metadata.info.author', 'metadata', 'blobs.property'], filters: { 'metadata.title': 'alpha' } });
      expect(nested.results[0]!.metadata).toEqual(expect.objectContaining({ title: 'Alpha', n: 1 }));
      expect(nested.results[0]!.blobs).toHaveLength(2);
      const ghosts = await listOk({ select: ['file_extension', 'metadata.nope'], filters: { 'metadata.title': 'beta' } });
      expect(ghosts.results).toEqual([{ object_id: ids.Beta, bucket_id: expect.any(String) }]);
    });

    it('computes stats over the whole match, not the page', async () => {
      const answer = await listOk({ filters: { 'metadata.genre': 'rock' } }, '?limit=1');
      expect(answer.results).toHaveLength(1);
      expect(answer.pagination.total).toBe(3);
      expect(answer.pagination.next_cursor).not.toBeNull();
      // Alpha (2 blobs, COMPLETED), Beta (0, COMPLETED), Iota (0, DRAFT).
      expect(answer.stats).toEqual({ total_objects: 3, total_blobs: 2, avg_blobs_per_object: 2 / 3, objects_by_status: { COMPLETED: 2, DRAFT: 1 } });
    });

    it('answers only the caller namespace', async () => {
      const res = await t.call({ method: 'POST', url: '/v1/buckets/catalog/objects/list', payload: {}, headers: { 'x-namespace': 'nowhere' } });
      expectEnvelope(res, 404, 'NotFoundError');
    });
  });
}
