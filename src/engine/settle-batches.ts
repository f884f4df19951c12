import type { Queryable } from '../db/db.js';

/**
 * Closes tiers and batches that have nothing left to run, after units of `batchIds` changed state.
 *
 * Why this shape: a tier is finished when no unit of it or of any lower tier is pending or running (lower
 * tiers are the only source of new units for it). "The lowest tier with an active unit" is one probe of
 * the `units_active` partial index per batch, so settling after every flush costs the same for a batch of
 * ten units as for a million. Only tiers and batches that actually close are counted in full, once.
 * The batch update joins the tier update's row count, so the tiers are locked first (an unreferenced
 * data-modifying CTE would run after the main query: batches before batch_tiers). Re-checks under
 * row locks (`completed_at IS NULL`, `status IN (…)`) make concurrent settles by several
 * workers harmless: the second finds the row already closed and skips it. Lock order: batch_tiers, then
 * batches.
 *
 * A closed tier is COMPLETED (no failed unit), FAILED (units failed, none completed),
 * COMPLETED_WITH_ERRORS (both), or SKIPPED (it had no units: nothing upstream produced input for it).
 * A closed batch likewise, from all its units; canceled units do not count.
 */
export async function settleBatches(q: Queryable, batchIds: readonly string[]): Promise<{ id: string; status: string }[]> {
  if (batchIds.length === 0) return [];
  return q.query(
    `WITH lowest AS (
       SELECT b AS batch_id,
              (SELECT u.tier_num FROM units u
                WHERE u.batch_id = b AND u.status IN ('pending', 'running')
                ORDER BY u.tier_num LIMIT 1) AS active_tier
         FROM unnest($1::text[]) AS b
     ), closed_tiers AS (
       UPDATE batch_tiers bt
          SET completed_at = now(), started_at = coalesce(bt.started_at, now()),
              status = (SELECT CASE WHEN count(*) = 0 THEN 'SKIPPED'
                                    WHEN count(*) FILTER (WHERE u.status = 'failed') = 0 THEN 'COMPLETED'
                                    WHEN count(*) FILTER (WHERE u.status = 'completed') = 0 THEN 'FAILED'
                                    ELSE 'COMPLETED_WITH_ERRORS' END
                          FROM units u
                         WHERE u.batch_id = bt.batch_id AND u.tier_num = bt.tier_num AND u.status <> 'canceled')
         FROM lowest l
        WHERE bt.batch_id = l.batch_id AND bt.completed_at IS NULL
          AND (l.active_tier IS NULL OR bt.tier_num < l.active_tier)
       RETURNING 1
     )
     UPDATE batches b
        SET status = (SELECT CASE WHEN count(*) FILTER (WHERE u.status = 'failed') = 0 THEN 'COMPLETED'
                                  WHEN count(*) FILTER (WHERE u.status = 'completed') = 0 THEN 'FAILED'
                                  ELSE 'COMPLETED_WITH_ERRORS' END
                        FROM units u WHERE u.batch_id = b.id AND u.status <> 'canceled'),
            completed_at = now(), updated_at = now()
       FROM lowest l, (SELECT count(*) FROM closed_tiers) AS tiers_first
      WHERE b.id = l.batch_id AND l.active_tier IS NULL AND b.status IN ('PENDING', 'IN_PROGRESS')
      RETURNING b.id, b.status`,
    [batchIds],
  );
}
