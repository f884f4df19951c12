import type { Queryable } from '../db/db.js';

/** A unit's stored failure record (DESIGN-NOTES §5). */
export interface UnitError {
  error_type: string;
  transient: boolean;
  code: string;
  message: string;
  http_status: number | null;
  retry_after_ms: number | null;
  tier_num: number;
  collection_id: string;
  extractor: string | null;
  attempt: number;
  timestamp: string;
}

/** What the engine decided for one failed attempt. */
export interface FailedAttempt {
  id: number;
  /** `pending`: try again after `delay_ms` (automatic retry); `failed`: wait for an operator. */
  status: 'pending' | 'failed';
  delay_ms: number;
  /** Rate-limited attempts are counted apart: they do not use up the attempt budget. */
  rate_limited: boolean;
  error: UnitError;
}

/** How many errors a unit keeps in `error_history` (newest last). */
export const ERROR_HISTORY_LIMIT = 10;

/**
 * Records failed attempts of units this owner holds (the JSON parsed once into a materialized CTE, and the
 * ids repeated as an array so units are reached by primary key; see completeUnits for what happens
 * otherwise): each goes back to `pending` with its backoff, or to
 * `failed`. One statement for any number of units (inputs as one JSON array). Units no longer held under
 * this owner's lease (canceled, or taken over after the lease ran out) are left alone. The error history
 * is appended to and trimmed to the newest {@link ERROR_HISTORY_LIMIT} entries in the same update, so it
 * stays bounded however often a unit fails.
 */
export async function failUnits(q: Queryable, owner: string, attempts: FailedAttempt[]): Promise<{ id: number; batch_id: string; status: string }[]> {
  if (attempts.length === 0) return [];
  return q.query(
    `WITH f AS MATERIALIZED (
       SELECT * FROM json_to_recordset($2::json) AS f(id bigint, status text, delay_ms double precision, rate_limited boolean, error jsonb)
     )
     UPDATE units u
        SET status = f.status,
            next_attempt_at = now() + make_interval(secs => f.delay_ms / 1000),
            rate_limited_attempts = u.rate_limited_attempts + CASE WHEN f.rate_limited THEN 1 ELSE 0 END,
            last_error = f.error,
            error_history = (SELECT coalesce(jsonb_agg(h.e ORDER BY h.i), '[]'::jsonb)
                               FROM (SELECT e, i FROM jsonb_array_elements(u.error_history || jsonb_build_array(f.error))
                                                      WITH ORDINALITY AS t(e, i)
                                      ORDER BY i DESC LIMIT ${ERROR_HISTORY_LIMIT}) AS h),
            lease_owner = NULL, lease_expires_at = NULL,
            completed_at = CASE WHEN f.status = 'failed' THEN now() END,
            updated_at = now()
       FROM f
      WHERE u.id = ANY($3::bigint[]) AND u.id = f.id AND u.status = 'running' AND u.lease_owner = $1
      RETURNING u.id, u.batch_id, u.status`,
    [owner, JSON.stringify(attempts), attempts.map((a) => a.id)],
  );
}
