import type { Queryable } from '../db/db.js';

/** A unit as the engine runs it. */
export interface ClaimedUnit {
  id: number;
  batch_id: string;
  collection_id: string;
  tier_num: number;
  source_type: 'object' | 'document';
  source_id: string;
  root_object_id: string;
  attempts: number;
  rate_limited_attempts: number;
  retry_count: number;
}

/**
 * Claims up to `limit` due pending units for `owner`, leased for `leaseMs`.
 *
 * Why this shape: the inner `SELECT … FOR UPDATE SKIP LOCKED LIMIT n` lets any number of workers claim at
 * once without waiting on each other's rows, and the outer `UPDATE … RETURNING` turns the claim into one
 * round trip however many units it takes. It walks the `units_claim` partial index (pending only), so its
 * cost does not grow with finished units. The two writable CTEs mark the first claim of a tier and of a
 * batch as their start; their `WHERE started_at IS NULL` / `status = 'PENDING'` filters mean only the
 * first claim touches those rows, so the hot path takes no lock on them (lock order units → batch_tiers →
 * batches, as everywhere). Units of a canceled batch are never claimed, even ones queued by a write that
 * raced with the cancel (see cancelStrandedUnits). PostgreSQL runs an unreferenced data-modifying CTE only after the main query, in
 * no promised order, so the batch update joins the tier update's row count: that makes the tiers go first.
 */
export async function claimUnits(q: Queryable, owner: string, limit: number, leaseMs: number): Promise<ClaimedUnit[]> {
  return q.query<ClaimedUnit>(
    `WITH claimed AS (
       UPDATE units u
          SET status = 'running', attempts = u.attempts + 1, lease_owner = $1,
              lease_expires_at = now() + make_interval(secs => $3::double precision / 1000),
              started_at = coalesce(u.started_at, now()), updated_at = now()
        WHERE u.id IN (SELECT p.id FROM units p JOIN batches pb ON pb.id = p.batch_id
                        WHERE p.status = 'pending' AND p.next_attempt_at <= now() AND pb.status <> 'CANCELED'
                        ORDER BY p.next_attempt_at, p.id LIMIT $2 FOR UPDATE OF p SKIP LOCKED)
       RETURNING u.id, u.batch_id, u.collection_id, u.tier_num, u.source_type, u.source_id, u.root_object_id,
                 u.attempts, u.rate_limited_attempts, u.retry_count
     ), tiers AS (
       UPDATE batch_tiers bt SET status = 'IN_PROGRESS', started_at = now()
         FROM (SELECT DISTINCT batch_id, tier_num FROM claimed) c
        WHERE bt.batch_id = c.batch_id AND bt.tier_num = c.tier_num AND bt.started_at IS NULL
       RETURNING 1
     ), batches AS (
       UPDATE batches b SET status = 'IN_PROGRESS', started_at = coalesce(b.started_at, now()), updated_at = now()
         FROM (SELECT count(*) FROM tiers) AS tiers_first
        WHERE b.id IN (SELECT batch_id FROM claimed) AND b.status = 'PENDING'
     )
     SELECT * FROM claimed ORDER BY id`,
    [owner, limit, leaseMs],
  );
}
