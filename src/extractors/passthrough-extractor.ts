import { z } from 'zod';
import type { Extractor } from './extractor.js';

/** No settings: which fields pass is decided by the collection's `input_mappings`. */
export const PassthroughExtractorParams = z.object({
  extractor_type: z.literal('passthrough_extractor').default('passthrough_extractor'),
});
export type PassthroughExtractorParams = z.output<typeof PassthroughExtractorParams>;

/**
 * `passthrough_extractor` v1: one document per source item, carrying the input fields unchanged (metadata
 * values, text blobs as text, other blobs as `{url, mime_type, size_bytes, sha256}`). Useful as a downstream
 * tier, or to index metadata without features.
 */
export function createPassthroughExtractor(): Extractor<PassthroughExtractorParams> {
  return {
    name: 'passthrough_extractor',
    version: 'v1',
    id: 'passthrough_extractor_v1',
    description: 'Copies the input fields (after input_mappings) into one document per source item, unchanged.',
    parameters: PassthroughExtractorParams as z.ZodType<PassthroughExtractorParams>,
    supportedInputTypes: ['text', 'string', 'number', 'integer', 'float', 'boolean', 'object', 'array', 'date', 'datetime', 'image', 'audio', 'video', 'pdf', 'excel'],
    // Empty: it reads whatever fields it is given, so input_mappings may name any source field.
    inputSchema: {},
    // Empty: its documents carry the input fields, which depend on the source, not on parameters.
    outputSchema: () => ({}),
    positionFields: [],
    async run(input) {
      // A shallow copy: the document must not alias the engine's input object.
      return [{ ...input.input }];
    },
  };
}
