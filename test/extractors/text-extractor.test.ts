import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddingsClient } from '../../src/extractors/embeddings-client.js';
import { classifyError } from '../../src/extractors/errors.js';
import type { Extractor } from '../../src/extractors/extractor.js';
import { OFFLINE_EMBEDDING_DIMS, offlineEmbedding } from '../../src/extractors/offline-embedding.js';
import { createExtractorRegistry, describeExtractor } from '../../src/extractors/registry.js';
import { createTextExtractor, type TextExtractorParams } from '../../src/extractors/text-extractor.js';
import { FaultServer, rejection } from './fault-server.js';

const context = { unitId: 'u', batchId: 'b', collectionId: 'c', tierNum: 0, source: { object_id: 'o' } };
const signal = new AbortController().signal;

function runText(extractor: Extractor<TextExtractorParams>, params: unknown, input: Record<string, unknown>) {
  return extractor.run({ params: extractor.parameters.parse(params), input, context, signal });
}

describe('text_extractor parameters', () => {
  const e = createTextExtractor();
  it('defaults as the spec', () => {
    expect(e.parameters.parse({})).toMatchObject({ extractor_type: 'text_extractor', source_type: 'text', split_by: 'none', chunk_size: 1000, chunk_overlap: 0 });
  });

  it('chunk_overlap ≥ chunk_size is refused, naming chunk_overlap', () => {
    const r = e.parameters.safeParse({ split_by: 'words', chunk_size: 5, chunk_overlap: 5 });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path)).toEqual([['chunk_overlap']]);
    expect(e.parameters.safeParse({ split_by: 'words', chunk_size: 5, chunk_overlap: 4 }).success).toBe(true);
  });

  it('what Sluice does not support is refused with a clear message', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ source_type: 'youtube' }, 'source_type'],
      [{ split_by: 'time_segments' }, 'split_by'],
      [{ split_by: 'pages' }, 'split_by'],
      [{ response_shape: { type: 'object' } }, 'response_shape'],
      [{ llm_provider: 'openai' }, 'llm_provider'],
      [{ llm_model: 'gpt' }, 'llm_model'],
      [{ llm_api_key: 'sk' }, 'llm_api_key'],
    ];
    for (const [params, field] of cases) {
      const r = e.parameters.safeParse(params);
      expect(r.success, field).toBe(false);
      expect(r.error!.issues[0]!.path).toEqual([field]);
      expect(r.error!.issues[0]!.message).toContain('not supported by Sluice');
    }
    // Explicit nulls are what Mixpeek clients send for "unset": accepted.
    expect(e.parameters.safeParse({ response_shape: null, llm_provider: null, llm_model: null, llm_api_key: null }).success).toBe(true);
  });
});

describe('text_extractor run (offline embedding)', () => {
  const e = createTextExtractor();

  it('one document per chunk with text, chunk_index and the offline embedding', async () => {
    const docs = await runText(e, { split_by: 'sentences', chunk_size: 1 }, { text: 'First one. Second one.' });
    expect(docs).toEqual([
      { text: 'First one.', chunk_index: 0, embedding: offlineEmbedding('First one.') },
      { text: 'Second one.', chunk_index: 1, embedding: offlineEmbedding('Second one.') },
    ]);
    expect((docs[0]!.embedding as number[]).length).toBe(OFFLINE_EMBEDDING_DIMS);
  });

  it('missing text → permanent validation/missing_field; non-string and empty → invalid_input', async () => {
    expect(classifyError(await rejection(runText(e, {}, { title: 'x' })))).toMatchObject({ error_type: 'validation', transient: false, code: 'missing_field' });
    expect(classifyError(await rejection(runText(e, {}, { text: 42 })))).toMatchObject({ error_type: 'validation', transient: false, code: 'invalid_input' });
    expect(classifyError(await rejection(runText(e, {}, { text: '  \n' })))).toMatchObject({ error_type: 'validation', transient: false, code: 'invalid_input' });
  });
});

describe('text_extractor run with an embeddings endpoint', () => {
  let server: FaultServer;
  beforeAll(async () => {
    server = await FaultServer.start();
  });
  afterAll(async () => {
    await server.close();
  });

  it('embeds all chunks through the endpoint, in order, batched', async () => {
    server.handler = (req, res) => {
      const input = (req.body as { input: string[] }).input;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: input.map((t, index) => ({ index, embedding: [Number(t.slice(1))] })) }));
    };
    const e = createTextExtractor({ embeddings: new EmbeddingsClient({ url: server.url, batchSize: 2 }) });
    const docs = await runText(e, { split_by: 'words', chunk_size: 1 }, { text: 'w0 w1 w2 w3 w4' });
    expect(docs.map((d) => [d.chunk_index, d.text, d.embedding])).toEqual([
      [0, 'w0', [0]],
      [1, 'w1', [1]],
      [2, 'w2', [2]],
      [3, 'w3', [3]],
      [4, 'w4', [4]],
    ]);
    expect(server.requests.map((r) => r.url)).toEqual(['/v1/embeddings', '/v1/embeddings', '/v1/embeddings']);
  });

  it('an endpoint failure surfaces classified', async () => {
    server.json(503, {});
    const e = createTextExtractor({ embeddings: new EmbeddingsClient({ url: server.url }) });
    expect(classifyError(await rejection(runText(e, {}, { text: 'hi' })))).toMatchObject({ error_type: 'resource', transient: true, code: 'service_unavailable' });
  });
});

describe('registry and catalogue', () => {
  it('holds the three extractors by id', () => {
    const r = createExtractorRegistry({ allowPrivateUrls: false });
    expect([...r.keys()].sort()).toEqual(['passthrough_extractor_v1', 'text_extractor_v1', 'webhook_extractor_v1']);
  });

  it('passthrough copies the input fields into one document (a copy, not the same object)', async () => {
    const p = createExtractorRegistry({ allowPrivateUrls: false }).get('passthrough_extractor_v1')!;
    const input = { a: 1, b: 'x', blob: { url: 'u' } };
    const docs = await p.run({ params: p.parameters.parse({}), input, context, signal });
    expect(docs).toEqual([input]);
    expect(docs[0]).not.toBe(input);
  });

  it('describes extractors as the spec models them, with JSON Schemas', () => {
    const r = createExtractorRegistry({ allowPrivateUrls: false });
    const text = describeExtractor(r.get('text_extractor_v1')!);
    expect(text).toMatchObject({
      feature_extractor_name: 'text_extractor',
      version: 'v1',
      feature_extractor_id: 'text_extractor_v1',
      source: 'builtin',
      icon: 'file-text',
      supported_input_types: ['text', 'string'],
      position_fields: ['chunk_index'],
      max_inputs: { text: 1 },
      default_parameters: { extractor_type: 'text_extractor', split_by: 'none', chunk_size: 1000, chunk_overlap: 0 },
    });
    expect(text.parameter_schema).toMatchObject({ type: 'object', properties: { split_by: { enum: ['characters', 'words', 'sentences', 'paragraphs', 'none'] } } });
    expect(text.output_schema).toMatchObject({ type: 'object', properties: { embedding: { type: 'array' }, chunk_index: { type: 'integer' } } });
    expect(text.input_schema).toMatchObject({ required: ['text'] });
    const hook = describeExtractor(r.get('webhook_extractor_v1')!);
    expect(hook.parameter_schema).toMatchObject({ required: ['url'] });
    expect(hook.default_parameters).toEqual({ extractor_type: 'webhook_extractor', timeout_ms: 30000 });
    // The whole description must survive JSON (it is sent as is).
    expect(JSON.parse(JSON.stringify(text))).toEqual(text);
  });
});

describe('describeExtractor with unrepresentable parameters', () => {
  it('a transform in the parameter schema does not break the catalogue', async () => {
    const { z } = await import('zod');
    const base = createTextExtractor();
    const odd: Extractor = {
      ...(base as unknown as Extractor),
      id: 'odd_v1',
      parameters: z.object({ n: z.string().default('1').transform((s) => Number(s)), when: z.date().optional() }),
    };
    const d = describeExtractor(odd);
    expect(d.parameter_schema).toMatchObject({ type: 'object', properties: { n: { type: 'string', default: '1' } } });
    expect(d.default_parameters).toEqual({ n: '1' });
  });
});
