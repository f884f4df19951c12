import type { Queryable } from '../db/db.js';
import type { BackoffPolicy } from '../engine/backoff.js';
import { WAKE_CHANNEL } from '../engine/create-worker.js';
import type { BatchStatus } from './schema.js';

/** Which failed units of a batch a retry selects (DESIGN-NOTES §6). */
export interface RetrySelection {
  batchId: string;
  /** `all`: every failed unit; `transient_only`: those whose last error was transient. */
  retryMode: 'transient_only' | 'all';
  /** Only these tiers; empty: every tier. */
  tierNums: readonly number[];
  /** Units already retried this many times are skipped. */
  maxRetryCount: number;
  /** Only units with these source ids (objects for tier 0, documents after); `null`: no limit. */
  documentIds: readonly string[] | null;
}

/** How a retry went in one tier. `ids` are the first source ids re-queued in it, in unit order. */
export interface RetryTierOutcome {
  tier_num: number;
  retried: number;
  skipped_permanent: number;
  skipped_max_retries: number;
  ids: string[];
}

/** What {@link requeueFailedUnits} (or its dry run) found and did. */
export interface RetryOutcome {
  /** Only tiers with failed units among the selection. */
  tiers: RetryTierOutcome[];
  /** The batch's status after the re-queue (`IN_PROGRESS`); `null` when nothing was re-queued or in a dry run. */
  batchStatus: BatchStatus | null;
}

/** At most this many re-queued source ids per tier come back (the answer lists the first 100 in all). */
export const RETRIED_IDS_SHOWN = 100;

/** Batch statuses whose failed units may be retried (not DRAFT or PENDING: not run yet; not CANCELED). */
export const RETRYABLE_STATUSES: readonly BatchStatus[] = ['IN_PROGRESS', 'COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED'];

// $1 batch, $2 tiers (int[], empty = all), $3 retry every class (boolean), $4 max_retry_count, $5 source ids or NULL.
const SELECTED = `u.batch_id = $1 AND u.status = 'failed'
       AND (cardinality($2::integer[]) = 0 OR u.tier_num = ANY($2::integer[]))
       AND ($5::text[] IS NULL OR u.source_id = ANY($5::text[]))`;
const TRANSIENT = `coalesce(u.last_error->'transient' = 'true'::jsonb, false)`;
const ELIGIBLE = `($3::boolean OR ${TRANSIENT}) AND u.retry_count < $4`;

/**
 * Failed units of the selection per tier, classified as the statement's snapshot sees them: skipped as
 * permanent (not transient, in `transient_only` mode) or as exhausted (retry budget used up; a unit that is
 * both counts once, as permanent). Reads the `units_failed` partial index only.
 */
const SKIPPED = `SELECT u.tier_num,
            count(*) FILTER (WHERE NOT $3::boolean AND NOT ${TRANSIENT})::int AS skipped_permanent,
            count(*) FILTER (WHERE ($3::boolean OR ${TRANSIENT}) AND u.retry_count >= $4)::int AS skipped_max_retries
       FROM units u
      WHERE ${SELECTED}
      GROUP BY u.tier_num`;

const OUTCOME = `SELECT coalesce(s.tier_num, d.tier_num) AS tier_num, coalesce(d.retried, 0) AS retried,
            coalesce(s.skipped_permanent, 0) AS skipped_permanent, coalesce(s.skipped_max_retries, 0) AS skipped_max_retries,
            coalesce(d.ids, '{}') AS ids`;

const PER_TIER = `SELECT tier_num, count(*)::int AS retried, (array_agg(source_id ORDER BY id))[1:${RETRIED_IDS_SHOWN}] AS ids
       FROM requeued GROUP BY tier_num`;

function params(selection: RetrySelection): unknown[] {
  return [
    selection.batchId,
    [...selection.tierNums],
    selection.retryMode === 'all',
    selection.maxRetryCount,
    selection.documentIds === null ? null : [...selection.documentIds],
  ];
}

interface OutcomeRow extends RetryTierOutcome {
  batch_status: BatchStatus | null;
}

/**
 * Re-queues the selected failed units of one batch and reopens what they belong to: one statement.
 *
 * Why this shape:
 * - Set-based and cheap: every filter sits on `batch_id` and `status = 'failed'`, so the `units_failed`
 *   partial index serves it and its cost grows with the batch's failures, not its size.
 * - Race-safe without locking up front: the `UPDATE`'s `status = 'failed'` and `retry_count < max` are
 *   re-checked on the newest row version after waiting for a row lock, so a concurrent second retry waits,
 *   then skips every unit the first re-queued. A unit is never queued twice, and never counted twice.
 * - Lock order units → batch_tiers → batches, as migration 0005 requires: the tier update joins an
 *   aggregate over the re-queued units and the batch update joins the count of reopened tiers, so neither
 *   can lock a row before the CTE it depends on has run to completion (data-modifying CTEs otherwise run
 *   in no guaranteed order).
 * - Each unit's delay is computed in place by `sluice_backoff_ms` (the SQL mirror of backoffDelayMs) from
 *   its new retry count, with a fresh `random()` per row and its last error's `retry_after_ms` as the floor.
 * - Reopening: tiers from the lowest re-queued tier on go back to IN_PROGRESS (their completion depends on
 *   it), lower tiers stay closed; the batch goes back to IN_PROGRESS unless it was canceled meanwhile,
 *   which `batch_status = NULL` with re-queued units reports so the caller can roll back.
 * - Skipped counts come from the same statement: its `SKIPPED` read sees the snapshot taken before the
 *   update, so it classifies exactly the failed units the update considered.
 * - Untouched: completed units and their documents; `last_error` and `error_history` (history of the unit).
 * - The wake-up `NOTIFY` goes out only when something was re-queued; it is delivered at commit.
 */
export async function requeueFailedUnits(q: Queryable, selection: RetrySelection, backoff: BackoffPolicy): Promise<RetryOutcome> {
  const rows = await q.query<OutcomeRow>(
    `WITH requeued AS (
       UPDATE units u
          SET status = 'pending', retry_count = u.retry_count + 1, last_retry_at = now(),
              attempts = 0, rate_limited_attempts = 0, completed_at = NULL,
              next_attempt_at = now() + make_interval(secs => sluice_backoff_ms(
                u.retry_count + 1, $6::double precision, $7::double precision,
                CASE WHEN jsonb_typeof(u.last_error->'retry_after_ms') = 'number'
                     THEN (u.last_error->>'retry_after_ms')::double precision END,
                random()) / 1000),
              updated_at = now()
        WHERE ${SELECTED} AND ${ELIGIBLE}
       RETURNING u.id, u.tier_num, u.source_id
     ), lowest AS (
       SELECT min(tier_num) AS tier_num FROM requeued
     ), tiers AS (
       UPDATE batch_tiers bt SET status = 'IN_PROGRESS', completed_at = NULL
         FROM lowest l
        WHERE bt.batch_id = $1 AND bt.tier_num >= l.tier_num
       RETURNING bt.tier_num
     ), reopened AS (
       UPDATE batches b
          SET status = 'IN_PROGRESS', completed_at = NULL,
              updated_at = GREATEST(now(), b.updated_at + interval '1 millisecond')
         FROM (SELECT count(*) AS n FROM tiers) t
        WHERE b.id = $1 AND EXISTS (SELECT 1 FROM requeued) AND b.status = ANY($8::text[])
       RETURNING b.status
     ), woken AS (
       SELECT pg_notify('${WAKE_CHANNEL}', '') FROM (SELECT 1 FROM requeued LIMIT 1) AS any_requeued
     ), skipped AS (
       ${SKIPPED}
     ), done AS (
       ${PER_TIER}
     )
     ${OUTCOME}, (SELECT status FROM reopened) AS batch_status, (SELECT count(*) FROM woken)::int AS woken
       FROM skipped s FULL JOIN done d ON d.tier_num = s.tier_num
      ORDER BY 1`,
    [...params(selection), backoff.baseMs, backoff.capMs, RETRYABLE_STATUSES],
  );
  return { tiers: rows.map(({ batch_status: _s, ...t }) => outcome(t)), batchStatus: rows.find((r) => r.batch_status)?.batch_status ?? null };
}

/** What {@link requeueFailedUnits} would do, from a read-only statement: same selection, same counts, no change. */
export async function countRetryableUnits(q: Queryable, selection: RetrySelection): Promise<RetryOutcome> {
  const rows = await q.query<RetryTierOutcome>(
    `WITH requeued AS (
       SELECT u.id, u.tier_num, u.source_id FROM units u WHERE ${SELECTED} AND ${ELIGIBLE}
     ), skipped AS (
       ${SKIPPED}
     ), done AS (
       ${PER_TIER}
     )
     ${OUTCOME}
       FROM skipped s FULL JOIN done d ON d.tier_num = s.tier_num
      ORDER BY 1`,
    params(selection),
  );
  return { tiers: rows.map(outcome), batchStatus: null };
}

const outcome = (t: RetryTierOutcome): RetryTierOutcome => ({
  tier_num: t.tier_num,
  retried: t.retried,
  skipped_permanent: t.skipped_permanent,
  skipped_max_retries: t.skipped_max_retries,
  ids: t.ids,
});
