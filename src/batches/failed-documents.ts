import type { Queryable } from '../db/db.js';
import type { FailedDocument, FailedDocumentsQuery, FailedDocumentsResponse } from './schema.js';

interface FailedUnitRow {
  match_count: number;
  id: number | null;
  batch_id: string;
  tier_num: number;
  collection_id: string;
  source_type: 'object' | 'document';
  source_id: string;
  root_object_id: string;
  status: string;
  attempts: number;
  retry_count: number;
  last_retry_at: Date | null;
  next_attempt_at: Date | null;
  last_error: Record<string, unknown> | null;
  error_history: Record<string, unknown>[];
}

/**
 * One page of a batch's failed units, ordered by (tier_num, id), and how many match (DESIGN-NOTES §7).
 * Page and count in one statement; every filter sits on `batch_id` and `status = 'failed'`, so the
 * `units_failed` partial index serves it and its cost grows with the failures, not with the batch.
 */
export async function listFailedDocuments(q: Queryable, batchId: string, query: FailedDocumentsQuery): Promise<FailedDocumentsResponse> {
  const rows = await q.query<FailedUnitRow>(
    `WITH matched AS (
       SELECT u.id, u.batch_id, u.tier_num, u.collection_id, u.source_type, u.source_id, u.root_object_id, u.status,
              u.attempts, u.retry_count, u.last_retry_at, u.next_attempt_at, u.last_error, u.error_history
         FROM units u
        WHERE u.batch_id = $1 AND u.status = 'failed'
          AND ($2::integer IS NULL OR u.tier_num = $2)
          AND ($3::text IS NULL OR u.collection_id = $3)
          AND ($4::text IS NULL OR u.last_error->>'error_type' = $4)
          AND ($5::boolean IS NULL OR coalesce(u.last_error->'transient' = 'true'::jsonb, false) = $5)
     ), totals AS (SELECT count(*)::int AS match_count FROM matched),
        page AS (SELECT * FROM matched ORDER BY tier_num, id LIMIT $6 OFFSET $7)
     SELECT totals.*, page.* FROM totals LEFT JOIN page ON true ORDER BY page.tier_num, page.id`,
    [
      batchId,
      query.tier_num ?? null,
      query.collection_id ?? null,
      query.error_type ?? null,
      query.transient ?? null,
      query.limit,
      query.offset,
    ],
  );
  const results: FailedDocument[] = rows
    .filter((r) => r.id !== null)
    .map((r) => ({
      document_id: r.source_id,
      unit_id: String(r.id),
      batch_id: r.batch_id,
      tier_num: r.tier_num,
      collection_id: r.collection_id,
      source_object_id: r.source_type === 'object' ? r.source_id : null,
      source_document_id: r.source_type === 'document' ? r.source_id : null,
      root_object_id: r.root_object_id,
      status: r.status,
      attempts: r.attempts,
      retry_count: r.retry_count,
      last_retry_at: r.last_retry_at?.toISOString() ?? null,
      next_attempt_at: r.next_attempt_at?.toISOString() ?? null,
      error: r.last_error,
      error_history: r.error_history,
    }));
  return { results, total_count: rows[0]?.match_count ?? 0, limit: query.limit, offset: query.offset };
}
