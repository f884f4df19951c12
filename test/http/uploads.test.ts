import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/errors/registry.js';
import { buildApp } from '../../src/http/app.js';
import { randomBase36 } from '../../src/ids/new-id.js';
import { createOrganization } from '../../src/organizations/service.js';
import { takeUploadedBlob } from '../../src/uploads/service.js';
import { createTestContext, expectEnvelope, type TestContext, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const UPLOAD_LIMIT = 1_000_000;
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(120, 7)]);

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** Every file under `dir`, relative to it, including the blob store's temporary directory. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

interface Upload {
  upload_id: string;
  bucket_id: string;
  filename: string;
  content_type: string;
  file_size_bytes: number | null;
  presigned_url: string | null;
  presigned_url_expiration: number;
  s3_key: string;
  status: string;
  metadata: Record<string, unknown>;
  create_object_on_confirm: boolean;
  object_metadata: Record<string, unknown> | null;
  blob_property: string | null;
  blob_type: string | null;
  file_hash: string | null;
  skip_duplicates: boolean;
  is_duplicate: boolean;
  duplicate_of_upload_id: string | null;
  skipped_unique_key: boolean;
  existing_object_id: string | null;
  message: string | null;
  created_at: string;
  expires_at: string;
  completed_at: string | null;
  verified_at: string | null;
  etag: string | null;
  object_id: string | null;
}

interface Confirmed {
  upload_id: string;
  status: string;
  etag: string | null;
  file_size_bytes: number | null;
  file_hash: string | null;
  verified_at: string | null;
  completed_at: string | null;
  object_id: string | null;
  task_id: string | null;
  message: string | null;
}

const issues = validationIssues;

for (const backend of BACKENDS) {
  describe(`uploads (${backend.name})`, () => {
    let t: TestContext;
    let nsId: string;
    let media: string;
    let skus: string;
    const ns = { 'x-namespace': 'uploads_ns' };

    const insertBucket = async (name: string, schema: unknown, uniqueKey: unknown = null): Promise<string> => {
      const id = `bkt_${randomBase36(16)}`;
      await t.db.query(
        'INSERT INTO buckets (id, organization_id, namespace_id, name, bucket_schema, unique_key) VALUES ($1, $2, $3, $4, $5, $6)',
        [id, t.orgId, nsId, name, JSON.stringify(schema), uniqueKey === null ? null : JSON.stringify(uniqueKey)],
      );
      return id;
    };

    beforeAll(async () => {
      t = await createTestContext(backend, { limits: { uploadMaxBytes: UPLOAD_LIMIT } });
      const res = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: { namespace_name: 'uploads_ns', feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
      });
      expect(res.statusCode, res.body).toBe(200);
      nsId = res.json().namespace_id;
      media = await insertBucket('media', {
        properties: {
          image: { type: 'image' },
          notes: { type: 'text' },
          title: { type: 'string' },
          rating: { type: 'integer' },
        },
      });
      skus = await insertBucket('skus', { properties: { sku: { type: 'string' }, photo: { type: 'image' } } }, { fields: ['sku'] });
    });
    afterAll(() => t.close());

    const create = (payload: Record<string, unknown>, bucket = 'media', headers: Record<string, string> = ns) =>
      t.call({ method: 'POST', url: `/v1/buckets/${bucket}/uploads`, payload, headers });
    const createOk = async (payload: Record<string, unknown>, bucket = 'media'): Promise<Upload> => {
      const res = await create(payload, bucket);
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };
    /** The path and query of an upload URL, for `app.inject`. */
    const local = (url: string): string => {
      const u = new URL(url);
      return `${u.pathname}${u.search}`;
    };
    const put = (url: string, payload: Buffer | Readable | string, headers: Record<string, string> = {}) =>
      t.app.inject({ method: 'PUT', url: local(url), payload, headers });
    const confirm = (id: string, payload: Record<string, unknown> = {}, bucket = 'media', query = '') =>
      t.call({ method: 'POST', url: `/v1/buckets/${bucket}/uploads/${id}/confirm${query}`, payload, headers: ns });
    const get = (id: string, bucket = 'media') => t.call({ method: 'GET', url: `/v1/buckets/${bucket}/uploads/${id}`, headers: ns });
    const cancel = (id: string, query = '', bucket = 'media') =>
      t.call({ method: 'DELETE', url: `/v1/buckets/${bucket}/uploads/${id}${query}`, headers: ns });
    const list = (payload: Record<string, unknown> = {}, query = '', bucket = 'media') =>
      t.call({ method: 'POST', url: `/v1/buckets/${bucket}/uploads/list${query}`, payload, headers: ns });
    /** A received (PUT) upload that creates no object, with `bytes` as its content. */
    const received = async (bytes: Buffer, extra: Record<string, unknown> = {}): Promise<Upload> => {
      const upload = await createOk({
        filename: `f-${randomBase36(6)}.bin`,
        content_type: 'application/octet-stream',
        create_object_on_confirm: false,
        ...extra,
      });
      const res = await put(upload.presigned_url!, bytes);
      expect(res.statusCode, res.body).toBe(200);
      return upload;
    };
    const blobFile = (upload: Upload) => path.join(t.blobDir, ...upload.s3_key.split('/'));
    /** No file of this upload (final or partial) is in the blob store. */
    const noBytesOf = (upload: Upload) => filesUnder(t.blobDir).filter((f) => f.includes(upload.upload_id) || f.startsWith('.tmp'));

    describe('create', () => {
      it('answers an UploadResponse whose URL points back at Sluice and stores only the token hash', async () => {
        const upload = await createOk({
          filename: 'cover photo.png',
          content_type: 'image/png',
          blob_property: 'image',
          file_size_bytes: PNG.length,
          metadata: { campaign: 'spring' },
          object_metadata: { title: 'Cover', rating: 4 },
        });
        expect(upload.upload_id).toMatch(/^upl_[0-9a-z]{16}$/);
        expect(upload.bucket_id).toBe(media);
        expect(upload.status).toBe('PENDING');
        expect(upload.presigned_url).toMatch(new RegExp(`^http://localhost(:80)?/v1/uploads/${upload.upload_id}/content\\?token=[A-Za-z0-9_-]{43}$`));
        expect(upload.s3_key).toBe(`${t.orgId}/${nsId}/${media}/uploads/${upload.upload_id}`);
        expect(upload.presigned_url_expiration).toBe(3600);
        expect(Date.parse(upload.expires_at) - Date.parse(upload.created_at)).toBe(3600 * 1000);
        expect(upload).toMatchObject({
          filename: 'cover photo.png',
          content_type: 'image/png',
          file_size_bytes: PNG.length,
          metadata: { campaign: 'spring' },
          object_metadata: { title: 'Cover', rating: 4 },
          create_object_on_confirm: true,
          blob_property: 'image',
          blob_type: 'image',
          skip_duplicates: true,
          is_duplicate: false,
          skipped_unique_key: false,
          object_id: null,
          etag: null,
        });
        const token = new URL(upload.presigned_url!).searchParams.get('token')!;
        const rows = await t.db.query<Record<string, unknown>>('SELECT * FROM uploads WHERE id = $1', [upload.upload_id]);
        expect(rows[0]!.token_hash).toBe(sha256(token));
        expect(JSON.stringify(rows[0])).not.toContain(token);
      });

      it('derives blob_property from the file name and blob_type from the content type', async () => {
        const upload = await createOk({ filename: 'My Clip-01.final.mp4', content_type: 'video/mp4', create_object_on_confirm: false });
        expect(upload.blob_property).toBe('My_Clip_01_final');
        expect(upload.blob_type).toBe('video');
        const notes = await createOk({ filename: 'notes.txt', content_type: 'text/plain; charset=utf-8' });
        expect(notes.blob_property).toBe('notes');
        expect(notes.blob_type).toBe('text');
        const typed = await createOk({ filename: 'x.bin', content_type: 'application/octet-stream', blob_property: 'image', blob_type: 'IMAGE' });
        expect(typed.blob_type).toBe('image');
      });

      it('builds upload URLs from the request host, or from the configured public URL', async () => {
        const res = await t.call({
          method: 'POST',
          url: '/v1/buckets/media/uploads',
          payload: { filename: 'a.txt', content_type: 'text/plain', blob_property: 'notes' },
          headers: { ...ns, host: 'sluice.example:8443' },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().presigned_url).toMatch(/^http:\/\/sluice\.example:8443\/v1\/uploads\/upl_/);
        const app = await buildApp({ db: t.db, blobs: t.blobs, publicUrl: 'https://files.example.com/base/' });
        try {
          const viaPublic = await app.inject({
            method: 'POST',
            url: '/v1/buckets/media/uploads',
            payload: { filename: 'a.txt', content_type: 'text/plain', blob_property: 'notes' },
            headers: { ...ns, authorization: `Bearer ${t.adminKey}` },
          });
          expect(viaPublic.statusCode, viaPublic.body).toBe(200);
          expect(viaPublic.json().presigned_url).toMatch(/^https:\/\/files\.example\.com\/base\/v1\/uploads\/upl_[0-9a-z]{16}\/content\?token=/);
        } finally {
          await app.close();
        }
      });

      for (const [name, payload, field] of [
        ['a path in the file name', { filename: '../etc/passwd', content_type: 'text/plain' }, 'filename'],
        ['a Windows path in the file name', { filename: 'dir\\file.txt', content_type: 'text/plain' }, 'filename'],
        ['a file name of ..', { filename: '..', content_type: 'text/plain' }, 'filename'],
        ['a missing file name', { content_type: 'text/plain' }, 'filename'],
        ['an invalid MIME type', { filename: 'a.txt', content_type: 'not a mime' }, 'content_type'],
        ['an expiration under 60 s', { filename: 'a.txt', content_type: 'text/plain', presigned_url_expiration: 59 }, 'presigned_url_expiration'],
        ['an expiration over a day', { filename: 'a.txt', content_type: 'text/plain', presigned_url_expiration: 86401 }, 'presigned_url_expiration'],
        ['a zero file size', { filename: 'a.txt', content_type: 'text/plain', file_size_bytes: 0 }, 'file_size_bytes'],
        ['a malformed file hash', { filename: 'a.txt', content_type: 'text/plain', file_hash: 'abc' }, 'file_hash'],
        ['an unknown blob type', { filename: 'a.txt', content_type: 'text/plain', blob_type: 'DOCUMENT' }, 'blob_type'],
        ['a blob property with a dash', { filename: 'a.txt', content_type: 'text/plain', blob_property: 'a-b' }, 'blob_property'],
      ] as const) {
        it(`refuses ${name} with 422 naming ${field}`, async () => {
          const error = expectEnvelope(await create(payload), 422, 'ValidationError');
          expect(issues(error).some((i) => i.location.join('.') === `body.${field}`), error.message).toBe(true);
        });
      }

      it('refuses a declared size past the upload limit with 413', async () => {
        const error = expectEnvelope(
          await create({ filename: 'big.mp4', content_type: 'image/png', blob_property: 'image', file_size_bytes: UPLOAD_LIMIT + 1 }),
          413,
          'PayloadTooLargeError',
        );
        expect(error.message).toContain(String(UPLOAD_LIMIT + 1));
        expect(error.message).toContain(String(UPLOAD_LIMIT));
      });

      it('checks blob property, type, content type and object metadata against the bucket schema', async () => {
        let error = expectEnvelope(await create({ filename: 'clip.mp4', content_type: 'video/mp4' }), 422, 'ValidationError');
        expect(error.message).toContain('"clip"');
        expect(error.message).toContain('image (image)');
        error = expectEnvelope(
          await create({ filename: 'a.png', content_type: 'image/png', blob_property: 'image', blob_type: 'video' }),
          422,
          'ValidationError',
        );
        expect(issues(error)[0]!.location).toEqual(['body', 'blob_type']);
        error = expectEnvelope(await create({ filename: 'a.mp4', content_type: 'video/mp4', blob_property: 'image' }), 422, 'ValidationError');
        expect(issues(error)[0]!.location).toEqual(['body', 'content_type']);
        error = expectEnvelope(
          await create({ filename: 'a.png', content_type: 'image/png', blob_property: 'image', object_metadata: { rating: 'high', nope: 1 } }),
          422,
          'ValidationError',
        );
        const locations = issues(error).map((i) => i.location.join('.'));
        expect(locations).toContain('body.object_metadata.rating');
        expect(locations).toContain('body.object_metadata.nope');
        expect(error.message).toContain('"high"');
        // Without an object to create, the schema does not constrain the upload.
        await createOk({ filename: 'clip.mp4', content_type: 'video/mp4', create_object_on_confirm: false });
      });

      it('answers 404 for an unknown bucket, 400 without a namespace and 403 for a read-only key', async () => {
        expectEnvelope(await create({ filename: 'a.txt', content_type: 'text/plain' }, 'nope'), 404, 'NotFoundError');
        expectEnvelope(await create({ filename: 'a.txt', content_type: 'text/plain' }, 'media', {}), 400, 'BadRequestError');
        const reader = await t.key(['read']);
        const res = await t.call({
          method: 'POST',
          url: '/v1/buckets/media/uploads',
          payload: { filename: 'a.txt', content_type: 'text/plain', blob_property: 'notes' },
          headers: ns,
          key: reader,
        });
        expectEnvelope(res, 403, 'ForbiddenError');
      });

      it('skips an upload whose object unique key already exists', async () => {
        const objectId = `obj_${randomBase36(16)}`;
        await t.db.query(
          `INSERT INTO objects (id, organization_id, namespace_id, bucket_id, metadata, unique_key_value)
           VALUES ($1, $2, $3, $4, $5, $6)`,
          [objectId, t.orgId, nsId, skus, JSON.stringify({ sku: 'A-1' }), JSON.stringify(['A-1'])],
        );
        const skipped = await createOk({ filename: 'photo.png', content_type: 'image/png', object_metadata: { sku: 'A-1' } }, 'skus');
        expect(skipped).toMatchObject({ status: 'SKIPPED', skipped_unique_key: true, existing_object_id: objectId, presigned_url: null });
        expect(skipped.message).toContain(objectId);
        expect((await get(skipped.upload_id, 'skus')).json()).toMatchObject({ status: 'SKIPPED', existing_object_id: objectId });
        const fresh = await createOk({ filename: 'photo.png', content_type: 'image/png', object_metadata: { sku: 'B-2' } }, 'skus');
        expect(fresh.status).toBe('PENDING');
        expect(fresh.presigned_url).not.toBeNull();
        const missing = expectEnvelope(await create({ filename: 'photo.png', content_type: 'image/png' }, 'skus'), 422, 'ValidationError');
        expect(issues(missing)[0]!.location).toEqual(['body', 'object_metadata', 'sku']);
        expectEnvelope(await confirm(skipped.upload_id, {}, 'skus'), 400, 'BadRequestError');
      });
    });

    describe('the upload URL', () => {
      it('refuses a missing token (401), a wrong token (403) and an unknown upload (404)', async () => {
        const upload = await createOk({ filename: 'a.png', content_type: 'image/png', blob_property: 'image' });
        const u = new URL(upload.presigned_url!);
        expectEnvelope(await t.app.inject({ method: 'PUT', url: u.pathname, payload: PNG }), 401, 'UnauthorizedError');
        const wrong = `${u.pathname}?token=${'A'.repeat(43)}`;
        expectEnvelope(await t.app.inject({ method: 'PUT', url: wrong, payload: PNG }), 403, 'ForbiddenError');
        const other = await createOk({ filename: 'b.png', content_type: 'image/png', blob_property: 'image' });
        const swapped = `${u.pathname}${new URL(other.presigned_url!).search}`;
        expectEnvelope(await t.app.inject({ method: 'PUT', url: swapped, payload: PNG }), 403, 'ForbiddenError');
        expectEnvelope(
          await t.app.inject({ method: 'PUT', url: `/v1/uploads/upl_nothere/content${u.search}`, payload: PNG }),
          404,
          'NotFoundError',
        );
        expect((await get(upload.upload_id)).json().status).toBe('PENDING');
        expect(noBytesOf(upload)).toEqual([]);
      });

      it('stores the bytes, answers the ETag and records size, hash and sniffed type', async () => {
        const upload = await createOk({ filename: 'a.png', content_type: 'image/png', blob_property: 'image' });
        const res = await put(upload.presigned_url!, PNG, { 'content-type': 'image/png' });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.headers.etag).toBe(`"${sha256(PNG)}"`);
        expect(res.json()).toMatchObject({
          upload_id: upload.upload_id,
          status: 'IN_PROGRESS',
          size_bytes: PNG.length,
          sha256: sha256(PNG),
          detected_mime_type: 'image/png',
        });
        expect(fs.readFileSync(blobFile(upload)).equals(PNG)).toBe(true);
        const after: Upload = (await get(upload.upload_id)).json();
        expect(after).toMatchObject({ status: 'IN_PROGRESS', etag: `"${sha256(PNG)}"`, file_size_bytes: PNG.length, presigned_url: null });
        expect(filesUnder(t.blobDir).filter((f) => f.includes('.part-') || f.startsWith('.tmp'))).toEqual([]);
      });

      it('takes a JSON file as raw bytes, with any content type, and not under the JSON body limit', async () => {
        const json = Buffer.from(JSON.stringify({ a: [1, 2, 3], note: 'kept byte for byte' }, null, 2));
        const upload = await createOk({ filename: 'data.json', content_type: 'application/json', blob_property: 'notes' });
        const res = await put(upload.presigned_url!, json, { 'content-type': 'application/json' });
        expect(res.statusCode, res.body).toBe(200);
        expect(fs.readFileSync(blobFile(upload)).equals(json)).toBe(true);
        const malformed = Buffer.from('{ not json');
        const second = await createOk({ filename: 'bad.json', content_type: 'application/json', blob_property: 'notes' });
        const res2 = await put(second.presigned_url!, malformed, { 'content-type': 'application/json' });
        expect(res2.statusCode, res2.body).toBe(200);
        expect(fs.readFileSync(blobFile(second)).equals(malformed)).toBe(true);
      });

      it('refuses a Content-Type that contradicts the declared one, and accepts a generic one', async () => {
        const upload = await createOk({ filename: 'a.png', content_type: 'image/png', blob_property: 'image' });
        const error = expectEnvelope(await put(upload.presigned_url!, PNG, { 'content-type': 'video/mp4' }), 400, 'BadRequestError');
        expect(error.message).toContain('video/mp4');
        expect(error.message).toContain('image/png');
        const ok = await put(upload.presigned_url!, PNG, { 'content-type': 'application/octet-stream' });
        expect(ok.statusCode, ok.body).toBe(200);
      });

      it('refuses bytes that differ from the declared size or hash with 422 and keeps nothing', async () => {
        const bytes = Buffer.from('0123456789');
        const sized = await createOk({ filename: 's.bin', content_type: 'application/octet-stream', file_size_bytes: 20, create_object_on_confirm: false });
        let error = expectEnvelope(await put(sized.presigned_url!, bytes), 422, 'ValidationError');
        expect(error.message).toContain('10');
        expect(error.message).toContain('20');
        // Streamed without Content-Length: the mismatch is found after reading.
        error = expectEnvelope(await put(sized.presigned_url!, Readable.from([bytes])), 422, 'ValidationError');
        expect(error.message).toContain('20');
        const small = await createOk({ filename: 's.bin', content_type: 'application/octet-stream', file_size_bytes: 4, create_object_on_confirm: false });
        error = expectEnvelope(await put(small.presigned_url!, Readable.from([bytes])), 422, 'ValidationError');
        expect(error.message).toContain('4');
        const hashed = await createOk({
          filename: 'h.bin',
          content_type: 'application/octet-stream',
          file_hash: sha256('something else'),
          create_object_on_confirm: false,
        });
        error = expectEnvelope(await put(hashed.presigned_url!, bytes), 422, 'ValidationError');
        expect(error.message).toContain(sha256(bytes));
        expect(error.message).toContain(sha256('something else'));
        for (const u of [sized, small, hashed]) {
          expect(noBytesOf(u)).toEqual([]);
          expect((await get(u.upload_id)).json().status).toBe('PENDING');
        }
      });

      it('refuses a body past the upload limit with 413 and leaves nothing in the blob store', async () => {
        const upload = await createOk({ filename: 'big.bin', content_type: 'application/octet-stream', create_object_on_confirm: false });
        const big = Buffer.alloc(UPLOAD_LIMIT + 1, 1);
        // Streamed in chunks without Content-Length: the limit is found while writing.
        const chunks = Array.from({ length: 11 }, (_, i) => big.subarray(i * 100_000, (i + 1) * 100_000));
        let error = expectEnvelope(await put(upload.presigned_url!, Readable.from(chunks)), 413, 'PayloadTooLargeError');
        expect(error.message).toContain(String(UPLOAD_LIMIT));
        expect(noBytesOf(upload)).toEqual([]);
        // With Content-Length: refused before reading.
        error = expectEnvelope(await put(upload.presigned_url!, big), 413, 'PayloadTooLargeError');
        expect(noBytesOf(upload)).toEqual([]);
        expect((await get(upload.upload_id)).json().status).toBe('PENDING');
      });

      it('refuses bytes of another kind than the blob property holds', async () => {
        const upload = await createOk({ filename: 'a.png', content_type: 'image/png', blob_property: 'image' });
        const error = expectEnvelope(await put(upload.presigned_url!, Buffer.from('just some text')), 422, 'ValidationError');
        expect(error.message).toContain('text/plain');
        expect(error.message).toContain('image');
        expect(noBytesOf(upload)).toEqual([]);
      });

      it('refuses an empty body', async () => {
        const upload = await createOk({ filename: 'e.bin', content_type: 'application/octet-stream', create_object_on_confirm: false });
        expectEnvelope(await put(upload.presigned_url!, Buffer.alloc(0)), 400, 'BadRequestError');
        expect(noBytesOf(upload)).toEqual([]);
      });

      it('replaces the bytes when sent again before confirming', async () => {
        const upload = await received(Buffer.from('first version'));
        const second = Buffer.from('second, longer version');
        const res = await put(upload.presigned_url!, second);
        expect(res.statusCode, res.body).toBe(200);
        expect(fs.readFileSync(blobFile(upload)).equals(second)).toBe(true);
        const after: Upload = (await get(upload.upload_id)).json();
        expect(after.etag).toBe(`"${sha256(second)}"`);
        expect(after.file_size_bytes).toBe(second.length);
      });
    });

    describe('expiry', () => {
      it('an expired upload refuses its URL (403), shows FAILED and cannot be confirmed', async () => {
        const pending = await createOk({ filename: 'late.png', content_type: 'image/png', blob_property: 'image' });
        const got = await received(Buffer.from('arrived in time'));
        await t.db.query(`UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = ANY($1)`, [
          [pending.upload_id, got.upload_id],
        ]);
        const error = expectEnvelope(await put(pending.presigned_url!, PNG), 403, 'ForbiddenError');
        expect(error.message).toContain('expired');
        expect(noBytesOf(pending)).toEqual([]);
        const shown: Upload = (await get(pending.upload_id)).json();
        expect(shown.status).toBe('FAILED');
        expect(shown.message).toContain('expired');
        expect(expectEnvelope(await confirm(got.upload_id), 400, 'BadRequestError').message).toContain('expired');
        const failed = (await list({ filters: { status: 'FAILED' } })).json();
        expect(failed.results.map((u: Upload) => u.upload_id).sort()).toEqual([pending.upload_id, got.upload_id].sort());
        // An expired upload can still be canceled, which deletes its bytes.
        expect((await cancel(got.upload_id)).statusCode).toBe(204);
        expect(fs.existsSync(blobFile(got))).toBe(false);
      });
    });

    describe('confirm', () => {
      it('refuses an upload whose bytes have not arrived, naming its status', async () => {
        const upload = await createOk({ filename: 'a.png', content_type: 'image/png', blob_property: 'image' });
        const error = expectEnvelope(await confirm(upload.upload_id), 400, 'BadRequestError');
        expect(error.message).toContain(upload.upload_id);
        expect(error.message).toContain('PENDING');
        expectEnvelope(await confirm('upl_unknown'), 404, 'NotFoundError');
      });

      it('checks the optional etag and size, naming both values', async () => {
        const bytes = Buffer.from('checked content');
        const upload = await received(bytes);
        let error = expectEnvelope(await confirm(upload.upload_id, { etag: '"abc"' }), 422, 'ValidationError');
        expect(error.message).toContain('abc');
        expect(error.message).toContain(sha256(bytes));
        error = expectEnvelope(await confirm(upload.upload_id, { file_size_bytes: 999 }), 422, 'ValidationError');
        expect(error.message).toContain('999');
        expect(error.message).toContain(String(bytes.length));
        expect((await get(upload.upload_id)).json().status).toBe('IN_PROGRESS');
      });

      it('completes an upload without an object, idempotently', async () => {
        const bytes = Buffer.from('no object for me');
        const upload = await received(bytes);
        const res = await confirm(upload.upload_id, { etag: `"${sha256(bytes)}"`, file_size_bytes: bytes.length });
        expect(res.statusCode, res.body).toBe(200);
        const first: Confirmed = res.json();
        expect(first).toMatchObject({
          upload_id: upload.upload_id,
          status: 'COMPLETED',
          etag: `"${sha256(bytes)}"`,
          file_size_bytes: bytes.length,
          file_hash: sha256(bytes),
          object_id: null,
          task_id: null,
        });
        expect(first.completed_at).not.toBeNull();
        expect(first.verified_at).not.toBeNull();
        const again = await confirm(upload.upload_id, { etag: sha256(bytes) });
        expect(again.statusCode, again.body).toBe(200);
        expect(again.json()).toMatchObject({ status: 'COMPLETED', completed_at: first.completed_at, file_hash: sha256(bytes) });
        const shown: Upload = (await get(upload.upload_id)).json();
        expect(shown).toMatchObject({ status: 'COMPLETED', file_hash: sha256(bytes), completed_at: first.completed_at });
        // Its bytes can no longer be replaced, and it can no longer be canceled.
        expectEnvelope(await put(upload.presigned_url!, Buffer.from('later')), 400, 'BadRequestError');
        expectEnvelope(await cancel(upload.upload_id), 400, 'BadRequestError');
        expect(fs.readFileSync(blobFile(upload)).equals(bytes)).toBe(true);
      });

      it('takes over a confirm abandoned by a dead process, making the object only if it was not made', async () => {
        // A confirm that died right after claiming: the upload stays PROCESSING with an old claim.
        // Bytes no other test uploads: duplicate detection across the shared bucket must not link them.
        const fresh = await received(Buffer.concat([PNG, Buffer.from('abandoned')]), { create_object_on_confirm: true, blob_property: 'image' });
        await t.db.query(`UPDATE uploads SET status = 'PROCESSING', claimed_at = now() WHERE id = $1`, [fresh.upload_id]);
        expectEnvelope(await confirm(fresh.upload_id), 400, 'BadRequestError'); // a live claim is respected
        await t.db.query(`UPDATE uploads SET claimed_at = now() - interval '1 hour' WHERE id = $1`, [fresh.upload_id]);
        const first = await confirm(fresh.upload_id);
        expect(first.statusCode, first.body).toBe(200);
        expect(first.json()).toMatchObject({ status: 'COMPLETED', object_id: expect.stringMatching(/^obj_/) });

        // A confirm that died after its object was written but before it settled: that object is reused.
        // Other bytes than the first upload's, so that duplicate detection cannot be what finds the object.
        const late = await received(Buffer.concat([PNG, Buffer.from('late')]), { create_object_on_confirm: true, blob_property: 'image' });
        const made = await t.call({
          method: 'POST',
          url: '/v1/buckets/media/objects',
          headers: ns,
          payload: { blobs: [{ property: 'image', type: 'image', upload_id: late.upload_id }] },
        });
        expect(made.statusCode, made.body).toBe(200);
        await t.db.query(`UPDATE uploads SET status = 'PROCESSING', claimed_at = now() - interval '1 hour' WHERE id = $1`, [
          late.upload_id,
        ]);
        const before = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM objects');
        const settled = await confirm(late.upload_id);
        expect(settled.statusCode, settled.body).toBe(200);
        expect(settled.json()).toMatchObject({ status: 'COMPLETED', object_id: made.json().object_id });
        expect(await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM objects')).toEqual(before);
      });

      it('answers a task id when asked to confirm asynchronously', async () => {
        const upload = await received(Buffer.from('async please'));
        const res = await confirm(upload.upload_id, {}, 'media', '?async=true');
        expect(res.statusCode, res.body).toBe(200);
        const body: Confirmed = res.json();
        expect(body.status).toBe('COMPLETED');
        expect(body.task_id).toMatch(/^task_/);
        const task = await t.call({ method: 'GET', url: `/v1/tasks/${body.task_id}` });
        expect(task.statusCode, task.body).toBe(200);
        expect(task.json()).toMatchObject({ task_type: 'api_buckets_uploads_confirm', status: 'COMPLETED' });
      });

      it('creates the object on confirm, with its metadata and the uploaded blob', async () => {
        const upload = await createOk({
          filename: 'cover.png',
          content_type: 'image/png',
          blob_property: 'image',
          object_metadata: { title: 'Cover', rating: 5 },
        });
        expect((await put(upload.presigned_url!, PNG)).statusCode).toBe(200);
        const res = await confirm(upload.upload_id);
        expect(res.statusCode, res.body).toBe(200);
        const body: Confirmed = res.json();
        expect(body.status).toBe('COMPLETED');
        expect(body.object_id).toMatch(/^obj_/);
        const objects = await t.db.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM objects WHERE id = $1', [body.object_id]);
        expect(objects[0]?.metadata).toMatchObject({ title: 'Cover', rating: 5 });
        const blobs = await t.db.query<{ property: string; sha256: string; size_bytes: number; storage_key: string }>(
          'SELECT property, sha256, size_bytes, storage_key FROM blobs WHERE object_id = $1',
          [body.object_id],
        );
        expect(blobs).toHaveLength(1);
        expect(blobs[0]).toMatchObject({ property: 'image', sha256: sha256(PNG), size_bytes: PNG.length });
        expect(fs.readFileSync(path.join(t.blobDir, ...blobs[0]!.storage_key.split('/'))).equals(PNG)).toBe(true);
        expect((await get(upload.upload_id)).json()).toMatchObject({ status: 'COMPLETED', object_id: body.object_id });
        // Confirming again answers the same object, and makes no second one.
        expect((await confirm(upload.upload_id)).json().object_id).toBe(body.object_id);
        const count = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM blobs WHERE storage_key = $1', [upload.s3_key]);
        expect(count[0]!.n).toBe(1);
      });
    });

    describe('races and failures', () => {
      it('a failed object creation leaves the upload confirmable or cancelable, with the reason', async () => {
        const upload = await createOk({ filename: 'p.png', content_type: 'image/png', object_metadata: { sku: 'C-3' }, blob_property: 'photo' }, 'skus');
        expect((await put(upload.presigned_url!, PNG)).statusCode).toBe(200);
        // Another object takes the unique key between upload and confirm.
        await t.db.query(
          `INSERT INTO objects (id, organization_id, namespace_id, bucket_id, metadata, unique_key_value) VALUES ($1, $2, $3, $4, $5, $6)`,
          [`obj_${randomBase36(16)}`, t.orgId, nsId, skus, JSON.stringify({ sku: 'C-3' }), JSON.stringify(['C-3'])],
        );
        const res = await confirm(upload.upload_id, {}, 'skus');
        expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
        expect(res.statusCode).toBeLessThan(500);
        const after: Upload = (await get(upload.upload_id, 'skus')).json();
        expect(after.status).toBe('IN_PROGRESS');
        expect(after.message).toBe(res.json().error.message);
        expect(after.object_id).toBeNull();
        expect((await cancel(upload.upload_id, '', 'skus')).statusCode).toBe(204);
        expect(noBytesOf(upload)).toEqual([]);
      });

      it('two concurrent confirms create one object', async () => {
        const upload = await createOk({ filename: 'race.png', content_type: 'image/png', blob_property: 'image', skip_duplicates: false });
        const bytes = Buffer.concat([PNG, Buffer.from(randomBase36(12))]);
        expect((await put(upload.presigned_url!, bytes)).statusCode).toBe(200);
        const answers = await Promise.all([confirm(upload.upload_id), confirm(upload.upload_id)]);
        const codes = answers.map((a) => a.statusCode).sort();
        expect(codes[0], answers.map((a) => a.body).join('\n')).toBe(200);
        expect([200, 400]).toContain(codes[1]);
        const objects = answers.filter((a) => a.statusCode === 200).map((a) => a.json().object_id);
        expect(new Set(objects).size).toBe(1);
        const blobs = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM blobs WHERE sha256 = $1', [sha256(bytes)]);
        expect(blobs[0]!.n).toBe(1);
      });

      it('two concurrent PUTs leave a row that describes the file that is stored', async () => {
        const upload = await createOk({ filename: 'r.bin', content_type: 'application/octet-stream', create_object_on_confirm: false });
        const one = Buffer.alloc(300_000, 1);
        const two = Buffer.alloc(200_000, 2);
        const answers = await Promise.all([put(upload.presigned_url!, one), put(upload.presigned_url!, two)]);
        expect(answers.map((a) => a.statusCode)).toEqual([200, 200]);
        const stored = fs.readFileSync(blobFile(upload));
        const row: Upload = (await get(upload.upload_id)).json();
        expect(row.etag).toBe(`"${sha256(stored)}"`);
        expect(row.file_size_bytes).toBe(stored.length);
        expect(filesUnder(t.blobDir).filter((f) => f.includes(`${upload.upload_id}.part-`))).toEqual([]);
      });

      it('bytes an object uses in place can be neither deleted by a cancel nor replaced', async () => {
        const bytes = Buffer.concat([PNG, Buffer.from(randomBase36(12))]);
        const upload = await received(bytes, { filename: 'shared.png', content_type: 'image/png' });
        const made = await t.call({
          method: 'POST',
          url: '/v1/buckets/media/objects',
          headers: ns,
          payload: { blobs: [{ property: 'image', type: 'image', upload_id: upload.upload_id }] },
        });
        expect(made.statusCode, made.body).toBe(200);
        const objectId = made.json().object_id as string;
        const error = expectEnvelope(await cancel(upload.upload_id), 400, 'BadRequestError');
        expect(error.message).toContain(objectId);
        expect(expectEnvelope(await put(upload.presigned_url!, PNG), 400, 'BadRequestError').message).toContain(objectId);
        expect(fs.readFileSync(blobFile(upload)).equals(bytes)).toBe(true);
        expect((await cancel(upload.upload_id, '?delete_s3_object=false')).statusCode).toBe(204);
        expect(fs.readFileSync(blobFile(upload)).equals(bytes)).toBe(true);
      });
    });

    describe('duplicates', () => {
      it('answers the completed upload of the same hash instead of a new URL, unless skip_duplicates is false', async () => {
        const bytes = Buffer.from(`unique content ${randomBase36(8)}`);
        const original = await received(bytes);
        expect((await confirm(original.upload_id)).statusCode).toBe(200);
        const dup = await createOk({ filename: 'again.bin', content_type: 'application/octet-stream', file_hash: sha256(bytes), create_object_on_confirm: false });
        expect(dup).toMatchObject({
          upload_id: original.upload_id,
          is_duplicate: true,
          duplicate_of_upload_id: original.upload_id,
          presigned_url: null,
          status: 'COMPLETED',
        });
        expect(dup.message).toContain(original.upload_id);
        const count = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM uploads WHERE file_hash = $1', [sha256(bytes)]);
        expect(count[0]!.n).toBe(1);
        const separate = await createOk({
          filename: 'again.bin',
          content_type: 'application/octet-stream',
          file_hash: sha256(bytes).toUpperCase(),
          skip_duplicates: false,
          create_object_on_confirm: false,
        });
        expect(separate.upload_id).not.toBe(original.upload_id);
        expect(separate.is_duplicate).toBe(false);
        expect(separate.presigned_url).not.toBeNull();
        expect(separate.file_hash).toBe(sha256(bytes));
      });
    });

    describe('duplicates found at confirm', () => {
      it('reuses the object of an earlier upload of the same bytes, unless skip_duplicates is false', async () => {
        const bytes = Buffer.concat([PNG, Buffer.from(randomBase36(12))]);
        const send = async (extra: Record<string, unknown> = {}) => {
          const u = await createOk({ filename: 'same.png', content_type: 'image/png', blob_property: 'image', ...extra });
          expect((await put(u.presigned_url!, bytes)).statusCode).toBe(200);
          const res = await confirm(u.upload_id);
          expect(res.statusCode, res.body).toBe(200);
          return { upload: u, confirmed: res.json() as Confirmed };
        };
        const first = await send();
        expect(first.confirmed.object_id).toMatch(/^obj_/);
        const second = await send();
        expect(second.confirmed.object_id).toBe(first.confirmed.object_id);
        expect(second.confirmed.message).toContain(first.upload.upload_id);
        expect((await get(second.upload.upload_id)).json()).toMatchObject({
          status: 'COMPLETED',
          is_duplicate: true,
          duplicate_of_upload_id: first.upload.upload_id,
          object_id: first.confirmed.object_id,
        });
        const third = await send({ skip_duplicates: false });
        expect(third.confirmed.object_id).toMatch(/^obj_/);
        expect(third.confirmed.object_id).not.toBe(first.confirmed.object_id);
      });
    });

    describe('cancel', () => {
      it('cancels a pending upload, idempotently, after which it takes no bytes', async () => {
        const upload = await createOk({ filename: 'a.png', content_type: 'image/png', blob_property: 'image' });
        const res = await cancel(upload.upload_id);
        expect(res.statusCode, res.body).toBe(204);
        expect(res.body).toBe('');
        expect((await get(upload.upload_id)).json().status).toBe('CANCELED');
        expect((await cancel(upload.upload_id)).statusCode).toBe(204);
        expectEnvelope(await put(upload.presigned_url!, PNG), 400, 'BadRequestError');
        expectEnvelope(await confirm(upload.upload_id), 400, 'BadRequestError');
        expect(noBytesOf(upload)).toEqual([]);
        expectEnvelope(await cancel('upl_unknown'), 404, 'NotFoundError');
      });

      it('deletes received bytes by default and keeps them with delete_s3_object=false', async () => {
        const gone = await received(Buffer.from('delete me'));
        expect(fs.existsSync(blobFile(gone))).toBe(true);
        expect((await cancel(gone.upload_id)).statusCode).toBe(204);
        expect(fs.existsSync(blobFile(gone))).toBe(false);
        const kept = await received(Buffer.from('keep me'));
        expect((await cancel(kept.upload_id, '?delete_s3_object=false')).statusCode).toBe(204);
        expect(fs.readFileSync(blobFile(kept)).toString()).toBe('keep me');
        expect((await get(kept.upload_id)).json().status).toBe('CANCELED');
      });

      it('needs the delete permission', async () => {
        const upload = await createOk({ filename: 'a.png', content_type: 'image/png', blob_property: 'image' });
        const writer = await t.key(['write']);
        const res = await t.call({ method: 'DELETE', url: `/v1/buckets/media/uploads/${upload.upload_id}`, headers: ns, key: writer });
        expectEnvelope(res, 403, 'ForbiddenError');
        expect((await get(upload.upload_id)).json().status).toBe('PENDING');
      });
    });

    describe('takeUploadedBlob', () => {
      const take = (uploadId: string, bucketId = media) => takeUploadedBlob(t.db, { organizationId: t.orgId, bucketId, uploadId });
      const refusal = async (p: Promise<unknown>): Promise<ApiError> => {
        try {
          await p;
        } catch (err) {
          if (err instanceof ApiError) return err;
          throw err;
        }
        throw new Error('expected a refusal');
      };

      it('returns the received bytes of an upload', async () => {
        const bytes = Buffer.from('take these bytes');
        const upload = await received(bytes, { filename: 'take.txt' });
        expect(await take(upload.upload_id)).toEqual({
          storageKey: upload.s3_key,
          sizeBytes: bytes.length,
          sha256: sha256(bytes),
          mimeType: 'text/plain',
          filename: 'take.txt',
        });
        await confirm(upload.upload_id);
        expect((await take(upload.upload_id)).sha256).toBe(sha256(bytes));
      });

      it('answers 404 in another bucket and 400 naming the status when unusable', async () => {
        const upload = await received(Buffer.from('bucket bound'));
        expect((await refusal(take(upload.upload_id, skus))).status).toBe(404);
        expect((await refusal(takeUploadedBlob(t.db, { organizationId: 'org_other', bucketId: media, uploadId: upload.upload_id }))).status).toBe(404);
        const pending = await createOk({ filename: 'p.png', content_type: 'image/png', blob_property: 'image' });
        let err = await refusal(take(pending.upload_id));
        expect([err.status, err.type]).toEqual([400, 'BadRequestError']);
        expect(err.message).toContain(pending.upload_id);
        expect(err.message).toContain('PENDING');
        await cancel(upload.upload_id, '?delete_s3_object=false');
        err = await refusal(take(upload.upload_id));
        expect(err.status).toBe(400);
        expect(err.message).toContain('CANCELED');
        const late = await received(Buffer.from('too late'));
        await t.db.query(`UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1`, [late.upload_id]);
        err = await refusal(take(late.upload_id));
        expect(err.status).toBe(400);
        expect(err.message).toContain('expired');
      });
    });

    describe('list', () => {
      const bucketName = 'listing';
      let ids: Record<string, string>;
      beforeAll(async () => {
        await insertBucket(bucketName, { properties: { file: { type: 'text' } } });
        ids = {};
        const specs = [
          { name: 'alpha', size: 10, metadata: { campaign: 'summer_2024', priority: 3 } },
          { name: 'beta', size: 200, metadata: { campaign: 'winter', priority: 1 } },
          { name: 'gamma', size: 3000, metadata: { campaign: 'summer_2024', priority: 2 } },
          { name: 'delta', size: 40, metadata: {} },
        ];
        for (const s of specs) {
          const res = await create(
            {
              filename: `${s.name}_video.txt`,
              content_type: 'text/plain',
              blob_property: 'file',
              file_size_bytes: s.size,
              metadata: s.metadata,
              create_object_on_confirm: false,
            },
            bucketName,
          );
          expect(res.statusCode, res.body).toBe(200);
          ids[s.name] = res.json().upload_id;
        }
        // Creation times a minute apart, so that "newest first" is not decided by the clock's resolution.
        for (const [i, s] of specs.entries()) {
          await t.db.query(`UPDATE uploads SET created_at = now() - make_interval(mins => $2) WHERE id = $1`, [ids[s.name], 10 - i]);
        }
        // beta is received and confirmed, delta canceled: three statuses to filter on.
        await t.db.query(
          `UPDATE uploads SET status = 'COMPLETED', received_size_bytes = 200, received_at = now(), completed_at = now() WHERE id = $1`,
          [ids.beta],
        );
        await cancel(ids.delta!, '', bucketName);
      });
      const names = (res: LightMyRequestResponse): string[] => {
        expect(res.statusCode, res.body).toBe(200);
        const byId = new Map(Object.entries(ids).map(([k, v]) => [v, k]));
        return res.json().results.map((u: Upload) => byId.get(u.upload_id));
      };
      const l = (payload: Record<string, unknown>, query = '') => list(payload, query, bucketName);

      it('lists newest first with stats over the whole match', async () => {
        const res = await l({});
        expect(names(res)).toEqual(['delta', 'gamma', 'beta', 'alpha']);
        expect(res.json().stats).toEqual({
          total_uploads: 4,
          total_size_bytes: 3250,
          uploads_by_status: { PENDING: 2, COMPLETED: 1, CANCELED: 1 },
          avg_file_size_bytes: 3250 / 4,
          unique_buckets: 1,
        });
        expect(res.json().pagination.total).toBe(4);
      });

      it('filters by status, file name, content type, size, id, creation time and metadata', async () => {
        expect(names(await l({ filters: { status: 'PENDING' } })).sort()).toEqual(['alpha', 'gamma']);
        expect(names(await l({ filters: { status: { $in: ['COMPLETED', 'CANCELED'] } } })).sort()).toEqual(['beta', 'delta']);
        expect(names(await l({ filters: { filename: 'beta_video.txt' } }))).toEqual(['beta']);
        expect(names(await l({ filters: { content_type: 'text/plain' } }))).toHaveLength(4);
        expect(
          names(await l({ filters: { AND: [{ field: 'file_size_bytes', operator: 'gte', value: 100 }] } })).sort(),
        ).toEqual(['beta', 'gamma']);
        expect(names(await l({ filters: { upload_id: ids.gamma } }))).toEqual(['gamma']);
        expect(names(await l({ filters: { 'metadata.campaign': 'summer_2024' } })).sort()).toEqual(['alpha', 'gamma']);
        expect(names(await l({ filters: { created_at: { $lt: '2000-01-01T00:00:00Z' } } }))).toEqual([]);
        expect(names(await l({ filters: { created_at: { $gt: '2000-01-01T00:00:00Z' } } }))).toHaveLength(4);
        const stats = (await l({ filters: { 'metadata.campaign': 'summer_2024' } })).json().stats;
        expect(stats).toMatchObject({ total_uploads: 2, total_size_bytes: 3010, uploads_by_status: { PENDING: 2 } });
      });

      it('searches file names and metadata values, case-insensitively', async () => {
        expect(names(await l({ search: 'GAMMA' }))).toEqual(['gamma']);
        expect(names(await l({ search: 'winter' }))).toEqual(['beta']);
        expect(names(await l({ search: '_video' }))).toHaveLength(4);
        expect(names(await l({ search: 'nothing like it' }))).toEqual([]);
      });

      it('sorts by size and by metadata, and pages with limit and offset', async () => {
        expect(names(await l({ sort: { field: 'file_size_bytes', direction: 'asc' } }))).toEqual(['alpha', 'delta', 'beta', 'gamma']);
        expect(names(await l({ sort: { field: 'metadata.priority', direction: 'desc' }, filters: { 'metadata.priority': { $exists: true } } }))).toEqual([
          'alpha',
          'gamma',
          'beta',
        ]);
        const page = await l({ sort: { field: 'file_size_bytes', direction: 'asc' }, limit: 2, offset: 1 });
        expect(names(page)).toEqual(['delta', 'beta']);
        expect(page.json().pagination).toMatchObject({ total: 4, page_size: 2 });
        expect(page.json().stats.total_uploads).toBe(4);
        // Query parameters win over the body, and the cursor continues the page.
        const first = await l({ sort: { field: 'file_size_bytes', direction: 'asc' }, limit: 50 }, '?limit=3');
        expect(names(first)).toEqual(['alpha', 'delta', 'beta']);
        const cursor = first.json().pagination.next_cursor;
        expect(cursor).toBeTruthy();
        expect(names(await l({ sort: { field: 'file_size_bytes', direction: 'asc' } }, `?limit=3&cursor=${cursor}`))).toEqual(['gamma']);
      });

      it('refuses unknown fields (422), bad regexes and bad limits', async () => {
        const error = expectEnvelope(await l({ filters: { password: 'x' } }), 422, 'ValidationError');
        expect(error.message).toContain('password');
        expectEnvelope(await l({ filters: { filename: { $regex: '(' } } }), 400, 'BadRequestError');
        expectEnvelope(await l({ limit: 101 }), 422, 'ValidationError');
        expectEnvelope(await l({ sort: { field: 'nope' } }), 422, 'ValidationError');
      });

      it('answers an empty list with zero stats for a SDK-style empty body', async () => {
        const empty = await insertBucket('empty_uploads', { properties: {} });
        const res = await t.call({
          method: 'POST',
          url: `/v1/buckets/${empty}/uploads/list`,
          payload: '',
          headers: { ...ns, 'content-type': 'application/json' },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toMatchObject({
          results: [],
          stats: { total_uploads: 0, total_size_bytes: 0, uploads_by_status: {}, avg_file_size_bytes: 0, unique_buckets: 0 },
        });
      });
    });

    describe('batches', () => {
      it('creates uploads in a batch, merging shared metadata, and reports refused items', async () => {
        const res = await t.call({
          method: 'POST',
          url: '/v1/buckets/media/uploads/batch',
          headers: ns,
          payload: {
            shared_metadata: { source: 'batch', campaign: 'shared' },
            shared_object_metadata: { rating: 1 },
            uploads: [
              { filename: 'one.png', content_type: 'image/png', blob_property: 'image', metadata: { campaign: 'own' } },
              { filename: '../two.png', content_type: 'image/png', blob_property: 'image' },
              { filename: 'three.png', content_type: 'image/png', blob_property: 'image', object_metadata: { rating: 3, title: 'T' } },
              { filename: 'four.mp4', content_type: 'video/mp4' },
            ],
          },
        });
        expect(res.statusCode, res.body).toBe(200);
        const body = res.json() as { uploads: Upload[]; total: number; errors: { index: number; filename: string; error: { status: number; message: string; details: Record<string, unknown> } }[] };
        expect(body.total).toBe(2);
        expect(body.uploads.map((u) => u.filename)).toEqual(['one.png', 'three.png']);
        expect(body.uploads[0]!.metadata).toEqual({ source: 'batch', campaign: 'own' });
        expect(body.uploads[0]!.object_metadata).toEqual({ rating: 1 });
        expect(body.uploads[1]!.metadata).toEqual({ source: 'batch', campaign: 'shared' });
        expect(body.uploads[1]!.object_metadata).toEqual({ rating: 3, title: 'T' });
        expect(body.uploads.every((u) => u.presigned_url?.includes(u.upload_id))).toBe(true);
        expect(body.errors.map((e) => [e.index, e.filename, e.error.status])).toEqual([
          [1, '../two.png', 422],
          [3, 'four.mp4', 422],
        ]);
        expect(JSON.stringify(body.errors[0]!.error.details)).toContain('"uploads",1,"filename"');
        const stored = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM uploads WHERE metadata->>'source' = 'batch'`);
        expect(stored[0]!.n).toBe(2);
      });

      it('refuses an empty batch or one of more than 100 items with 422', async () => {
        const url = '/v1/buckets/media/uploads/batch';
        expectEnvelope(await t.call({ method: 'POST', url, headers: ns, payload: { uploads: [] } }), 422, 'ValidationError');
        const many = Array.from({ length: 101 }, (_, i) => ({ filename: `f${i}.png`, content_type: 'image/png' }));
        expectEnvelope(await t.call({ method: 'POST', url, headers: ns, payload: { uploads: many } }), 422, 'ValidationError');
        const url2 = '/v1/buckets/media/uploads/confirm/batch';
        const manyConfirms = Array.from({ length: 101 }, (_, i) => ({ upload_id: `upl_${i}` }));
        expectEnvelope(await t.call({ method: 'POST', url: url2, headers: ns, payload: { confirmations: manyConfirms } }), 422, 'ValidationError');
      });

      it('confirms a batch and records a task with one result per confirmation', async () => {
        const a = await received(Buffer.from(`batch a ${randomBase36(6)}`));
        const bBytes = Buffer.from(`batch b ${randomBase36(6)}`);
        const b = await received(bBytes);
        const pending = await createOk({ filename: 'p.png', content_type: 'image/png', blob_property: 'image' });
        const res = await t.call({
          method: 'POST',
          url: '/v1/buckets/media/uploads/confirm/batch',
          headers: ns,
          payload: {
            confirmations: [
              { upload_id: a.upload_id },
              { upload_id: b.upload_id, etag: `"${sha256(bBytes)}"`, file_size_bytes: bBytes.length },
              { upload_id: pending.upload_id },
              { upload_id: 'upl_missing' },
              { etag: 'no id' },
              { upload_id: a.upload_id },
            ],
          },
        });
        expect(res.statusCode, res.body).toBe(200);
        const body = res.json();
        expect(body).toMatchObject({ status: 'COMPLETED_WITH_ERRORS', confirmations_count: 6 });
        expect(body.task_id).toMatch(/^task_/);
        expect(body.task.task_type).toBe('api_buckets_uploads_batch_confirm');
        const outputs = body.task.outputs as { index: number; upload_id: string | null; success: boolean; status?: string; error?: { status: number; message: string } }[];
        expect(outputs.map((o) => [o.index, o.upload_id, o.success, o.success ? o.status : o.error!.status])).toEqual([
          [0, a.upload_id, true, 'COMPLETED'],
          [1, b.upload_id, true, 'COMPLETED'],
          [2, pending.upload_id, false, 400],
          [3, 'upl_missing', false, 404],
          [4, null, false, 422],
          [5, a.upload_id, false, 400],
        ]);
        expect(outputs[2]!.error!.message).toContain('PENDING');
        for (const u of [a, b]) expect((await get(u.upload_id)).json().status).toBe('COMPLETED');
        expect((await get(pending.upload_id)).json().status).toBe('PENDING');
        const task = await t.call({ method: 'GET', url: `/v1/tasks/${body.task_id}` });
        expect(task.statusCode, task.body).toBe(200);
        expect(task.json()).toMatchObject({ status: 'COMPLETED_WITH_ERRORS', outputs });
      });
    });

    describe('OpenAPI', () => {
      it('documents every upload route', async () => {
        const res = await t.call({ method: 'GET', url: '/openapi.json', key: null });
        expect(res.statusCode, res.body.slice(0, 500)).toBe(200);
        const paths = res.json().paths as Record<string, Record<string, unknown>>;
        expect(Object.keys(paths['/v1/buckets/{bucket_identifier}/uploads'] ?? {})).toContain('post');
        expect(Object.keys(paths['/v1/buckets/{bucket_identifier}/uploads/{upload_id}'] ?? {}).sort()).toEqual(['delete', 'get']);
        for (const p of ['list', 'batch', 'confirm/batch', '{upload_id}/confirm']) {
          expect(Object.keys(paths[`/v1/buckets/{bucket_identifier}/uploads/${p}`] ?? {}), p).toContain('post');
        }
        expect(Object.keys(paths['/v1/uploads/{upload_id}/content'] ?? {})).toContain('put');
      });
    });

    describe('isolation', () => {
      it("another organization's key cannot see or confirm this organization's uploads", async () => {
        const upload = await received(Buffer.from('private'));
        const other = await createOrganization(t.db, `other-${randomBase36(6)}`, 'other@test.local');
        const nsRes = await t.call({
          method: 'POST',
          url: '/v1/namespaces',
          key: other.adminKey,
          payload: { namespace_name: 'uploads_ns', feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
        });
        expect(nsRes.statusCode, nsRes.body).toBe(200);
        for (const res of [
          await t.call({ method: 'GET', url: `/v1/buckets/${media}/uploads/${upload.upload_id}`, headers: ns, key: other.adminKey }),
          await t.call({ method: 'POST', url: `/v1/buckets/${media}/uploads/${upload.upload_id}/confirm`, headers: ns, key: other.adminKey, payload: {} }),
        ]) {
          expectEnvelope(res, 404, 'NotFoundError');
        }
        expect((await get(upload.upload_id)).json().status).toBe('IN_PROGRESS');
      });
    });
  });
}
