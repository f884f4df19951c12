import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBase36 } from '../../src/ids/new-id.js';
import { createTestContext, type TestContext } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const CHUNK = 64 * 1024;
const CHUNKS = 800; // 50 MiB
const TOTAL = CHUNK * CHUNKS;

/**
 * A 50 MiB text file made on the fly, one 64 KiB chunk at a time, hashed as it goes: the test never holds
 * the file either, so what it proves is about the server. Deterministic, so a rerun sends the same bytes.
 */
function generated(): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let done = false;
  function* chunks(): Generator<Buffer> {
    for (let i = 0; i < CHUNKS; i++) {
      const line = Buffer.from(`chunk ${String(i).padStart(4, '0')} of a large upload, streamed end to end\n`);
      const chunk = Buffer.alloc(CHUNK);
      for (let o = 0; o < CHUNK; o += line.length) line.copy(chunk, o, 0, Math.min(line.length, CHUNK - o));
      hash.update(chunk);
      yield chunk;
    }
    done = true;
  }
  return {
    stream: Readable.from(chunks(), { objectMode: false }),
    digest: () => {
      if (!done) throw new Error('the generated file was not sent in full');
      return hash.digest('hex');
    },
  };
}

/** PUTs a stream over a real socket and collects the answer. */
function putStream(url: string, body: Readable, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', headers, timeout: 120_000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('upload timed out')));
    req.on('error', reject);
    pipeline(body, req).catch(reject);
  });
}

/** SHA-256 and size of a stored file, read as a stream. */
async function fileDigest(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    size += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return { size, sha256: hash.digest('hex') };
}

for (const backend of BACKENDS) {
  describe(`a 50 MiB upload over HTTP (${backend.name})`, () => {
    let t: TestContext;
    let base: string;
    const ns = { 'x-namespace': 'large_uploads' };

    beforeAll(async () => {
      t = await createTestContext(backend, { limits: { uploadMaxBytes: 60 * 1024 * 1024 } });
      await t.app.listen({ host: '127.0.0.1', port: 0 });
      base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
      const res = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: { namespace_name: 'large_uploads', feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
      });
      expect(res.statusCode, res.body).toBe(200);
      await t.db.query('INSERT INTO buckets (id, organization_id, namespace_id, name, bucket_schema) VALUES ($1, $2, $3, $4, $5)', [
        `bkt_${randomBase36(16)}`,
        t.orgId,
        res.json().namespace_id,
        'large',
        JSON.stringify({ properties: { transcript: { type: 'text' }, title: { type: 'string' } } }),
      ]);
    });
    afterAll(() => t.close());

    it('streams to storage, confirms, and keeps the exact size and SHA-256', async () => {
      const created = await t.call({
        method: 'POST',
        url: '/v1/buckets/large/uploads',
        headers: { ...ns, host: new URL(base).host },
        payload: {
          filename: 'transcript.txt',
          content_type: 'text/plain',
          file_size_bytes: TOTAL,
          object_metadata: { title: 'fifty mebibytes' },
        },
      });
      expect(created.statusCode, created.body).toBe(200);
      const upload = created.json();
      expect(upload.presigned_url.startsWith(`${base}/v1/uploads/`)).toBe(true);

      const file = generated();
      const res = await putStream(upload.presigned_url, file.stream, { 'content-type': 'text/plain', 'content-length': String(TOTAL) });
      expect(res.status, res.body).toBe(200);
      const sha256 = file.digest();
      expect(res.headers.etag).toBe(`"${sha256}"`);
      expect(JSON.parse(res.body)).toMatchObject({ size_bytes: TOTAL, sha256, detected_mime_type: 'text/plain' });

      const confirmed = await t.call({
        method: 'POST',
        url: `/v1/buckets/large/uploads/${upload.upload_id}/confirm`,
        headers: ns,
        payload: { etag: res.headers.etag, file_size_bytes: TOTAL },
      });
      expect(confirmed.statusCode, confirmed.body).toBe(200);
      expect(confirmed.json()).toMatchObject({ status: 'COMPLETED', file_size_bytes: TOTAL, file_hash: sha256 });
      const objectId = confirmed.json().object_id as string;
      expect(objectId).toMatch(/^obj_/);

      const stored = await fileDigest(path.join(t.blobDir, ...upload.s3_key.split('/')));
      expect(stored).toEqual({ size: TOTAL, sha256 });
      const blobs = await t.db.query<{ size_bytes: number; sha256: string; storage_key: string }>(
        'SELECT size_bytes, sha256, storage_key FROM blobs WHERE object_id = $1',
        [objectId],
      );
      expect(blobs).toEqual([{ size_bytes: TOTAL, sha256, storage_key: upload.s3_key }]);
    });

    it('answers 413 over a real socket when a streamed body passes the limit, and keeps nothing', async () => {
      const created = await t.call({
        method: 'POST',
        url: '/v1/buckets/large/uploads',
        headers: { ...ns, host: new URL(base).host },
        payload: { filename: 'huge.txt', content_type: 'text/plain', blob_property: 'transcript' },
      });
      expect(created.statusCode, created.body).toBe(200);
      const upload = created.json();
      const tooMany = 61 * 16; // 61 MiB of 64 KiB chunks, past the 60 MiB limit, sent without Content-Length
      const body = Readable.from(
        (function* () {
          for (let i = 0; i < tooMany; i++) yield Buffer.alloc(CHUNK, 0x61);
        })(),
      );
      const res = await putStream(upload.presigned_url, body, { 'content-type': 'text/plain' });
      expect(res.status, res.body).toBe(413);
      expect(JSON.parse(res.body).error.type).toBe('PayloadTooLargeError');
      const left = (fs.readdirSync(t.blobDir, { recursive: true }) as string[]).filter(
        (f) => f.includes(upload.upload_id) || (f.startsWith('.tmp') && f !== '.tmp'),
      );
      expect(left).toEqual([]);
    });
  });
}
