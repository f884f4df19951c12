import { BlobMissingError, type BlobStore } from '../blobs/blob-store.js';
import type { Queryable } from '../db/db.js';
import type { DocumentLineage } from '../documents/document-shape.js';
import { PermanentError } from '../extractors/errors.js';
import { type BlobRow, blobsOf } from '../objects/object-rows.js';
import type { ClaimedUnit } from './claim-units.js';
import { setField } from '../util/set-field.js';

/** The item a unit reads: a bucket object (tier 0) or a document of an upstream collection. */
export interface UnitSource {
  /** Every field of the source: metadata and blobs by property, or a document's fields and vectors. */
  fields: Record<string, unknown>;
  rootBucketId: string;
  /** For documents: the source document's lineage and collection. */
  parent: { lineage: DocumentLineage; collectionId: string } | null;
}

/** A fetchable URL of a stored blob's bytes (signed, on Sluice itself), when the engine knows Sluice's URL. */
export type BlobUrlOf = (blobId: string) => Promise<string>;

/** Largest text blob the engine reads into memory for an extractor. */
export const MAX_TEXT_BLOB_BYTES = 32 * 1024 * 1024;

async function readText(store: BlobStore, key: string): Promise<string> {
  const stream = await store.get(key);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > MAX_TEXT_BLOB_BYTES) {
      stream.destroy();
      throw new PermanentError(`text blob ${key} is larger than ${MAX_TEXT_BLOB_BYTES} bytes, the most Sluice reads as text`, {
        code: 'payload_too_large',
        category: 'validation',
      });
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** A blob as extractors see it (DESIGN-NOTES §9): text blobs as their text, others as a reference. */
async function blobValue(store: BlobStore, blob: BlobRow, blobUrl: BlobUrlOf | undefined): Promise<unknown> {
  if (blob.type === 'text' || blob.type === 'string') {
    if (blob.source === 'text') return blob.text_value ?? '';
    if (blob.source === 'stored' && blob.storage_key) {
      try {
        return await readText(store, blob.storage_key);
      } catch (err) {
        if (err instanceof BlobMissingError) {
          throw new PermanentError(`text blob ${blob.id} (${blob.property}) is missing from the blob store`, {
            code: 'blob_missing',
            category: 'dependency',
          });
        }
        throw err;
      }
    }
    throw new PermanentError(
      `text blob ${blob.id} (${blob.property}) is a URL reference (${blob.url}); Sluice does not fetch text from URLs: send the text itself or upload it`,
      { code: 'unsupported_format', category: 'validation' },
    );
  }
  return {
    url: blob.source === 'url' ? blob.url : blob.source === 'stored' && blobUrl ? await blobUrl(blob.id) : null,
    storage_key: blob.source === 'stored' ? blob.storage_key : null,
    mime_type: blob.mime_type,
    size_bytes: blob.size_bytes,
    sha256: blob.sha256,
    filename: blob.filename,
  };
}

/**
 * Loads the sources of many units at once: one query for objects, one for their blobs, one for documents
 * (whatever the number of units). A source that is gone, or a blob that cannot be read, becomes a
 * permanent error for the units that read it, not for the whole round.
 */
export async function loadSources(
  q: Queryable,
  store: BlobStore,
  units: readonly ClaimedUnit[],
  blobUrl?: BlobUrlOf,
): Promise<Map<string, UnitSource | PermanentError>> {
  const out = new Map<string, UnitSource | PermanentError>();
  const objectIds = [...new Set(units.filter((u) => u.source_type === 'object').map((u) => u.source_id))];
  const documentIds = [...new Set(units.filter((u) => u.source_type === 'document').map((u) => u.source_id))];

  if (objectIds.length > 0) {
    const [objects, blobs] = await Promise.all([
      q.query<{ id: string; bucket_id: string; metadata: Record<string, unknown> }>(
        'SELECT id, bucket_id, metadata FROM objects WHERE id = ANY($1::text[])',
        [objectIds],
      ),
      blobsOf(q, objectIds),
    ]);
    await Promise.all(
      objects.map(async (o) => {
        try {
          const fields: Record<string, unknown> = { ...o.metadata };
          for (const blob of blobs.get(o.id) ?? []) {
            setField(fields, blob.property, await blobValue(store, blob, blobUrl));
          }
          out.set(o.id, { fields, rootBucketId: o.bucket_id, parent: null });
        } catch (err) {
          out.set(o.id, err instanceof PermanentError ? err : new PermanentError(String((err as Error).message), { code: 'blob_missing', category: 'dependency' }));
        }
      }),
    );
  }
  if (documentIds.length > 0) {
    const docs = await q.query<{
      id: string;
      collection_id: string;
      root_bucket_id: string;
      fields: Record<string, unknown>;
      vectors: Record<string, unknown> | null;
      lineage: DocumentLineage;
    }>('SELECT id, collection_id, root_bucket_id, fields, vectors, lineage FROM documents WHERE id = ANY($1::text[])', [documentIds]);
    for (const d of docs) {
      out.set(d.id, { fields: { ...d.fields, ...d.vectors }, rootBucketId: d.root_bucket_id, parent: { lineage: d.lineage, collectionId: d.collection_id } });
    }
  }
  for (const u of units) {
    if (!out.has(u.source_id)) {
      const what = u.source_type === 'object' ? 'object' : 'document';
      out.set(
        u.source_id,
        new PermanentError(`source ${what} ${u.source_id} no longer exists (deleted after the batch was submitted)`, {
          code: 'source_missing',
          category: 'dependency',
        }),
      );
    }
  }
  return out;
}
