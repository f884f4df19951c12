import type { z } from 'zod';
import type { BucketSchema } from '../buckets/bucket-schema.js';

/** One output document of an extractor: its fields, stored at the document's top level. */
export type ExtractedDocument = Record<string, unknown>;

/** What an extractor gets for one unit of work. */
export interface ExtractorInput<P> {
  /** Validated parameters of the collection's feature_extractor. */
  params: P;
  /**
   * The source's fields after `input_mappings`: metadata fields by name; text blobs as their text; other
   * blobs as `{url, mime_type, size_bytes, sha256}` (DESIGN-NOTES §9); for tier ≥ 1, the source document's fields.
   */
  input: Record<string, unknown>;
  /** Ids for webhooks and logs. */
  context: {
    unitId: string;
    batchId: string;
    collectionId: string;
    tierNum: number;
    source: { object_id: string } | { document_id: string };
  };
  /** Aborted when the unit's lease is lost or the batch is canceled: stop and throw. */
  signal: AbortSignal;
}

/**
 * A feature extractor: turns one source item into zero or more documents. It signals failures only with
 * `TransientError` / `PermanentError` (src/extractors/errors.ts); anything else it throws is treated as a bug
 * (`runtime`, permanent). Extractors own their connections (HTTP clients) and hold no per-unit state.
 */
export interface Extractor<P = unknown> {
  readonly name: string;
  readonly version: string;
  /** `${name}_${version}`, as Mixpeek names extractor ids. */
  readonly id: string;
  readonly description: string;
  /** Validates and defaults `feature_extractor.parameters` at collection creation (422 on failure). */
  readonly parameters: z.ZodType<P>;
  /** Input types this extractor reads (`text`, `image`, …), for the catalogue. */
  readonly supportedInputTypes: readonly string[];
  /** The fields it reads: name → schema field. Collections check their `input_mappings` against it. */
  readonly inputSchema: BucketSchema['properties'];
  /** The fields its documents carry for the given parameters (before `field_passthrough`). */
  outputSchema(params: P): BucketSchema['properties'];
  /**
   * Output fields that identify a document within one source item (chunk index, …): with the source id they
   * make document ids deterministic, so a re-run replaces instead of duplicating.
   */
  readonly positionFields: readonly string[];
  run(input: ExtractorInput<P>): Promise<ExtractedDocument[]>;
}

/** The extractors this server runs, by id (`text_extractor_v1`). */
export type ExtractorRegistry = ReadonlyMap<string, Extractor>;
