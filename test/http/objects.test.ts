import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db, Queryable } from '../../src/db/db.js';
import { newId } from '../../src/ids/new-id.js';
import { createOrganization } from '../../src/organizations/service.js';
import { createTestContext, expectEnvelope, type TestContext, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

/** 1×1 PNG (the spec's own example). */
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const PNG = Buffer.from(PNG_B64, 'base64');
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
const INLINE_LIMIT = 2048;

const MEDIA_SCHEMA = {
  properties: {
    title: { type: 'string', required: true },
    category: { type: 'string', enum: ['news', 'sport'] },
    year: { type: 'integer' },
    rating: { type: 'number', default: 3 },
    tags: { type: 'array', items: { type: 'string' } },
    photo: { type: 'image' },
    doc: { type: 'pdf' },
    body: { type: 'text' },
    clip: { type: 'video' },
  },
};

interface Blob {
  blob_id: string;
  property: string;
  key_prefix: string | null;
  type: string;
  properties: Record<string, unknown>;
  details: { filename: string | null; size_bytes: number | null; mime_type: string | null; hash: string | null };
}

interface Obj {
  object_id: string;
  bucket_id: string;
  key_prefix: string | null;
  metadata: Record<string, unknown>;
  blobs: Blob[];
  source_details: { type: string; source_id: string }[];
  status: string;
  error: string | null;
  created_at: string;
  updated_at: string;
}

interface BatchAnswer {
  succeeded: Obj[];
  failed: { object_index: number; error: string; error_type: string }[];
  total_requested: number;
  succeeded_count: number;
  failed_count: number;
}

const issues = validationIssues;

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** Every file below `dir` (relative paths, sorted), the temporary-write area included. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.push(path.relative(dir, full));
    }
  };
  walk(dir);
  return out.sort();
}

for (const backend of BACKENDS) {
  describe(`objects (${backend.name})`, () => {
    let t: TestContext;
    const NS = 'obj_tests';
    const buckets: Record<string, { bucket_id: string; bucket_name: string }> = {};

    const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown, key?: string) =>
      t.call({ method, url, payload: payload as Record<string, unknown>, key, headers: { 'x-namespace': NS } });

    const createBucket = async (name: string, schema: unknown, uniqueKey?: unknown) => {
      const res = await call('POST', '/v1/buckets', { bucket_name: name, bucket_schema: schema, unique_key: uniqueKey });
      expect(res.statusCode, res.body).toBe(200);
      buckets[name] = res.json();
      return buckets[name]!;
    };
    const create = (bucket: string, payload: unknown, query = '') => call('POST', `/v1/buckets/${bucket}/objects${query}`, payload);
    const createOk = async (bucket: string, payload: unknown, query = ''): Promise<Obj> => {
      const res = await create(bucket, payload, query);
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };
    const getBucket = async (bucket: string) => {
      const res = await call('GET', `/v1/buckets/${bucket}`);
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as { object_count: number; total_size_bytes: number; last_upload_at: string | null };
    };

    /** Rows and files of the whole test database, to prove that a refused write left nothing behind. */
    const snapshot = async () => {
      const [o] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM objects');
      const [b] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM blobs');
      const [c] = await t.db.query<{ n: string }>('SELECT coalesce(sum(object_count), 0)::text || \'/\' || coalesce(sum(total_size_bytes), 0)::text AS n FROM buckets');
      return { objects: o!.n, blobs: b!.n, counters: c!.n, files: filesUnder(t.blobDir) };
    };
    const expectUnchanged = async (before: Awaited<ReturnType<typeof snapshot>>) => {
      expect(await snapshot()).toEqual(before);
    };

    /** An upload row whose bytes were received, as the uploads feature leaves it (inserted directly). */
    const fakeUpload = async (bucketName: string, bytes: Buffer, mime: string, status = 'COMPLETED') => {
      const bucket = buckets[bucketName]!;
      const id = newId('upl');
      const [row] = await t.db.query<{ organization_id: string; namespace_id: string }>(
        'SELECT organization_id, namespace_id FROM buckets WHERE id = $1',
        [bucket.bucket_id],
      );
      const key = `${row!.organization_id}/${row!.namespace_id}/${bucket.bucket_id}/uploads/${id}`;
      await t.blobs.put(key, bytes);
      await t.db.query(
        `INSERT INTO uploads (id, organization_id, namespace_id, bucket_id, filename, content_type, token_hash, expires_at,
                              status, storage_key, received_size_bytes, received_sha256, detected_mime_type)
         VALUES ($1, $2, $3, $4, 'upload.png', $5, 'x', now() + interval '1 hour', $6, $7, $8, $9, $5)`,
        [id, row!.organization_id, row!.namespace_id, bucket.bucket_id, mime, status, key, bytes.length, sha256(bytes)],
      );
      return { id, key };
    };

    beforeAll(async () => {
      t = await createTestContext(backend, { limits: { inlineBlobMaxBytes: INLINE_LIMIT } });
      const ns = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: { namespace_name: NS, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
      });
      expect(ns.statusCode, ns.body).toBe(200);
      await createBucket('media', MEDIA_SCHEMA);
      await createBucket('required_blob', { properties: { photo: { type: 'image', required: true }, note: { type: 'string' } } });
      const keyed = { properties: { sku: { type: 'string' }, n: { type: 'integer' }, body: { type: 'text' } } };
      await createBucket('keyed', keyed, { fields: ['sku'] });
      await createBucket('keyed_upsert', keyed, { fields: ['sku'], default_policy: 'upsert' });
      await createBucket('keyed_race', keyed, { fields: ['sku'], default_policy: 'insert' });
      await createBucket('batch', keyed, { fields: ['sku'], default_policy: 'insert' });
      await createBucket('plain_batch', MEDIA_SCHEMA);
    });
    afterAll(() => t.close());

    describe('blob data forms', () => {
      it('stores plain text of a text property in the row, with size, hash and defaults applied', async () => {
        const before = await getBucket('media');
        const obj = await createOk('media', {
          key_prefix: '/docs/a',
          metadata: { title: 'Hello', year: 2024 },
          blobs: [{ property: 'body', type: 'text', data: 'Hello, world', metadata: { lang: 'en' }, key_prefix: '/docs/a/body.txt' }],
        });
        expect(obj.object_id).toMatch(/^obj_[0-9a-z]{16}$/);
        expect(obj.bucket_id).toBe(buckets.media!.bucket_id);
        expect(obj.key_prefix).toBe('/docs/a');
        expect(obj.metadata).toEqual({ title: 'Hello', year: 2024, rating: 3 });
        expect(obj.status).toBe('DRAFT');
        expect(obj.error).toBeNull();
        expect(obj.source_details).toEqual([{ type: 'bucket', source_id: buckets.media!.bucket_id }]);
        expect(obj.blobs).toHaveLength(1);
        const blob = obj.blobs[0]!;
        expect(blob.blob_id).toMatch(/^blob_[0-9a-z]{16}$/);
        expect(blob).toMatchObject({ property: 'body', type: 'text', key_prefix: '/docs/a/body.txt' });
        expect(blob.properties).toEqual({ lang: 'en', text: 'Hello, world' });
        expect(blob.details).toEqual({ filename: null, size_bytes: 12, mime_type: 'text/plain', hash: sha256('Hello, world') });
        const [row] = await t.db.query<{ source: string; text_value: string; storage_key: string | null }>(
          'SELECT source, text_value, storage_key FROM blobs WHERE id = $1',
          [blob.blob_id],
        );
        expect(row).toEqual({ source: 'text', text_value: 'Hello, world', storage_key: null });
        const after = await getBucket('media');
        expect(after.object_count).toBe(before.object_count + 1);
        expect(after.total_size_bytes).toBe(before.total_size_bytes + 12);
        expect(after.last_upload_at).not.toBeNull();
      });

      it('keeps an http(s) URL as a reference, fetched later, with its file name', async () => {
        const files = filesUnder(t.blobDir);
        const obj = await createOk('media', {
          metadata: { title: 'by url' },
          blobs: [
            { property: 'clip', type: 'VIDEO', data: 'https://cdn.example.com/videos/intro%20part.mp4?sig=1' },
            { property: 'photo', type: 'image', data: { url: 'http://127.0.0.1:9/p.png' } },
          ],
        });
        expect(obj.blobs.map((b) => [b.property, b.type, b.properties.url, b.details.filename])).toEqual([
          ['clip', 'video', 'https://cdn.example.com/videos/intro%20part.mp4?sig=1', 'intro part.mp4'],
          ['photo', 'image', 'http://127.0.0.1:9/p.png', 'p.png'],
        ]);
        expect(obj.blobs[0]!.details.size_bytes).toBeNull();
        const rows = await t.db.query<{ source: string }>('SELECT source FROM blobs WHERE object_id = $1', [obj.object_id]);
        expect(rows.map((r) => r.source)).toEqual(['url', 'url']);
        expect(filesUnder(t.blobDir)).toEqual(files);
      });

      it('refuses URL schemes it cannot fetch, and strings that are no data for a file property (422 naming the blob)', async () => {
        const before = await snapshot();
        for (const data of ['s3://bucket/key.png', 'ftp://host/file.png', 'just some words']) {
          const res = await create('media', { metadata: { title: 'x' }, blobs: [{ property: 'photo', type: 'image', data }] });
          const error = expectEnvelope(res, 422, 'ValidationError');
          expect(error.message).toContain('photo');
          expect(issues(error)[0]!.location).toEqual(['body', 'blobs', 0, 'data']);
        }
        const s3 = expectEnvelope(
          await create('media', { metadata: { title: 'x' }, blobs: [{ property: 'photo', type: 'image', data: 's3://b/k' }] }),
          422,
          'ValidationError',
        );
        expect(s3.message).toContain('s3:');
        await expectUnchanged(before);
      });

      it('decodes a base64 data URI into the blob store, sniffing its type and recording size and sha256', async () => {
        const obj = await createOk('media', {
          metadata: { title: 'pic' },
          blobs: [{ property: 'photo', type: 'IMAGE', data: `data:image/png;base64,${PNG_B64}` }],
        });
        const blob = obj.blobs[0]!;
        expect(blob.type).toBe('image');
        expect(blob.details).toEqual({ filename: null, size_bytes: PNG.length, mime_type: 'image/png', hash: sha256(PNG) });
        const key = blob.properties.storage_key as string;
        expect(key).toBe(`${t.orgId}/${(await t.db.query<{ namespace_id: string }>('SELECT namespace_id FROM buckets WHERE id = $1', [obj.bucket_id]))[0]!.namespace_id}/${obj.bucket_id}/${blob.blob_id}`);
        expect(fs.readFileSync(path.join(t.blobDir, key))).toEqual(PNG);
      });

      it('decodes {base64, mime_type, filename} and keeps the file name', async () => {
        const obj = await createOk('media', {
          metadata: { title: 'contract' },
          blobs: [{ property: 'doc', type: 'pdf', data: { base64: PDF.toString('base64'), mime_type: 'application/pdf', filename: 'contract.pdf' } }],
        });
        const blob = obj.blobs[0]!;
        expect(blob.details).toEqual({ filename: 'contract.pdf', size_bytes: PDF.length, mime_type: 'application/pdf', hash: sha256(PDF) });
        expect(fs.readFileSync(path.join(t.blobDir, blob.properties.storage_key as string))).toEqual(PDF);
      });

      it('decodes a percent-encoded (non-base64) data URI, keeping a declared text subtype', async () => {
        const obj = await createOk('media', {
          metadata: { title: 'md' },
          blobs: [{ property: 'body', type: 'text', data: 'data:text/markdown,%23%20Title%0Ahello' }],
        });
        const blob = obj.blobs[0]!;
        expect(blob.details.mime_type).toBe('text/markdown');
        expect(fs.readFileSync(path.join(t.blobDir, blob.properties.storage_key as string), 'utf8')).toBe('# Title\nhello');
      });

      it('refuses bytes that do not fit the property type, naming property, declared and detected types', async () => {
        const before = await snapshot();
        const res = await create('media', {
          metadata: { title: 'wrong' },
          blobs: [{ property: 'photo', type: 'image', data: { base64: PDF.toString('base64'), mime_type: 'image/png' } }],
        });
        const error = expectEnvelope(res, 422, 'ValidationError');
        expect(error.message).toContain('"photo"');
        expect(error.message).toContain('image');
        expect(error.message).toContain('application/pdf');
        expect(error.message).toContain('image/png');
        await expectUnchanged(before);
      });

      it('answers 413 naming property and limit for oversize inline data, and writes nothing', async () => {
        const before = await snapshot();
        const big = Buffer.concat([PNG, Buffer.alloc(INLINE_LIMIT)]);
        for (const data of [`data:image/png;base64,${big.toString('base64')}`, { base64: big.toString('base64') }]) {
          const res = await create('media', {
            metadata: { title: 'big' },
            blobs: [
              { property: 'doc', type: 'pdf', data: { base64: PDF.toString('base64') } },
              { property: 'photo', type: 'image', data },
            ],
          });
          const error = expectEnvelope(res, 413, 'PayloadTooLargeError');
          expect(error.message).toContain('"photo"');
          expect(error.message).toContain(String(INLINE_LIMIT));
          expect(error.details).toMatchObject({ property: 'photo', limit_bytes: INLINE_LIMIT });
        }
        const text = expectEnvelope(
          await create('media', { metadata: { title: 'big' }, blobs: [{ property: 'body', type: 'text', data: 'x'.repeat(INLINE_LIMIT + 1) }] }),
          413,
          'PayloadTooLargeError',
        );
        expect(text.message).toContain('"body"');
        await expectUnchanged(before);
      });

      it('answers 422 for malformed base64 and writes nothing, not even the good blobs beside it', async () => {
        const before = await snapshot();
        for (const bad of ['iVBOR!!w0KGgo', 'abcde', 'QUJD=A', '====']) {
          const res = await create('media', {
            metadata: { title: 'bad' },
            blobs: [
              { property: 'doc', type: 'pdf', data: { base64: PDF.toString('base64') } },
              { property: 'photo', type: 'image', data: `data:image/png;base64,${bad}` },
            ],
          });
          const error = expectEnvelope(res, 422, 'ValidationError');
          expect(error.message).toContain('base64');
          expect(issues(error).map((i) => i.location)).toEqual([['body', 'blobs', 1, 'data']]);
        }
        const dict = expectEnvelope(
          await create('media', { metadata: { title: 'bad' }, blobs: [{ property: 'photo', type: 'image', data: { base64: 'not base64 at all?' } }] }),
          422,
          'ValidationError',
        );
        expect(issues(dict)[0]!.location).toEqual(['body', 'blobs', 0, 'data', 'base64']);
        await expectUnchanged(before);
      });

      it('refuses data and upload_id together, neither of them, and other data shapes', async () => {
        const cases: [unknown, string][] = [
          [{ property: 'photo', type: 'image', data: `data:image/png;base64,${PNG_B64}`, upload_id: 'upl_abc' }, 'upload_id'],
          [{ property: 'photo', type: 'image' }, 'data'],
          [{ property: 'photo', type: 'image', data: 42 }, 'data'],
          [{ property: 'body', type: 'text', data: ['a'] }, 'data'],
          [{ property: 'photo', type: 'image', data: 'data:image/png;base64' }, 'data'],
          [{ property: 'photo', type: 'image', data: { mime_type: 'image/png' } }, 'data'],
        ];
        for (const [blob, field] of cases) {
          const error = expectEnvelope(await create('media', { metadata: { title: 'x' }, blobs: [blob] }), 422, 'ValidationError');
          expect(issues(error)[0]!.location, JSON.stringify(blob)).toEqual(['body', 'blobs', 0, field]);
        }
      });

      it('refuses blob metadata that uses the keys the blob properties carry', async () => {
        const error = expectEnvelope(
          await create('media', { metadata: { title: 'x' }, blobs: [{ property: 'body', type: 'text', data: 'hi', metadata: { url: 'x' } }] }),
          422,
          'ValidationError',
        );
        expect(issues(error)[0]!.location).toEqual(['body', 'blobs', 0, 'metadata', 'url']);
      });

      it('references an upload by upload_id without copying its bytes', async () => {
        const up = await fakeUpload('media', PNG, 'image/png');
        const files = filesUnder(t.blobDir);
        const obj = await createOk('media', { metadata: { title: 'uploaded' }, blobs: [{ property: 'photo', type: 'image', upload_id: up.id }] });
        const blob = obj.blobs[0]!;
        expect(blob.properties.storage_key).toBe(up.key);
        expect(blob.details).toEqual({ filename: 'upload.png', size_bytes: PNG.length, mime_type: 'image/png', hash: sha256(PNG) });
        expect(filesUnder(t.blobDir)).toEqual(files);
      });

      it('refuses an upload whose bytes do not fit the property, or that is unknown, leaving inline files unwritten', async () => {
        const up = await fakeUpload('media', PDF, 'application/pdf');
        const before = await snapshot();
        const mismatch = await create('media', {
          metadata: { title: 'x' },
          blobs: [
            { property: 'doc', type: 'pdf', data: { base64: PDF.toString('base64') } },
            { property: 'photo', type: 'image', upload_id: up.id },
          ],
        });
        const error = expectEnvelope(mismatch, 422, 'ValidationError');
        expect(error.message).toContain(up.id);
        expect(issues(error)[0]!.location).toEqual(['body', 'blobs', 1, 'upload_id']);
        // The inline PDF was written before the transaction that found the missing upload: it is removed.
        const missing = await create('media', {
          metadata: { title: 'x' },
          blobs: [
            { property: 'doc', type: 'pdf', data: { base64: PDF.toString('base64') } },
            { property: 'photo', type: 'image', upload_id: 'upl_doesnotexist00' },
          ],
        });
        expect(expectEnvelope(missing, 404, 'NotFoundError').message).toContain('upl_doesnotexist00');
        await expectUnchanged(before);
      });
    });

    describe('schema violations', () => {
      it('names every problem of metadata and blobs in one 422', async () => {
        const before = await snapshot();
        const res = await create('media', {
          metadata: { category: 'cooking', year: 'soon', extra: 1 },
          blobs: [
            { property: 'nope', type: 'image', data: 'https://x.test/a.png' },
            { property: 'photo', type: 'video', data: 'https://x.test/a.png' },
          ],
        });
        const error = expectEnvelope(res, 422, 'ValidationError');
        const where = issues(error).map((i) => i.location.join('.'));
        expect(where).toEqual(
          expect.arrayContaining([
            'body.metadata.category',
            'body.metadata.year',
            'body.metadata.extra',
            'body.metadata.title',
            'body.blobs.0.property',
            'body.blobs.1.type',
          ]),
        );
        expect(error.message).toContain('"nope"');
        expect(error.message).toContain('cooking');
        await expectUnchanged(before);
      });

      it('refuses a blob sent as metadata and a blob type outside the enum', async () => {
        const asMeta = expectEnvelope(await create('media', { metadata: { title: 'x', photo: 'a.png' } }), 422, 'ValidationError');
        expect(issues(asMeta)[0]!.location).toEqual(['body', 'metadata', 'photo']);
        const badType = expectEnvelope(
          await create('media', { metadata: { title: 'x' }, blobs: [{ property: 'photo', type: 'gif', data: 'https://x.test/a' }] }),
          422,
          'ValidationError',
        );
        expect(issues(badType)[0]!.location).toEqual(['body', 'blobs', 0, 'type']);
      });

      it('treats names of Object.prototype as plain unknown fields', async () => {
        const error = expectEnvelope(await create('media', { metadata: { title: 'x', constructor: 1, toString: 'y' } }), 422, 'ValidationError');
        expect(issues(error).map((i) => [i.type, i.location.join('.')])).toEqual([
          ['unknown_field', 'body.metadata.constructor'],
          ['unknown_field', 'body.metadata.toString'],
        ]);
      });

      it('requires required blob properties', async () => {
        const error = expectEnvelope(await create('required_blob', { metadata: { note: 'n' } }), 422, 'ValidationError');
        expect(error.message).toContain('"photo"');
        await createOk('required_blob', { blobs: [{ property: 'photo', type: 'image', data: 'https://x.test/p.png' }] });
      });

      it('answers 400 for auto_process=true when no collection reads the bucket (writing nothing), and 404 for an unknown bucket', async () => {
        const before = await snapshot();
        const error = expectEnvelope(await create('media', { metadata: { title: 'x' } }, '?auto_process=true'), 400, 'BadRequestError');
        expect(error.message).toContain('auto_process');
        expect(error.message).toContain('no enabled collection reads bucket "media"');
        await expectUnchanged(before);
        expectEnvelope(await create('no_such_bucket', { metadata: { title: 'x' } }), 404, 'NotFoundError');
        const other = await t.call({ method: 'POST', url: `/v1/buckets/${buckets.media!.bucket_id}/objects`, payload: {}, headers: {} });
        expectEnvelope(other, 400, 'BadRequestError');
      });

      it('needs write permission to create and delete permission to delete', async () => {
        const reader = await t.key(['read']);
        const res = await call('POST', '/v1/buckets/media/objects', { metadata: { title: 'x' } }, reader);
        expectEnvelope(res, 403, 'ForbiddenError');
      });

      it('refuses writes to a locked bucket with 403', async () => {
        await createBucket('locked', { properties: { note: { type: 'string' } } });
        const obj = await createOk('locked', { metadata: { note: 'a' } });
        await t.db.query('UPDATE buckets SET is_locked = true WHERE id = $1', [buckets.locked!.bucket_id]);
        expect(expectEnvelope(await create('locked', { metadata: { note: 'b' } }), 403, 'ForbiddenError').message).toContain('locked');
        expectEnvelope(await call('PATCH', `/v1/buckets/locked/objects/${obj.object_id}`, { note: 'c' }), 403, 'ForbiddenError');
        expectEnvelope(await call('DELETE', `/v1/buckets/locked/objects/${obj.object_id}`), 403, 'ForbiddenError');
        expect((await call('GET', `/v1/buckets/locked/objects/${obj.object_id}`)).statusCode).toBe(200);
      });
    });

    describe('unique keys and policies', () => {
      const keyedCount = async (bucket: string, sku: string) => {
        const rows = await t.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM objects o JOIN buckets b ON b.id = o.bucket_id WHERE b.name = $1 AND o.metadata->>'sku' = $2`,
          [bucket, sku],
        );
        return rows[0]!.n;
      };

      it('answers 400 naming the policy when neither ?policy= nor default_policy is given', async () => {
        const error = expectEnvelope(await create('keyed', { metadata: { sku: 'A' } }), 400, 'BadRequestError');
        expect(error.message).toContain('policy');
        expect(error.details).toMatchObject({ missing: 'policy' });
        expectEnvelope(await create('keyed', { metadata: { sku: 'A' } }, '?policy=sometimes'), 422, 'ValidationError');
      });

      it('insert: creates, then 409 for the same key', async () => {
        const first = await createOk('keyed', { metadata: { sku: 'A', n: 1 } }, '?policy=insert');
        const before = await snapshot();
        const again = await create('keyed', { metadata: { sku: 'A', n: 2 }, blobs: [{ property: 'body', type: 'text', data: 'data:text/plain,hi' }] }, '?policy=insert');
        const error = expectEnvelope(again, 409, 'AlreadyExistsError');
        expect(error.message).toContain('"A"');
        expect(error.message).toContain(first.object_id);
        await expectUnchanged(before);
        expect(await keyedCount('keyed', 'A')).toBe(1);
      });

      it('update: 404 when the key is missing; otherwise replaces blobs and metadata of the same object', async () => {
        expect(expectEnvelope(await create('keyed', { metadata: { sku: 'U' } }, '?policy=update'), 404, 'NotFoundError').message).toContain('"U"');
        const first = await createOk(
          'keyed',
          { key_prefix: '/one', metadata: { sku: 'U', n: 1 }, blobs: [{ property: 'body', type: 'text', data: 'data:text/plain,first version' }] },
          '?policy=insert',
        );
        const oldKey = first.blobs[0]!.properties.storage_key as string;
        expect(fs.existsSync(path.join(t.blobDir, oldKey))).toBe(true);
        const bucketBefore = await getBucket('keyed');
        const updated = await createOk(
          'keyed',
          { key_prefix: '/two', metadata: { sku: 'U' }, blobs: [{ property: 'body', type: 'text', data: 'second' }] },
          '?policy=update',
        );
        expect(updated.object_id).toBe(first.object_id);
        expect(updated.key_prefix).toBe('/two');
        expect(updated.metadata).toEqual({ sku: 'U' });
        expect(updated.blobs.map((b) => b.properties.text)).toEqual(['second']);
        expect(fs.existsSync(path.join(t.blobDir, oldKey))).toBe(false);
        const bucketAfter = await getBucket('keyed');
        expect(bucketAfter.object_count).toBe(bucketBefore.object_count);
        expect(bucketAfter.total_size_bytes).toBe(bucketBefore.total_size_bytes - 'first version'.length + 'second'.length);
        expect(await keyedCount('keyed', 'U')).toBe(1);
      });

      it('upsert: creates a new key, updates an existing one (and the bucket default policy applies)', async () => {
        const created = await createOk('keyed', { metadata: { sku: 'S', n: 1 } }, '?policy=upsert');
        const again = await createOk('keyed', { metadata: { sku: 'S', n: 2 } }, '?policy=upsert');
        expect(again.object_id).toBe(created.object_id);
        expect(again.metadata).toEqual({ sku: 'S', n: 2 });
        const viaDefault = await createOk('keyed_upsert', { metadata: { sku: 'D', n: 1 } });
        const viaDefault2 = await createOk('keyed_upsert', { metadata: { sku: 'D', n: 5 } });
        expect(viaDefault2.object_id).toBe(viaDefault.object_id);
        // ?policy= overrides the default.
        expectEnvelope(await create('keyed_upsert', { metadata: { sku: 'D' } }, '?policy=insert'), 409, 'AlreadyExistsError');
        expect(await keyedCount('keyed_upsert', 'D')).toBe(1);
      });

      it('needs a value for every key field', async () => {
        for (const metadata of [{ n: 1 }, { sku: '' }, { sku: null }, { sku: 'x'.repeat(256) }]) {
          const error = expectEnvelope(await create('keyed', { metadata }, '?policy=upsert'), 422, 'ValidationError');
          expect(issues(error).map((i) => i.location)).toContainEqual(['body', 'metadata', 'sku']);
        }
      });

      it('two concurrent inserts of one key: one 200, one 409, one row', async () => {
        for (let round = 0; round < 3; round++) {
          const sku = `race-${round}`;
          const payload = (n: number) => ({ metadata: { sku, n }, blobs: [{ property: 'body', type: 'text', data: `data:text/plain,v${n}` }] });
          const before = filesUnder(t.blobDir).length;
          const answers = await Promise.all([create('keyed_race', payload(1)), create('keyed_race', payload(2))]);
          expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 409]);
          expect(await keyedCount('keyed_race', sku)).toBe(1);
          // The loser's file was removed: exactly one new file.
          expect(filesUnder(t.blobDir).length).toBe(before + 1);
        }
      });

      it('two concurrent upserts of one new key: both 200, one object', async () => {
        const answers = await Promise.all([
          create('keyed_upsert', { metadata: { sku: 'UP', n: 1 } }),
          create('keyed_upsert', { metadata: { sku: 'UP', n: 2 } }),
        ]);
        expect(answers.map((a) => a.statusCode)).toEqual([200, 200]);
        expect(answers[0]!.json().object_id).toBe(answers[1]!.json().object_id);
        expect(await keyedCount('keyed_upsert', 'UP')).toBe(1);
      });
    });

    describe('batch', () => {
      it('creates the good objects and reports each bad one with its index and error type', async () => {
        const before = await getBucket('plain_batch');
        const res = await call('POST', '/v1/buckets/plain_batch/objects/batch', {
          objects: [
            { metadata: { title: 'one' }, blobs: [{ property: 'photo', type: 'image', data: `data:image/png;base64,${PNG_B64}` }] },
            { metadata: { title: 'two', year: 'never' } },
            { metadata: { title: 'three' }, blobs: [{ type: 'image', data: 'https://x.test/a.png' }] },
            { metadata: { title: 'four' }, blobs: [{ property: 'photo', type: 'image', data: { base64: PNG.toString('base64') + 'A'.repeat(4000) } }] },
            { metadata: { title: 'five' }, blobs: [{ property: 'body', type: 'text', data: 'five' }] },
            'not an object',
          ],
        });
        expect(res.statusCode, res.body).toBe(200);
        const answer: BatchAnswer = res.json();
        expect(answer.total_requested).toBe(6);
        expect(answer.succeeded_count).toBe(2);
        expect(answer.failed_count).toBe(4);
        expect(answer.succeeded.map((o) => o.metadata.title)).toEqual(['one', 'five']);
        expect(answer.failed.map((f) => [f.object_index, f.error_type])).toEqual([
          [1, 'ValidationError'],
          [2, 'ValidationError'],
          [3, 'PayloadTooLargeError'],
          [5, 'ValidationError'],
        ]);
        expect(answer.failed[0]!.error).toContain('body.objects.1.metadata.year');
        expect(answer.failed[1]!.error).toContain('body.objects.2.blobs.0.property');
        const png = answer.succeeded[0]!.blobs[0]!;
        expect(fs.readFileSync(path.join(t.blobDir, png.properties.storage_key as string))).toEqual(PNG);
        const after = await getBucket('plain_batch');
        expect(after.object_count).toBe(before.object_count + 2);
        expect(after.total_size_bytes).toBe(before.total_size_bytes + PNG.length + 4);
        // Each answer is what GET returns.
        const got = await call('GET', `/v1/buckets/plain_batch/objects/${answer.succeeded[0]!.object_id}`);
        expect(got.json()).toEqual(answer.succeeded[0]);
      });

      it('refuses more than 100 objects, and a body without objects', async () => {
        const objects = Array.from({ length: 101 }, () => ({ metadata: { title: 'x' } }));
        expectEnvelope(await call('POST', '/v1/buckets/plain_batch/objects/batch', { objects }), 422, 'ValidationError');
        expectEnvelope(await call('POST', '/v1/buckets/plain_batch/objects/batch', {}), 422, 'ValidationError');
        const empty = await call('POST', '/v1/buckets/plain_batch/objects/batch', { objects: [] });
        expect(empty.json()).toEqual({ succeeded: [], failed: [], total_requested: 0, succeeded_count: 0, failed_count: 0 });
      });

      it('applies unique keys per object: existing keys and repeats within the batch fail, the rest are written', async () => {
        await createOk('batch', { metadata: { sku: 'B0' } });
        const before = filesUnder(t.blobDir).length;
        const res = await call('POST', '/v1/buckets/batch/objects/batch', {
          objects: [
            { metadata: { sku: 'B1' }, blobs: [{ property: 'body', type: 'text', data: 'data:text/plain,b1' }] },
            { metadata: { sku: 'B0' }, blobs: [{ property: 'body', type: 'text', data: 'data:text/plain,b0' }] },
            { metadata: { sku: 'B1' }, blobs: [{ property: 'body', type: 'text', data: 'data:text/plain,b1 again' }] },
            { metadata: { sku: 'B2' } },
          ],
        });
        const answer: BatchAnswer = res.json();
        expect(answer.succeeded.map((o) => o.metadata.sku)).toEqual(['B1', 'B2']);
        expect(answer.failed.map((f) => [f.object_index, f.error_type])).toEqual([
          [1, 'AlreadyExistsError'],
          [2, 'AlreadyExistsError'],
        ]);
        expect(answer.failed[1]!.error).toContain('object_index 0');
        // Only B1's file stays: the refused B0 had its file written and then removed.
        expect(filesUnder(t.blobDir).length).toBe(before + 1);

        const upsert = await call('POST', '/v1/buckets/batch/objects/batch?policy=upsert', {
          objects: [{ metadata: { sku: 'B0', n: 7 } }, { metadata: { sku: 'B9' } }],
        });
        const up: BatchAnswer = upsert.json();
        expect(up.succeeded_count).toBe(2);
        expect(up.succeeded[0]!.metadata).toEqual({ sku: 'B0', n: 7 });
        const update = await call('POST', '/v1/buckets/batch/objects/batch?policy=update', {
          objects: [{ metadata: { sku: 'B9', n: 1 } }, { metadata: { sku: 'nope' } }],
        });
        const upd: BatchAnswer = update.json();
        expect(upd.succeeded.map((o) => o.metadata)).toEqual([{ sku: 'B9', n: 1 }]);
        expect(upd.failed).toEqual([{ object_index: 1, error: expect.stringContaining('"nope"'), error_type: 'NotFoundError' }]);
      });

      it('answers 400 for auto_process=true when no collection reads the bucket, writing nothing', async () => {
        const before = await snapshot();
        const res = await call('POST', '/v1/buckets/plain_batch/objects/batch?auto_process=true', { objects: [{ metadata: { title: 'x' } }] });
        expect(expectEnvelope(res, 400, 'BadRequestError').message).toContain('plain_batch');
        await expectUnchanged(before);
      });
    });

    describe('set-based writes and reads', () => {
      /** Counts the statements run while `fn` runs, those inside transactions included (real storage, only counted). */
      const countStatements = async (fn: () => Promise<void>): Promise<number> => {
        const db = t.db as { -readonly [K in keyof Db]: Db[K] };
        const { query, transaction } = db;
        let n = 0;
        db.query = ((sql: string, params?: unknown[]) => {
          n++;
          return query.call(t.db, sql, params);
        }) as Db['query'];
        db.transaction = (<T>(work: (tx: Queryable) => Promise<T>) =>
          transaction.call(t.db, (tx: Queryable) =>
            work({
              query: ((sql: string, params?: unknown[]) => {
                n++;
                return tx.query(sql, params);
              }) as Queryable['query'],
              exec: (script: string) => tx.exec(script),
            }),
          )) as Db['transaction'];
        try {
          await fn();
        } finally {
          db.query = query;
          db.transaction = transaction;
        }
        return n;
      };
      const objects = (count: number, tag: string) =>
        Array.from({ length: count }, (_, i) => ({
          metadata: { sku: `${tag}-${i}` },
          blobs: [{ property: 'body', type: 'text', data: `text ${i}` }],
        }));
      const batch = async (count: number, tag: string, query = '') => {
        const res = await call('POST', `/v1/buckets/batch/objects/batch${query}`, { objects: objects(count, tag) });
        expect(res.json().succeeded_count, res.body).toBe(count);
      };

      it('a batch costs the same number of statements for 2 objects as for 40', async () => {
        const small = await countStatements(() => batch(2, 'small'));
        const large = await countStatements(() => batch(40, 'large'));
        expect(large).toBe(small);
        // Upserting existing keys (update path: old blobs deleted, rows updated) is set-based too.
        const smallUpsert = await countStatements(() => batch(2, 'small', '?policy=upsert'));
        const largeUpsert = await countStatements(() => batch(40, 'large', '?policy=upsert'));
        expect(largeUpsert).toBe(smallUpsert);
      });

      it('a list page costs the same number of statements for 2 objects as for 40, blobs included', async () => {
        const page = async (limit: number) => {
          const res = await call('POST', `/v1/buckets/batch/objects/list?limit=${limit}`, { filters: { 'metadata.sku': { $regex: '^large' } } });
          expect(res.json().results).toHaveLength(limit);
          expect(res.json().results[0].blobs).toHaveLength(1);
        };
        expect(await countStatements(() => page(40))).toBe(await countStatements(() => page(2)));
      });
    });

    it('describes the object routes in the OpenAPI document', async () => {
      const res = await t.call({ method: 'GET', url: '/openapi.json', key: null });
      expect(res.statusCode, res.body).toBe(200);
      const doc = res.json() as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } }>> };
      const base = '/v1/buckets/{bucket_identifier}/objects';
      const body = (p: string, m: string) => Object.keys(doc.paths[p]?.[m]?.requestBody?.content['application/json']?.schema.properties ?? {});
      expect(body(base, 'post')).toEqual(expect.arrayContaining(['key_prefix', 'metadata', 'blobs', 'skip_duplicates']));
      expect(body(`${base}/batch`, 'post')).toEqual(['objects']);
      expect(body(`${base}/list`, 'post')).toEqual(expect.arrayContaining(['filters', 'sort', 'search', 'select']));
      expect(Object.keys(doc.paths[`${base}/{object_identifier}`] ?? {})).toEqual(expect.arrayContaining(['get', 'put', 'patch', 'delete']));
    });

    describe('get, update, patch, delete', () => {
      let obj: Obj;
      beforeAll(async () => {
        obj = await createOk('media', {
          key_prefix: '/crud',
          metadata: { title: 'crud', year: 2020, tags: ['a'] },
          blobs: [
            { property: 'photo', type: 'image', data: `data:image/png;base64,${PNG_B64}` },
            { property: 'body', type: 'text', data: 'keep me' },
          ],
        });
      });

      it('GET answers the object by id, by bucket name or id; 404 elsewhere', async () => {
        const byName = await call('GET', `/v1/buckets/media/objects/${obj.object_id}`);
        expect(byName.statusCode).toBe(200);
        expect(byName.json()).toEqual(obj);
        const byId = await call('GET', `/v1/buckets/${obj.bucket_id}/objects/${obj.object_id}?return_presigned_urls=true`);
        expect(byId.json()).toEqual(obj);
        expectEnvelope(await call('GET', `/v1/buckets/media/objects/obj_nothere`), 404, 'NotFoundError');
        expectEnvelope(await call('GET', `/v1/buckets/keyed/objects/${obj.object_id}`), 404, 'NotFoundError');
      });

      it('never shows an object to another organization', async () => {
        const other = await createOrganization(t.db, `other-${Date.now()}`, 'other@test.local');
        await t.call({
          method: 'POST',
          url: '/v1/namespaces',
          key: other.adminKey,
          payload: { namespace_name: NS, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
        });
        const headers = { 'x-namespace': NS };
        const url = `/v1/buckets/${obj.bucket_id}/objects/${obj.object_id}`;
        for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
          const res = await t.call({ method, url, key: other.adminKey, headers, payload: method === 'PATCH' ? { title: 'x' } : undefined });
          expectEnvelope(res, 404, 'NotFoundError');
        }
        expect((await call('GET', url)).statusCode).toBe(200);
      });

      it('PUT replaces blobs of the properties sent, keeps the others, merges metadata', async () => {
        const oldPhoto = obj.blobs.find((b) => b.property === 'photo')!;
        const oldFile = path.join(t.blobDir, oldPhoto.properties.storage_key as string);
        expect(fs.existsSync(oldFile)).toBe(true);
        const before = await getBucket('media');
        const res = await call('PUT', `/v1/buckets/media/objects/${obj.object_id}`, {
          key_prefix: '/crud2',
          metadata: { year: 2021, category: 'news' },
          blobs: [{ property: 'photo', type: 'image', data: { base64: PNG_B64, filename: 'new.png' } }],
        });
        expect(res.statusCode, res.body).toBe(200);
        const updated: Obj = res.json();
        expect(updated.object_id).toBe(obj.object_id);
        expect(updated.key_prefix).toBe('/crud2');
        expect(updated.metadata).toEqual({ title: 'crud', year: 2021, tags: ['a'], category: 'news', rating: 3 });
        expect(updated.blobs.map((b) => b.property).sort()).toEqual(['body', 'photo']);
        const photo = updated.blobs.find((b) => b.property === 'photo')!;
        expect(photo.blob_id).not.toBe(oldPhoto.blob_id);
        expect(photo.details.filename).toBe('new.png');
        expect(updated.blobs.find((b) => b.property === 'body')!.properties.text).toBe('keep me');
        expect(fs.existsSync(oldFile)).toBe(false);
        expect(fs.existsSync(path.join(t.blobDir, photo.properties.storage_key as string))).toBe(true);
        expect(Date.parse(updated.updated_at)).toBeGreaterThan(Date.parse(obj.updated_at));
        expect(updated.created_at).toBe(obj.created_at);
        expect((await getBucket('media')).total_size_bytes).toBe(before.total_size_bytes);
        obj = updated;
      });

      it('PUT that breaks the schema answers 422 and leaves the object and the blob directory as they were', async () => {
        const before = await snapshot();
        const res = await call('PUT', `/v1/buckets/media/objects/${obj.object_id}`, {
          metadata: { year: 'later' },
          blobs: [{ property: 'photo', type: 'image', data: `data:image/png;base64,${PNG_B64}` }],
        });
        expect(issues(expectEnvelope(res, 422, 'ValidationError'))[0]!.location).toEqual(['body', 'metadata', 'year']);
        await expectUnchanged(before);
        expect((await call('GET', `/v1/buckets/media/objects/${obj.object_id}`)).json()).toEqual(obj);
      });

      it('PATCH merges flat fields and metadata, sets key_prefix, validates', async () => {
        const res = await call('PATCH', `/v1/buckets/media/objects/${obj.object_id}`, {
          key_prefix: '/patched',
          category: 'sport',
          metadata: { tags: ['b', 'c'] },
        });
        expect(res.statusCode, res.body).toBe(200);
        const patched: Obj = res.json();
        expect(patched.key_prefix).toBe('/patched');
        expect(patched.metadata).toEqual({ ...obj.metadata, category: 'sport', tags: ['b', 'c'] });
        expect(patched.blobs).toEqual(obj.blobs);
        const bad = expectEnvelope(await call('PATCH', `/v1/buckets/media/objects/${obj.object_id}`, { year: 1.5, colour: 'red' }), 422, 'ValidationError');
        expect(issues(bad).map((i) => i.location.join('.')).sort()).toEqual(['body.metadata.colour', 'body.metadata.year']);
        expectEnvelope(await call('PATCH', `/v1/buckets/media/objects/obj_nothere`, { title: 'x' }), 404, 'NotFoundError');
        obj = patched;
      });

      it('PATCH and PUT keep unique keys unique', async () => {
        const a = await createOk('keyed', { metadata: { sku: 'PA' } }, '?policy=insert');
        await createOk('keyed', { metadata: { sku: 'PB' } }, '?policy=insert');
        expectEnvelope(await call('PATCH', `/v1/buckets/keyed/objects/${a.object_id}`, { sku: 'PB' }), 409, 'AlreadyExistsError');
        const moved = await call('PATCH', `/v1/buckets/keyed/objects/${a.object_id}`, { sku: 'PC' });
        expect(moved.json().metadata.sku).toBe('PC');
        expect((await createOk('keyed', { metadata: { sku: 'PA' } }, '?policy=insert')).object_id).not.toBe(a.object_id);
      });

      it('DELETE removes rows and owned files, keeps upload bytes, moves the counters', async () => {
        const up = await fakeUpload('media', PNG, 'image/png');
        const target = await createOk('media', {
          metadata: { title: 'doomed' },
          blobs: [
            { property: 'photo', type: 'image', upload_id: up.id },
            { property: 'doc', type: 'pdf', data: { base64: PDF.toString('base64') } },
          ],
        });
        const docFile = path.join(t.blobDir, target.blobs[1]!.properties.storage_key as string);
        expect(fs.existsSync(docFile)).toBe(true);
        const before = await getBucket('media');
        const res = await call('DELETE', `/v1/buckets/media/objects/${target.object_id}`);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toEqual({
          success: true,
          message: expect.stringContaining(target.object_id),
          object_id: target.object_id,
          bucket_id: target.bucket_id,
        });
        expect(fs.existsSync(docFile)).toBe(false);
        expect(fs.readFileSync(path.join(t.blobDir, up.key))).toEqual(PNG);
        const rows = await t.db.query('SELECT 1 FROM blobs WHERE object_id = $1', [target.object_id]);
        expect(rows).toHaveLength(0);
        const after = await getBucket('media');
        expect(after.object_count).toBe(before.object_count - 1);
        expect(after.total_size_bytes).toBe(before.total_size_bytes - PNG.length - PDF.length);
        expectEnvelope(await call('DELETE', `/v1/buckets/media/objects/${target.object_id}`), 404, 'NotFoundError');
        const reader = await t.key(['read', 'write']);
        expectEnvelope(await call('DELETE', `/v1/buckets/media/objects/${obj.object_id}`, undefined, reader), 403, 'ForbiddenError');
      });

      it('keeps the bucket counters equal to the rows', async () => {
        const rows = await t.db.query<{ id: string; object_count: number; total_size_bytes: number; n: number; bytes: number; blob_bytes: number }>(
          `SELECT b.id, b.object_count, b.total_size_bytes,
                  (SELECT count(*)::int FROM objects o WHERE o.bucket_id = b.id) AS n,
                  (SELECT coalesce(sum(size_bytes), 0)::int FROM objects o WHERE o.bucket_id = b.id) AS bytes,
                  (SELECT coalesce(sum(size_bytes), 0)::int FROM blobs x WHERE x.bucket_id = b.id) AS blob_bytes
           FROM buckets b`,
        );
        for (const r of rows) {
          expect(r.object_count, r.id).toBe(r.n);
          expect(r.total_size_bytes, r.id).toBe(r.bytes);
          expect(r.bytes, r.id).toBe(r.blob_bytes);
        }
      });

      it('leaves no file without its row and no stored blob row without its file', async () => {
        const keys = await t.db.query<{ storage_key: string }>("SELECT DISTINCT storage_key FROM blobs WHERE source = 'stored'");
        const uploadKeys = await t.db.query<{ storage_key: string }>('SELECT storage_key FROM uploads');
        const expected = new Set([...keys, ...uploadKeys].map((r) => r.storage_key));
        expect(filesUnder(t.blobDir).filter((f) => !f.startsWith('.tmp'))).toEqual([...expected].sort());
        expect(filesUnder(path.join(t.blobDir, '.tmp'))).toEqual([]);
      });
    });
  });
}
