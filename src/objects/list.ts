import { selectFields } from '../http/select-fields.js';
import type { BucketRow } from '../buckets/service.js';
import type { Queryable } from '../db/db.js';
import { badRequest } from '../errors/registry.js';
import { compileFilters, compileSort, type FilterFields, SqlParams } from '../http/filters.js';
import { type ListQuery, paginate, startOffset } from '../http/pagination.js';
import { blobsOf, type ObjectRow, toObjectResponse } from './object-rows.js';
import type { ListObjectsRequest, ObjectListStats, ObjectResponse } from './schema.js';

/** What object lists filter and sort on. `metadata.<path>` reaches into metadata. */
export const OBJECT_FIELDS: FilterFields = {
  object_id: { sql: 'o.id', kind: 'text' },
  status: { sql: 'o.status', kind: 'text' },
  key_prefix: { sql: 'o.key_prefix', kind: 'text' },
  created_at: { sql: 'o.created_at', kind: 'timestamp' },
  updated_at: { sql: 'o.updated_at', kind: 'timestamp' },
  metadata: { sql: 'o.metadata', kind: 'json' },
};

/** Fields `select` never drops: an object is always identifiable. */
const ALWAYS_SELECTED = ['object_id', 'bucket_id'];


/**
 * Lists a bucket's objects: Mixpeek's filters (`LogicalOperator` or shorthand) over id, status, key_prefix,
 * timestamps and `metadata.<path>`, `search` over id, key_prefix and metadata text, `sort` (default
 * created_at ascending, so that appended objects never shift the pages a cursor walks), `select`, and
 * stats over the whole match. Three statements whatever the page size: page, stats, the page's blobs.
 */
export async function listObjects(
  q: Queryable,
  bucket: BucketRow,
  body: ListObjectsRequest,
  query: ListQuery,
): Promise<{ results: (Partial<ObjectResponse> & { object_id: string; bucket_id: string })[]; pagination: ReturnType<typeof paginate>; stats: ObjectListStats }> {
  const offset = startOffset(query);
  const p = new SqlParams([bucket.id, bucket.organization_id]);
  const where = ['o.bucket_id = $1', 'o.organization_id = $2', `(${compileFilters(body.filters, OBJECT_FIELDS, p)})`];
  if (body.search) {
    const term = p.add(`%${body.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`(o.id ILIKE ${term} OR coalesce(o.key_prefix, '') ILIKE ${term} OR o.metadata::text ILIKE ${term})`);
  }
  const order = compileSort(
    body.sort ? { field: body.sort.field, direction: body.sort.direction } : null,
    OBJECT_FIELDS,
    'o.created_at ASC',
    'o.id ASC',
  );
  const whereSql = where.join(' AND ');
  const run = async <R>(sql: string, params: unknown[]): Promise<R[]> =>
    q.query<R>(sql, params).catch((err: { code?: string; message?: string }) => {
      if (err.code === '2201B') throw badRequest(`invalid regex in filters: ${err.message}`);
      throw err;
    });
  const pageParams = new SqlParams(p.values);
  const rows = await run<ObjectRow>(
    `SELECT o.* FROM objects o WHERE ${whereSql} ORDER BY ${order}
     LIMIT ${pageParams.add(query.limit)} OFFSET ${pageParams.add(offset)}`,
    pageParams.values,
  );
  // Stats span the whole match, not the page; its count is the pagination total too.
  const byStatus = await run<{ status: string; objects: number; blobs: number }>(
    `SELECT o.status, count(*)::int AS objects,
            coalesce(sum((SELECT count(*) FROM blobs b WHERE b.object_id = o.id)), 0)::int AS blobs
     FROM objects o WHERE ${whereSql} GROUP BY o.status`,
    p.values,
  );
  const totalObjects = byStatus.reduce((n, s) => n + s.objects, 0);
  const totalBlobs = byStatus.reduce((n, s) => n + s.blobs, 0);
  const stats: ObjectListStats = {
    total_objects: totalObjects,
    total_blobs: totalBlobs,
    avg_blobs_per_object: totalObjects === 0 ? 0 : totalBlobs / totalObjects,
    objects_by_status: Object.fromEntries(byStatus.map((s) => [s.status, s.objects])),
  };
  const select = body.select ?? null;
  const wantBlobs = select === null || select.some((s) => s === 'blobs' || s.startsWith('blobs.'));
  const blobs = wantBlobs ? await blobsOf(q, rows.map((r) => r.id)) : new Map();
  const results = rows.map((row) => {
    const full = toObjectResponse(row, blobs.get(row.id) ?? []);
    return select === null ? full : (selectFields(full, select, ALWAYS_SELECTED) as Partial<ObjectResponse> & { object_id: string; bucket_id: string });
  });
  return { results, pagination: paginate(offset, query.limit, rows.length, totalObjects), stats };
}
