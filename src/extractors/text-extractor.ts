import { z } from 'zod';
import type { EmbeddingsClient } from './embeddings-client.js';
import { PermanentError } from './errors.js';
import type { Extractor, ExtractorInput } from './extractor.js';
import { OFFLINE_EMBEDDING_DIMS, offlineEmbedding } from './offline-embedding.js';
import { chunkText, SPLIT_STRATEGIES } from './text-chunker.js';

const NOT_SUPPORTED = 'is not supported by Sluice';

/**
 * Mixpeek's `TextExtractorParams`, with the same defaults. What Sluice cannot do is refused at collection
 * creation (422) rather than silently ignored: YouTube sources, `pages`/`time_segments` splitting and LLM
 * structured extraction. The YouTube-only fields are accepted (with their defaults) and have no effect.
 */
export const TextExtractorParams = z
  .object({
    extractor_type: z.literal('text_extractor').default('text_extractor'),
    source_type: z.enum(['text'], { error: `source_type must be "text" (youtube ${NOT_SUPPORTED})` }).default('text'),
    split_by: z
      .enum(SPLIT_STRATEGIES, { error: `split_by must be one of ${SPLIT_STRATEGIES.join(', ')} (pages and time_segments ${NOT_SUPPORTED})` })
      .default('none'),
    chunk_size: z.int().min(1).max(10_000).default(1000),
    chunk_overlap: z.int().min(0).max(5000).default(0),
    segment_length_seconds: z.int().min(30).max(600).default(120),
    language: z.string().default('en'),
    extract_captions: z.boolean().default(true),
    response_shape: z
      .union([z.string(), z.record(z.string(), z.unknown())])
      .nullish()
      .refine((v) => v == null, { message: `response_shape (LLM structured extraction) ${NOT_SUPPORTED}; leave it out` }),
    llm_provider: z
      .string()
      .nullish()
      .refine((v) => v == null, { message: `llm_provider ${NOT_SUPPORTED}; leave it out` }),
    llm_model: z
      .string()
      .nullish()
      .refine((v) => v == null, { message: `llm_model ${NOT_SUPPORTED}; leave it out` }),
    llm_api_key: z
      .string()
      .nullish()
      .refine((v) => v == null, { message: `llm_api_key ${NOT_SUPPORTED}; leave it out` }),
  })
  .refine((p) => p.chunk_overlap < p.chunk_size, {
    path: ['chunk_overlap'],
    message: 'chunk_overlap must be smaller than chunk_size',
  });
export type TextExtractorParams = z.output<typeof TextExtractorParams>;

export interface TextExtractorOptions {
  /** Semantic embeddings from an endpoint; without it the offline lexical embedding (offline-embedding.ts). */
  embeddings?: EmbeddingsClient;
}

/** `text_extractor` v1: chunks the `text` input per `split_by` and embeds each chunk; one document per chunk. */
export function createTextExtractor(options: TextExtractorOptions = {}): Extractor<TextExtractorParams> {
  const { embeddings } = options;
  return {
    name: 'text_extractor',
    version: 'v1',
    id: 'text_extractor_v1',
    description: embeddings
      ? `Splits text into chunks (characters, words, sentences, paragraphs or none) and embeds each chunk with ${embeddings.model ?? 'the model'} at ${embeddings.endpoint}.`
      : `Splits text into chunks (characters, words, sentences, paragraphs or none) and embeds each chunk with the built-in offline embedding: ${OFFLINE_EMBEDDING_DIMS}-dimensional lexical feature hashing (shared words, not meaning). Set SLUICE_EMBEDDINGS_URL for semantic embeddings.`,
    parameters: TextExtractorParams as z.ZodType<TextExtractorParams>,
    supportedInputTypes: ['text', 'string'],
    inputSchema: { text: { type: 'text', description: 'The text to chunk and embed.', required: true } },
    outputSchema: () => ({
      text: { type: 'string', description: 'The chunk text.' },
      chunk_index: { type: 'integer', description: 'Position of the chunk in its source text, from 0.' },
      embedding: { type: 'array', items: { type: 'float' }, description: 'Embedding vector of the chunk text.' },
    }),
    positionFields: ['chunk_index'],
    async run(input: ExtractorInput<TextExtractorParams>) {
      const text = readText(input.input);
      const { split_by, chunk_size, chunk_overlap } = input.params;
      const chunks = chunkText(text, { splitBy: split_by, chunkSize: chunk_size, chunkOverlap: chunk_overlap });
      if (chunks.length === 0) return [];
      const texts = chunks.map((c) => c.text);
      const vectors = embeddings ? await embeddings.embed(texts, input.signal) : texts.map((t) => offlineEmbedding(t));
      return chunks.map((c, i) => ({ text: c.text, chunk_index: c.chunk_index, embedding: vectors[i]! }));
    },
  };
}

function readText(fields: Record<string, unknown>): string {
  if (!Object.hasOwn(fields, 'text') || fields.text == null) {
    throw new PermanentError('input field "text" is missing: map a text field to it with input_mappings', {
      code: 'missing_field',
      category: 'validation',
    });
  }
  const text = fields.text;
  if (typeof text !== 'string') {
    throw new PermanentError(`input field "text" must be a string (got ${Array.isArray(text) ? 'array' : typeof text})`, {
      code: 'invalid_input',
      category: 'validation',
    });
  }
  if (text.trim() === '') {
    throw new PermanentError('input field "text" is empty', { code: 'invalid_input', category: 'validation' });
  }
  return text;
}
