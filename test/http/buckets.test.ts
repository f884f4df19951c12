import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBase36 } from '../../src/ids/new-id.js';
import { createOrganization } from '../../src/organizations/service.js';
import { createTestContext, expectEnvelope, type TestContext, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const SCHEMA = {
  properties: {
    content: { type: 'text', description: 'Main text content' },
    thumbnail: { type: 'image' },
    sku: { type: 'string', required: true },
    region: { type: 'string' },
    price: { type: 'float' },
    tags: { type: 'array', items: { type: 'string' } },
    info: { type: 'object', properties: { title: { type: 'string' } } },
  },
};

interface Bucket {
  bucket_id: string;
  bucket_name: string;
  description: string | null;
  bucket_schema: { properties: Record<string, { type: string }> } | null;
  unique_key: { fields: string[]; default_policy: string | null } | null;
  metadata: Record<string, unknown>;
  object_count: number;
  total_size_bytes: number;
  created_at: string;
  updated_at: string;
  last_upload_at: string | null;
  stats_updated_at: string | null;
  status: string;
  is_locked: boolean;
  batch_stats: { total: number; active: number; completed: number; failed: number } | null;
  storage_stats: { total_size_bytes: number; avg_size_bytes: number; max_size_bytes: number; min_size_bytes: number } | null;
}

interface ListAnswer {
  results: Bucket[];
  total_count: number;
  pagination: { total: number | null; page: number | null; page_size: number | null; next_cursor: string | null };
  stats: { total_objects: number; total_size_bytes: number; avg_objects_per_bucket: number; avg_size_per_bucket: number } | null;
}

const issues = validationIssues;

for (const backend of BACKENDS) {
  describe(`buckets (${backend.name})`, () => {
    let t: TestContext;
    let ns: { namespace_id: string; namespace_name: string };
    let otherNs: { namespace_id: string; namespace_name: string };

    const createNamespace = async (name: string, key?: string) => {
      const res = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        key,
        payload: { namespace_name: name, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as { namespace_id: string; namespace_name: string };
    };

    beforeAll(async () => {
      t = await createTestContext(backend);
      ns = await createNamespace('bkt_tests');
      otherNs = await createNamespace('bkt_tests_other');
    });
    afterAll(() => t.close());

    /** A call in a namespace (`ns` unless given). */
    const inNs = (
      method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
      url: string,
      payload?: unknown,
      opts: { namespace?: string; key?: string } = {},
    ) =>
      t.call({
        method,
        url,
        key: opts.key,
        headers: { 'x-namespace': opts.namespace ?? ns.namespace_name },
        ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      });

    const createOk = async (name: string, extra: Record<string, unknown> = {}, namespace?: string): Promise<Bucket> => {
      const res = await inNs('POST', '/v1/buckets', { bucket_name: name, bucket_schema: SCHEMA, ...extra }, { namespace });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };

    /**
     * Puts object rows into a bucket the way the objects code does (rows plus the bucket's counters in
     * one transaction), so that statistics can be checked without depending on the objects routes.
     */
    const addObjects = async (bucket: Bucket, sizes: number[]) => {
      await t.db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO objects (id, organization_id, namespace_id, bucket_id, size_bytes)
           SELECT 'obj_' || substr(md5(random()::text), 1, 16), $1, b.namespace_id, b.id, s
           FROM buckets b, unnest($3::bigint[]) AS s WHERE b.id = $2`,
          [t.orgId, bucket.bucket_id, sizes],
        );
        await tx.query(
          `UPDATE buckets SET object_count = object_count + $2, total_size_bytes = total_size_bytes + $3,
                  last_upload_at = now() WHERE id = $1`,
          [bucket.bucket_id, sizes.length, sizes.reduce((a, b) => a + b, 0)],
        );
      });
    };

    describe('create and read', () => {
      it('creates a bucket with every spec field and answers a BucketResponse', async () => {
        const res = await inNs('POST', '/v1/buckets', {
          bucket_name: 'products',
          description: 'Product images with metadata',
          bucket_schema: SCHEMA,
          unique_key: { fields: ['sku'], default_policy: 'upsert' },
          metadata: { department: 'Sales', region: 'US' },
        });
        expect(res.statusCode, res.body).toBe(200);
        const b: Bucket = res.json();
        expect(b.bucket_id).toMatch(/^bkt_[0-9a-z]{16}$/);
        expect(b.bucket_name).toBe('products');
        expect(b.description).toBe('Product images with metadata');
        expect(b.bucket_schema).toEqual(SCHEMA);
        expect(b.unique_key).toEqual({ fields: ['sku'], default_policy: 'upsert' });
        expect(b.metadata).toEqual({ department: 'Sales', region: 'US' });
        expect(b.object_count).toBe(0);
        expect(b.total_size_bytes).toBe(0);
        expect(b.status).toBe('ACTIVE');
        expect(b.is_locked).toBe(false);
        expect(b.last_upload_at).toBeNull();
        expect(b.batch_stats).toEqual({ total: 0, active: 0, completed: 0, failed: 0 });
        expect(b.storage_stats).toEqual({ total_size_bytes: 0, avg_size_bytes: 0, max_size_bytes: 0, min_size_bytes: 0 });
        expect(Number.isNaN(Date.parse(b.created_at))).toBe(false);
        expect(b.updated_at).toBe(b.created_at);
      });

      it('defaults optional fields: no description, no unique key, empty metadata', async () => {
        const b = await createOk('minimal');
        expect(b.description).toBeNull();
        expect(b.unique_key).toBeNull();
        expect(b.metadata).toEqual({});
      });

      it('reads a bucket by name and by id, the same answer both ways', async () => {
        const created = await createOk('read_me', { description: 'r' });
        const byName = await inNs('GET', '/v1/buckets/read_me');
        const byId = await inNs('GET', `/v1/buckets/${created.bucket_id}`);
        expect(byName.statusCode, byName.body).toBe(200);
        expect(byId.statusCode, byId.body).toBe(200);
        const a: Bucket = byName.json();
        const b: Bucket = byId.json();
        expect(a.bucket_id).toBe(created.bucket_id);
        expect({ ...a, stats_updated_at: null }).toEqual({ ...b, stats_updated_at: null });
        expect(a.bucket_schema).toEqual(SCHEMA);
      });

      it('answers 404 naming an unknown bucket', async () => {
        const err = expectEnvelope(await inNs('GET', '/v1/buckets/nope_nothing'), 404, 'NotFoundError');
        expect(err.message).toContain('nope_nothing');
        expectEnvelope(await inNs('GET', '/v1/buckets/bkt_0000000000000000'), 404, 'NotFoundError');
      });

      it('accepts a unique key without default_policy and with compound fields', async () => {
        const b = await createOk('compound_key', { unique_key: { fields: ['sku', 'region'] } });
        expect(b.unique_key).toEqual({ fields: ['sku', 'region'], default_policy: null });
      });

      it('needs a namespace: 400 without X-Namespace, 404 for an unknown one', async () => {
        const missing = await t.call({ method: 'POST', url: '/v1/buckets', payload: { bucket_name: 'x', bucket_schema: SCHEMA } });
        expectEnvelope(missing, 400, 'BadRequestError');
        const unknown = await inNs('POST', '/v1/buckets', { bucket_name: 'x', bucket_schema: SCHEMA }, { namespace: 'no_such_ns' });
        expect(expectEnvelope(unknown, 404, 'NotFoundError').message).toContain('no_such_ns');
      });

      it('takes the namespace by id as well as by name', async () => {
        const b = await createOk('by_ns_id', {}, ns.namespace_id);
        const res = await inNs('GET', `/v1/buckets/${b.bucket_id}`, undefined, { namespace: ns.namespace_id });
        expect(res.statusCode, res.body).toBe(200);
      });

      it('requires write permission to create and read permission to read', async () => {
        const readKey = await t.key(['read']);
        const denied = await inNs('POST', '/v1/buckets', { bucket_name: 'ro', bucket_schema: SCHEMA }, { key: readKey });
        expectEnvelope(denied, 403, 'ForbiddenError');
        await createOk('readable');
        const ok = await inNs('GET', '/v1/buckets/readable', undefined, { key: readKey });
        expect(ok.statusCode, ok.body).toBe(200);
        const del = await inNs('DELETE', '/v1/buckets/readable', undefined, { key: await t.key(['write']) });
        expectEnvelope(del, 403, 'ForbiddenError');
      });
    });

    describe('conflicts and validation', () => {
      it('refuses a second bucket of the same name in a namespace with 409 naming it', async () => {
        await createOk('dup_name');
        const err = expectEnvelope(
          await inNs('POST', '/v1/buckets', { bucket_name: 'dup_name', bucket_schema: SCHEMA }),
          409,
          'AlreadyExistsError',
        );
        expect(err.message).toContain('dup_name');
      });

      it('allows the same name in another namespace', async () => {
        const a = await createOk('shared_name');
        const b = await createOk('shared_name', {}, otherNs.namespace_name);
        expect(b.bucket_id).not.toBe(a.bucket_id);
      });

      it('refuses a missing bucket_schema with 422 naming the field', async () => {
        const err = expectEnvelope(await inNs('POST', '/v1/buckets', { bucket_name: 'no_schema' }), 422, 'ValidationError');
        expect(issues(err).some((i) => i.location.join('.') === 'body.bucket_schema')).toBe(true);
        expect(err.message).toContain('bucket_schema');
      });

      it('refuses an unknown field type with 422 naming field and value', async () => {
        const res = await inNs('POST', '/v1/buckets', {
          bucket_name: 'bad_type',
          bucket_schema: { properties: { photo: { type: 'blob' } } },
        });
        const err = expectEnvelope(res, 422, 'ValidationError');
        const issue = issues(err).find((i) => i.location.join('.') === 'body.bucket_schema.properties.photo.type');
        expect(issue, JSON.stringify(err)).toBeDefined();
        expect(issue!.message).toContain('"blob"');
      });

      it('refuses a bad nested field type and a bad field name', async () => {
        const nested = await inNs('POST', '/v1/buckets', {
          bucket_name: 'bad_nested',
          bucket_schema: { properties: { tags: { type: 'array', items: { type: 'strng' } } } },
        });
        const err = expectEnvelope(nested, 422, 'ValidationError');
        expect(issues(err).some((i) => i.location.join('.') === 'body.bucket_schema.properties.tags.items.type')).toBe(true);
        expect(err.message).toContain('strng');
        const badName = await inNs('POST', '/v1/buckets', {
          bucket_name: 'bad_field_name',
          bucket_schema: { properties: { 'has space': { type: 'string' } } },
        });
        expect(expectEnvelope(badName, 422, 'ValidationError').message).toContain('has space');
      });

      it('refuses a unique key on a field the schema does not have, naming it', async () => {
        const res = await inNs('POST', '/v1/buckets', {
          bucket_name: 'bad_key',
          bucket_schema: SCHEMA,
          unique_key: { fields: ['skuu'], default_policy: 'insert' },
        });
        const err = expectEnvelope(res, 422, 'ValidationError');
        const [issue] = issues(err);
        expect(issue!.location).toEqual(['body', 'unique_key', 'fields', 0]);
        expect(issue!.message).toContain('"skuu"');
      });

      it('refuses a unique key on a blob field or an array field', async () => {
        const blob = await inNs('POST', '/v1/buckets', { bucket_name: 'blob_key', bucket_schema: SCHEMA, unique_key: { fields: ['content'] } });
        const err = expectEnvelope(blob, 422, 'ValidationError');
        expect(err.message).toContain('"content"');
        expect(err.message).toContain('text');
        const array = await inNs('POST', '/v1/buckets', {
          bucket_name: 'array_key',
          bucket_schema: SCHEMA,
          unique_key: { fields: ['sku', 'tags'] },
        });
        const err2 = expectEnvelope(array, 422, 'ValidationError');
        expect(issues(err2)[0]!.location).toEqual(['body', 'unique_key', 'fields', 1]);
        expect(err2.message).toContain('"tags"');
      });

      it('refuses an empty or repeated unique key and an unknown policy', async () => {
        const empty = await inNs('POST', '/v1/buckets', { bucket_name: 'k1', bucket_schema: SCHEMA, unique_key: { fields: [] } });
        expect(issues(expectEnvelope(empty, 422, 'ValidationError'))[0]!.location).toEqual(['body', 'unique_key', 'fields']);
        const repeated = await inNs('POST', '/v1/buckets', { bucket_name: 'k2', bucket_schema: SCHEMA, unique_key: { fields: ['sku', 'sku'] } });
        expect(expectEnvelope(repeated, 422, 'ValidationError').message).toContain('repeat');
        const policy = await inNs('POST', '/v1/buckets', {
          bucket_name: 'k3',
          bucket_schema: SCHEMA,
          unique_key: { fields: ['sku'], default_policy: 'replace' },
        });
        expect(expectEnvelope(policy, 422, 'ValidationError').message).toContain('replace');
      });

      it('refuses names that are not URL-safe or look like bucket ids, naming them', async () => {
        for (const name of ['bkt_lookalike', 'has space', 'slash/name', '', '-leading']) {
          const res = await inNs('POST', '/v1/buckets', { bucket_name: name, bucket_schema: SCHEMA });
          const err = expectEnvelope(res, 422, 'ValidationError');
          expect(issues(err)[0]!.location).toEqual(['body', 'bucket_name']);
          expect(err.message).toContain(JSON.stringify(name));
        }
      });

      it('writes nothing when creation fails', async () => {
        await inNs('POST', '/v1/buckets', { bucket_name: 'never_made', bucket_schema: SCHEMA, unique_key: { fields: ['nope'] } });
        expectEnvelope(await inNs('GET', '/v1/buckets/never_made'), 404, 'NotFoundError');
      });
    });

    describe('update', () => {
      it('PUT renames and changes description and metadata; the old name is gone', async () => {
        const b = await createOk('put_me', { description: 'old', metadata: { a: 1 } });
        const res = await inNs('PUT', '/v1/buckets/put_me', { bucket_name: 'put_done', description: 'new', metadata: { b: 2 } });
        expect(res.statusCode, res.body).toBe(200);
        const u: Bucket = res.json();
        expect(u.bucket_id).toBe(b.bucket_id);
        expect(u.bucket_name).toBe('put_done');
        expect(u.description).toBe('new');
        expect(u.metadata).toEqual({ b: 2 });
        expect(u.bucket_schema).toEqual(SCHEMA);
        expect(Date.parse(u.updated_at)).toBeGreaterThan(Date.parse(b.updated_at));
        expect(u.created_at).toBe(b.created_at);
        expectEnvelope(await inNs('GET', '/v1/buckets/put_me'), 404, 'NotFoundError');
        expect((await inNs('GET', '/v1/buckets/put_done')).json().description).toBe('new');
      });

      it('PATCH changes only the fields given', async () => {
        const b = await createOk('patch_me', { description: 'keep', metadata: { k: 'v' } });
        const res = await inNs('PATCH', `/v1/buckets/${b.bucket_id}`, { metadata: { k: 'w', n: 1 } });
        expect(res.statusCode, res.body).toBe(200);
        const u: Bucket = res.json();
        expect(u.bucket_name).toBe('patch_me');
        expect(u.description).toBe('keep');
        expect(u.metadata).toEqual({ k: 'w', n: 1 });
        const again = await inNs('PATCH', '/v1/buckets/patch_me', { description: 'changed' });
        expect(again.json().description).toBe('changed');
        expect(again.json().metadata).toEqual({ k: 'w', n: 1 });
      });

      it('a rename onto another bucket name is 409 naming it, and changes nothing', async () => {
        await createOk('taken_a');
        await createOk('taken_b', { description: 'b' });
        for (const method of ['PUT', 'PATCH'] as const) {
          const res = await inNs(method, '/v1/buckets/taken_b', { bucket_name: 'taken_a', description: 'changed?' });
          expect(expectEnvelope(res, 409, 'AlreadyExistsError').message).toContain('taken_a');
        }
        expect((await inNs('GET', '/v1/buckets/taken_b')).json().description).toBe('b');
      });

      it('renaming to its own name is fine', async () => {
        await createOk('same_again');
        const res = await inNs('PUT', '/v1/buckets/same_again', { bucket_name: 'same_again' });
        expect(res.statusCode, res.body).toBe(200);
      });

      it('refuses to change bucket_schema or unique_key, naming the field', async () => {
        await createOk('fixed_schema');
        const res = await inNs('PATCH', '/v1/buckets/fixed_schema', { bucket_schema: { properties: { x: { type: 'string' } } } });
        const err = expectEnvelope(res, 422, 'ValidationError');
        expect(issues(err)[0]!.location).toEqual(['body', 'bucket_schema']);
        expect(err.message).toContain('cannot be changed');
        const key = await inNs('PUT', '/v1/buckets/fixed_schema', { unique_key: { fields: ['sku'] } });
        expect(issues(expectEnvelope(key, 422, 'ValidationError'))[0]!.location).toEqual(['body', 'unique_key']);
        expect((await inNs('GET', '/v1/buckets/fixed_schema')).json().bucket_schema).toEqual(SCHEMA);
      });

      it('refuses a bad new name and updates of unknown buckets', async () => {
        await createOk('rename_bad');
        const bad = await inNs('PATCH', '/v1/buckets/rename_bad', { bucket_name: 'bkt_sneaky' });
        expect(expectEnvelope(bad, 422, 'ValidationError').message).toContain('bkt_sneaky');
        expectEnvelope(await inNs('PUT', '/v1/buckets/ghost', { description: 'x' }), 404, 'NotFoundError');
        expectEnvelope(await inNs('PATCH', '/v1/buckets/ghost', { description: 'x' }), 404, 'NotFoundError');
      });
    });

    describe('statistics', () => {
      it('reports object_count, total_size_bytes, last_upload_at and storage_stats from the objects', async () => {
        const b = await createOk('with_objects');
        await addObjects(b, [10, 20, 61]);
        const res = await inNs('GET', '/v1/buckets/with_objects');
        expect(res.statusCode, res.body).toBe(200);
        const got: Bucket = res.json();
        expect(got.object_count).toBe(3);
        expect(got.total_size_bytes).toBe(91);
        expect(got.last_upload_at).not.toBeNull();
        expect(got.storage_stats).toEqual({ total_size_bytes: 91, avg_size_bytes: 30, max_size_bytes: 61, min_size_bytes: 10 });
        expect(got.batch_stats).toEqual({ total: 0, active: 0, completed: 0, failed: 0 });
        // The same statistics after an update, which answers a full BucketResponse too.
        const patched = await inNs('PATCH', '/v1/buckets/with_objects', { description: 'd' });
        expect(patched.json().storage_stats).toEqual(got.storage_stats);
      });
    });

    describe('delete', () => {
      it('deletes a bucket with its objects and blobs, answers a task, and leaves other buckets alone', async () => {
        const b = await createOk('to_delete');
        const keep = await createOk('to_keep');
        await addObjects(b, [5, 7]);
        await addObjects(keep, [3]);
        const prefix = `${t.orgId}/${ns.namespace_id}/${b.bucket_id}`;
        const keepKey = `${t.orgId}/${ns.namespace_id}/${keep.bucket_id}/blob_keep`;
        await t.blobs.put(`${prefix}/blob_one`, Buffer.from('hello'));
        await t.blobs.put(`${prefix}/uploads/upl_one`, Buffer.from('partial'));
        await t.blobs.put(keepKey, Buffer.from('keep me'));

        const res = await inNs('DELETE', '/v1/buckets/to_delete');
        expect(res.statusCode, res.body).toBe(200);
        const answer = res.json();
        expect(answer).toEqual({
          task_id: expect.stringMatching(/^task_/),
          status: 'COMPLETED',
          bucket_id: b.bucket_id,
          bucket_name: 'to_delete',
          object_count: 2,
          message: expect.stringContaining('to_delete'),
        });

        expectEnvelope(await inNs('GET', '/v1/buckets/to_delete'), 404, 'NotFoundError');
        expectEnvelope(await inNs('GET', `/v1/buckets/${b.bucket_id}`), 404, 'NotFoundError');
        const rows = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM objects WHERE bucket_id = $1', [b.bucket_id]);
        expect(rows[0]!.n).toBe(0);
        expect(await t.blobs.stat(`${prefix}/blob_one`)).toBeUndefined();
        expect(await t.blobs.stat(`${prefix}/uploads/upl_one`)).toBeUndefined();
        expect(await t.blobs.stat(keepKey)).toEqual({ sizeBytes: 7 });
        const kept: Bucket = (await inNs('GET', '/v1/buckets/to_keep')).json();
        expect(kept.object_count).toBe(1);

        const task = await t.call({ method: 'GET', url: `/v1/tasks/${answer.task_id}` });
        expect(task.statusCode, task.body).toBe(200);
        expect(task.json()).toMatchObject({
          task_id: answer.task_id,
          task_type: 'api_buckets_delete',
          status: 'COMPLETED',
          error: null,
          outputs: [{ bucket_id: b.bucket_id, bucket_name: 'to_delete', object_count: 2, total_size_bytes: 12 }],
        });
      });

      it('deletes by id; a second delete is 404; the name is free again', async () => {
        const b = await createOk('delete_by_id');
        const res = await inNs('DELETE', `/v1/buckets/${b.bucket_id}`);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().object_count).toBe(0);
        expectEnvelope(await inNs('DELETE', `/v1/buckets/${b.bucket_id}`), 404, 'NotFoundError');
        const again = await createOk('delete_by_id');
        expect(again.bucket_id).not.toBe(b.bucket_id);
      });
    });

    describe('isolation', () => {
      it('a bucket of one namespace is 404 from another namespace, for every route', async () => {
        const b = await createOk('ns_private');
        const other = { namespace: otherNs.namespace_name };
        for (const id of ['ns_private', b.bucket_id]) {
          expectEnvelope(await inNs('GET', `/v1/buckets/${id}`, undefined, other), 404, 'NotFoundError');
          expectEnvelope(await inNs('PUT', `/v1/buckets/${id}`, { description: 'x' }, other), 404, 'NotFoundError');
          expectEnvelope(await inNs('PATCH', `/v1/buckets/${id}`, { description: 'x' }, other), 404, 'NotFoundError');
          expectEnvelope(await inNs('DELETE', `/v1/buckets/${id}`, undefined, other), 404, 'NotFoundError');
        }
        const listed: ListAnswer = (await inNs('POST', '/v1/buckets/list', { filters: { bucket_id: b.bucket_id } }, other)).json();
        expect(listed.total_count).toBe(0);
        const still = await inNs('GET', '/v1/buckets/ns_private');
        expect(still.statusCode).toBe(200);
        expect(still.json().description).toBeNull();
      });

      it("another organization cannot see or touch a bucket, even with the namespace's id", async () => {
        const b = await createOk('org_private');
        const other = await createOrganization(t.db, `other-${randomBase36(8)}`, 'other@test.local');
        // Another organization's key naming our namespace: the namespace itself is not found.
        const viaOurNs = await t.call({
          method: 'GET',
          url: `/v1/buckets/${b.bucket_id}`,
          key: other.adminKey,
          headers: { 'x-namespace': ns.namespace_id },
        });
        expectEnvelope(viaOurNs, 404, 'NotFoundError');
        // In a namespace of its own with the same name, our bucket id is still not found.
        const theirNs = await createNamespace(ns.namespace_name, other.adminKey);
        for (const method of ['GET', 'DELETE'] as const) {
          const res = await t.call({
            method,
            url: `/v1/buckets/${b.bucket_id}`,
            key: other.adminKey,
            headers: { 'x-namespace': theirNs.namespace_id },
          });
          expectEnvelope(res, 404, 'NotFoundError');
        }
        expect((await inNs('GET', `/v1/buckets/${b.bucket_id}`)).statusCode).toBe(200);
      });
    });

    describe('list', () => {
      let listNs: string;
      const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
      const list = async (body: unknown, query = '', namespace = listNs): Promise<ListAnswer> => {
        const res = await inNs('POST', `/v1/buckets/list${query}`, body, { namespace });
        expect(res.statusCode, res.body).toBe(200);
        return res.json();
      };
      const namesOf = (a: ListAnswer) => a.results.map((r) => r.bucket_name);

      beforeAll(async () => {
        listNs = (await createNamespace('bkt_list')).namespace_name;
        // Created one after another: created_at ascending follows the names.
        for (const [i, name] of names.entries()) {
          const b = await createOk(
            name,
            {
              description: i % 2 === 0 ? `Even bucket ${name}` : `Odd Bucket ${name}`,
              metadata: { team: i < 2 ? 'search' : 'ingest', rank: i, nested: { level: i % 2 === 0 ? 'high' : 'low' } },
            },
            listNs,
          );
          if (i > 0) await addObjects(b, Array.from({ length: i }, () => 100 * i));
        }
      });

      it('lists every bucket of the namespace, newest first by default, with totals and stats', async () => {
        const a = await list({});
        expect(namesOf(a)).toEqual([...names].reverse());
        expect(a.total_count).toBe(5);
        expect(a.pagination.total).toBe(5);
        expect(a.pagination.page_size).toBe(10);
        expect(a.pagination.next_cursor).toBeNull();
        // Objects: 0+1+2+3+4 = 10; bytes: 100·1 + 200·2 + 300·3 + 400·4 = 3000.
        expect(a.stats).toEqual({ total_objects: 10, total_size_bytes: 3000, avg_objects_per_bucket: 2, avg_size_per_bucket: 600 });
        const delta = a.results.find((r) => r.bucket_name === 'delta')!;
        expect(delta.storage_stats).toEqual({ total_size_bytes: 900, avg_size_bytes: 300, max_size_bytes: 300, min_size_bytes: 300 });
        expect(delta.object_count).toBe(3);
        expect(a.results.find((r) => r.bucket_name === 'alpha')!.storage_stats!.total_size_bytes).toBe(0);
      });

      it('answers an empty body (as generated SDKs send) like {}', async () => {
        const res = await t.call({
          method: 'POST',
          url: '/v1/buckets/list',
          headers: { 'x-namespace': listNs, 'content-type': 'application/json' },
          payload: '',
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().total_count).toBe(5);
      });

      it('filters by name: exact, case-insensitive by default, $in, and operator form', async () => {
        expect(namesOf(await list({ filters: { bucket_name: 'charlie' } }))).toEqual(['charlie']);
        expect(namesOf(await list({ filters: { bucket_name: 'CHARLIE' } }))).toEqual(['charlie']);
        expect((await list({ filters: { bucket_name: 'CHARLIE' }, case_sensitive: true })).total_count).toBe(0);
        const inList = await list({ filters: { bucket_name: { $in: ['alpha', 'echo', 'zulu'] } }, sort: { field: 'bucket_name' } });
        expect(namesOf(inList)).toEqual(['alpha', 'echo']);
        const op = await list({ filters: { AND: [{ field: 'bucket_name', operator: 'starts_with', value: 'd' }] } });
        expect(namesOf(op)).toEqual(['delta']);
      });

      it('filters by id, description, metadata paths and numbers, with AND/OR/NOT', async () => {
        const all = await list({});
        const bravo = all.results.find((r) => r.bucket_name === 'bravo')!;
        expect(namesOf(await list({ filters: { bucket_id: bravo.bucket_id } }))).toEqual(['bravo']);
        expect((await list({ filters: { 'metadata.team': 'search' } })).total_count).toBe(2);
        expect(namesOf(await list({ filters: { 'metadata.nested.level': 'low' }, sort: { field: 'bucket_name' } }))).toEqual([
          'bravo',
          'delta',
        ]);
        expect(namesOf(await list({ filters: { 'metadata.rank': { $gte: 3 } }, sort: { field: 'bucket_name' } }))).toEqual([
          'delta',
          'echo',
        ]);
        const or = await list({
          filters: {
            OR: [
              { field: 'bucket_name', operator: 'eq', value: 'alpha' },
              { field: 'description', operator: 'contains', value: 'odd' },
            ],
          },
          sort: { field: 'bucket_name', direction: 'asc' },
        });
        expect(namesOf(or)).toEqual(['alpha', 'bravo', 'delta']);
        const not = await list({ filters: { NOT: [{ field: 'metadata.team', operator: 'eq', value: 'ingest' }] } });
        expect(not.total_count).toBe(2);
        // Stats cover the match, not the namespace: alpha (0 objects) and bravo (1 object of 100 bytes).
        expect(not.stats).toEqual({ total_objects: 1, total_size_bytes: 100, avg_objects_per_bucket: 0.5, avg_size_per_bucket: 50 });
      });

      it('filters on timestamps', async () => {
        const all = await list({ sort: { field: 'created_at', direction: 'asc' } });
        const cutoff = all.results[2]!.created_at;
        const later = await list({ filters: { created_at: { $gte: cutoff } }, sort: { field: 'created_at', direction: 'asc' } });
        expect(namesOf(later)).toEqual(['charlie', 'delta', 'echo']);
        const bad = await inNs('POST', '/v1/buckets/list', { filters: { created_at: { $gt: 'not a date' } } }, { namespace: listNs });
        expect(expectEnvelope(bad, 400, 'BadRequestError').message).toContain('not a date');
      });

      it('refuses filters and sorts on unknown fields with 422 naming the field', async () => {
        const res = await inNs('POST', '/v1/buckets/list', { filters: { colour: 'red' } }, { namespace: listNs });
        expect(expectEnvelope(res, 422, 'ValidationError').message).toContain('colour');
        const sort = await inNs('POST', '/v1/buckets/list', { sort: { field: 'colour' } }, { namespace: listNs });
        expect(expectEnvelope(sort, 422, 'ValidationError').message).toContain('colour');
        const dir = await inNs('POST', '/v1/buckets/list', { sort: { field: 'bucket_name', direction: 'up' } }, { namespace: listNs });
        expect(expectEnvelope(dir, 422, 'ValidationError').message).toContain('up');
      });

      it('sorts by name, object_count and metadata, either direction', async () => {
        expect(namesOf(await list({ sort: { field: 'bucket_name', direction: 'desc' } }))).toEqual([...names].reverse());
        expect(namesOf(await list({ sort: { field: 'bucket_name' } }))).toEqual(names);
        expect(namesOf(await list({ sort: { field: 'object_count', direction: 'desc' } }))).toEqual([...names].reverse());
        const byRank = await list({ sort: { field: 'metadata.rank', direction: 'desc' } });
        expect(namesOf(byRank)).toEqual([...names].reverse());
      });

      it('searches id, name and description, case-insensitively unless asked', async () => {
        expect(namesOf(await list({ search: 'ARLI' }))).toEqual(['charlie']);
        expect(namesOf(await list({ search: 'odd bucket', sort: { field: 'bucket_name' } }))).toEqual(['bravo', 'delta']);
        expect((await list({ search: 'odd bucket', case_sensitive: true })).total_count).toBe(0);
        expect((await list({ search: 'Odd Bucket', case_sensitive: true })).total_count).toBe(2);
        const echo = (await list({ filters: { bucket_name: 'echo' } })).results[0]!;
        expect(namesOf(await list({ search: echo.bucket_id.slice(4) }))).toEqual(['echo']);
        // LIKE wildcards are literal in a search term.
        expect((await list({ search: '%' })).total_count).toBe(0);
        expect((await list({ search: 'a_p' })).total_count).toBe(0);
        // Search narrows the stats as well.
        expect((await list({ search: 'delta' })).stats).toMatchObject({ total_objects: 3, total_size_bytes: 900 });
      });

      it('pages with the body limit/offset, and every page counts the whole match', async () => {
        const seen: string[] = [];
        for (let offset = 0; offset < 10; offset += 2) {
          const page = await list({ sort: { field: 'bucket_name' }, limit: 2, offset });
          expect(page.total_count).toBe(5);
          expect(page.pagination.page).toBe(offset / 2 + 1);
          seen.push(...namesOf(page));
          if (!page.pagination.next_cursor) break;
        }
        expect(seen).toEqual(names);
        const past = await list({ limit: 2, offset: 50 });
        expect(past.results).toEqual([]);
        expect(past.total_count).toBe(5);
        expect(past.stats!.total_objects).toBe(10);
      });

      it('follows next_cursor to the end', async () => {
        const seen: string[] = [];
        let query = '?limit=2';
        for (let i = 0; i < 5; i++) {
          const page = await list({ sort: { field: 'bucket_name' } }, query);
          seen.push(...namesOf(page));
          if (!page.pagination.next_cursor) break;
          query = `?limit=2&cursor=${page.pagination.next_cursor}`;
        }
        expect(seen).toEqual(names);
      });

      it('query limit/offset win over the body', async () => {
        const page = await list({ sort: { field: 'bucket_name' }, limit: 4, offset: 0 }, '?limit=1&offset=2');
        expect(namesOf(page)).toEqual(['charlie']);
        expect(page.pagination.page_size).toBe(1);
        // Only the query's limit: the body's offset still applies.
        expect(namesOf(await list({ sort: { field: 'bucket_name' }, offset: 3 }, '?limit=1'))).toEqual(['delta']);
      });

      it('refuses bad paging values, naming them', async () => {
        const big = await inNs('POST', '/v1/buckets/list', { limit: 5000 }, { namespace: listNs });
        expect(expectEnvelope(big, 422, 'ValidationError').message).toContain('5000');
        const neg = await inNs('POST', '/v1/buckets/list?offset=-1', {}, { namespace: listNs });
        expect(expectEnvelope(neg, 422, 'ValidationError').message).toContain('-1');
        const cursor = await inNs('POST', '/v1/buckets/list?cursor=garbage', {}, { namespace: listNs });
        expect(expectEnvelope(cursor, 400, 'BadRequestError').message).toContain('garbage');
      });

      it('an empty namespace lists nothing with zero stats', async () => {
        const empty = await createNamespace('bkt_list_empty');
        const a = await list({}, '', empty.namespace_name);
        expect(a).toMatchObject({
          results: [],
          total_count: 0,
          stats: { total_objects: 0, total_size_bytes: 0, avg_objects_per_bucket: 0, avg_size_per_bucket: 0 },
        });
      });
    });

    describe('namespaces', () => {
      it('counts buckets and their objects in the namespace model', async () => {
        const counted = await createNamespace('bkt_counted');
        const fresh = await t.call({ method: 'GET', url: `/v1/namespaces/${counted.namespace_id}` });
        expect(fresh.json()).toMatchObject({ bucket_count: 0, object_count: 0, collection_count: null, document_count: null });
        const a = await createOk('count_a', {}, counted.namespace_name);
        const b = await createOk('count_b', {}, counted.namespace_name);
        await addObjects(a, [1, 2]);
        await addObjects(b, [3, 4, 5]);
        const got = await t.call({ method: 'GET', url: '/v1/namespaces/bkt_counted' });
        expect(got.json()).toMatchObject({ bucket_count: 2, object_count: 5 });
        const listed = await t.call({ method: 'POST', url: '/v1/namespaces/list', payload: { filters: { namespace_name: 'bkt_counted' } } });
        expect(listed.json().results[0]).toMatchObject({ bucket_count: 2, object_count: 5 });
        const patched = await t.call({ method: 'PATCH', url: '/v1/namespaces/bkt_counted', payload: { description: 'd' } });
        expect(patched.json()).toMatchObject({ bucket_count: 2, object_count: 5 });
        await inNs('DELETE', '/v1/buckets/count_b', undefined, { namespace: counted.namespace_name });
        const after = await t.call({ method: 'GET', url: '/v1/namespaces/bkt_counted' });
        expect(after.json()).toMatchObject({ bucket_count: 1, object_count: 2 });
      });

      it('deleting a namespace removes its buckets, their objects and their blobs', async () => {
        const doomed = await createNamespace('bkt_doomed');
        const b = await createOk('doomed_bucket', {}, doomed.namespace_name);
        await addObjects(b, [9]);
        const key = `${t.orgId}/${doomed.namespace_id}/${b.bucket_id}/blob_x`;
        await t.blobs.put(key, Buffer.from('bytes'));
        const del = await t.call({ method: 'DELETE', url: '/v1/namespaces/bkt_doomed' });
        expect(del.statusCode, del.body).toBe(200);
        const rows = await t.db.query<{ buckets: number; objects: number }>(
          `SELECT (SELECT count(*)::int FROM buckets WHERE namespace_id = $1) AS buckets,
                  (SELECT count(*)::int FROM objects WHERE bucket_id = $2) AS objects`,
          [doomed.namespace_id, b.bucket_id],
        );
        expect(rows[0]).toEqual({ buckets: 0, objects: 0 });
        expect(await t.blobs.stat(key)).toBeUndefined();
        // A namespace of the same name made later does not see the old bucket.
        await createNamespace('bkt_doomed');
        expectEnvelope(await inNs('GET', '/v1/buckets/doomed_bucket', undefined, { namespace: 'bkt_doomed' }), 404, 'NotFoundError');
      });
    });
  });
}
