import { z } from 'zod';
import { TaskStatus } from '../tasks/schema.js';

const Metadata = z.record(z.string(), z.unknown());
const ObjectId = z.string().min(1).max(200);

/** The statuses a batch moves through (DESIGN-NOTES §4); a subset of Mixpeek's `TaskStatusEnum`. */
export const BATCH_STATUSES = ['DRAFT', 'PENDING', 'IN_PROGRESS', 'COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED', 'CANCELED'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];
/** Statuses from which a batch can still be canceled. */
export const CANCELABLE_STATUSES: readonly BatchStatus[] = ['DRAFT', 'PENDING', 'IN_PROGRESS'];

/** Mixpeek's `ErrorCategory` (DESIGN-NOTES §5). */
export const ERROR_CATEGORIES = ['dependency', 'authentication', 'validation', 'runtime', 'network', 'resource'] as const;
export type ErrorCategory = (typeof ERROR_CATEGORIES)[number];

/**
 * Mixpeek's `CreateBatchRequest`. Mixpeek asks for at least one id; Sluice also takes an empty list, so a
 * batch can be created first and filled with `POST …/objects` (it cannot be submitted while empty).
 */
export const CreateBatchRequest = z.object({ object_ids: z.array(ObjectId) });
export type CreateBatchRequest = z.infer<typeof CreateBatchRequest>;

export const AddObjectsToBatchRequest = z.object({ object_ids: z.array(ObjectId).min(1) });
export type AddObjectsToBatchRequest = z.infer<typeof AddObjectsToBatchRequest>;

const BooleanQuery = z
  .enum(['true', 'false', '1', '0'])
  .transform((v) => v === 'true' || v === '1')
  .default(false);

/** `?skip_validation`: store the ids without checking that they are objects of the bucket. */
export const BatchObjectsQuery = z.object({ skip_validation: BooleanQuery });

/** Mixpeek's `SubmitBatchRequest`; the body may be omitted. */
export const SubmitBatchRequest = z
  .object({ include_processing_history: z.boolean().default(true) })
  .default({ include_processing_history: true });

export const PatchBatchRequest = z.object({ metadata: Metadata.nullish() });

/** Mixpeek's `ListBatchesRequest`; the body may be omitted. */
export const ListBatchesRequest = z
  .object({
    status: TaskStatus.nullish(),
    offset: z.number().int().min(0).default(0),
    limit: z.number().int().min(1).max(1000).default(100),
  })
  .default({ offset: 0, limit: 100 });

/** Mixpeek's `BatchErrorDetail`: failed units of one tier grouped by error type and code. */
export const BatchErrorDetail = z.object({
  error_type: z.enum(ERROR_CATEGORIES),
  message: z.string(),
  component: z.string().nullable(),
  stage: z.string().nullable(),
  traceback: z.string().nullable(),
  timestamp: z.string(),
  affected_document_ids: z.array(z.string()),
  affected_count: z.number().int(),
  recovery_suggestion: z.string().nullable(),
  metadata: Metadata,
});
export type BatchErrorDetail = z.infer<typeof BatchErrorDetail>;

/** Mixpeek's `TierTaskInfo`, plus unit counts (Sluice extension). */
export const TierTaskInfo = z.object({
  tier_num: z.number().int(),
  task_id: z.string().nullable(),
  status: TaskStatus,
  collection_ids: z.array(z.string()),
  extractor_jobs: z.array(z.unknown()),
  source_type: z.string(),
  source_collection_ids: z.array(z.string()).nullable(),
  parent_task_id: z.string().nullable(),
  started_at: z.string().nullable(),
  completed_at: z.string().nullable(),
  duration_ms: z.number().nullable(),
  errors: z.array(BatchErrorDetail),
  error_summary: z.record(z.string(), z.number().int()).nullable(),
  documents_written: z.number().int().nullable(),
  units_total: z.number().int(),
  units_completed: z.number().int(),
  units_failed: z.number().int(),
  units_pending: z.number().int(),
  units_canceled: z.number().int(),
});
export type TierTaskInfo = z.infer<typeof TierTaskInfo>;

/** Mixpeek's `BatchModel`. */
export const BatchModel = z.object({
  batch_id: z.string(),
  bucket_id: z.string(),
  status: TaskStatus,
  object_ids: z.array(z.string()),
  collection_ids: z.array(z.string()).nullable(),
  error: z.string().nullable(),
  error_summary: z.record(z.string(), z.number().int()).nullable(),
  type: z.enum(['BUCKET', 'COLLECTION']),
  manifest_key: z.string().nullable(),
  task_id: z.string().nullable(),
  loaded_object_ids: z.array(z.string()).nullable(),
  internal_metadata: Metadata.nullable(),
  metadata: Metadata,
  tier_tasks: z.array(TierTaskInfo),
  current_tier: z.number().int().nullable(),
  total_tiers: z.number().int(),
  dag_tiers: z.array(z.array(z.string())).nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type BatchModel = z.infer<typeof BatchModel>;

export const ListBatchesResponse = z.object({
  results: z.array(BatchModel),
  total_count: z.number().int(),
});

/** What `DELETE …/batches/{batch_id}` answers: Mixpeek's `GenericDeleteResponse` plus the ids. */
export const DeleteBatchResponse = z.object({
  success: z.boolean(),
  message: z.string(),
  batch_id: z.string(),
  bucket_id: z.string(),
});

export const BucketParams = z.object({ bucket_identifier: z.string().min(1).max(200) });
export const BatchParams = BucketParams.extend({ batch_id: z.string().min(1).max(200) });

/** Most source ids `document_ids` may name in one retry request. */
export const RETRY_DOCUMENT_IDS_MAX = 10_000;

/**
 * Mixpeek's `RetryBatchRequest`, plus Sluice's `dry_run` and `document_ids` (DESIGN-NOTES §6). The body may
 * be omitted: every field has a default.
 */
export const RetryBatchRequest = z
  .object({
    retry_mode: z.enum(['transient_only', 'all']).default('transient_only'),
    tier_nums: z.array(z.number().int().min(0).max(1000)).max(1000).nullish(),
    max_retry_count: z.number().int().min(1).max(10).default(3),
    dry_run: z.boolean().default(false),
    document_ids: z.array(z.string().min(1).max(200)).min(1).max(RETRY_DOCUMENT_IDS_MAX).nullish(),
  })
  .default({ retry_mode: 'transient_only', max_retry_count: 3, dry_run: false });
export type RetryBatchRequest = z.output<typeof RetryBatchRequest>;

/** The `Idempotency-Key` header of a retry (other headers pass untouched). */
export const RetryHeaders = z.looseObject({ 'idempotency-key': z.string().min(1).max(255).optional() });

/** Retry counts of one tier considered by a retry. */
export const RetryTierCounts = z.object({
  tier_num: z.number().int(),
  retried: z.number().int(),
  skipped_permanent: z.number().int(),
  skipped_max_retries: z.number().int(),
});
export type RetryTierCounts = z.infer<typeof RetryTierCounts>;

/** What `POST …/retry` answers (Mixpeek publishes no shape; DESIGN-NOTES §6 defines this one). */
export const RetryBatchResponse = z.object({
  batch_id: z.string(),
  status: TaskStatus,
  retry_mode: z.enum(['transient_only', 'all']),
  tier_nums: z.array(z.number().int()),
  max_retry_count: z.number().int(),
  dry_run: z.boolean(),
  retried_count: z.number().int(),
  skipped: z.object({ permanent: z.number().int(), max_retries_reached: z.number().int() }),
  by_tier: z.array(RetryTierCounts),
  retried_document_ids: z.array(z.string()),
  task_id: z.string().nullable(),
});
export type RetryBatchResponse = z.infer<typeof RetryBatchResponse>;

const OptionalBooleanQuery = z
  .enum(['true', 'false', '1', '0'])
  .transform((v) => v === 'true' || v === '1')
  .optional();

/** Query of `GET …/failed-documents` (DESIGN-NOTES §7). */
export const FailedDocumentsQuery = z.object({
  // Not z.coerce: it would read `?tier_num=` as tier 0.
  tier_num: z
    .string()
    .regex(/^\d{1,4}$/, 'tier_num must be a tier number (0, 1, …)')
    .transform(Number)
    .optional(),
  collection_id: z.string().min(1).max(200).optional(),
  error_type: z.enum(ERROR_CATEGORIES).optional(),
  transient: OptionalBooleanQuery,
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0),
});
export type FailedDocumentsQuery = z.infer<typeof FailedDocumentsQuery>;

/** `GET …/batches/{batch_id}/logs`: optionally one tier. */
export const BatchLogsQuery = FailedDocumentsQuery.pick({ tier_num: true });
export type BatchLogsQuery = z.infer<typeof BatchLogsQuery>;

/** One event of a batch's processing log. */
export const BatchLogEvent = z.object({
  timestamp: z.string(),
  level: z.enum(['info', 'warning', 'error']),
  /** batch_created, batch_submitted, batch_started, batch_finished, tier_started, tier_finished, attempt_failed. */
  event: z.string(),
  tier_num: z.number().int().nullable(),
  collection_id: z.string().nullable(),
  /** For failed attempts: the unit's source id (object or upstream document). */
  document_id: z.string().nullable(),
  message: z.string(),
  /** For failed attempts: the error record as stored (DESIGN-NOTES §5). */
  error: z.record(z.string(), z.unknown()).nullable(),
});

/** Sluice's answer to `GET …/logs` (Mixpeek publishes no shape: it serves Ray job logs). */
export const BatchLogsResponse = z.object({
  batch_id: z.string(),
  tier_num: z.number().int().nullable(),
  logs: z.array(BatchLogEvent),
  total_count: z.number().int(),
  truncated: z.boolean(),
});
export type BatchLogsResponse = z.infer<typeof BatchLogsResponse>;

/** One failed unit of a batch, as `GET …/failed-documents` lists it. */
export const FailedDocument = z.object({
  /** The unit's source item: an object id (tier 0) or an upstream document id (tier ≥ 1). */
  document_id: z.string(),
  unit_id: z.string(),
  batch_id: z.string(),
  tier_num: z.number().int(),
  collection_id: z.string(),
  source_object_id: z.string().nullable(),
  source_document_id: z.string().nullable(),
  root_object_id: z.string(),
  status: z.string(),
  attempts: z.number().int(),
  retry_count: z.number().int(),
  last_retry_at: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  error: z.record(z.string(), z.unknown()).nullable(),
  error_history: z.array(z.record(z.string(), z.unknown())),
});
export type FailedDocument = z.infer<typeof FailedDocument>;

export const FailedDocumentsResponse = z.object({
  results: z.array(FailedDocument),
  total_count: z.number().int(),
  limit: z.number().int(),
  offset: z.number().int(),
});
export type FailedDocumentsResponse = z.infer<typeof FailedDocumentsResponse>;
