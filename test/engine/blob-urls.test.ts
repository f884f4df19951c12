import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobUrlSigner } from '../../src/blobs/blob-urls.js';
import type { Engine } from '../../src/engine/create-engine.js';
import { createExtractorRegistry } from '../../src/extractors/registry.js';
import { drain, testEngine } from '../helpers/engine.js';
import { createTestContext, expectEnvelope, type TestContext } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

/** 1×1 PNG (the spec's own example). */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const NS = 'blob_url_tests';

/**
 * A model endpoint on 127.0.0.1 that does what a real image model must: fetch the image by the URL it is
 * given. It answers the hash and type of what it fetched.
 */
async function fetchingModel(): Promise<{ url: string; inputs: Record<string, unknown>[]; close(): Promise<void> }> {
  const inputs: Record<string, unknown>[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => {
      body += d;
    });
    req.on('end', async () => {
      const { input } = JSON.parse(body) as { input: { photo: { url: string; mime_type: string } } };
      inputs.push(input);
      const got = await fetch(input.photo.url);
      const bytes = Buffer.from(await got.arrayBuffer());
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ documents: [{ status: got.status, type: got.headers.get('content-type'), sha: sha256(bytes) }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/embed`,
    inputs,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

for (const backend of BACKENDS) {
  describe(`stored blobs reach extractors by signed URL (${backend.name})`, () => {
    let t: TestContext;
    let engine: Engine;
    let model: Awaited<ReturnType<typeof fetchingModel>>;
    let baseUrl: string;
    let bucketId: string;
    const registry = createExtractorRegistry({ allowPrivateUrls: true });

    const ok = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
      const res = await t.call({ method, url, payload: payload as Record<string, unknown>, headers: { 'x-namespace': NS } });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(200);
      return res.json();
    };

    beforeAll(async () => {
      t = await createTestContext(backend, { extractors: registry });
      // The blob route is reached over a real socket, as a model endpoint would.
      baseUrl = await t.app.listen({ port: 0, host: '127.0.0.1' });
      engine = await testEngine(t.db, t.blobs, { extractors: registry, publicUrl: baseUrl });
      model = await fetchingModel();
      await ok('POST', '/v1/namespaces', { namespace_name: NS, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] });
      const bucket = await ok('POST', '/v1/buckets', { bucket_name: 'photos', bucket_schema: { properties: { photo: { type: 'image' }, caption: { type: 'text' } } } });
      bucketId = bucket.bucket_id;
    }, 60_000);

    afterAll(async () => {
      await engine?.close();
      await model?.close();
      await t?.close();
    });

    it('a webhook gets a URL of the stored image on Sluice and fetches exactly its bytes', async () => {
      await ok('POST', '/v1/collections', {
        collection_name: 'seen',
        source: { type: 'bucket', bucket_ids: [bucketId] },
        feature_extractor: { feature_extractor_name: 'webhook_extractor', version: 'v1', parameters: { url: model.url } },
      });
      const object = await ok('POST', `/v1/buckets/${bucketId}/objects?auto_process=true`, {
        blobs: [
          { property: 'photo', type: 'image', data: { base64: PNG.toString('base64'), mime_type: 'image/png' } },
          { property: 'caption', type: 'text', data: 'a single pixel' },
        ],
      });
      await drain(engine, t.db);
      expect(model.inputs).toHaveLength(1);
      const photo = model.inputs[0]!.photo as { url: string; mime_type: string; size_bytes: number; sha256: string };
      expect(photo).toMatchObject({ mime_type: 'image/png', size_bytes: PNG.length, sha256: sha256(PNG) });
      expect(photo.url.startsWith(`${baseUrl}/v1/blobs/`)).toBe(true);
      expect(model.inputs[0]!.caption).toBe('a single pixel');
      const [doc] = await t.db.query<{ fields: Record<string, unknown> }>('SELECT fields FROM documents WHERE source_id = $1', [object.object_id]);
      expect(doc!.fields).toEqual({ status: 200, type: 'image/png', sha: sha256(PNG) });
    }, 60_000);

    it('refuses a tampered, foreign or expired signature (403) and answers 404 for blobs with no stored bytes', async () => {
      const [stored] = await t.db.query<{ id: string }>("SELECT id FROM blobs WHERE source = 'stored' LIMIT 1");
      const [text] = await t.db.query<{ id: string }>("SELECT id FROM blobs WHERE source = 'text' LIMIT 1");
      const signer = new BlobUrlSigner(t.db);
      const good = new URL(await signer.sign(baseUrl, stored!.id));
      const get = (url: string) => t.app.inject({ method: 'GET', url });
      const path = good.pathname + good.search;
      const res = await get(path);
      expect(res.statusCode).toBe(200);
      expect(res.rawPayload.equals(PNG)).toBe(true);

      const tampered = path.replace(/signature=./, (m) => `${m.slice(0, -1)}${m.endsWith('A') ? 'B' : 'A'}`);
      expect(expectEnvelope(await get(tampered), 403, 'ForbiddenError').message).toContain('not valid');
      // A signature is bound to its blob.
      expect(expectEnvelope(await get(path.replace(stored!.id, text!.id)), 403, 'ForbiddenError').message).toContain(text!.id);
      const past = new URL(await signer.sign(baseUrl, stored!.id, 1000, Date.now() - 60_000));
      expect(expectEnvelope(await get(past.pathname + past.search), 403, 'ForbiddenError').message).toContain('expired');
      // A correctly signed id with nothing stored behind it.
      const textUrl = new URL(await signer.sign(baseUrl, text!.id));
      expectEnvelope(await get(textUrl.pathname + textUrl.search), 404, 'NotFoundError');
      expectEnvelope(await get(`/v1/blobs/${stored!.id}/content`), 422, 'ValidationError');
    });
  });
}
