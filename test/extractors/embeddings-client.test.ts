import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddingsClient, embeddingsEndpoint } from '../../src/extractors/embeddings-client.js';
import { classifyError, PermanentError, TransientError } from '../../src/extractors/errors.js';
import { parseRetryAfter } from '../../src/extractors/http-classify.js';
import { closedPortUrl, FaultServer, rejection } from './fault-server.js';

/** An OpenAI-style answer: embedding i of a request is [len(input_i), i]. */
function okEmbeddings(server: FaultServer): void {
  server.handler = (req, res) => {
    const input = (req.body as { input: string[] }).input;
    const data = input.map((t, index) => ({ object: 'embedding', index, embedding: [t.length, index] }));
    // Answered in reverse order: the client must sort by index.
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: data.reverse(), model: 'm' }));
  };
}

describe('embeddingsEndpoint', () => {
  it('normalises base URLs with or without /v1 and /embeddings', () => {
    for (const base of ['http://h:8000', 'http://h:8000/', 'http://h:8000/v1', 'http://h:8000/v1/', 'http://h:8000/v1/embeddings']) {
      expect(embeddingsEndpoint(base)).toBe('http://h:8000/v1/embeddings');
    }
    expect(embeddingsEndpoint('https://proxy.example/openai')).toBe('https://proxy.example/openai/v1/embeddings');
    expect(embeddingsEndpoint('https://proxy.example/openai/embeddings?api-version=2')).toBe('https://proxy.example/openai/embeddings?api-version=2');
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter('1.5')).toBe(1500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('EmbeddingsClient against a real HTTP server', () => {
  let server: FaultServer;
  beforeAll(async () => {
    server = await FaultServer.start();
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
  });

  const client = (extra: Partial<ConstructorParameters<typeof EmbeddingsClient>[0]> = {}) =>
    new EmbeddingsClient({ url: `${server.url}/v1`, model: 'test-model', apiKey: 'sk-test', timeoutMs: 2000, ...extra });

  it('success: sends model, input and bearer key to /v1/embeddings; returns vectors in input order', async () => {
    okEmbeddings(server);
    const vectors = await client().embed(['a', 'bbb', 'cc']);
    expect(vectors).toEqual([
      [1, 0],
      [3, 1],
      [2, 2],
    ]);
    expect(server.requests).toHaveLength(1);
    const req = server.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/v1/embeddings');
    expect(req.headers.authorization).toBe('Bearer sk-test');
    expect(req.body).toEqual({ model: 'test-model', input: ['a', 'bbb', 'cc'] });
  });

  it('batching splits inputs across requests, in order', async () => {
    okEmbeddings(server);
    const inputs = Array.from({ length: 7 }, (_, i) => 'x'.repeat(i + 1));
    const vectors = await client({ batchSize: 3 }).embed(inputs);
    expect(server.requests.map((r) => (r.body as { input: string[] }).input)).toEqual([inputs.slice(0, 3), inputs.slice(3, 6), inputs.slice(6)]);
    // Lengths prove the order across batches; the second number is the index within its batch.
    expect(vectors.map((v) => v[0])).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(vectors.map((v) => v[1])).toEqual([0, 1, 2, 0, 1, 2, 0]);
  });

  it('default batch size is 64 and the model is left out when not configured', async () => {
    okEmbeddings(server);
    const inputs = Array.from({ length: 65 }, (_, i) => `t${i}`);
    await client({ model: undefined, apiKey: undefined }).embed(inputs);
    expect(server.requests.map((r) => (r.body as { input: string[] }).input.length)).toEqual([64, 1]);
    expect(server.requests[0]!.body).not.toHaveProperty('model');
    expect(server.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('429 with Retry-After seconds → transient resource/rate_limited with retryAfterMs', async () => {
    server.json(429, { error: 'slow down' }, { 'retry-after': '3' });
    const err = await rejection(client().embed(['a']));
    expect(err).toBeInstanceOf(TransientError);
    expect(classifyError(err)).toMatchObject({ error_type: 'resource', transient: true, code: 'rate_limited', http_status: 429, retry_after_ms: 3000 });
  });

  it('429 with an HTTP-date Retry-After → retryAfterMs from the date', async () => {
    const at = new Date(Date.now() + 120_000).toUTCString();
    server.json(429, {}, { 'retry-after': at });
    const err = (await rejection(client().embed(['a']))) as TransientError;
    expect(err.code).toBe('rate_limited');
    expect(err.retryAfterMs).toBeGreaterThan(100_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(120_000);
  });

  for (const status of [500, 502, 503, 504]) {
    it(`${status} → transient resource/service_unavailable`, async () => {
      server.json(status, { error: 'down' });
      const err = await rejection(client().embed(['a']));
      expect(err).toBeInstanceOf(TransientError);
      expect(classifyError(err)).toMatchObject({ error_type: 'resource', transient: true, code: 'service_unavailable', http_status: status });
    });
  }

  for (const status of [401, 403]) {
    it(`${status} → permanent authentication/upstream_unauthorized`, async () => {
      server.json(status, { error: 'bad key' });
      const err = await rejection(client().embed(['a']));
      expect(err).toBeInstanceOf(PermanentError);
      expect(classifyError(err)).toMatchObject({ error_type: 'authentication', transient: false, code: 'upstream_unauthorized', http_status: status });
    });
  }

  it('400 → permanent validation/invalid_input, quoting the upstream message', async () => {
    server.json(400, { error: { message: 'input too long' } });
    const err = await rejection(client().embed(['a']));
    expect(err).toBeInstanceOf(PermanentError);
    expect(classifyError(err)).toMatchObject({ error_type: 'validation', transient: false, code: 'invalid_input', http_status: 400 });
    expect((err as Error).message).toContain('input too long');
  });

  it('a hang past the timeout → transient network/timeout', async () => {
    server.handler = () => {
      // Never answers.
    };
    const err = await rejection(client({ timeoutMs: 200 }).embed(['a']));
    expect(err).toBeInstanceOf(TransientError);
    expect(classifyError(err)).toMatchObject({ error_type: 'network', transient: true, code: 'timeout' });
  });

  it('headers then a stalled body → network/timeout too', async () => {
    server.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"data": [');
    };
    const err = await rejection(client({ timeoutMs: 300 }).embed(['a']));
    expect(classifyError(err)).toMatchObject({ error_type: 'network', transient: true, code: 'timeout' });
  });

  it('connection reset (socket destroyed) → transient network/connection_reset', async () => {
    server.handler = (_req, res) => res.socket?.destroy();
    const err = await rejection(client().embed(['a']));
    expect(err).toBeInstanceOf(TransientError);
    expect(classifyError(err)).toMatchObject({ error_type: 'network', transient: true, code: 'connection_reset' });
  });

  it('refused (a closed port) → transient network/connection_refused', async () => {
    const err = await rejection(new EmbeddingsClient({ url: await closedPortUrl(), timeoutMs: 2000 }).embed(['a']));
    expect(err).toBeInstanceOf(TransientError);
    expect(classifyError(err)).toMatchObject({ error_type: 'network', transient: true, code: 'connection_refused' });
  });

  it('unknown host → transient network/dns_failure', async () => {
    const err = await rejection(new EmbeddingsClient({ url: 'http://sluice-no-such-host.invalid', timeoutMs: 5000 }).embed(['a']));
    expect(classifyError(err)).toMatchObject({ error_type: 'network', transient: true, code: 'dns_failure' });
  });

  it('malformed JSON → permanent runtime/invalid_response', async () => {
    server.handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data": [oops');
    const err = await rejection(client().embed(['a']));
    expect(err).toBeInstanceOf(PermanentError);
    expect(classifyError(err)).toMatchObject({ error_type: 'runtime', transient: false, code: 'invalid_response', http_status: 200 });
  });

  const wrongShapes: [string, unknown][] = [
    ['no data', { embeddings: [[1, 2]] }],
    ['too few vectors', { data: [] }],
    ['non-numeric vector', { data: [{ index: 0, embedding: ['x'] }] }],
    ['index out of range', { data: [{ index: 5, embedding: [1] }] }],
    ['a JSON array', [[1, 2]]],
  ];
  for (const [name, body] of wrongShapes) {
    it(`wrong shape (${name}) → permanent runtime/invalid_response`, async () => {
      server.json(200, body);
      const err = await rejection(client().embed(['a']));
      expect(err).toBeInstanceOf(PermanentError);
      expect(classifyError(err)).toMatchObject({ error_type: 'runtime', transient: false, code: 'invalid_response' });
    });
  }

  it('the caller aborting (lease lost) stops a hanging request → transient network/aborted', async () => {
    server.handler = () => {
      // Never answers.
    };
    const controller = new AbortController();
    const pending = rejection(client({ timeoutMs: 30_000 }).embed(['a'], controller.signal));
    setTimeout(() => controller.abort(), 50);
    const err = await pending;
    expect(classifyError(err)).toMatchObject({ error_type: 'network', transient: true, code: 'aborted' });
  });
});
