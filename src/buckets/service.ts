import type { Queryable } from '../db/db.js';
import { notFound } from '../errors/registry.js';
import type { BucketSchema } from './bucket-schema.js';

/** A bucket row as services use it. */
export interface BucketRow {
  id: string;
  organization_id: string;
  namespace_id: string;
  name: string;
  description: string | null;
  bucket_schema: BucketSchema;
  unique_key: { fields: string[]; default_policy?: 'insert' | 'update' | 'upsert' | null } | null;
  metadata: Record<string, unknown>;
  status: string;
  is_locked: boolean;
  object_count: number;
  total_size_bytes: number;
  last_upload_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * Finds a bucket by `bkt_…` id or by name inside one namespace of one organization; 404 otherwise.
 * `forUpdate` locks the row for the rest of the transaction (counters, unique keys, deletion).
 */
export async function requireBucket(
  q: Queryable,
  scope: { organizationId: string; namespaceId: string },
  identifier: string,
  options: { forUpdate?: boolean } = {},
): Promise<BucketRow> {
  const rows = await q.query<BucketRow>(
    `SELECT * FROM buckets WHERE organization_id = $1 AND namespace_id = $2 AND (id = $3 OR name = $3)
     ORDER BY (id = $3) DESC LIMIT 1 ${options.forUpdate ? 'FOR UPDATE' : ''}`,
    [scope.organizationId, scope.namespaceId, identifier],
  );
  if (!rows[0]) throw notFound('bucket', identifier);
  return rows[0];
}

/** The blob-store prefix that holds everything of a bucket. */
export function bucketBlobPrefix(bucket: Pick<BucketRow, 'organization_id' | 'namespace_id' | 'id'>): string {
  return `${bucket.organization_id}/${bucket.namespace_id}/${bucket.id}`;
}
