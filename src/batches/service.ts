import { requireBucket } from '../buckets/service.js';
import { collectionGraph } from '../collections/service.js';
import { deriveTiers } from '../collections/tiers.js';
import type { Db, Queryable } from '../db/db.js';
import type { BackoffPolicy } from '../engine/backoff.js';
import { CANCEL_CHANNEL } from '../engine/create-engine.js';
import { WAKE_CHANNEL } from '../engine/create-worker.js';
import { ApiError, badRequest, notFound, show } from '../errors/registry.js';
import { newId } from '../ids/new-id.js';
import type { TaskResponse } from '../tasks/schema.js';
import { createTask, getTask } from '../tasks/service.js';
import { batchLogs } from './batch-logs.js';
import { type BatchRow, batchViews } from './batch-view.js';
import { listFailedDocuments } from './failed-documents.js';
import { claimIdempotencyKey, type IdempotencyScope, requestHash, storeIdempotentResponse } from './idempotency.js';
import { countRetryableUnits, RETRIED_IDS_SHOWN, RETRYABLE_STATUSES, type RetrySelection, requeueFailedUnits } from './retry-units.js';
import {
  type AddObjectsToBatchRequest,
  type BatchLogsQuery,
  type BatchLogsResponse,
  type BatchModel,
  CANCELABLE_STATUSES,
  type CreateBatchRequest,
  type FailedDocumentsQuery,
  type FailedDocumentsResponse,
  type RetryBatchRequest,
  type RetryBatchResponse,
} from './schema.js';

/** The task type of a batch's processing. */
export const BATCH_TASK_TYPE = 'api_buckets_batches_process';

/** The organization and namespace a batch request runs in. */
export interface BatchScope {
  organizationId: string;
  namespaceId: string;
}

/** At most this many unknown object ids are named in an error message (`details.ids` holds up to 1000). */
const NAMED_IN_MESSAGE = 20;

/** Reads a batch of a bucket; 404 when it is not there (or belongs to another bucket or organization). */
async function requireBatch(
  q: Queryable,
  scope: { organizationId: string },
  bucketId: string,
  batchId: string,
  options: { forUpdate?: boolean } = {},
): Promise<BatchRow> {
  const rows = await q.query<BatchRow>(
    `SELECT * FROM batches WHERE id = $1 AND bucket_id = $2 AND organization_id = $3 ${options.forUpdate ? 'FOR UPDATE' : ''}`,
    [batchId, bucketId, scope.organizationId],
  );
  if (!rows[0]) throw notFound('batch', batchId);
  return rows[0];
}

async function viewOf(q: Queryable, row: BatchRow): Promise<BatchModel> {
  return (await batchViews(q, [row]))[0]!;
}

/** Keeps the first occurrence of each id, in order. */
const dedupe = (ids: readonly string[]): string[] => [...new Set(ids)];

/**
 * Checks in one statement that every id is an object of the bucket; the missing ones are all named in one 404
 * (`details.ids`, the message names the first few).
 */
async function checkObjects(q: Queryable, bucketId: string, ids: readonly string[], bucketIdentifier: string): Promise<void> {
  if (ids.length === 0) return;
  const missing = await q.query<{ id: string }>(
    `SELECT t.id FROM unnest($2::text[]) WITH ORDINALITY AS t(id, ord)
     WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.id = t.id AND o.bucket_id = $1)
     ORDER BY t.ord`,
    [bucketId, ids],
  );
  if (missing.length === 0) return;
  const named = missing.slice(0, NAMED_IN_MESSAGE).map((m) => show(m.id));
  const more = missing.length > NAMED_IN_MESSAGE ? ` and ${missing.length - NAMED_IN_MESSAGE} more` : '';
  throw new ApiError(
    'not_found',
    `object${missing.length > 1 ? 's' : ''} ${named.join(', ')}${more} not found in bucket ${show(bucketIdentifier)}`,
    { resource: 'object', bucket_id: bucketId, ids: missing.slice(0, 1000).map((m) => m.id), missing_count: missing.length },
  );
}

/** Creates a DRAFT batch of objects of the bucket; duplicates collapse, the order is kept. */
export async function createBatch(
  db: Db,
  scope: BatchScope,
  bucketIdentifier: string,
  body: CreateBatchRequest,
  options: { skipValidation: boolean },
): Promise<BatchModel> {
  const ids = dedupe(body.object_ids);
  return db.transaction(async (tx) => {
    const bucket = await requireBucket(tx, scope, bucketIdentifier);
    if (!options.skipValidation) await checkObjects(tx, bucket.id, ids, bucketIdentifier);
    const rows = await tx.query<BatchRow>(
      `INSERT INTO batches (id, organization_id, namespace_id, bucket_id, object_count) VALUES ($1, $2, $3, $4, $5) RETURNING *`,
      [newId('btch'), scope.organizationId, scope.namespaceId, bucket.id, ids.length],
    );
    const batch = rows[0]!;
    if (ids.length > 0) {
      await tx.query(
        `INSERT INTO batch_objects (batch_id, object_id, position)
         SELECT $1, t.id, t.ord - 1 FROM unnest($2::text[]) WITH ORDINALITY AS t(id, ord)`,
        [batch.id, ids],
      );
    }
    return viewOf(tx, batch);
  });
}

const refuseStatus = (batch: BatchRow, what: string, allowed: readonly string[]): ApiError =>
  badRequest(`batch ${batch.id} is ${batch.status}: ${what} needs status ${allowed.join(' or ')}`, {
    batch_id: batch.id,
    status: batch.status,
  });

/** Adds objects to a DRAFT batch; ids already in it are ignored, new ones go to the end in the order given. */
export async function addObjects(
  db: Db,
  scope: BatchScope,
  bucketIdentifier: string,
  batchId: string,
  body: AddObjectsToBatchRequest,
  options: { skipValidation: boolean },
): Promise<BatchModel> {
  const ids = dedupe(body.object_ids);
  return db.transaction(async (tx) => {
    const bucket = await requireBucket(tx, scope, bucketIdentifier);
    // A DRAFT batch has no units yet: locking its row first keeps the lock order.
    const batch = await requireBatch(tx, scope, bucket.id, batchId, { forUpdate: true });
    if (batch.status !== 'DRAFT') throw refuseStatus(batch, 'adding objects', ['DRAFT']);
    if (!options.skipValidation) await checkObjects(tx, bucket.id, ids, bucketIdentifier);
    const rows = await tx.query<BatchRow>(
      `WITH added AS (
         INSERT INTO batch_objects (batch_id, object_id, position)
         SELECT $1, t.id, base.last + row_number() OVER (ORDER BY t.ord)
         FROM unnest($2::text[]) WITH ORDINALITY AS t(id, ord)
         CROSS JOIN (SELECT coalesce(max(position), -1) AS last FROM batch_objects WHERE batch_id = $1) base
         WHERE NOT EXISTS (SELECT 1 FROM batch_objects bo WHERE bo.batch_id = $1 AND bo.object_id = t.id)
         RETURNING 1)
       UPDATE batches SET object_count = object_count + (SELECT count(*) FROM added)::int,
                          updated_at = GREATEST(now(), updated_at + interval '1 millisecond')
       WHERE id = $1 RETURNING *`,
      [batch.id, ids],
    );
    return viewOf(tx, rows[0]!);
  });
}

/**
 * Submits a DRAFT batch in one transaction: derives the tiers from the namespace's enabled collections,
 * writes one `batch_tiers` row per tier and the tier-0 units (every tier-0 collection × every object, one
 * statement), records the task, marks the batch PENDING and wakes the workers (the notification is
 * delivered at commit).
 */
export async function submitBatch(
  db: Db,
  scope: BatchScope,
  bucketIdentifier: string,
  batchId: string,
  body: { include_processing_history: boolean },
): Promise<TaskResponse> {
  return db.transaction(async (tx) => {
    const bucket = await requireBucket(tx, scope, bucketIdentifier);
    // A DRAFT batch has no units yet: locking its row first keeps the lock order.
    const batch = await requireBatch(tx, scope, bucket.id, batchId, { forUpdate: true });
    if (batch.status !== 'DRAFT') throw refuseStatus(batch, 'submitting', ['DRAFT']);
    if (batch.object_count === 0) {
      throw badRequest(`batch ${batch.id} has no objects: add some with POST /v1/buckets/${bucket.id}/batches/${batch.id}/objects`, {
        batch_id: batch.id,
      });
    }
    const graph = await collectionGraph(tx, scope, { enabledOnly: true });
    const dagTiers = deriveTiers(graph, bucket.id);
    if (dagTiers.length === 0) {
      throw badRequest(`no enabled collection reads bucket ${show(bucket.name)} (${bucket.id}): create a collection with this bucket as its source`, {
        bucket_id: bucket.id,
      });
    }
    const sourcesOf = new Map(graph.map((c) => [c.id, c.source_collection_ids]));
    const tiers = dagTiers.map((collectionIds, tierNum) => ({
      tier_num: tierNum,
      collection_ids: collectionIds,
      source_type: tierNum === 0 ? 'bucket' : 'collection',
      source_collection_ids: tierNum === 0 ? null : [...new Set(collectionIds.flatMap((id) => sourcesOf.get(id) ?? []))].sort(),
    }));
    await tx.query(
      `INSERT INTO batch_tiers (batch_id, tier_num, collection_ids, source_type, source_collection_ids, status)
       SELECT $1, r.tier_num,
              ARRAY(SELECT jsonb_array_elements_text(r.collection_ids)),
              r.source_type,
              CASE WHEN jsonb_typeof(r.source_collection_ids) = 'array'
                   THEN ARRAY(SELECT jsonb_array_elements_text(r.source_collection_ids)) END,
              'PENDING'
       FROM jsonb_to_recordset($2::jsonb) AS r(tier_num int, collection_ids jsonb, source_type text, source_collection_ids jsonb)`,
      [batch.id, JSON.stringify(tiers)],
    );
    await tx
      .query(
        `INSERT INTO units (batch_id, collection_id, tier_num, source_type, source_id, root_object_id)
         SELECT $1, c, 0, 'object', bo.object_id, bo.object_id
         FROM batch_objects bo CROSS JOIN unnest($2::text[]) AS c
         WHERE bo.batch_id = $1`,
        [batch.id, dagTiers[0]!],
      )
      .catch((err: { code?: string }) => {
        // A collection deleted between reading the graph and writing its units: nothing was written.
        if (err.code === '23503') {
          throw new ApiError('already_exists', `a collection reading bucket ${show(bucket.name)} was deleted while batch ${batch.id} was submitted; submit again`, {
            batch_id: batch.id,
          });
        }
        throw err;
      });
    const task = await createTask(tx, {
      organizationId: scope.organizationId,
      namespaceId: scope.namespaceId,
      taskType: BATCH_TASK_TYPE,
      status: 'PENDING',
      inputs: [{ batch_id: batch.id, bucket_id: bucket.id }],
      additionalData: { batch_id: batch.id, bucket_id: bucket.id },
    });
    await tx.query(
      `UPDATE batches SET status = 'PENDING', task_id = $2, dag_tiers = $3::jsonb, collection_ids = $4::text[],
              include_processing_history = $5, submitted_at = now(),
              updated_at = GREATEST(now(), updated_at + interval '1 millisecond')
       WHERE id = $1`,
      [batch.id, task.task_id, JSON.stringify(dagTiers), dagTiers.flat(), body.include_processing_history],
    );
    await tx.query(`SELECT pg_notify($1, '')`, [WAKE_CHANNEL]);
    return task;
  });
}

export async function getBatch(q: Queryable, scope: BatchScope, bucketIdentifier: string, batchId: string): Promise<BatchModel> {
  const bucket = await requireBucket(q, scope, bucketIdentifier);
  return viewOf(q, await requireBatch(q, scope, bucket.id, batchId));
}

/** PATCH: a given `metadata` replaces the old one; absent or `null` keeps it. */
export async function updateBatch(
  q: Queryable,
  scope: BatchScope,
  bucketIdentifier: string,
  batchId: string,
  body: { metadata?: Record<string, unknown> | null },
): Promise<BatchModel> {
  const bucket = await requireBucket(q, scope, bucketIdentifier);
  const rows = await q.query<BatchRow>(
    `UPDATE batches SET metadata = COALESCE($4::jsonb, metadata),
            updated_at = GREATEST(now(), updated_at + interval '1 millisecond')
     WHERE id = $1 AND bucket_id = $2 AND organization_id = $3 RETURNING *`,
    [batchId, bucket.id, scope.organizationId, body.metadata ? JSON.stringify(body.metadata) : null],
  );
  if (!rows[0]) throw notFound('batch', batchId);
  return viewOf(q, rows[0]);
}

/**
 * Deletes a batch in any status with its units, tiers and object list. Documents already written stay in
 * their collections. Rows go in the lock order (units → batch_tiers → batches), so a worker settling the
 * batch at the same time cannot deadlock with the delete; running workers are told to drop the batch.
 */
export async function deleteBatch(
  db: Db,
  scope: BatchScope,
  bucketIdentifier: string,
  batchId: string,
): Promise<{ success: boolean; message: string; batch_id: string; bucket_id: string }> {
  return db.transaction(async (tx) => {
    const bucket = await requireBucket(tx, scope, bucketIdentifier);
    const batch = await requireBatch(tx, scope, bucket.id, batchId);
    await tx.query('DELETE FROM units WHERE batch_id = $1', [batch.id]);
    await tx.query('DELETE FROM batch_tiers WHERE batch_id = $1', [batch.id]);
    const deleted = await tx.query('DELETE FROM batches WHERE id = $1 RETURNING id', [batch.id]);
    if (deleted.length === 0) throw notFound('batch', batchId);
    await tx.query('DELETE FROM idempotency_keys WHERE organization_id = $1 AND scope = $2', [scope.organizationId, `retry:${batch.id}`]);
    await tx.query(`SELECT pg_notify($1, $2)`, [CANCEL_CHANNEL, batch.id]);
    return { success: true, message: `batch ${batch.id} deleted`, batch_id: batch.id, bucket_id: bucket.id };
  });
}

/**
 * Cancels a DRAFT, PENDING or IN_PROGRESS batch, in the lock order units → batch_tiers → batches: its
 * pending and running units become `canceled` (leases dropped), unfinished tiers and the batch CANCELED.
 * Completed units and their documents stay. A batch that turned terminal meanwhile rolls everything back
 * (400 naming its status). Workers running its units are told through `NOTIFY sluice_cancel`.
 */
export async function cancelBatch(
  db: Db,
  scope: BatchScope,
  bucketIdentifier: string,
  batchId: string,
): Promise<TaskResponse> {
  const bucket = await requireBucket(db, scope, bucketIdentifier);
  return cancelBatchById(db, scope, bucket.id, batchId);
}

/** {@link cancelBatch} for a known bucket id (also used to kill a batch's task). */
export async function cancelBatchById(db: Db, scope: { organizationId: string }, bucketId: string, batchId: string): Promise<TaskResponse> {
  return db.transaction(async (tx) => {
    // A non-locking read: the first locks taken are on units.
    const before = await requireBatch(tx, scope, bucketId, batchId);
    if (!CANCELABLE_STATUSES.includes(before.status)) throw refuseStatus(before, 'cancel', CANCELABLE_STATUSES);
    await tx.query(
      `UPDATE units SET status = 'canceled', lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
       WHERE batch_id = $1 AND status IN ('pending', 'running')`,
      [before.id],
    );
    await tx.query(`UPDATE batch_tiers SET status = 'CANCELED', completed_at = now() WHERE batch_id = $1 AND completed_at IS NULL`, [
      before.id,
    ]);
    const rows = await tx.query<{ task_id: string | null }>(
      `UPDATE batches SET status = 'CANCELED', completed_at = now(),
              updated_at = GREATEST(now(), updated_at + interval '1 millisecond')
       WHERE id = $1 AND status = ANY($2::text[]) RETURNING task_id`,
      [before.id, CANCELABLE_STATUSES],
    );
    if (!rows[0]) {
      // It turned terminal since the first read (a worker settled it): throwing rolls the unit updates back.
      const now = await requireBatch(tx, scope, bucketId, batchId);
      throw refuseStatus(now, 'cancel', CANCELABLE_STATUSES);
    }
    let taskId = rows[0].task_id;
    if (!taskId) {
      // A DRAFT batch has no task yet: record one, so the answer (and GET /v1/tasks) has something to show.
      const task = await createTask(tx, {
        organizationId: before.organization_id,
        namespaceId: before.namespace_id,
        taskType: BATCH_TASK_TYPE,
        status: 'CANCELED',
        inputs: [{ batch_id: before.id, bucket_id: bucketId }],
        additionalData: { batch_id: before.id, bucket_id: bucketId },
      });
      taskId = task.task_id;
      await tx.query('UPDATE batches SET task_id = $2 WHERE id = $1', [before.id, taskId]);
    }
    await tx.query(`SELECT pg_notify($1, $2)`, [CANCEL_CHANNEL, before.id]);
    return getTask(tx, scope.organizationId, taskId);
  });
}

/** Lists a bucket's batches, newest first, optionally of one status. Page and count in one statement. */
export async function listBatches(
  q: Queryable,
  scope: BatchScope,
  bucketIdentifier: string,
  body: { status?: string | null; offset: number; limit: number },
): Promise<{ results: BatchModel[]; total_count: number }> {
  const bucket = await requireBucket(q, scope, bucketIdentifier);
  const rows = await q.query<BatchRow & { match_count: number }>(
    `WITH matched AS (SELECT * FROM batches WHERE bucket_id = $1 AND organization_id = $2 AND ($3::text IS NULL OR status = $3)),
          totals AS (SELECT count(*)::int AS match_count FROM matched),
          page AS (SELECT * FROM matched ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5)
     SELECT totals.*, page.* FROM totals LEFT JOIN page ON true ORDER BY page.created_at DESC, page.id DESC`,
    [bucket.id, scope.organizationId, body.status ?? null, body.limit, body.offset],
  );
  const total = rows[0]?.match_count ?? 0;
  const page = rows.filter((r) => r.id !== null).map(({ match_count: _c, ...row }) => row as BatchRow);
  return { results: await batchViews(q, page), total_count: total };
}

/** A batch's processing log: its transitions and failed attempts, oldest first. */
export async function getBatchLogs(
  q: Queryable,
  scope: BatchScope,
  bucketIdentifier: string,
  batchId: string,
  query: BatchLogsQuery,
): Promise<BatchLogsResponse> {
  const bucket = await requireBucket(q, scope, bucketIdentifier);
  const batch = await requireBatch(q, scope, bucket.id, batchId);
  return batchLogs(q, batch.id, query);
}

/** A batch's failed units, one page (DESIGN-NOTES §7). */
export async function failedDocuments(
  q: Queryable,
  scope: BatchScope,
  bucketIdentifier: string,
  batchId: string,
  query: FailedDocumentsQuery,
): Promise<FailedDocumentsResponse> {
  const bucket = await requireBucket(q, scope, bucketIdentifier);
  const batch = await requireBatch(q, scope, bucket.id, batchId);
  return listFailedDocuments(q, batch.id, query);
}

/**
 * Operator retry of a batch's failed units, in place (DESIGN-NOTES §6), in one transaction: the
 * `Idempotency-Key` claim (a replay answers the stored response and does nothing), the preconditions, the
 * one re-queue statement ({@link requeueFailedUnits}; {@link countRetryableUnits} for `dry_run`) and the
 * stored answer. A batch canceled between the status check and the re-queue rolls everything back (400).
 */
export async function retryBatch(
  db: Db,
  scope: BatchScope,
  bucketIdentifier: string,
  batchId: string,
  body: RetryBatchRequest,
  options: { backoff: BackoffPolicy; idempotencyKey?: string },
): Promise<RetryBatchResponse> {
  const tierNums = [...new Set(body.tier_nums ?? [])].sort((a, b) => a - b);
  const documentIds = body.document_ids ? dedupe(body.document_ids) : null;
  return db.transaction(async (tx) => {
    const bucket = await requireBucket(tx, scope, bucketIdentifier);
    // Non-locking reads: the first row locks this request takes are on units (lock order).
    const batch = await requireBatch(tx, scope, bucket.id, batchId);
    let idempotency: IdempotencyScope | undefined;
    if (options.idempotencyKey !== undefined) {
      idempotency = { organizationId: scope.organizationId, scope: `retry:${batch.id}`, key: options.idempotencyKey };
      const normalized = {
        retry_mode: body.retry_mode,
        tier_nums: tierNums,
        max_retry_count: body.max_retry_count,
        dry_run: body.dry_run,
        document_ids: documentIds,
      };
      const replay = await claimIdempotencyKey<RetryBatchResponse>(tx, idempotency, requestHash(normalized));
      if (replay) return replay;
    }
    if (!RETRYABLE_STATUSES.includes(batch.status)) throw refuseStatus(batch, 'retry', RETRYABLE_STATUSES);
    const allTiers = (batch.dag_tiers ?? []).map((_, i) => i);
    const unknown = tierNums.filter((n) => !allTiers.includes(n));
    if (unknown.length > 0) {
      throw badRequest(
        `tier_nums ${show(unknown)} not in batch ${batch.id}, whose tiers are ${allTiers.length === 1 ? '0' : `0 to ${allTiers.length - 1}`}`,
        { batch_id: batch.id, tier_nums: unknown },
      );
    }
    const selection: RetrySelection = {
      batchId: batch.id,
      retryMode: body.retry_mode,
      tierNums,
      maxRetryCount: body.max_retry_count,
      documentIds,
    };
    const outcome = body.dry_run ? await countRetryableUnits(tx, selection) : await requeueFailedUnits(tx, selection, options.backoff);
    const considered = tierNums.length > 0 ? tierNums : allTiers;
    const byTier = considered.map((tierNum) => {
      const t = outcome.tiers.find((o) => o.tier_num === tierNum);
      return {
        tier_num: tierNum,
        retried: t?.retried ?? 0,
        skipped_permanent: t?.skipped_permanent ?? 0,
        skipped_max_retries: t?.skipped_max_retries ?? 0,
      };
    });
    const retried = byTier.reduce((n, t) => n + t.retried, 0);
    if (!body.dry_run && retried > 0 && outcome.batchStatus === null) {
      // Canceled since the first read: throwing rolls the re-queue back.
      throw refuseStatus(await requireBatch(tx, scope, bucket.id, batchId), 'retry', RETRYABLE_STATUSES);
    }
    const response: RetryBatchResponse = {
      batch_id: batch.id,
      status: outcome.batchStatus ?? batch.status,
      retry_mode: body.retry_mode,
      tier_nums: considered,
      max_retry_count: body.max_retry_count,
      dry_run: body.dry_run,
      retried_count: retried,
      skipped: {
        permanent: byTier.reduce((n, t) => n + t.skipped_permanent, 0),
        max_retries_reached: byTier.reduce((n, t) => n + t.skipped_max_retries, 0),
      },
      by_tier: byTier,
      retried_document_ids: outcome.tiers.flatMap((t) => t.ids).slice(0, RETRIED_IDS_SHOWN),
      task_id: batch.task_id,
    };
    if (idempotency) await storeIdempotentResponse(tx, idempotency, response);
    return response;
  });
}
