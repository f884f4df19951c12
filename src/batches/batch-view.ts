import type { Queryable } from '../db/db.js';
import type { TaskStatus } from '../tasks/schema.js';
import { type BatchErrorDetail, type BatchModel, type BatchStatus, ERROR_CATEGORIES, type ErrorCategory, type TierTaskInfo } from './schema.js';

/** A batch row as services use it. */
export interface BatchRow {
  id: string;
  organization_id: string;
  namespace_id: string;
  bucket_id: string;
  status: BatchStatus;
  type: string;
  metadata: Record<string, unknown>;
  object_count: number;
  dag_tiers: string[][] | null;
  collection_ids: string[] | null;
  task_id: string | null;
  include_processing_history: boolean;
  error: string | null;
  submitted_at: Date | null;
  started_at: Date | null;
  completed_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

interface TierRow {
  batch_id: string;
  tier_num: number;
  collection_ids: string[];
  source_type: string;
  source_collection_ids: string[] | null;
  status: TaskStatus;
  started_at: Date | null;
  completed_at: Date | null;
}

interface CountRow {
  batch_id: string;
  tier_num: number;
  total: number;
  completed: number;
  failed: number;
  pending: number;
  canceled: number;
  documents_written: number;
}

interface ErrorRow {
  batch_id: string;
  tier_num: number;
  error_type: string | null;
  code: string | null;
  affected_count: number;
  message: string | null;
  timestamp: Date;
  affected_document_ids: string[];
  transient: boolean | null;
  collection_ids: string[];
  components: string[] | null;
}

/** At most this many source ids are listed per error group (`affected_count` still counts them all). */
export const AFFECTED_IDS_SHOWN = 100;

const key = (batchId: string, tierNum: number) => `${batchId}\u0000${tierNum}`;

function recoverySuggestion(errorType: ErrorCategory, batch: BatchRow): string {
  const retry = `POST /v1/buckets/${batch.bucket_id}/batches/${batch.id}/retry`;
  switch (errorType) {
    case 'network':
    case 'resource':
      return `a transient failure (the service was unreachable, overloaded or rate limited): retry with ${retry} (retry_mode "transient_only")`;
    case 'validation':
      return `the input was refused: fix the source objects or the collection's input mappings, then retry with ${retry} (retry_mode "all")`;
    case 'authentication':
      return `the extractor's endpoint refused the credentials: fix the endpoint's credentials or headers, then retry with ${retry} (retry_mode "all")`;
    case 'dependency':
      return `something the unit needs is missing (source object, blob or extractor): restore it, then retry with ${retry} (retry_mode "all")`;
    default:
      return `the extractor failed: fix the extractor, then retry with ${retry} (retry_mode "all")`;
  }
}

const asCategory = (value: string | null): ErrorCategory =>
  (ERROR_CATEGORIES as readonly string[]).includes(value ?? '') ? (value as ErrorCategory) : 'runtime';

/**
 * Builds the `BatchModel` of each given batch, in the given order. A fixed number of statements whatever
 * the number of batches, tiers or units: object ids, tiers, unit counts (one GROUP BY over the batches'
 * units) and errors (one GROUP BY over failed units, which the `units_failed` partial index serves).
 */
export async function batchViews(q: Queryable, batches: readonly BatchRow[]): Promise<BatchModel[]> {
  if (batches.length === 0) return [];
  const ids = batches.map((b) => b.id);
  const submitted = batches.filter((b) => b.status !== 'DRAFT').map((b) => b.id);
  const [objects, tiers, counts, errors] = await Promise.all([
    q.query<{ batch_id: string; object_ids: string[] }>(
      `SELECT batch_id, array_agg(object_id ORDER BY position) AS object_ids
       FROM batch_objects WHERE batch_id = ANY($1::text[]) GROUP BY batch_id`,
      [ids],
    ),
    submitted.length === 0
      ? Promise.resolve([])
      : q.query<TierRow>(`SELECT * FROM batch_tiers WHERE batch_id = ANY($1::text[]) ORDER BY batch_id, tier_num`, [submitted]),
    submitted.length === 0
      ? Promise.resolve([])
      : q.query<CountRow>(
          `SELECT batch_id, tier_num,
                  count(*)::int AS total,
                  count(*) FILTER (WHERE status = 'completed')::int AS completed,
                  count(*) FILTER (WHERE status = 'failed')::int AS failed,
                  count(*) FILTER (WHERE status IN ('pending', 'running'))::int AS pending,
                  count(*) FILTER (WHERE status = 'canceled')::int AS canceled,
                  coalesce(sum(documents_written), 0)::int AS documents_written
           FROM units WHERE batch_id = ANY($1::text[]) GROUP BY batch_id, tier_num`,
          [submitted],
        ),
    submitted.length === 0
      ? Promise.resolve([])
      : q.query<ErrorRow>(
          `SELECT u.batch_id, u.tier_num,
                  u.last_error->>'error_type' AS error_type,
                  u.last_error->>'code' AS code,
                  count(*)::int AS affected_count,
                  (array_agg(u.last_error->>'message' ORDER BY u.updated_at DESC, u.id DESC))[1] AS message,
                  max(u.updated_at) AS timestamp,
                  (array_agg(u.source_id ORDER BY u.id))[1:${AFFECTED_IDS_SHOWN}] AS affected_document_ids,
                  bool_or((u.last_error->>'transient') = 'true') AS transient,
                  array_agg(DISTINCT u.collection_id) AS collection_ids,
                  array_agg(DISTINCT c.feature_extractor->>'feature_extractor_id')
                    FILTER (WHERE c.feature_extractor->>'feature_extractor_id' IS NOT NULL) AS components
           FROM units u LEFT JOIN collections c ON c.id = u.collection_id
           WHERE u.batch_id = ANY($1::text[]) AND u.status = 'failed'
           GROUP BY u.batch_id, u.tier_num, 3, 4
           ORDER BY u.batch_id, u.tier_num, affected_count DESC, 3, 4`,
          [submitted],
        ),
  ]);

  const objectsOf = new Map(objects.map((o) => [o.batch_id, o.object_ids]));
  const countsOf = new Map(counts.map((c) => [key(c.batch_id, c.tier_num), c]));
  const errorsOf = new Map<string, ErrorRow[]>();
  for (const e of errors) {
    const k = key(e.batch_id, e.tier_num);
    errorsOf.set(k, [...(errorsOf.get(k) ?? []), e]);
  }
  const tiersOf = new Map<string, TierRow[]>();
  for (const t of tiers) tiersOf.set(t.batch_id, [...(tiersOf.get(t.batch_id) ?? []), t]);

  return batches.map((batch) => {
    const tierRows = tiersOf.get(batch.id) ?? [];
    const tierTasks: TierTaskInfo[] = tierRows.map((t) => {
      const c = countsOf.get(key(batch.id, t.tier_num));
      const errorDetails: BatchErrorDetail[] = (errorsOf.get(key(batch.id, t.tier_num)) ?? []).map((e) => {
        const errorType = asCategory(e.error_type);
        return {
          error_type: errorType,
          message: e.message ?? `${errorType} error${e.code ? ` (${e.code})` : ''}`,
          component: e.components?.length ? e.components.join(', ') : null,
          stage: 'extraction',
          traceback: null,
          timestamp: e.timestamp.toISOString(),
          affected_document_ids: e.affected_document_ids,
          affected_count: e.affected_count,
          recovery_suggestion: recoverySuggestion(errorType, batch),
          metadata: { code: e.code, transient: e.transient ?? false, tier_num: t.tier_num, collection_ids: e.collection_ids },
        };
      });
      return {
        tier_num: t.tier_num,
        task_id: null,
        status: t.status,
        collection_ids: t.collection_ids,
        extractor_jobs: [],
        source_type: t.source_type,
        source_collection_ids: t.source_collection_ids,
        parent_task_id: null,
        started_at: t.started_at?.toISOString() ?? null,
        completed_at: t.completed_at?.toISOString() ?? null,
        duration_ms: t.started_at && t.completed_at ? t.completed_at.getTime() - t.started_at.getTime() : null,
        errors: errorDetails,
        error_summary: summarise(errorDetails),
        documents_written: c?.documents_written ?? 0,
        units_total: c?.total ?? 0,
        units_completed: c?.completed ?? 0,
        units_failed: c?.failed ?? 0,
        units_pending: c?.pending ?? 0,
        units_canceled: c?.canceled ?? 0,
      };
    });
    const objectIds = objectsOf.get(batch.id) ?? [];
    const current = tierRows.find((t) => t.completed_at === null);
    return {
      batch_id: batch.id,
      bucket_id: batch.bucket_id,
      status: batch.status,
      object_ids: objectIds,
      collection_ids: batch.collection_ids,
      error: batch.error,
      error_summary: summarise(tierTasks.flatMap((t) => t.errors)),
      type: batch.type === 'COLLECTION' ? 'COLLECTION' : 'BUCKET',
      manifest_key: null,
      task_id: batch.task_id,
      loaded_object_ids: objectIds,
      internal_metadata: {
        include_processing_history: batch.include_processing_history,
        submitted_at: batch.submitted_at?.toISOString() ?? null,
        started_at: batch.started_at?.toISOString() ?? null,
        completed_at: batch.completed_at?.toISOString() ?? null,
      },
      metadata: batch.metadata,
      tier_tasks: tierTasks,
      current_tier: current ? current.tier_num : null,
      total_tiers: Math.max(1, tierRows.length),
      dag_tiers: batch.dag_tiers,
      created_at: batch.created_at.toISOString(),
      updated_at: batch.updated_at.toISOString(),
    };
  });
}

/** `{error_type: affected count}` over some error groups; `null` when there are none. */
function summarise(errors: readonly BatchErrorDetail[]): Record<string, number> | null {
  if (errors.length === 0) return null;
  const summary: Record<string, number> = {};
  for (const e of errors) summary[e.error_type] = (summary[e.error_type] ?? 0) + e.affected_count;
  return summary;
}
