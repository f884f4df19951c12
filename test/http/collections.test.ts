import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { insertApiKey, ensureUser } from '../../src/api-keys/service.js';
import { deriveTiers } from '../../src/collections/tiers.js';
import { collectionGraph } from '../../src/collections/service.js';
import type { Db } from '../../src/db/db.js';
import type { Extractor, ExtractorRegistry } from '../../src/extractors/extractor.js';
import { createExtractorRegistry } from '../../src/extractors/registry.js';
import { buildApp } from '../../src/http/app.js';
import { createOrganization } from '../../src/organizations/service.js';
import { expectEnvelope, tempBlobStore, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

/**
 * Small real extractors, built here so that these tests do not depend on the production ones: a chunker
 * with parameters, one required input and a vector output; a copier that declares no inputs.
 */
const chunkParams = z.object({
  chunk_size: z.number().int().min(1).max(10000).default(1000),
  split_by: z.enum(['words', 'characters']).default('words'),
});
const chunker: Extractor<z.infer<typeof chunkParams>> = {
  name: 'chunk_extractor',
  version: 'v1',
  id: 'chunk_extractor_v1',
  description: 'Splits text into chunks of chunk_size words or characters.',
  parameters: chunkParams,
  supportedInputTypes: ['text'],
  inputSchema: { text: { type: 'text', required: true } },
  outputSchema: () => ({
    text: { type: 'text' },
    chunk_index: { type: 'integer' },
    embedding: { type: 'array', items: { type: 'float' }, description: 'Chunk embedding vector' },
  }),
  positionFields: ['chunk_index'],
  async run({ params, input }) {
    const text = String(input.text ?? '');
    const units = params.split_by === 'words' ? text.split(/\s+/).filter(Boolean) : [...text];
    const out = [];
    for (let i = 0; i < units.length; i += params.chunk_size) {
      out.push({ text: units.slice(i, i + params.chunk_size).join(' '), chunk_index: out.length, embedding: [0] });
    }
    return out;
  },
};
const copier: Extractor<Record<string, never>> = {
  name: 'copy_extractor',
  version: 'v1',
  id: 'copy_extractor_v1',
  description: 'Copies its input.',
  parameters: z.object({}).strict(),
  supportedInputTypes: ['text', 'string'],
  inputSchema: {},
  outputSchema: () => ({}),
  positionFields: [],
  async run({ input }) {
    return [input];
  },
};
const registry: ExtractorRegistry = new Map<string, Extractor>([
  [chunker.id, chunker as Extractor],
  [copier.id, copier as Extractor],
]);

const SCHEMA = {
  properties: {
    content: { type: 'text' },
    summary: { type: 'string' },
    sku: { type: 'string', required: true },
    price: { type: 'float' },
    info: { type: 'object', properties: { title: { type: 'string' } } },
  },
};

interface Collection {
  collection_id: string;
  collection_name: string;
  description: string | null;
  input_schema: { properties: Record<string, { type: string }> };
  output_schema: { properties: Record<string, { type: string }> };
  feature_extractor: Record<string, unknown> & { feature_extractor_id: string; parameters: Record<string, unknown> | null };
  source: {
    type: string;
    bucket_ids: string[] | null;
    collection_id: string | null;
    collection_ids: string[] | null;
    inherited_bucket_ids: string[] | null;
  };
  source_bucket_schemas: Record<string, unknown> | null;
  enabled: boolean;
  metadata: Record<string, unknown> | null;
  created_at: string;
  updated_at: string;
  document_count: number | null;
}

const issuesOf = validationIssues;

for (const backend of BACKENDS) {
  describe(`collections (${backend.name})`, () => {
    let db: Db;
    let app: FastifyInstance;
    let removeBlobs: () => void;
    let adminKey: string;
    let readKey: string;
    let bucketId: string;
    let otherBucketId: string;
    const NS = 'col_tests';
    const OTHER_NS = 'col_tests_other';

    const call = (options: InjectOptions & { key?: string }) => {
      const { key, headers, ...rest } = options;
      return app.inject({ ...rest, headers: { authorization: `Bearer ${key ?? adminKey}`, ...headers } });
    };
    const inNs = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, opts: { namespace?: string; key?: string } = {}) =>
      call({
        method,
        url,
        key: opts.key,
        headers: { 'x-namespace': opts.namespace ?? NS },
        ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      });

    const chunkBody = (name: string, extra: Record<string, unknown> = {}, fe: Record<string, unknown> = {}) => ({
      collection_name: name,
      source: { type: 'bucket', bucket_ids: ['docs'] },
      feature_extractor: { feature_extractor_name: 'chunk_extractor', version: 'v1', input_mappings: { text: 'content' }, ...fe },
      ...extra,
    });
    const createOk = async (body: Record<string, unknown>, namespace?: string): Promise<Collection> => {
      const res = await inNs('POST', '/v1/collections', body, { namespace });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };
    const create422 = async (body: Record<string, unknown>) => issuesOf(expectEnvelope(await inNs('POST', '/v1/collections', body), 422, 'ValidationError'));

    beforeAll(async () => {
      db = await backend.open();
      const store = tempBlobStore();
      removeBlobs = store.remove;
      app = await buildApp({ db, blobs: store.blobs, extractors: registry });
      const org = await createOrganization(db, `org-col-${Date.now()}`, 'admin@test.local');
      adminKey = org.adminKey;
      readKey = await db.transaction(async (tx) => {
        const user = await ensureUser(tx, org.organization.id, 'reader@test.local');
        return (await insertApiKey(tx, { organizationId: org.organization.id, userId: user.id, name: 'reader', permissions: ['read'] })).key;
      });
      for (const name of [NS, OTHER_NS]) {
        const res = await call({ method: 'POST', url: '/v1/namespaces', payload: { namespace_name: name, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] } });
        expect(res.statusCode, res.body).toBe(200);
      }
      const bucket = await inNs('POST', '/v1/buckets', { bucket_name: 'docs', bucket_schema: SCHEMA });
      expect(bucket.statusCode, bucket.body).toBe(200);
      bucketId = bucket.json().bucket_id;
      const other = await inNs('POST', '/v1/buckets', { bucket_name: 'docs', bucket_schema: SCHEMA }, { namespace: OTHER_NS });
      expect(other.statusCode, other.body).toBe(200);
      otherBucketId = other.json().bucket_id;
    });
    afterAll(async () => {
      await app.close();
      await db.close();
      removeBlobs();
    });

    it('refuses to delete a bucket a collection reads, naming the collection, and allows it once that is gone', async () => {
      const made = await inNs('POST', '/v1/buckets', { bucket_name: 'doomed', bucket_schema: SCHEMA });
      expect(made.statusCode, made.body).toBe(200);
      const reader = await createOk(chunkBody('reads_doomed', { source: { type: 'bucket', bucket_ids: ['doomed'] } }));
      const err = expectEnvelope(await inNs('DELETE', '/v1/buckets/doomed'), 409, 'AlreadyExistsError');
      expect(err.message).toContain('reads_doomed');
      expect(err.details?.dependent_collection_ids).toEqual([reader.collection_id]);
      expect((await inNs('GET', '/v1/buckets/doomed')).statusCode).toBe(200);
      expect((await inNs('DELETE', `/v1/collections/${reader.collection_id}`)).statusCode).toBe(200);
      expect((await inNs('DELETE', '/v1/buckets/doomed')).statusCode).toBe(200);
      expect((await inNs('GET', '/v1/buckets/doomed')).statusCode).toBe(404);
    });

    describe('extractor catalogue', () => {
      it('lists the registered extractors with their schemas', async () => {
        const res = await call({ method: 'GET', url: '/v1/collections/features/extractors' });
        expect(res.statusCode, res.body).toBe(200);
        const list = res.json() as Record<string, unknown>[];
        expect(list.map((e) => e.feature_extractor_id)).toEqual(['chunk_extractor_v1', 'copy_extractor_v1']);
        const chunk = list[0]!;
        expect(chunk).toMatchObject({
          feature_extractor_name: 'chunk_extractor',
          version: 'v1',
          source: 'builtin',
          supported_input_types: ['text'],
          default_parameters: { chunk_size: 1000, split_by: 'words' },
          position_fields: ['chunk_index'],
          input_schema: { type: 'object', properties: { text: { type: 'text', required: true } }, required: ['text'] },
        });
        expect(Object.keys((chunk.output_schema as { properties: object }).properties)).toEqual(['text', 'chunk_index', 'embedding']);
        const params = chunk.parameter_schema as { properties: Record<string, { maximum?: number; enum?: string[] }> };
        expect(params.properties.chunk_size!.maximum).toBe(10000);
        expect(params.properties.split_by!.enum).toEqual(['words', 'characters']);
      });

      it('answers one extractor by id, 404 naming an unknown one', async () => {
        const res = await call({ method: 'GET', url: '/v1/collections/features/extractors/copy_extractor_v1' });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().feature_extractor_id).toBe('copy_extractor_v1');
        const missing = expectEnvelope(await call({ method: 'GET', url: '/v1/collections/features/extractors/nope_v9' }), 404, 'NotFoundError');
        expect(missing.message).toContain('"nope_v9"');
      });

      it('documents every collection route in the OpenAPI document', async () => {
        const res = await app.inject({ method: 'GET', url: '/openapi.json' });
        expect(res.statusCode, res.body).toBe(200);
        // Document routes live under /v1/collections too; documents.test.ts checks those.
        const paths = Object.keys(res.json().paths).filter((p) => p.startsWith('/v1/collections') && !p.includes('/documents'));
        expect(paths.sort()).toEqual([
          '/v1/collections',
          '/v1/collections/features/extractors',
          '/v1/collections/features/extractors/{feature_extractor_id}',
          '/v1/collections/list',
          '/v1/collections/{collection_identifier}',
          '/v1/collections/{collection_identifier}/features',
        ]);
      });

      it('needs a key', async () => {
        const res = await app.inject({ method: 'GET', url: '/v1/collections/features/extractors' });
        expectEnvelope(res, 401, 'UnauthorizedError');
      });
    });

    describe('create', () => {
      it('creates a bucket-sourced collection: names resolved to ids, schemas inferred and computed', async () => {
        const c = await createOk(
          chunkBody(
            'chunks',
            { description: 'Chunks of docs', metadata: { team: 'search' } },
            {
              parameters: { chunk_size: 50 },
              field_passthrough: [{ source_path: 'sku', required: true }, { source_path: 'info.title', target_path: 'title' }, { source_path: 'absent' }],
            },
          ),
        );
        expect(c.collection_id).toMatch(/^col_[0-9a-z]{16}$/);
        expect(c.collection_name).toBe('chunks');
        expect(c.description).toBe('Chunks of docs');
        expect(c.metadata).toEqual({ team: 'search' });
        expect(c.enabled).toBe(true);
        expect(c.source).toMatchObject({ type: 'bucket', bucket_ids: [bucketId], collection_id: null, collection_ids: null });
        expect(c.input_schema).toEqual(SCHEMA);
        // Passthrough fields and the extractor's; a missing optional source with no default is not in the schema.
        // (Key order is not kept: schemas are stored as jsonb.)
        expect(Object.keys(c.output_schema.properties).sort()).toEqual(['chunk_index', 'embedding', 'sku', 'text', 'title']);
        expect(c.output_schema.properties.title).toEqual({ type: 'string' });
        expect(c.feature_extractor).toMatchObject({
          feature_extractor_name: 'chunk_extractor',
          version: 'v1',
          feature_extractor_id: 'chunk_extractor_v1',
          parameters: { chunk_size: 50, split_by: 'words' },
          input_mappings: { text: 'content' },
          include_all_source_fields: false,
        });
        expect(c.source_bucket_schemas).toBeNull();
        expect(c.document_count).toBe(0);
        const stored = await db.query<{ input_bindings: unknown; source_bucket_ids: string[] }>(
          'SELECT input_bindings, source_bucket_ids FROM collections WHERE id = $1',
          [c.collection_id],
        );
        expect(stored[0]).toEqual({ input_bindings: { text: { path: 'content' } }, source_bucket_ids: [bucketId] });
      });

      it('accepts the InputMapping[] form, literals included, and binds by name when unmapped', async () => {
        const c = await createOk(
          chunkBody('chunks-array', {}, { input_mappings: [{ input_key: 'text', source_type: 'payload', path: 'summary' }] }),
        );
        expect(c.feature_extractor.input_mappings).toEqual([{ input_key: 'text', source_type: 'payload', path: 'summary' }]);
        const lit = await createOk(chunkBody('chunks-literal', {}, { input_mappings: [{ input_key: 'text', source_type: 'literal', override: 'fixed' }] }));
        const rows = await db.query<{ input_bindings: unknown }>('SELECT input_bindings FROM collections WHERE id = $1', [lit.collection_id]);
        expect(rows[0]!.input_bindings).toEqual({ text: { literal: 'fixed' } });
        await inNs('DELETE', `/v1/collections/${c.collection_id}`);
        await inNs('DELETE', `/v1/collections/${lit.collection_id}`);
      });

      it('includes all source fields on request, extractor fields winning', async () => {
        const c = await createOk(chunkBody('chunks-all', {}, { include_all_source_fields: true }));
        expect((await inNs('DELETE', '/v1/collections/chunks-all')).statusCode).toBe(200);
        expect(Object.keys(c.output_schema.properties).sort()).toEqual(['chunk_index', 'content', 'embedding', 'info', 'price', 'sku', 'summary', 'text']);
      });

      it('refuses an unknown extractor, naming it and the available ones', async () => {
        const [issue] = await create422(chunkBody('x-unknown', {}, { feature_extractor_name: 'nope', version: 'v3' }));
        expect(issue!.location).toEqual(['body', 'feature_extractor', 'feature_extractor_name']);
        expect(issue!.message).toContain('"nope_v3"');
        expect(issue!.message).toContain('chunk_extractor_v1, copy_extractor_v1');
      });

      it('refuses invalid parameters, naming field and value', async () => {
        const issues = await create422(chunkBody('x-params', {}, { parameters: { chunk_size: -5, split_by: 'lines' } }));
        const size = issues.find((i) => i.location.join('.') === 'body.feature_extractor.parameters.chunk_size');
        expect(size?.message).toContain('-5');
        const split = issues.find((i) => i.location.join('.') === 'body.feature_extractor.parameters.split_by');
        expect(split?.message).toContain('"lines"');
        const strict = await create422({
          collection_name: 'x-strict',
          source: { type: 'bucket', bucket_ids: [bucketId] },
          feature_extractor: { feature_extractor_name: 'copy_extractor', version: 'v1', parameters: { bogus: 1 } },
        });
        expect(strict[0]!.message).toContain('bogus');
      });

      it('refuses missing source buckets with a 404 naming every missing one', async () => {
        const res = await inNs('POST', '/v1/collections', chunkBody('x-missing', { source: { type: 'bucket', bucket_ids: ['docs', 'ghost', 'bkt_nothere'] } }));
        const error = expectEnvelope(res, 404, 'NotFoundError');
        expect(error.message).toContain('"ghost"');
        expect(error.message).toContain('"bkt_nothere"');
        expect(error.message).not.toContain('"docs"');
        expect(error.details).toMatchObject({ resource: 'bucket', ids: ['ghost', 'bkt_nothere'] });
      });

      it('refuses malformed sources', async () => {
        const cases: [Record<string, unknown>, string][] = [
          [{ type: 'bucket' }, 'bucket_ids'],
          [{ type: 'bucket', bucket_ids: ['docs'], collection_id: 'chunks' }, 'collection_ids'],
          [{ type: 'collection' }, 'collection_id'],
          [{ type: 'collection', collection_id: 'chunks', collection_ids: ['chunks'] }, 'collection_ids'],
          [{ type: 'collection', collection_id: 'chunks', bucket_ids: ['docs'] }, 'bucket_ids'],
        ];
        for (const [source, field] of cases) {
          const issues = await create422(chunkBody('x-source', { source }));
          expect(issues[0]!.location, JSON.stringify(source)).toEqual(['body', 'source', field]);
        }
        const taxonomy = await create422(chunkBody('x-source', { source: { type: 'taxonomy' } }));
        expect(taxonomy[0]!.location).toEqual(['body', 'source', 'type']);
      });

      it('refuses bad input mappings, naming keys and paths', async () => {
        let issues = await create422(chunkBody('x-map', {}, { input_mappings: { text: 'nonexistent.field' } }));
        expect(issues[0]!.message).toContain('"nonexistent.field"');
        expect(issues[0]!.location).toEqual(['body', 'feature_extractor', 'input_mappings', 'text']);
        issues = await create422(chunkBody('x-map', {}, { input_mappings: { text: 'content', image: 'content' } }));
        expect(issues[0]!.message).toContain('no input "image"');
        issues = await create422(chunkBody('x-map', {}, { input_mappings: { text: 'price' } }));
        expect(issues[0]!.message).toMatch(/takes text, but source path "price" is float/);
        issues = await create422(chunkBody('x-map', {}, { input_mappings: [{ input_key: 'text', source_type: 'vector', path: 'content' }] }));
        expect(issues[0]!.message).toContain('"vector" is not supported');
        issues = await create422(chunkBody('x-map', {}, { input_mappings: [{ input_key: 'text', source_type: 'literal' }] }));
        expect(issues[0]!.message).toContain('no override');
        issues = await create422(
          chunkBody('x-map', {}, { input_mappings: [{ input_key: 'text', path: 'content' }, { input_key: 'text', path: 'summary' }] }),
        );
        expect(issues[0]!.message).toContain('mapped more than once');
        // No mapping and no source field named `text`: the required input is unbound; the message suggests one.
        issues = await create422(chunkBody('x-map', {}, { input_mappings: undefined }));
        expect(issues[0]!.message).toContain('required input "text"');
        expect(issues[0]!.message).toContain('e.g. {"text": "content"} (compatible source fields: content, sku, summary)');
      });

      it('refuses bad passthrough fields', async () => {
        let issues = await create422(chunkBody('x-pass', {}, { field_passthrough: [{ source_path: 'info.missing', required: true }] }));
        expect(issues[0]!.message).toContain('"info.missing"');
        expect(issues[0]!.location).toEqual(['body', 'feature_extractor', 'field_passthrough', 0, 'source_path']);
        issues = await create422(chunkBody('x-pass', {}, { field_passthrough: [{ source_path: 'sku', target_path: 'embedding' }] }));
        expect(issues[0]!.message).toContain('collides');
        issues = await create422(chunkBody('x-pass', {}, { field_passthrough: [{ source_path: 'sku' }, { source_path: 'summary', target_path: 'sku' }] }));
        expect(issues[0]!.message).toContain('"sku" is used twice');
        issues = await create422(chunkBody('x-pass', {}, { field_passthrough: [{ source_path: 'sku', target_path: 'a.b' }] }));
        expect(issues[0]!.message).toContain('"a.b" is not a field name');
      });

      it('checks a given input_schema against the source', async () => {
        const issues = await create422(
          chunkBody('x-schema', { input_schema: { properties: { content: { type: 'text' }, ghost: { type: 'string' }, price: { type: 'string' } } } }),
        );
        expect(issues.map((i) => i.message).join(' | ')).toMatch(/"ghost" is not in the source schema.*"price" has type string, but the source has float/);
        const narrowed = await createOk(chunkBody('narrowed', { input_schema: { properties: { content: { type: 'text' } } } }));
        expect(narrowed.input_schema).toEqual({ properties: { content: { type: 'text' } } });
        const issues2 = await create422(
          chunkBody('x-schema', { input_schema: { properties: { content: { type: 'text' } } } }, { field_passthrough: [{ source_path: 'sku', required: true }] }),
        );
        expect(issues2[0]!.message).toContain('"sku"');
        expect((await inNs('DELETE', '/v1/collections/narrowed')).statusCode).toBe(200);
      });

      it('refuses unsupported Mixpeek features and bad names', async () => {
        let issues = await create422(chunkBody('x-sched', { schedule: { cron: '* * * * *' } }));
        expect(issues[0]!.location).toEqual(['body', 'schedule']);
        expect(issues[0]!.message).toContain('not supported');
        issues = await create422(chunkBody('col_reserved'));
        expect(issues[0]!.location).toEqual(['body', 'collection_name']);
        issues = await create422(chunkBody('ab'));
        expect(issues[0]!.location).toEqual(['body', 'collection_name']);
      });

      it('answers 409 on a duplicate name', async () => {
        const error = expectEnvelope(await inNs('POST', '/v1/collections', chunkBody('chunks')), 409, 'AlreadyExistsError');
        expect(error.message).toContain('"chunks"');
      });

      it('needs write permission', async () => {
        expectEnvelope(await inNs('POST', '/v1/collections', chunkBody('x-perm'), { key: readKey }), 403, 'ForbiddenError');
      });

      it('merges several source buckets and refuses conflicting field types', async () => {
        const extra = await inNs('POST', '/v1/buckets', {
          bucket_name: 'more',
          bucket_schema: { properties: { content: { type: 'text' }, author: { type: 'string' } } },
        });
        expect(extra.statusCode, extra.body).toBe(200);
        const c = await createOk(chunkBody('multi', { source: { type: 'bucket', bucket_ids: ['docs', 'more'] } }));
        expect(Object.keys(c.input_schema.properties).sort()).toEqual(['author', 'content', 'info', 'price', 'sku', 'summary']);
        expect(Object.keys(c.source_bucket_schemas ?? {}).sort()).toEqual([bucketId, extra.json().bucket_id].sort());
        const clash = await inNs('POST', '/v1/buckets', { bucket_name: 'clash', bucket_schema: { properties: { price: { type: 'string' } } } });
        expect(clash.statusCode, clash.body).toBe(200);
        const issues = await create422(chunkBody('x-clash', { source: { type: 'bucket', bucket_ids: ['docs', 'clash'] } }));
        expect(issues[0]!.message).toContain('"price" is float');
        expect((await inNs('DELETE', '/v1/collections/multi')).statusCode).toBe(200);
      });
    });

    describe('collection sources and dependencies', () => {
      let parent: Collection;
      let child: Collection;

      it('creates a collection from a collection: its input schema is the source output schema', async () => {
        parent = (await inNs('GET', '/v1/collections/chunks')).json();
        child = await createOk({
          collection_name: 'copies',
          source: { type: 'collection', collection_id: 'chunks' },
          feature_extractor: { feature_extractor_name: 'copy_extractor', version: 'v1', field_passthrough: [{ source_path: 'text' }] },
        });
        expect(child.source).toMatchObject({
          type: 'collection',
          bucket_ids: null,
          collection_id: parent.collection_id,
          collection_ids: null,
          inherited_bucket_ids: [bucketId],
        });
        expect(child.input_schema).toEqual(parent.output_schema);
        expect(child.output_schema).toEqual({ properties: { text: { type: 'text' } } });
        const rows = await db.query<{ input_bindings: unknown; source_collection_ids: string[] }>(
          'SELECT input_bindings, source_collection_ids FROM collections WHERE id = $1',
          [child.collection_id],
        );
        // Declares no inputs and maps none: the extractor gets every source field (null bindings).
        expect(rows[0]).toEqual({ input_bindings: null, source_collection_ids: [parent.collection_id] });
      });

      it('takes several source collections and names missing ones', async () => {
        const grand = await createOk({
          collection_name: 'grand',
          source: { type: 'collection', collection_ids: ['copies', parent.collection_id] },
          feature_extractor: { feature_extractor_name: 'copy_extractor', version: 'v1' },
        });
        expect(grand.source.collection_ids).toEqual([child.collection_id, parent.collection_id]);
        expect(grand.source.inherited_bucket_ids).toEqual([bucketId]);
        const error = expectEnvelope(
          await inNs('POST', '/v1/collections', {
            collection_name: 'x-grand',
            source: { type: 'collection', collection_ids: ['copies', 'col_ghost'] },
            feature_extractor: { feature_extractor_name: 'copy_extractor', version: 'v1' },
          }),
          404,
          'NotFoundError',
        );
        expect(error.message).toContain('"col_ghost"');
        expect(error.details).toMatchObject({ resource: 'collection', ids: ['col_ghost'] });
        // The tiers a batch on the bucket would run.
        const scope = await scopeOf(parent.collection_id);
        const graph = await collectionGraph(db, { organizationId: scope.organization_id, namespaceId: scope.namespace_id });
        expect(deriveTiers(graph, bucketId)).toEqual([[parent.collection_id], [child.collection_id], [grand.collection_id]]);
      });

      const scopeOf = async (id: string) =>
        (await db.query<{ organization_id: string; namespace_id: string }>('SELECT organization_id, namespace_id FROM collections WHERE id = $1', [id]))[0]!;

      it('refuses to change a source (so no collection can become its own ancestor)', async () => {
        const res = await inNs('PATCH', '/v1/collections/chunks', { source: { type: 'collection', collection_id: 'grand' } });
        const issues = issuesOf(expectEnvelope(res, 422, 'ValidationError'));
        expect(issues[0]!.location).toEqual(['body', 'source']);
        expect(issues[0]!.message).toContain('cannot be changed');
        const fe = await inNs('PATCH', '/v1/collections/chunks', { feature_extractor: { feature_extractor_name: 'copy_extractor', version: 'v1' } });
        expect(issuesOf(expectEnvelope(fe, 422, 'ValidationError'))[0]!.location).toEqual(['body', 'feature_extractor']);
        expect((await inNs('GET', '/v1/collections/chunks')).json().source.type).toBe('bucket');
      });

      it('refuses to delete a collection others read from, naming them', async () => {
        const error = expectEnvelope(await inNs('DELETE', '/v1/collections/chunks'), 409, 'AlreadyExistsError');
        expect(error.message).toContain('"copies"');
        expect(error.message).toContain('"grand"');
        expect(error.details).toMatchObject({ dependent_collection_ids: expect.arrayContaining([child.collection_id]) });
        expect((await inNs('GET', '/v1/collections/chunks')).statusCode).toBe(200);
        const copies = expectEnvelope(await inNs('DELETE', '/v1/collections/copies'), 409, 'AlreadyExistsError');
        expect(copies.message).toContain('"grand"');
        expect(copies.message).not.toContain('"copies" (');
      });

      it('deletes leaves first, then the source', async () => {
        expectEnvelope(await inNs('DELETE', '/v1/collections/grand', undefined, { key: readKey }), 403, 'ForbiddenError');
        for (const name of ['grand', 'copies']) {
          const res = await inNs('DELETE', `/v1/collections/${name}`);
          expect(res.statusCode, res.body).toBe(200);
          expect(res.json()).toMatchObject({ success: true, collection_name: name });
        }
        expectEnvelope(await inNs('GET', '/v1/collections/copies'), 404, 'NotFoundError');
        const again = expectEnvelope(await inNs('DELETE', '/v1/collections/copies'), 404, 'NotFoundError');
        expect(again.message).toContain('"copies"');
      });
    });

    describe('concurrency', () => {
      // On PGlite transactions run one at a time, so this interleaving cannot happen there.
      it.skipIf(backend.name !== 'postgres')('a create racing the delete of its source waits and then sees the source gone', async () => {
        const src = await createOk(chunkBody('race-src'));
        let pending: ReturnType<typeof inNs> | undefined;
        let blocked = 0;
        await db.transaction(async (tx) => {
          // What deleteCollection holds between its dependents check and its DELETE.
          await tx.query('SELECT id FROM collections WHERE id = $1 FOR UPDATE', [src.collection_id]);
          pending = inNs('POST', '/v1/collections', {
            collection_name: 'race-child',
            source: { type: 'collection', collection_id: src.collection_id },
            feature_extractor: { feature_extractor_name: 'copy_extractor', version: 'v1' },
          });
          for (let i = 0; i < 400 && blocked === 0; i++) {
            const rows = await db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR SHARE%'`,
            );
            blocked = rows[0]!.n;
            if (blocked === 0) await new Promise((r) => setTimeout(r, 25));
          }
          await tx.query('DELETE FROM collections WHERE id = $1', [src.collection_id]);
        });
        expect(blocked, 'the create never waited on the source row lock').toBeGreaterThan(0);
        const res = await pending!;
        expect(expectEnvelope(res, 404, 'NotFoundError').message).toContain(src.collection_id);
        const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM collections WHERE name = 'race-child'`);
        expect(rows[0]!.n).toBe(0);
      });
    });

    describe('read, update, list, features', () => {
      it('reads by name and by id', async () => {
        const byName = await inNs('GET', '/v1/collections/chunks');
        expect(byName.statusCode, byName.body).toBe(200);
        const byId = await inNs('GET', `/v1/collections/${byName.json().collection_id}`);
        expect(byId.json()).toEqual(byName.json());
        const missing = expectEnvelope(await inNs('GET', '/v1/collections/nothing-here'), 404, 'NotFoundError');
        expect(missing.message).toContain('"nothing-here"');
      });

      it('patches name, description, metadata and enabled', async () => {
        const before: Collection = (await inNs('GET', '/v1/collections/chunks')).json();
        const res = await inNs('PATCH', '/v1/collections/chunks', {
          collection_name: 'chunks2',
          description: 'new words',
          metadata: { v: 2 },
          enabled: false,
        });
        expect(res.statusCode, res.body).toBe(200);
        const after: Collection = res.json();
        expect(after).toMatchObject({ collection_id: before.collection_id, collection_name: 'chunks2', description: 'new words', metadata: { v: 2 }, enabled: false });
        expect(after.output_schema).toEqual(before.output_schema);
        expect(Date.parse(after.updated_at)).toBeGreaterThan(Date.parse(before.updated_at));
        expect((await inNs('PATCH', '/v1/collections/chunks2', { collection_name: 'chunks', enabled: true })).json()).toMatchObject({
          collection_name: 'chunks',
          enabled: true,
          description: 'new words',
        });
        await createOk(chunkBody('taken'));
        const clash = expectEnvelope(await inNs('PATCH', '/v1/collections/chunks', { collection_name: 'taken' }), 409, 'AlreadyExistsError');
        expect(clash.message).toContain('"taken"');
        expectEnvelope(await inNs('PATCH', '/v1/collections/ghost', { description: 'x' }), 404, 'NotFoundError');
      });

      it('lists with filters, search, sort and pagination', async () => {
        const all = await inNs('POST', '/v1/collections/list', {});
        expect(all.statusCode, all.body).toBe(200);
        expect(all.json().total_count).toBe(2);
        expect(all.json().results.map((c: Collection) => c.collection_name)).toEqual(['taken', 'chunks']);
        const sorted = await inNs('POST', '/v1/collections/list?limit=1', { sort: { field: 'collection_name', direction: 'asc' } });
        const page1 = sorted.json();
        expect(page1.results.map((c: Collection) => c.collection_name)).toEqual(['chunks']);
        expect(page1.total_count).toBe(2);
        expect(page1.pagination).toMatchObject({ total: 2, page: 1, page_size: 1 });
        const page2 = await inNs('POST', `/v1/collections/list?limit=1&cursor=${page1.pagination.next_cursor}`, {
          sort: { field: 'collection_name', direction: 'asc' },
        });
        expect(page2.json().results.map((c: Collection) => c.collection_name)).toEqual(['taken']);
        expect(page2.json().pagination.next_cursor).toBeNull();
        const byMeta = await inNs('POST', '/v1/collections/list', { filters: { AND: [{ field: 'metadata.v', operator: 'eq', value: 2 }] } });
        expect(byMeta.statusCode, byMeta.body).toBe(200);
        expect(byMeta.json().results.map((c: Collection) => c.collection_name)).toEqual(['chunks']);
        const searched = await inNs('POST', '/v1/collections/list', { search: 'NEW WORDS' });
        expect(searched.json().results.map((c: Collection) => c.collection_name)).toEqual(['chunks']);
        const byExtractor = await inNs('POST', '/v1/collections/list', {
          filters: { AND: [{ field: 'feature_extractor.feature_extractor_id', operator: 'eq', value: 'chunk_extractor_v1' }] },
        });
        expect(byExtractor.json().total_count).toBe(2);
        const bad = expectEnvelope(await inNs('POST', '/v1/collections/list', { filters: { AND: [{ field: 'nope', operator: 'eq', value: 1 }] } }), 422, 'ValidationError');
        expect(bad.message).toContain('"nope"');
        expect((await inNs('POST', '/v1/collections/list', {}, { key: readKey })).statusCode).toBe(200);
      });

      it('describes vector features', async () => {
        const res = await inNs('GET', '/v1/collections/chunks/features');
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toEqual({
          features: [
            {
              feature_address: 'mixpeek://chunk_extractor@v1/embedding',
              feature_extractor_name: 'chunk_extractor',
              version: 'v1',
              vector_index: {
                name: 'embedding',
                description: 'Chunk embedding vector',
                dimensions: null,
                type: 'dense',
                distance: 'cosine',
                datatype: 'float32',
                inference_name: null,
              },
              primary: true,
            },
          ],
        });
        const copy = await createOk({
          collection_name: 'plain-copy',
          source: { type: 'bucket', bucket_ids: [bucketId] },
          feature_extractor: { feature_extractor_name: 'copy_extractor', version: 'v1' },
        });
        expect((await inNs('GET', `/v1/collections/${copy.collection_id}/features`)).json()).toEqual({ features: [] });
        expectEnvelope(await inNs('GET', '/v1/collections/ghost/features'), 404, 'NotFoundError');
      });
    });

    describe('namespace isolation', () => {
      it('does not see or use another namespace’s collections and buckets', async () => {
        expectEnvelope(await inNs('GET', '/v1/collections/chunks', undefined, { namespace: OTHER_NS }), 404, 'NotFoundError');
        const list = await inNs('POST', '/v1/collections/list', {}, { namespace: OTHER_NS });
        expect(list.json().total_count).toBe(0);
        // A bucket id of the other namespace is unknown here.
        const res = await inNs('POST', '/v1/collections', chunkBody('x-cross', { source: { type: 'bucket', bucket_ids: [otherBucketId] } }));
        expect(expectEnvelope(res, 404, 'NotFoundError').message).toContain(otherBucketId);
        const chunks: Collection = (await inNs('GET', '/v1/collections/chunks')).json();
        const cross = await inNs(
          'POST',
          '/v1/collections',
          { collection_name: 'x-cross', source: { type: 'collection', collection_id: chunks.collection_id }, feature_extractor: { feature_extractor_name: 'copy_extractor', version: 'v1' } },
          { namespace: OTHER_NS },
        );
        expectEnvelope(cross, 404, 'NotFoundError');
        // The same name is free in the other namespace.
        const same = await createOk(chunkBody('chunks'), OTHER_NS);
        expect(same.source.bucket_ids).toEqual([otherBucketId]);
        expectEnvelope(await inNs('DELETE', `/v1/collections/${same.collection_id}`), 404, 'NotFoundError');
        expect((await inNs('DELETE', `/v1/collections/${same.collection_id}`, undefined, { namespace: OTHER_NS })).statusCode).toBe(200);
      });

      it('drops collections with their namespace', async () => {
        await createOk(chunkBody('doomed'), OTHER_NS);
        const del = await call({ method: 'DELETE', url: `/v1/namespaces/${OTHER_NS}` });
        expect(del.statusCode, del.body).toBe(200);
        const left = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM collections WHERE name = 'doomed'`);
        expect(left[0]!.n).toBe(0);
      });
    });

    /** The production extractors, as the server registers them. */
    describe('with the real extractor registry', () => {
      let real: FastifyInstance;
      const REAL_NS = 'col_real';
      const inReal = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
        real.inject({
          method,
          url,
          headers: { authorization: `Bearer ${adminKey}`, 'x-namespace': REAL_NS },
          ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
        });

      beforeAll(async () => {
        const store = tempBlobStore();
        const extractors = createExtractorRegistry({ allowPrivateUrls: false });
        real = await buildApp({ db, blobs: store.blobs, extractors });
        const ns = await call({ method: 'POST', url: '/v1/namespaces', payload: { namespace_name: REAL_NS, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] } });
        expect(ns.statusCode, ns.body).toBe(200);
        const b = await inReal('POST', '/v1/buckets', { bucket_name: 'articles', bucket_schema: { properties: { body: { type: 'text' }, title: { type: 'string' } } } });
        expect(b.statusCode, b.body).toBe(200);
      });
      afterAll(() => real.close());

      it('lists the production extractors', async () => {
        const res = await inReal('GET', '/v1/collections/features/extractors');
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().map((e: { feature_extractor_id: string }) => e.feature_extractor_id)).toEqual([
          'passthrough_extractor_v1',
          'text_extractor_v1',
          'webhook_extractor_v1',
        ]);
      });

      it('builds text → passthrough, the passthrough output being its input fields', async () => {
        const text = await inReal('POST', '/v1/collections', {
          collection_name: 'article-chunks',
          source: { type: 'bucket', bucket_ids: ['articles'] },
          feature_extractor: {
            feature_extractor_name: 'text_extractor',
            version: 'v1',
            input_mappings: { text: 'body' },
            parameters: { split_by: 'words', chunk_size: 100 },
            field_passthrough: [{ source_path: 'title' }],
          },
        });
        expect(text.statusCode, text.body).toBe(200);
        const chunks: Collection = text.json();
        expect(chunks.feature_extractor.parameters).toMatchObject({ extractor_type: 'text_extractor', split_by: 'words', chunk_size: 100, chunk_overlap: 0 });
        expect(Object.keys(chunks.output_schema.properties).sort()).toEqual(['chunk_index', 'embedding', 'text', 'title']);
        const all = await inReal('POST', '/v1/collections', {
          collection_name: 'article-copies',
          source: { type: 'collection', collection_id: 'article-chunks' },
          feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
        });
        expect(all.statusCode, all.body).toBe(200);
        expect(all.json().output_schema).toEqual(chunks.output_schema);
        const some = await inReal('POST', '/v1/collections', {
          collection_name: 'article-titles',
          source: { type: 'collection', collection_id: 'article-chunks' },
          feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1', input_mappings: { heading: 'title', n: 'chunk_index' } },
        });
        expect(some.statusCode, some.body).toBe(200);
        expect(some.json().output_schema).toEqual({ properties: { heading: { type: 'string' }, n: chunks.output_schema.properties.chunk_index } });
      });

      it('refuses what the production extractors refuse, naming it', async () => {
        const overlap = await inReal('POST', '/v1/collections', {
          collection_name: 'bad-overlap',
          source: { type: 'bucket', bucket_ids: ['articles'] },
          feature_extractor: { feature_extractor_name: 'text_extractor', version: 'v1', input_mappings: { text: 'body' }, parameters: { chunk_size: 10, chunk_overlap: 10 } },
        });
        const issue = issuesOf(expectEnvelope(overlap, 422, 'ValidationError'))[0]!;
        expect(issue.location).toEqual(['body', 'feature_extractor', 'parameters', 'chunk_overlap']);
        expect(issue.message).toContain('10');
        const webhook = await inReal('POST', '/v1/collections', {
          collection_name: 'bad-webhook',
          source: { type: 'bucket', bucket_ids: ['articles'] },
          feature_extractor: { feature_extractor_name: 'webhook_extractor', version: 'v1', parameters: { extractor_type: 'webhook_extractor' } },
        });
        const issues = issuesOf(expectEnvelope(webhook, 422, 'ValidationError'));
        expect(issues.some((i) => i.location.join('.') === 'body.feature_extractor.parameters.url'), JSON.stringify(issues)).toBe(true);
      });
    });
  });
}
