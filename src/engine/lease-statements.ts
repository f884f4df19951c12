import type { Queryable } from '../db/db.js';
import { ERROR_HISTORY_LIMIT } from './fail-units.js';

/**
 * Renews the leases `owner` holds on `unitIds` and answers the ids it still holds. An id missing from the
 * answer was canceled or taken over (its lease had run out): the caller must stop that unit.
 * One statement for every unit in flight, sent every third of the lease.
 */
export async function extendLeases(q: Queryable, owner: string, unitIds: readonly number[], leaseMs: number): Promise<Set<number>> {
  if (unitIds.length === 0) return new Set();
  const rows = await q.query<{ id: number }>(
    `UPDATE units SET lease_expires_at = now() + make_interval(secs => $3::double precision / 1000)
      WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND status = 'running'
      RETURNING id`,
    [unitIds, owner, leaseMs],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * Returns units whose lease ran out (their worker died or lost the database) to `pending`, or to `failed`
 * once they have used up the attempt budget, so a unit that kills every worker that runs it cannot loop
 * forever. The lost attempt is recorded as a transient `resource`/`worker_lost` error.
 *
 * Why this shape: it walks the `units_lease` partial index (running units only) and skips rows another
 * reaper or a renewing worker holds, so any number of processes may run it at any time; the batch is
 * limited so one call stays short.
 */
export async function reapExpiredLeases(q: Queryable, maxAttempts: number, limit = 1000): Promise<{ id: number; batch_id: string; status: string }[]> {
  // The target row cannot be referenced from a FROM/LATERAL item, so the record is written out where used.
  const lostError = `jsonb_build_object(
      'error_type', 'resource', 'transient', true, 'code', 'worker_lost',
      'message', 'the worker running this unit stopped renewing its lease (killed, or cut off from the database)',
      'http_status', NULL, 'retry_after_ms', NULL, 'tier_num', u.tier_num, 'collection_id', u.collection_id,
      'extractor', NULL, 'attempt', u.attempts,
      'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))`;
  return q.query(
    `WITH lost AS (
       SELECT id FROM units WHERE status = 'running' AND lease_expires_at < now()
        ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
     )
     UPDATE units u
        SET status = CASE WHEN u.attempts - u.rate_limited_attempts >= $1 THEN 'failed' ELSE 'pending' END,
            completed_at = CASE WHEN u.attempts - u.rate_limited_attempts >= $1 THEN now() END,
            next_attempt_at = now(), lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
            last_error = ${lostError},
            error_history = (SELECT coalesce(jsonb_agg(h.x ORDER BY h.i), '[]'::jsonb)
                               FROM (SELECT x, i FROM jsonb_array_elements(u.error_history || jsonb_build_array(${lostError}))
                                                      WITH ORDINALITY AS t(x, i)
                                      ORDER BY i DESC LIMIT ${ERROR_HISTORY_LIMIT}) AS h)
       FROM lost
      WHERE u.id = lost.id
      RETURNING u.id, u.batch_id, u.status`,
    [maxAttempts, limit],
  );
}

/**
 * Marks canceled the pending units of recently canceled batches. A cancel flips the units it can see; a
 * unit queued at the same moment by a worker's write (a downstream unit) or an operator retry can commit just
 * after, invisible to it. Claims skip such units anyway; this sweep makes them say so. Only batches canceled in
 * the last hour are looked at, through their own units (`batch_id` index): the cost does not grow with history.
 */
export async function cancelStrandedUnits(q: Queryable): Promise<number> {
  const rows = await q.query<{ n: number }>(
    `WITH swept AS (
       UPDATE units u SET status = 'canceled', updated_at = now()
         FROM batches b
        WHERE b.status = 'CANCELED' AND b.completed_at > now() - interval '1 hour'
          AND u.batch_id = b.id AND u.status = 'pending'
       RETURNING 1
     )
     SELECT count(*)::int AS n FROM swept`,
  );
  return rows[0]!.n;
}
