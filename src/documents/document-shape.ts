import { createHash } from 'node:crypto';
import type { BucketSchema } from '../buckets/bucket-schema.js';
import { setField } from '../util/set-field.js';

/**
 * The id of a collection's document for one source item and position. Deterministic, so a re-run or a
 * retried unit writes the same ids again and replaces its earlier outputs instead of adding to them.
 */
export function documentId(collectionId: string, sourceId: string, position: string | number): string {
  const digest = createHash('sha256').update(`${collectionId}\u0000${sourceId}\u0000${position}`).digest('hex');
  return `doc_${digest.slice(0, 24)}`;
}

/**
 * Output fields that hold embedding vectors: arrays of floats. They are stored apart from the other fields,
 * so that reading documents without `return_vectors` never ships them.
 */
export function vectorFieldNames(outputSchema: BucketSchema | null | undefined): string[] {
  const props = outputSchema?.properties ?? {};
  return Object.entries(props)
    .filter(([, f]) => f.type === 'array' && (f.items?.type === 'float' || f.items?.type === 'number'))
    .map(([name]) => name);
}

/** Splits a document's fields into plain fields and vector fields (null when there are none). */
export function splitVectors(
  doc: Record<string, unknown>,
  vectorFields: readonly string[],
): { fields: Record<string, unknown>; vectors: Record<string, unknown> | null } {
  if (vectorFields.length === 0) return { fields: doc, vectors: null };
  const fields: Record<string, unknown> = {};
  const vectors: Record<string, unknown> = {};
  let hasVectors = false;
  for (const [k, v] of Object.entries(doc)) {
    if (vectorFields.includes(k)) {
      setField(vectors, k, v);
      hasVectors = true;
    } else {
      setField(fields, k, v);
    }
  }
  return { fields, vectors: hasVectors ? vectors : null };
}

/** Mixpeek's `InternalLineageModel`, as stored with each document. */
export interface DocumentLineage {
  root_object_id: string;
  root_bucket_id: string;
  /** `bucket`: made from a bucket object (tier 0); `collection`: from another collection's document. */
  source_type: 'bucket' | 'collection';
  source_object_id: string | null;
  source_document_id: string | null;
  source_collection_id: string | null;
  /** `bkt_…/col_…/col_…`: bucket, then each collection on the way. */
  path: string;
  /** Each processing step from the root object to this document. */
  chain: { collection_id: string; feature_extractor_id: string; document_id: string; timestamp: string }[];
}
