import type { z } from 'zod';
import type { BlobStore } from '../blobs/blob-store.js';
import type { Db, Queryable } from '../db/db.js';
import { collectionsReadingBucket } from '../collections/service.js';
import { ApiError, alreadyExists, badRequest, notFound, show, validationFailed } from '../errors/registry.js';
import { compileFilters, compileSort, type FilterFields, SqlParams } from '../http/filters.js';
import { newId } from '../ids/new-id.js';
import { createTask } from '../tasks/service.js';
import { type BucketSchema, checkUniqueKey } from './bucket-schema.js';
import type {
  BatchStatistics,
  BucketCreateRequest,
  BucketListStats,
  BucketPatchRequest,
  BucketResponse,
  DeleteBucketResponse,
  ListBucketsRequest,
  StorageStatistics,
} from './schema.js';

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

/** The organization and namespace a bucket request runs in. */
export interface BucketScope {
  organizationId: string;
  namespaceId: string;
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

const EMPTY_STORAGE: StorageStatistics = { total_size_bytes: 0, avg_size_bytes: 0, max_size_bytes: 0, min_size_bytes: 0 };

function toResponse(row: BucketRow, stats: BucketStats | undefined, statsAt: Date): BucketResponse {
  return {
    bucket_id: row.id,
    bucket_name: row.name,
    description: row.description,
    bucket_schema: row.bucket_schema,
    unique_key: row.unique_key,
    metadata: row.metadata,
    object_count: row.object_count,
    total_size_bytes: row.total_size_bytes,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    last_upload_at: row.last_upload_at?.toISOString() ?? null,
    // Stats are read live from the database on every request, so they are as fresh as the answer.
    stats_updated_at: statsAt.toISOString(),
    status: row.status as BucketResponse['status'],
    is_locked: row.is_locked,
    batch_stats: stats?.batches ?? EMPTY_BATCHES,
    storage_stats: stats?.storage ?? EMPTY_STORAGE,
  };
}

/** The live statistics of one bucket: its objects' sizes and its batches by status. */
interface BucketStats {
  storage: StorageStatistics;
  batches: BatchStatistics;
}

const EMPTY_BATCHES: BatchStatistics = { total: 0, active: 0, completed: 0, failed: 0 };

/**
 * Storage statistics (from objects) and batch statistics (from batches) of some buckets, in one statement
 * of two grouped aggregates. Buckets without objects or batches are absent from the map (all zero).
 */
async function bucketStats(q: Queryable, bucketIds: string[]): Promise<Map<string, BucketStats>> {
  if (bucketIds.length === 0) return new Map();
  const rows = await q.query<{ bucket_id: string; storage: StorageStatistics | null; batches: BatchStatistics | null }>(
    `WITH storage AS (
       SELECT bucket_id,
              json_build_object('total_size_bytes', sum(size_bytes)::bigint, 'avg_size_bytes', round(avg(size_bytes))::bigint,
                                'max_size_bytes', max(size_bytes)::bigint, 'min_size_bytes', min(size_bytes)::bigint) AS stats
       FROM objects WHERE bucket_id = ANY($1::text[]) GROUP BY bucket_id),
     batch AS (
       SELECT bucket_id,
              json_build_object('total', count(*),
                                'active', count(*) FILTER (WHERE status IN ('PENDING', 'IN_PROGRESS')),
                                'completed', count(*) FILTER (WHERE status IN ('COMPLETED', 'COMPLETED_WITH_ERRORS')),
                                'failed', count(*) FILTER (WHERE status = 'FAILED')) AS stats
       FROM batches WHERE bucket_id = ANY($1::text[]) GROUP BY bucket_id)
     SELECT coalesce(s.bucket_id, b.bucket_id) AS bucket_id, s.stats AS storage, b.stats AS batches
     FROM storage s FULL JOIN batch b ON b.bucket_id = s.bucket_id`,
    [bucketIds],
  );
  return new Map(rows.map((r) => [r.bucket_id, { storage: r.storage ?? EMPTY_STORAGE, batches: r.batches ?? EMPTY_BATCHES }]));
}

async function withStats(q: Queryable, row: BucketRow): Promise<BucketResponse> {
  const stats = await bucketStats(q, [row.id]);
  return toResponse(row, stats.get(row.id), new Date());
}

/** Turns the unique-violation of `UNIQUE (namespace_id, name)` into a 409 naming the name. */
const uniqueName = (name: string) => (err: { code?: string }) => {
  if (err.code === '23505') throw alreadyExists('bucket', 'bucket_name', name);
  throw err;
};

export async function createBucket(
  q: Queryable,
  scope: BucketScope,
  body: z.infer<typeof BucketCreateRequest>,
): Promise<BucketResponse> {
  if (body.unique_key) {
    const issues = checkUniqueKey(body.bucket_schema, body.unique_key.fields);
    if (issues.length > 0) throw validationFailed(issues);
  }
  const rows = await q
    .query<BucketRow>(
      `INSERT INTO buckets (id, organization_id, namespace_id, name, description, bucket_schema, unique_key, metadata)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      [
        newId('bkt'),
        scope.organizationId,
        scope.namespaceId,
        body.bucket_name,
        body.description ?? null,
        JSON.stringify(body.bucket_schema),
        body.unique_key ? JSON.stringify({ fields: body.unique_key.fields, default_policy: body.unique_key.default_policy ?? null }) : null,
        JSON.stringify(body.metadata),
      ],
    )
    .catch(uniqueName(body.bucket_name));
  // A new bucket holds no objects: no need to ask the objects table.
  return toResponse(rows[0]!, undefined, rows[0]!.created_at);
}

export async function getBucket(q: Queryable, scope: BucketScope, identifier: string): Promise<BucketResponse> {
  return withStats(q, await requireBucket(q, scope, identifier));
}

/**
 * Applies a PUT or PATCH. Both take the same optional fields (Mixpeek's update model declares each one
 * optional): an absent or `null` field keeps its value, a given `metadata` replaces the whole object.
 * `updated_at` always moves forward by at least the 1 ms the API shows.
 */
export async function updateBucket(
  q: Queryable,
  scope: BucketScope,
  identifier: string,
  body: z.infer<typeof BucketPatchRequest>,
): Promise<BucketResponse> {
  const row = await requireBucket(q, scope, identifier);
  const name = body.bucket_name ?? row.name;
  const rows = await q
    .query<BucketRow>(
      `UPDATE buckets SET
         name = $2,
         description = COALESCE($3, description),
         metadata = COALESCE($4::jsonb, metadata),
         updated_at = GREATEST(now(), updated_at + interval '1 millisecond')
       WHERE id = $1 RETURNING *`,
      [row.id, name, body.description ?? null, body.metadata ? JSON.stringify(body.metadata) : null],
    )
    .catch(uniqueName(name));
  // Deleted by someone else between the read and the update.
  if (!rows[0]) throw notFound('bucket', identifier);
  return withStats(q, rows[0]);
}

/**
 * Deletes a bucket with everything in it. Mixpeek does this in a background task and answers PENDING;
 * here the rows go in one transaction (objects, blobs and uploads follow through foreign keys), so the
 * answer is final: the task it names is already COMPLETED (or FAILED when the blob files could not be
 * removed), and `GET /v1/tasks/{task_id}` reads it back like any other task.
 */
export async function deleteBucket(db: Db, blobs: BlobStore, scope: BucketScope, identifier: string): Promise<DeleteBucketResponse> {
  const bucket = await db.transaction(async (tx) => {
    // The row lock waits for writers that are adding objects (they hold the row while counting), so
    // object_count is exact and nothing is added to the bucket after it.
    const row = await requireBucket(tx, scope, identifier, { forUpdate: true });
    // Collections read buckets by id; deleting one they read would leave them with a source that is gone.
    // Collection creation share-locks its source buckets, so this check cannot race with one being added.
    const readers = await collectionsReadingBucket(tx, scope.namespaceId, row.id);
    if (readers.length > 0) {
      throw new ApiError(
        'already_exists',
        `bucket ${show(row.name)} is the source of collections ${readers.map((c) => show(c.name)).join(', ')}: delete them first`,
        { bucket_id: row.id, dependent_collection_ids: readers.map((c) => c.id) },
      );
    }
    await tx.query('DELETE FROM buckets WHERE id = $1', [row.id]);
    return row;
  });
  // Blob files go after the commit: a rolled-back delete must not lose bytes that rows still point at.
  let error: string | null = null;
  try {
    await blobs.deletePrefix(bucketBlobPrefix(bucket));
  } catch (err) {
    error = `bucket rows were deleted but its blob files under ${bucketBlobPrefix(bucket)} could not be removed: ${(err as Error).message}`;
  }
  const summary = {
    bucket_id: bucket.id,
    bucket_name: bucket.name,
    object_count: bucket.object_count,
    total_size_bytes: bucket.total_size_bytes,
  };
  const task = await createTask(db, {
    organizationId: scope.organizationId,
    namespaceId: scope.namespaceId,
    taskType: 'api_buckets_delete',
    status: error ? 'FAILED' : 'COMPLETED',
    inputs: [{ bucket_id: bucket.id, bucket_name: bucket.name }],
    outputs: [summary],
    error,
  });
  return {
    task_id: task.task_id,
    status: task.status,
    bucket_id: bucket.id,
    bucket_name: bucket.name,
    object_count: bucket.object_count,
    message: error ?? `bucket ${bucket.name} deleted with its ${bucket.object_count} objects`,
  };
}

/** What list filters and sorts may name, and the columns behind them. */
const LIST_FIELDS: FilterFields = {
  bucket_id: { sql: 'id', kind: 'text' },
  bucket_name: { sql: 'name', kind: 'text' },
  description: { sql: 'description', kind: 'text' },
  created_at: { sql: 'created_at', kind: 'timestamp' },
  updated_at: { sql: 'updated_at', kind: 'timestamp' },
  last_upload_at: { sql: 'last_upload_at', kind: 'timestamp' },
  object_count: { sql: 'object_count', kind: 'number' },
  total_size_bytes: { sql: 'total_size_bytes', kind: 'number' },
  metadata: { sql: 'metadata', kind: 'json' },
};

interface ListRow extends BucketRow {
  match_count: number;
  match_objects: number;
  match_bytes: number;
}

/**
 * Lists a namespace's buckets with Mixpeek's filters, search and sort. One statement answers the page
 * and the totals over the whole match (count, objects, bytes); a second one the page's storage stats.
 */
export async function listBuckets(
  q: Queryable,
  scope: BucketScope,
  body: z.infer<typeof ListBucketsRequest>,
  page: { offset: number; limit: number },
): Promise<{ rows: BucketResponse[]; total: number; stats: BucketListStats }> {
  const p = new SqlParams([scope.organizationId, scope.namespaceId]);
  const where = [`organization_id = $1`, `namespace_id = $2`, `(${compileFilters(body.filters, LIST_FIELDS, p, body.case_sensitive)})`];
  if (body.search) {
    // Search is a `contains` over the text fields, through the same compiler (escaping, case folding).
    const search = { OR: ['bucket_id', 'bucket_name', 'description'].map((field) => ({ field, operator: 'contains', value: body.search })) };
    where.push(`(${compileFilters(search, LIST_FIELDS, p, body.case_sensitive)})`);
  }
  const order = compileSort(body.sort, LIST_FIELDS, 'created_at DESC', 'id ASC');
  const sql = `
    WITH matched AS (SELECT * FROM buckets WHERE ${where.join(' AND ')}),
         totals AS (SELECT count(*)::int AS match_count,
                           coalesce(sum(object_count), 0)::bigint AS match_objects,
                           coalesce(sum(total_size_bytes), 0)::bigint AS match_bytes
                    FROM matched),
         page AS (SELECT * FROM matched ORDER BY ${order} LIMIT ${p.add(page.limit)} OFFSET ${p.add(page.offset)})
    SELECT totals.*, page.* FROM totals LEFT JOIN page ON true ORDER BY ${order}`;
  const rows = await q.query<ListRow>(sql, p.values).catch((err: { code?: string; message?: string }) => {
    // Invalid regular expression, or a value the column type cannot take (a bad timestamp).
    if (err.code === '2201B') throw badRequest(`invalid regex in filters: ${err.message}`);
    if (err.code === '22007' || err.code === '22008' || err.code === '22P02') throw badRequest(`invalid value in filters: ${err.message}`);
    throw err;
  });
  const first = rows[0];
  const total = first?.match_count ?? 0;
  const objects = first?.match_objects ?? 0;
  const bytes = first?.match_bytes ?? 0;
  // With an empty page the one row carries the totals only.
  const pageRows = rows.filter((r) => r.id !== null);
  const stats = await bucketStats(
    q,
    pageRows.map((r) => r.id),
  );
  const now = new Date();
  return {
    rows: pageRows.map((r) => {
      const { match_count: _c, match_objects: _o, match_bytes: _b, ...row } = r;
      return toResponse(row, stats.get(row.id), now);
    }),
    total,
    stats: {
      total_objects: objects,
      total_size_bytes: bytes,
      avg_objects_per_bucket: total > 0 ? objects / total : 0,
      avg_size_per_bucket: total > 0 ? bytes / total : 0,
    },
  };
}
