import type { FieldType } from '../buckets/bucket-schema.js';
import type { Queryable } from '../db/db.js';
import type { BlobModel, ObjectResponse } from './schema.js';

/** An `objects` row. */
export interface ObjectRow {
  id: string;
  organization_id: string;
  namespace_id: string;
  bucket_id: string;
  key_prefix: string | null;
  metadata: Record<string, unknown>;
  unique_key_value: string | null;
  status: string;
  error: string | null;
  size_bytes: number;
  created_at: Date;
  updated_at: Date;
}

/** A `blobs` row. */
export interface BlobRow {
  id: string;
  object_id: string;
  bucket_id: string;
  position: number;
  property: string;
  type: FieldType;
  key_prefix: string | null;
  source: 'text' | 'stored' | 'url';
  text_value: string | null;
  storage_key: string | null;
  url: string | null;
  filename: string | null;
  mime_type: string | null;
  size_bytes: number | null;
  sha256: string | null;
  metadata: Record<string, unknown>;
}

/**
 * Mixpeek's `BlobModel`. `properties` holds the blob's own metadata beside what locates its content: `text`
 * (inline text), `url` (a reference fetched when processed) or `storage_key` (bytes in Sluice's blob store).
 */
export function toBlobModel(b: BlobRow): BlobModel {
  const where = b.source === 'text' ? { text: b.text_value } : b.source === 'url' ? { url: b.url } : { storage_key: b.storage_key };
  return {
    blob_id: b.id,
    property: b.property,
    key_prefix: b.key_prefix,
    type: b.type,
    properties: { ...b.metadata, ...where },
    details: { filename: b.filename, size_bytes: b.size_bytes, mime_type: b.mime_type, hash: b.sha256 },
  };
}

/** Mixpeek's `ObjectResponse` for a row and its blobs (in position order). */
export function toObjectResponse(row: ObjectRow, blobs: BlobRow[]): ObjectResponse {
  return {
    object_id: row.id,
    bucket_id: row.bucket_id,
    key_prefix: row.key_prefix,
    metadata: row.metadata,
    blobs: [...blobs].sort((a, b) => a.position - b.position).map(toBlobModel),
    source_details: [{ type: 'bucket', source_id: row.bucket_id }],
    status: row.status,
    error: row.error,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** The blobs of many objects in one query, grouped by object id. */
export async function blobsOf(q: Queryable, objectIds: string[]): Promise<Map<string, BlobRow[]>> {
  const out = new Map<string, BlobRow[]>();
  if (objectIds.length === 0) return out;
  const rows = await q.query<BlobRow>('SELECT * FROM blobs WHERE object_id = ANY($1::text[]) ORDER BY object_id, position', [
    objectIds,
  ]);
  for (const row of rows) {
    const list = out.get(row.object_id);
    if (list) list.push(row);
    else out.set(row.object_id, [row]);
  }
  return out;
}
