import type { Queryable } from '../db/db.js';
import type { BatchLogsQuery, BatchLogsResponse } from './schema.js';

/** The most events one answer carries (the newest; `truncated` says when older ones were left out). */
export const MAX_LOG_EVENTS = 1000;

/**
 * A batch's processing log. Mixpeek serves the logs of the Ray jobs behind a batch; Sluice has no separate job
 * runner, so the log is assembled from what the database records: the batch's and its tiers' transitions, and
 * every failed attempt kept in the units' error histories. One statement; with a `tier_num`, the batch's own
 * events are left out.
 */
export async function batchLogs(q: Queryable, batchId: string, query: BatchLogsQuery): Promise<BatchLogsResponse> {
  const tier = query.tier_num ?? null;
  const rows = await q.query<{
    ts: Date;
    level: 'info' | 'warning' | 'error';
    event: string;
    tier_num: number | null;
    collection_id: string | null;
    document_id: string | null;
    message: string;
    error: Record<string, unknown> | null;
    total: number;
  }>(
    `WITH events AS (
       SELECT e.ts, e.rank, 'info' AS level, e.event, NULL::integer AS tier_num, NULL AS collection_id, NULL AS document_id,
              e.message, NULL::jsonb AS error
         FROM batches b,
              LATERAL (VALUES (b.created_at, 0, 'batch_created', 'batch created with ' || b.object_count || ' objects'),
                              (b.submitted_at, 1, 'batch_submitted', 'batch submitted'),
                              (b.started_at, 2, 'batch_started', 'first unit claimed'),
                              (b.completed_at, 6, 'batch_finished', 'batch finished: ' || b.status)) AS e(ts, rank, event, message)
        WHERE b.id = $1 AND e.ts IS NOT NULL AND $2::integer IS NULL
       UNION ALL
       SELECT e.ts, e.rank, CASE WHEN e.event = 'tier_finished' AND t.status IN ('FAILED', 'COMPLETED_WITH_ERRORS') THEN 'warning' ELSE 'info' END,
              e.event, t.tier_num, NULL, NULL, e.message, NULL
         FROM batch_tiers t,
              LATERAL (VALUES (t.started_at, 3, 'tier_started', 'tier ' || t.tier_num || ' started (' || array_to_string(t.collection_ids, ', ') || ')'),
                              (t.completed_at, 5, 'tier_finished', 'tier ' || t.tier_num || ' finished: ' || t.status)) AS e(ts, rank, event, message)
        WHERE t.batch_id = $1 AND e.ts IS NOT NULL AND ($2::integer IS NULL OR t.tier_num = $2)
       UNION ALL
       -- A malformed stored timestamp must not fail the request: the unit's last change stands in for it.
       SELECT CASE WHEN h.e->>'timestamp' ~ '^\\d{4}-\\d{2}-\\d{2}T[0-9:.]+Z$' THEN (h.e->>'timestamp')::timestamptz ELSE u.updated_at END,
              4,
              CASE WHEN (h.e->'transient') = 'true'::jsonb THEN 'warning' ELSE 'error' END,
              'attempt_failed', u.tier_num, u.collection_id, u.source_id,
              coalesce(h.e->>'error_type', 'runtime') || '/' || coalesce(h.e->>'code', 'unknown') || ': ' || coalesce(h.e->>'message', ''),
              h.e
         FROM units u CROSS JOIN LATERAL jsonb_array_elements(u.error_history) AS h(e)
        WHERE u.batch_id = $1 AND u.error_history <> '[]'::jsonb AND ($2::integer IS NULL OR u.tier_num = $2)
     ), newest AS (
       SELECT *, count(*) OVER () AS total FROM events ORDER BY ts DESC, rank DESC LIMIT $3
     )
     -- Events of one instant (a tier and its batch close in one statement) keep their natural order.
     SELECT * FROM newest ORDER BY ts, rank, tier_num`,
    [batchId, tier, MAX_LOG_EVENTS],
  );
  const total = rows[0] ? Number(rows[0].total) : 0;
  return {
    batch_id: batchId,
    tier_num: tier,
    logs: rows.map((r) => ({
      timestamp: r.ts.toISOString(),
      level: r.level,
      event: r.event,
      tier_num: r.tier_num,
      collection_id: r.collection_id,
      document_id: r.document_id,
      message: r.message,
      error: r.error,
    })),
    total_count: total,
    truncated: total > rows.length,
  };
}
