import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentId, type DocumentLineage } from '../../src/documents/document-shape.js';
import { createTestContext, expectEnvelope, type TestContext, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const SCHEMA = {
  properties: {
    content: { type: 'text' },
    title: { type: 'string' },
    n: { type: 'integer' },
    info: { type: 'object', properties: { author: { type: 'string' } } },
  },
};

/** A document as the engine writes it: user fields, vectors and lineage, at a given creation time. */
interface Seed {
  id: string;
  collection_id: string;
  source_type: 'object' | 'document';
  source_id: string;
  position: number;
  root_object_id: string;
  fields: Record<string, unknown>;
  vectors: Record<string, unknown> | null;
  lineage: DocumentLineage;
  created_at: string;
}

interface Doc {
  document_id: string;
  collection_id: string;
  document_blobs?: unknown[];
  _internal?: {
    internal_id: string;
    namespace_id: string;
    document_id: string;
    collection_id: string;
    created_at: string;
    updated_at: string;
    lineage: DocumentLineage;
    metadata: Record<string, unknown>;
  };
  [field: string]: unknown;
}

interface ListAnswer {
  results: Doc[];
  groups: null;
  pagination: {
    total: number | null;
    page: number | null;
    page_size: number | null;
    total_pages: number | null;
    next_page: string | null;
    previous_page: string | null;
    next_cursor: string | null;
  };
  stats: { total_documents: number; avg_blobs_per_document: number } | null;
  group_by_field: null;
}

const BASE = Date.parse('2024-03-01T00:00:00Z');

for (const backend of BACKENDS) {
  describe(`documents (${backend.name})`, () => {
    let t: TestContext;
    const NS = 'doc_tests';
    const OTHER_NS = 'doc_tests_other';
    let orgId: string;
    let nsId: string;
    let bucketId: string;
    /** text_extractor collections (vector field `embedding`): a small one, the 250-document one. */
    let chunks: string;
    let bulk: string;
    /** A passthrough collection reading `chunks`: documents with a document as parent. */
    let copies: string;
    let otherChunks: string;
    /** The six documents of `chunks`, in creation order. */
    const small: Seed[] = [];
    const bulkSeeds: Seed[] = [];
    let copyDoc: Seed;

    const req = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown, opts: { namespace?: string; key?: string } = {}) =>
      t.call({
        method,
        url,
        key: opts.key,
        headers: { 'x-namespace': opts.namespace ?? NS },
        ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      });
    const ok = async <T = Doc>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown): Promise<T> => {
      const res = await req(method, url, payload);
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as T;
    };
    const list = (body: unknown, query = '', collection = 'chunks') => ok<ListAnswer>('POST', `/v1/collections/${collection}/documents/list${query}`, body);
    const ids = (answer: ListAnswer) => answer.results.map((d) => d.document_id);

    const lineageOf = (collectionId: string, id: string, objectId: string, parent?: Seed): DocumentLineage => ({
      root_object_id: objectId,
      root_bucket_id: bucketId,
      source_type: parent ? 'collection' : 'bucket',
      source_object_id: parent ? null : objectId,
      source_document_id: parent ? parent.id : null,
      source_collection_id: parent ? parent.collection_id : null,
      path: parent ? `${bucketId}/${parent.collection_id}/${collectionId}` : `${bucketId}/${collectionId}`,
      chain: [
        ...(parent ? parent.lineage.chain : []),
        {
          collection_id: collectionId,
          feature_extractor_id: parent ? 'passthrough_extractor_v1' : 'text_extractor_v1',
          document_id: id,
          timestamp: '2024-03-01T00:00:00.000Z',
        },
      ],
    });

    const seed = (collectionId: string, objectId: string, position: number, fields: Record<string, unknown>, createdAt: number, parent?: Seed): Seed => {
      const sourceId = parent ? parent.id : objectId;
      const id = documentId(collectionId, sourceId, position);
      return {
        id,
        collection_id: collectionId,
        source_type: parent ? 'document' : 'object',
        source_id: sourceId,
        position,
        root_object_id: objectId,
        fields,
        vectors: parent ? null : { embedding: [position, 0.5, -1] },
        lineage: lineageOf(collectionId, id, objectId, parent),
        created_at: new Date(createdAt).toISOString(),
      };
    };

    /** Writes documents as the engine would: one multi-row statement. */
    const insert = async (seeds: Seed[]) => {
      await t.db.query(
        `INSERT INTO documents (id, organization_id, namespace_id, collection_id, source_type, source_id, position, root_object_id,
           root_bucket_id, batch_id, fields, vectors, lineage, created_at, updated_at)
         SELECT r.id, $2, $3, r.collection_id, r.source_type, r.source_id, r.position, r.root_object_id, $4, 'btch_test',
                r.fields, r.vectors, r.lineage, r.created_at, r.created_at
         FROM jsonb_to_recordset($1::jsonb) AS r(id text, collection_id text, source_type text, source_id text, position int,
              root_object_id text, fields jsonb, vectors jsonb, lineage jsonb, created_at timestamptz)`,
        [JSON.stringify(seeds), orgId, nsId, bucketId],
      );
    };

    beforeAll(async () => {
      t = await createTestContext(backend);
      orgId = t.orgId;
      for (const name of [NS, OTHER_NS]) {
        const ns = await t.call({ method: 'POST', url: '/v1/namespaces', payload: { namespace_name: name, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] } });
        expect(ns.statusCode, ns.body).toBe(200);
        if (name === NS) nsId = ns.json().namespace_id;
        const b = await req('POST', '/v1/buckets', { bucket_name: 'docs', bucket_schema: SCHEMA }, { namespace: name });
        expect(b.statusCode, b.body).toBe(200);
        if (name === NS) bucketId = b.json().bucket_id;
      }
      const textCollection = (name: string) => ({
        collection_name: name,
        source: { type: 'bucket', bucket_ids: ['docs'] },
        feature_extractor: {
          feature_extractor_name: 'text_extractor',
          version: 'v1',
          input_mappings: { text: 'content' },
          field_passthrough: [{ source_path: 'title' }, { source_path: 'n' }, { source_path: 'info' }],
        },
      });
      const made = async (body: unknown, namespace = NS): Promise<string> => {
        const res = await req('POST', '/v1/collections', body, { namespace });
        expect(res.statusCode, res.body).toBe(200);
        const c = res.json() as { collection_id: string; output_schema: { properties: Record<string, unknown> } };
        return c.collection_id;
      };
      chunks = await made(textCollection('chunks'));
      bulk = await made(textCollection('bulk'));
      otherChunks = await made(textCollection('chunks'), OTHER_NS);
      copies = await made({
        collection_name: 'copies',
        source: { type: 'collection', collection_id: 'chunks' },
        feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
      });

      const fields = [
        { title: 'Alpha', n: 1, text: 'the quick brown fox', chunk_index: 0, info: { author: 'Ann' } },
        { title: 'Beta', n: 2, text: 'jumps over', chunk_index: 1, info: { author: 'Bob' } },
        { title: 'Gamma', n: 30, text: 'the lazy dog', chunk_index: 0, flag: true },
        { title: 'Delta', n: 4, text: 'Needle in a haystack', chunk_index: 1, tags: ['x', 'y'] },
        { title: 'Epsilon', n: 5, text: 'nothing here', chunk_index: 0, info: { author: 'ann' } },
        { title: 'Zeta', n: null, text: 'last one', chunk_index: 0 },
      ];
      const objects = ['obj_a', 'obj_a', 'obj_b', 'obj_b', 'obj_c', 'obj_d'];
      fields.forEach((f, i) => {
        small.push(seed(chunks, objects[i]!, f.chunk_index, f, BASE + i * 1000));
      });
      copyDoc = seed(copies, 'obj_a', 0, { title: 'Alpha copy', text: 'the quick brown fox' }, BASE + 10_000, small[0]);
      // 250 documents, ten per creation instant: the id decides the order inside each instant.
      for (let i = 0; i < 250; i++) {
        bulkSeeds.push(seed(bulk, `obj_bulk_${i % 25}`, i, { title: `bulk ${i}`, n: i % 7, text: `bulk text ${i}` }, BASE + Math.floor(i / 10) * 1000));
      }
      await insert([...small, copyDoc, ...bulkSeeds]);
    });
    afterAll(() => t.close());

    describe('get', () => {
      it('answers a document with its fields flat, no vectors, and _internal, by collection name or id', async () => {
        const d = small[0]!;
        const byName = await ok('GET', `/v1/collections/chunks/documents/${d.id}`);
        expect(byName).toEqual({
          document_id: d.id,
          collection_id: chunks,
          title: 'Alpha',
          n: 1,
          text: 'the quick brown fox',
          chunk_index: 0,
          info: { author: 'Ann' },
          document_blobs: [],
          _internal: {
            internal_id: orgId,
            namespace_id: nsId,
            document_id: d.id,
            collection_id: chunks,
            created_at: d.created_at,
            updated_at: d.created_at,
            lineage: d.lineage,
            metadata: { batch_id: 'btch_test', source_type: 'object', source_id: 'obj_a', position: 0 },
          },
        });
        const byId = await ok('GET', `/v1/collections/${chunks}/documents/${d.id}?return_presigned_urls=true`);
        expect(byId).toEqual(byName);
      });

      it('includes vectors only with return_vectors', async () => {
        const d = small[1]!;
        const withVectors = await ok('GET', `/v1/collections/chunks/documents/${d.id}?return_vectors=true`);
        expect(withVectors.embedding).toEqual([1, 0.5, -1]);
        expect(withVectors.title).toBe('Beta');
        const without = await ok('GET', `/v1/collections/chunks/documents/${d.id}?return_vectors=false`);
        expect(without).not.toHaveProperty('embedding');
      });

      it('answers 404 naming an unknown document, a document of another collection, or another namespace', async () => {
        let err = expectEnvelope(await req('GET', '/v1/collections/chunks/documents/doc_nope'), 404, 'NotFoundError');
        expect(err.message).toContain('"doc_nope"');
        // The copy lives in `copies`, not in `chunks`.
        err = expectEnvelope(await req('GET', `/v1/collections/chunks/documents/${copyDoc.id}`), 404, 'NotFoundError');
        expect(err.message).toContain(copyDoc.id);
        expect((await req('GET', `/v1/collections/copies/documents/${copyDoc.id}`)).statusCode).toBe(200);
        // Another namespace: its own `chunks` does not hold the document, and this namespace's id is unknown there.
        err = expectEnvelope(await req('GET', `/v1/collections/chunks/documents/${small[0]!.id}`, undefined, { namespace: OTHER_NS }), 404, 'NotFoundError');
        expect(err.message).toContain(small[0]!.id);
        err = expectEnvelope(await req('GET', `/v1/collections/${chunks}/documents/${small[0]!.id}`, undefined, { namespace: OTHER_NS }), 404, 'NotFoundError');
        expect(err.message).toContain(chunks);
        err = expectEnvelope(await req('GET', `/v1/collections/nope/documents/${small[0]!.id}`), 404, 'NotFoundError');
        expect(err.message).toContain('"nope"');
        // The other namespace's collection is reachable by id only from there.
        expect((await req('GET', `/v1/collections/${otherChunks}/documents/${small[0]!.id}`)).statusCode).toBe(404);
      });

      it('refuses a bad return_vectors value, naming it', async () => {
        const err = expectEnvelope(await req('GET', `/v1/collections/chunks/documents/${small[0]!.id}?return_vectors=maybe`), 422, 'ValidationError');
        expect(validationIssues(err)[0]!.location).toEqual(['query', 'return_vectors']);
      });
    });

    describe('patch, put, delete', () => {
      it('PATCH merges fields, sends vector fields to the vectors, and bumps updated_at', async () => {
        const d = bulkSeeds[200]!;
        const patched = await ok('PATCH', `/v1/collections/bulk/documents/${d.id}`, {
          title: 'patched',
          extra: { deep: [1, 2] },
          embedding: [9, 9, 9],
        });
        expect(patched).toMatchObject({ document_id: d.id, title: 'patched', n: d.fields.n, text: d.fields.text, extra: { deep: [1, 2] } });
        expect(patched).not.toHaveProperty('embedding');
        expect(Date.parse(patched._internal!.updated_at)).toBeGreaterThan(Date.parse(d.created_at));
        expect(patched._internal!.created_at).toBe(d.created_at);
        const read = await ok('GET', `/v1/collections/bulk/documents/${d.id}?return_vectors=true`);
        expect(read.embedding).toEqual([9, 9, 9]);
        expect(read.title).toBe('patched');
        // The vector went to the vectors column, not to the fields.
        const [row] = await t.db.query<{ fields: Record<string, unknown>; vectors: Record<string, unknown> }>(
          'SELECT fields, vectors FROM documents WHERE id = $1',
          [d.id],
        );
        expect(row!.fields).not.toHaveProperty('embedding');
        expect(row!.vectors).toEqual({ embedding: [9, 9, 9] });
        // A vector sent as null is removed.
        await ok('PATCH', `/v1/collections/bulk/documents/${d.id}`, { embedding: null });
        expect(await ok('GET', `/v1/collections/bulk/documents/${d.id}?return_vectors=true`)).not.toHaveProperty('embedding');
      });

      it('refuses system fields and malformed vectors, naming every one', async () => {
        const url = `/v1/collections/bulk/documents/${bulkSeeds[201]!.id}`;
        for (const method of ['PATCH', 'PUT'] as const) {
          const err = expectEnvelope(
            await req(method, url, { title: 'x', document_id: 'doc_other', collection_id: 'col_x', _internal: {}, embedding: ['a'] }),
            422,
            'ValidationError',
          );
          const issues = validationIssues(err);
          expect(issues.map((i) => i.location)).toEqual([
            ['body', 'document_id'],
            ['body', 'collection_id'],
            ['body', '_internal'],
            ['body', 'embedding'],
          ]);
          expect(issues[0]!.message).toContain('"doc_other"');
          expect(issues[3]!.message).toContain('["a"]');
        }
        // Nothing was written.
        expect((await ok('GET', url)).title).toBe('bulk 201');
      });

      it('PUT replaces the user fields and the vectors it names, keeping the others', async () => {
        const d = bulkSeeds[202]!;
        const put = await ok('PUT', `/v1/collections/bulk/documents/${d.id}`, { title: 'replaced', fresh: true });
        expect(put).toMatchObject({ document_id: d.id, collection_id: bulk, title: 'replaced', fresh: true });
        expect(put).not.toHaveProperty('n');
        expect(put).not.toHaveProperty('text');
        let read = await ok('GET', `/v1/collections/bulk/documents/${d.id}?return_vectors=true`);
        expect(read.embedding).toEqual([202, 0.5, -1]);
        await ok('PUT', `/v1/collections/bulk/documents/${d.id}`, { title: 'again', embedding: [1, 2, 3] });
        read = await ok('GET', `/v1/collections/bulk/documents/${d.id}?return_vectors=true`);
        expect(read).toMatchObject({ title: 'again', embedding: [1, 2, 3] });
        expect(read).not.toHaveProperty('fresh');
      });

      it('answers 404 for writes to unknown documents or through another collection', async () => {
        expectEnvelope(await req('PATCH', '/v1/collections/bulk/documents/doc_nope', { a: 1 }), 404, 'NotFoundError');
        expectEnvelope(await req('PUT', `/v1/collections/chunks/documents/${bulkSeeds[0]!.id}`, { a: 1 }), 404, 'NotFoundError');
        expectEnvelope(await req('DELETE', `/v1/collections/chunks/documents/${bulkSeeds[0]!.id}`), 404, 'NotFoundError');
      });

      it('needs write to change and delete to remove', async () => {
        const reader = await t.key(['read']);
        const writer = await t.key(['write']);
        const url = `/v1/collections/bulk/documents/${bulkSeeds[203]!.id}`;
        expectEnvelope(await req('PATCH', url, { a: 1 }, { key: reader }), 403, 'ForbiddenError');
        expectEnvelope(await req('PUT', url, { a: 1 }, { key: reader }), 403, 'ForbiddenError');
        expectEnvelope(await req('DELETE', url, undefined, { key: writer }), 403, 'ForbiddenError');
        expect((await req('PATCH', url, { a: 1 }, { key: writer })).statusCode).toBe(200);
        expect((await req('GET', url, undefined, { key: reader })).statusCode).toBe(200);
        expect((await req('POST', '/v1/collections/bulk/documents/list', {}, { key: reader })).statusCode).toBe(200);
      });

      it('DELETE removes the document and answers like other deletes', async () => {
        const d = bulkSeeds[249]!;
        const res = await ok<Record<string, unknown>>('DELETE', `/v1/collections/bulk/documents/${d.id}`);
        expect(res).toEqual({ success: true, message: `document ${d.id} deleted`, document_id: d.id, collection_id: bulk });
        expectEnvelope(await req('GET', `/v1/collections/bulk/documents/${d.id}`), 404, 'NotFoundError');
        const again = expectEnvelope(await req('DELETE', `/v1/collections/bulk/documents/${d.id}`), 404, 'NotFoundError');
        expect(again.message).toContain(d.id);
      });

      it('offers no create, batch, bulk or aggregate routes', async () => {
        expect((await req('POST', '/v1/collections/chunks/documents', { title: 'x' })).statusCode).toBe(404);
        expect((await req('POST', '/v1/collections/chunks/documents/aggregate', {})).statusCode).toBe(404);
        expect((await req('POST', '/v1/collections/chunks/documents/batch', {})).statusCode).toBe(404);
        // Path shapes shared with a document id: answered as an unknown document.
        expectEnvelope(await req('PATCH', '/v1/collections/chunks/documents/bulk', { a: 1 }), 404, 'NotFoundError');
        expectEnvelope(await req('DELETE', '/v1/collections/chunks/documents/batch'), 404, 'NotFoundError');
        const spec = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
        expect(Object.keys(spec.paths).filter((p) => p.includes('/documents')).sort()).toEqual([
          '/v1/collections/{collection_identifier}/documents/list',
          '/v1/collections/{collection_identifier}/documents/{document_id}',
          '/v1/collections/{collection_id}/documents/{document_id}/lineage',
        ]);
      });
    });

    describe('lineage', () => {
      it('answers the lineage with the ancestors from the chain, root first, and whether they exist', async () => {
        const answer = await ok<Record<string, unknown>>('GET', `/v1/collections/copies/documents/${copyDoc.id}/lineage`);
        expect(answer).toEqual({
          document_id: copyDoc.id,
          collection_id: copies,
          lineage: copyDoc.lineage,
          ancestors: [
            { document_id: small[0]!.id, collection_id: chunks, feature_extractor_id: 'text_extractor_v1', timestamp: '2024-03-01T00:00:00.000Z', exists: true },
          ],
          ancestor_document_ids: [small[0]!.id],
          depth: 1,
        });
        const root = await ok<Record<string, unknown>>('GET', `/v1/collections/${chunks}/documents/${small[0]!.id}/lineage`);
        expect(root).toMatchObject({ document_id: small[0]!.id, ancestors: [], ancestor_document_ids: [], depth: 0 });
        expectEnvelope(await req('GET', `/v1/collections/chunks/documents/${copyDoc.id}/lineage`), 404, 'NotFoundError');
      });
    });

    describe('list', () => {
      it('lists in creation order without vectors; counts only with include_total', async () => {
        const answer = await list({});
        expect(ids(answer)).toEqual(small.map((d) => d.id));
        expect(answer.results[0]).toEqual(await ok('GET', `/v1/collections/chunks/documents/${small[0]!.id}`));
        expect(answer.results.some((d) => 'embedding' in d)).toBe(false);
        expect(answer.pagination).toEqual({
          total: null,
          page: 1,
          page_size: 100,
          total_pages: null,
          next_page: null,
          previous_page: null,
          next_cursor: null,
        });
        expect(answer.stats).toBeNull();
        expect(answer.groups).toBeNull();
        const counted = await list({}, '?include_total=true&limit=4');
        expect(counted.pagination).toMatchObject({ total: 6, page: 1, page_size: 4, total_pages: 2, next_page: '2' });
        expect(counted.stats).toEqual({ total_documents: 6, avg_blobs_per_document: 0, total_groups: null, avg_documents_per_group: null });
        // No body at all, as generated SDKs send it.
        const bare = await t.call({
          method: 'POST',
          url: '/v1/collections/chunks/documents/list',
          headers: { 'x-namespace': NS, 'content-type': 'application/json' },
        });
        expect(bare.json().results).toHaveLength(6);
      });

      it('returns vectors with return_vectors', async () => {
        const answer = await list({ return_vectors: true });
        expect(answer.results.map((d) => d.embedding)).toEqual(small.map((d) => d.vectors!.embedding));
      });

      it('filters on user fields, nested paths, ids, timestamps and lineage paths', async () => {
        const titles = async (filters: unknown, collection = 'chunks') =>
          (await list({ filters }, '', collection)).results.map((d) => d.title);
        expect(await titles({ title: 'gamma' })).toEqual(['Gamma']);
        expect(await titles({ AND: [{ field: 'n', operator: 'gte', value: 4 }] })).toEqual(['Gamma', 'Delta', 'Epsilon']);
        expect(await titles({ 'info.author': 'ann' })).toEqual(['Alpha', 'Epsilon']);
        expect(await titles({ 'info.author': 'ann', case_sensitive: true })).toEqual(['Epsilon']);
        expect(await titles({ tags: { $exists: true } })).toEqual(['Delta']);
        expect(await titles({ n: null })).toEqual(['Zeta']);
        expect(await titles({ document_id: [small[2]!.id, small[5]!.id] })).toEqual(['Gamma', 'Zeta']);
        expect(await titles({ created_at: { $gte: small[4]!.created_at } })).toEqual(['Epsilon', 'Zeta']);
        expect(await titles({ '_internal.lineage.root_object_id': 'obj_b' })).toEqual(['Gamma', 'Delta']);
        expect(await titles({ root_object_id: 'obj_a' })).toEqual(['Alpha', 'Beta']);
        expect(await titles({ source_object_id: { $in: ['obj_c', 'obj_d'] } })).toEqual(['Epsilon', 'Zeta']);
        expect(await titles({ '_internal.lineage.source_object_id': 'obj_c' })).toEqual(['Epsilon']);
        expect(await titles({ OR: [{ field: '_internal.metadata.position', operator: 'eq', value: 1 }, { field: 'title', operator: 'eq', value: 'Zeta' }] })).toEqual([
          'Beta',
          'Delta',
          'Zeta',
        ]);
        expect(await titles({ '_internal.lineage.source_document_id': small[0]!.id }, 'copies')).toEqual(['Alpha copy']);
        expect(await titles({ '_internal.lineage.source_document_id': small[1]!.id }, 'copies')).toEqual([]);
      });

      it('refuses filters it cannot run, naming the problem: 422 unknown field, 400 bad values', async () => {
        const bad = (body: unknown) => req('POST', '/v1/collections/chunks/documents/list', body);
        let err = expectEnvelope(await bad({ filters: { '_internal.nope': 'x' } }), 422, 'ValidationError');
        expect(err.message).toContain('"_internal.nope"');
        err = expectEnvelope(await bad({ filters: { 'bad key!': 1 } }), 422, 'ValidationError');
        expect(err.message).toContain('"bad key!"');
        err = expectEnvelope(await bad({ filters: { title: { $regex: '(' } } }), 400, 'BadRequestError');
        expect(err.message).toContain('regex');
        err = expectEnvelope(await bad({ filters: { created_at: { $gt: 'not-a-date' } } }), 400, 'BadRequestError');
        expect(err.message).toContain('not-a-date');
        err = expectEnvelope(await bad({ sort: { field: '_internal.x' } }), 422, 'ValidationError');
        expect(err.message).toContain('"_internal.x"');
        err = expectEnvelope(await bad({ group_by: 'title' }), 400, 'BadRequestError');
        expect(err.message).toContain('"title"');
        err = expectEnvelope(await req('POST', '/v1/collections/chunks/documents/list?cursor=bogus', {}), 400, 'BadRequestError');
        expect(err.message).toContain('"bogus"');
      });

      it('sorts on a user field (missing values last) and a system field', async () => {
        let answer = await list({ sort: { field: 'n', direction: 'desc' } });
        expect(answer.results.map((d) => d.title)).toEqual(['Gamma', 'Epsilon', 'Delta', 'Beta', 'Alpha', 'Zeta']);
        answer = await list({ sort: { field: 'title', direction: 'asc' } });
        expect(answer.results.map((d) => d.title)).toEqual(['Alpha', 'Beta', 'Delta', 'Epsilon', 'Gamma', 'Zeta']);
        answer = await list({ sort: { field: 'created_at', direction: 'desc' } });
        expect(ids(answer)).toEqual(small.map((d) => d.id).reverse());
      });

      it('searches the id and string values at any depth, not keys or numbers', async () => {
        const titles = async (search: string) => (await list({ search })).results.map((d) => d.title);
        expect(await titles('needle')).toEqual(['Delta']);
        expect(await titles('BOB')).toEqual(['Beta']);
        expect(await titles('y')).toEqual(['Gamma', 'Delta']);
        expect(await titles('author')).toEqual([]);
        expect(await titles('true')).toEqual([]);
        expect(await titles(small[4]!.id)).toEqual(['Epsilon']);
        expect(await titles('100%')).toEqual([]);
      });

      it('keeps only the selected fields, always with the ids', async () => {
        const answer = await list({ select: ['title', 'info.author', '_internal.lineage.root_object_id', 'missing', 'embedding'], return_vectors: true });
        expect(answer.results[0]).toEqual({
          document_id: small[0]!.id,
          collection_id: chunks,
          title: 'Alpha',
          info: { author: 'Ann' },
          _internal: { lineage: { root_object_id: 'obj_a' } },
          embedding: [0, 0.5, -1],
        });
        expect(answer.results[2]).toEqual({
          document_id: small[2]!.id,
          collection_id: chunks,
          title: 'Gamma',
          _internal: { lineage: { root_object_id: 'obj_b' } },
          embedding: [0, 0.5, -1],
        });
        const noVectors = await list({ select: ['title', 'embedding'] });
        expect(noVectors.results[0]).toEqual({ document_id: small[0]!.id, collection_id: chunks, title: 'Alpha' });
      });

      it('walks 250 documents by cursor without skipping or repeating, even when documents go meanwhile', async () => {
        // The seeds still stored (an earlier test deleted one), in (created_at, id) order.
        const stored = new Set((await t.db.query<{ id: string }>('SELECT id FROM documents WHERE collection_id = $1', [bulk])).map((r) => r.id));
        const expected = bulkSeeds
          .filter((d) => stored.has(d.id))
          .sort((a, b) => (a.created_at === b.created_at ? (a.id < b.id ? -1 : 1) : a.created_at < b.created_at ? -1 : 1))
          .map((d) => d.id);
        expect(expected.length).toBeGreaterThan(240);
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        let deleted: string | null = null;
        do {
          const answer: ListAnswer = await list({}, `?limit=37${cursor ? `&cursor=${cursor}` : ''}`, 'bulk');
          seen.push(...ids(answer));
          pages++;
          expect(answer.pagination.page).toBe(pages);
          cursor = answer.pagination.next_cursor;
          if (pages === 1) {
            // A document already handed out goes: the next page still starts right after the last one seen.
            deleted = seen[3]!;
            await ok('DELETE', `/v1/collections/bulk/documents/${deleted}`);
          }
        } while (cursor && pages < 20);
        expect(pages).toBe(Math.ceil(expected.length / 37));
        expect(new Set(seen).size).toBe(seen.length);
        expect(seen).toEqual(expected);
        // The body's cursor works as the query's does.
        const first = await list({}, '?limit=100', 'bulk');
        const second = await list({ cursor: first.pagination.next_cursor }, '?limit=100', 'bulk');
        expect(ids(second)).toEqual(expected.filter((id) => id !== deleted).slice(100, 200));
        expect(second.pagination.previous_page).toBe('1');
      });

      it('pages a sorted list by cursor too, and refuses a default-order cursor for it', async () => {
        const all = await list({ sort: { field: 'n', direction: 'asc' } }, '?limit=1000&include_total=true', 'bulk');
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const answer: ListAnswer = await list({ sort: { field: 'n', direction: 'asc' } }, `?limit=50${cursor ? `&cursor=${cursor}` : ''}`, 'bulk');
          seen.push(...ids(answer));
          cursor = answer.pagination.next_cursor;
        } while (cursor);
        expect(seen).toEqual(ids(all));
        const ns = all.results.map((d) => d.n as number);
        expect(ns).toEqual([...ns].sort((a, b) => a - b));
        const keyset = (await list({}, '?limit=10', 'bulk')).pagination.next_cursor!;
        const err = expectEnvelope(
          await req('POST', `/v1/collections/bulk/documents/list?cursor=${keyset}`, { sort: { field: 'n' } }),
          400,
          'BadRequestError',
        );
        expect(err.message).toContain('"n"');
      });
    });

    describe('collections count their documents', () => {
      it('answers document_count on get and list, and total_documents in list stats', async () => {
        const bulkCount = (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM documents WHERE collection_id = $1', [bulk]))[0]!.n;
        const get = await ok<{ document_count: number }>('GET', '/v1/collections/chunks');
        expect(get.document_count).toBe(6);
        const listed = await ok<{ results: { collection_name: string; document_count: number }[]; stats: { total_documents: number; avg_documents_per_collection: number } }>(
          'POST',
          '/v1/collections/list',
          {},
        );
        const counts = Object.fromEntries(listed.results.map((c) => [c.collection_name, c.document_count]));
        expect(counts).toEqual({ chunks: 6, bulk: bulkCount, copies: 1 });
        expect(listed.stats.total_documents).toBe(7 + bulkCount);
        expect(listed.stats.avg_documents_per_collection).toBeCloseTo((7 + bulkCount) / 3);
        const filtered = await ok<{ results: unknown[]; stats: { total_documents: number } }>('POST', '/v1/collections/list', {
          filters: { collection_name: 'copies' },
        });
        expect(filtered.stats.total_documents).toBe(1);
        const other = await t.call({ method: 'GET', url: '/v1/collections/chunks', headers: { 'x-namespace': OTHER_NS } });
        expect(other.json().document_count).toBe(0);
        const patched = await ok<{ document_count: number }>('PATCH', '/v1/collections/copies', { description: 'copies of chunks' });
        expect(patched.document_count).toBe(1);
      });
    });
  });
}
