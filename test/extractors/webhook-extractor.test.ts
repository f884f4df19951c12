import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { classifyError, PermanentError, TransientError } from '../../src/extractors/errors.js';
import type { ExtractorInput } from '../../src/extractors/extractor.js';
import { createWebhookExtractor, isPrivateAddress, type WebhookExtractorParams } from '../../src/extractors/webhook-extractor.js';
import { closedPortUrl, FaultServer, rejection } from './fault-server.js';

const context = { unitId: 'unit_1', batchId: 'btch_1', collectionId: 'col_1', tierNum: 0, source: { object_id: 'obj_1' } };

describe('webhook_extractor parameters', () => {
  const strict = createWebhookExtractor({ allowPrivateUrls: false });
  const open = createWebhookExtractor({ allowPrivateUrls: true });

  it('defaults timeout_ms to 30000 and keeps headers', () => {
    const p = strict.parameters.parse({ url: 'https://models.example.com/run', headers: { 'x-key': 'k' } });
    expect(p).toEqual({ extractor_type: 'webhook_extractor', url: 'https://models.example.com/run', headers: { 'x-key': 'k' }, timeout_ms: 30000 });
  });

  it('refuses non-http(s) and malformed URLs', () => {
    for (const url of ['ftp://example.com/x', 'file:///etc/passwd', 'not a url']) {
      const r = open.parameters.safeParse({ url });
      expect(r.success).toBe(false);
      expect(r.error!.issues[0]!.path).toEqual(['url']);
    }
  });

  it('refuses loopback and private hosts unless private URLs are allowed', () => {
    for (const url of ['http://127.0.0.1:8080/x', 'http://localhost/x', 'http://10.1.2.3/', 'http://192.168.0.1/', 'http://[::1]:99/', 'http://169.254.169.254/latest']) {
      const r = strict.parameters.safeParse({ url });
      expect(r.success, url).toBe(false);
      expect(r.error!.issues[0]!.message).toMatch(/private or loopback/);
      expect(open.parameters.safeParse({ url }).success).toBe(true);
    }
    expect(strict.parameters.safeParse({ url: 'https://8.8.8.8/x' }).success).toBe(true);
  });

  it('isPrivateAddress covers IPv4, IPv6 and IPv4-mapped IPv6', () => {
    expect(isPrivateAddress('172.16.5.4')).toBe(true);
    expect(isPrivateAddress('172.32.0.1')).toBe(false);
    expect(isPrivateAddress('::ffff:127.0.0.1')).toBe(true);
    expect(isPrivateAddress('fd12::1')).toBe(true);
    expect(isPrivateAddress('2606:4700::1111')).toBe(false);
  });

  it('a private URL that slipped past validation is refused at run time (permanent validation)', async () => {
    const input: ExtractorInput<WebhookExtractorParams> = {
      params: { extractor_type: 'webhook_extractor', url: 'http://127.0.0.1:1/x', timeout_ms: 1000 },
      input: {},
      context,
      signal: new AbortController().signal,
    };
    const err = await rejection(strict.run(input));
    expect(classifyError(err)).toMatchObject({ error_type: 'validation', transient: false, code: 'invalid_input' });
  });
});

describe('webhook_extractor against a real HTTP server', () => {
  let server: FaultServer;
  const extractor = createWebhookExtractor({ allowPrivateUrls: true });
  beforeAll(async () => {
    server = await FaultServer.start();
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
  });

  const run = (params: Partial<WebhookExtractorParams> = {}, signal = new AbortController().signal) =>
    extractor.run({
      params: extractor.parameters.parse({ url: `${server.url}/hook`, timeout_ms: 2000, ...params }),
      input: { text: 'hello', n: 3, image: { url: 'http://blob/1', mime_type: 'image/png', size_bytes: 10, sha256: 'ab' } },
      context,
      signal,
    });

  it('success: POSTs the unit as JSON with the user headers and returns the documents', async () => {
    server.json(200, { documents: [{ label: 'a', score: 0.5 }, { label: 'b' }] });
    const docs = await run({ headers: { authorization: 'Bearer user-key' } });
    expect(docs).toEqual([{ label: 'a', score: 0.5 }, { label: 'b' }]);
    expect(server.requests).toHaveLength(1);
    const req = server.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/hook');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.authorization).toBe('Bearer user-key');
    expect(req.body).toEqual({
      unit_id: 'unit_1',
      batch_id: 'btch_1',
      collection_id: 'col_1',
      tier_num: 0,
      source: { object_id: 'obj_1' },
      input: { text: 'hello', n: 3, image: { url: 'http://blob/1', mime_type: 'image/png', size_bytes: 10, sha256: 'ab' } },
    });
  });

  it('zero documents is a valid answer', async () => {
    server.json(201, { documents: [] });
    expect(await run()).toEqual([]);
  });

  it('429 with Retry-After → transient resource/rate_limited, retry_after_ms kept', async () => {
    server.json(429, {}, { 'retry-after': '12' });
    const err = await rejection(run());
    expect(err).toBeInstanceOf(TransientError);
    expect(classifyError(err)).toMatchObject({ error_type: 'resource', transient: true, code: 'rate_limited', http_status: 429, retry_after_ms: 12_000 });
  });

  it('503 → transient resource/service_unavailable', async () => {
    server.json(503, { error: 'overloaded' });
    expect(classifyError(await rejection(run()))).toMatchObject({ error_type: 'resource', transient: true, code: 'service_unavailable', http_status: 503 });
  });

  it('a hang past timeout_ms → transient network/timeout', async () => {
    server.handler = () => {
      // Never answers.
    };
    const err = await rejection(run({ timeout_ms: 200 }));
    expect(classifyError(err)).toMatchObject({ error_type: 'network', transient: true, code: 'timeout' });
    expect((err as Error).message).toContain('200 ms');
  });

  it('connection reset → transient network/connection_reset', async () => {
    server.handler = (_req, res) => res.socket?.destroy();
    expect(classifyError(await rejection(run()))).toMatchObject({ error_type: 'network', transient: true, code: 'connection_reset' });
  });

  it('refused (a closed port) → transient network/connection_refused', async () => {
    const url = `${await closedPortUrl()}/hook`;
    const err = await rejection(extractor.run({ params: extractor.parameters.parse({ url, timeout_ms: 2000 }), input: {}, context, signal: new AbortController().signal }));
    expect(classifyError(err)).toMatchObject({ error_type: 'network', transient: true, code: 'connection_refused' });
  });

  it('401 → permanent authentication/upstream_unauthorized', async () => {
    server.json(401, { error: 'no' });
    const err = await rejection(run());
    expect(err).toBeInstanceOf(PermanentError);
    expect(classifyError(err)).toMatchObject({ error_type: 'authentication', transient: false, code: 'upstream_unauthorized', http_status: 401 });
  });

  it('400 → permanent validation/invalid_input', async () => {
    server.json(400, { error: 'bad input' });
    expect(classifyError(await rejection(run()))).toMatchObject({ error_type: 'validation', transient: false, code: 'invalid_input', http_status: 400 });
  });

  it('a redirect is not followed (it could lead to a private address) → permanent validation', async () => {
    server.handler = (_req, res) => res.writeHead(302, { location: 'http://127.0.0.1:1/' }).end();
    expect(classifyError(await rejection(run()))).toMatchObject({ error_type: 'validation', transient: false, http_status: 302 });
    expect(server.requests).toHaveLength(1);
  });

  it('malformed JSON → permanent runtime/invalid_response', async () => {
    server.handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"documents": [');
    expect(classifyError(await rejection(run()))).toMatchObject({ error_type: 'runtime', transient: false, code: 'invalid_response' });
  });

  const wrongShapes: [string, unknown][] = [
    ['no documents key', { docs: [] }],
    ['documents not an array', { documents: { a: 1 } }],
    ['a document that is not an object', { documents: [1] }],
    ['a document carrying _internal', { documents: [{ _internal: {} }] }],
    ['a bare array', [{ a: 1 }]],
  ];
  for (const [name, body] of wrongShapes) {
    it(`wrong shape (${name}) → permanent runtime/invalid_response`, async () => {
      server.json(200, body);
      const err = await rejection(run());
      expect(err).toBeInstanceOf(PermanentError);
      expect(classifyError(err)).toMatchObject({ error_type: 'runtime', transient: false, code: 'invalid_response', http_status: 200 });
    });
  }
});
