import { z } from 'zod';
import { PaginationResponse, SortOption } from '../http/pagination.js';

export const TASK_STATUSES = [
  'PENDING',
  'IN_PROGRESS',
  'PROCESSING',
  'COMPLETED',
  'COMPLETED_WITH_ERRORS',
  'FAILED',
  'CANCELED',
  'UNKNOWN',
  'SKIPPED',
  'DRAFT',
  'ACTIVE',
  'ARCHIVED',
  'SUSPENDED',
] as const;
export const TaskStatus = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatus>;

/** Mixpeek's `TaskResponse`. */
export const TaskResponse = z.object({
  task_id: z.string(),
  task_type: z.string(),
  status: TaskStatus,
  inputs: z.array(z.unknown()).nullable(),
  outputs: z.array(z.unknown()).nullable(),
  additional_data: z.record(z.string(), z.unknown()).nullable(),
  error: z.string().nullable(),
});
export type TaskResponse = z.infer<typeof TaskResponse>;

/** Mixpeek's `TaskType`. */
export const TASK_TYPES = [
  'api_namespaces_create',
  'api_namespaces_delete',
  'api_namespaces_migrations_run',
  'api_buckets_objects_create',
  'api_buckets_delete',
  'api_buckets_batches_process',
  'api_buckets_batches_submit',
  'api_buckets_uploads_create',
  'api_buckets_uploads_confirm',
  'api_buckets_uploads_batch_confirm',
  'api_collections_documents_create',
  'api_collections_extraction_artifacts',
  'api_taxonomies_create',
  'api_taxonomies_execute',
  'api_taxonomies_materialize',
  'api_evaluations_run',
  'api_evaluations_dataset_create',
  'api_retrievers_publish',
  'api_collections_export',
  'api_collections_trigger',
  'engine_feature_extractor_run',
  'engine_inference_run',
  'engine_object_processing',
  'engine_cluster_build',
  'thumbnail',
  'video_segment',
  'audio_segment',
  'materialize',
  'plugin_custom',
  'model_custom',
] as const;
export const TaskType = z.enum(TASK_TYPES);


/** Mixpeek's `ListTasksRequest`; the body may be omitted. */
export const ListTasksRequest = z
  .object({
    status: TaskStatus.nullish(),
    task_type: TaskType.nullish(),
    filters: z.record(z.string(), z.unknown()).nullish(),
    sort: SortOption.nullish(),
    search: z.string().max(1000).nullish(),
    case_sensitive: z.boolean().default(false),
  })
  .default({ case_sensitive: false });
export type ListTasksRequest = z.infer<typeof ListTasksRequest>;

export const ListTasksResponse = z.object({
  results: z.array(TaskResponse),
  pagination: PaginationResponse,
  total_count: z.number().int(),
});

/** What `DELETE /v1/tasks/{task_id}` answers: Mixpeek's `GenericDeleteResponse` plus the task. */
export const KillTaskResponse = z.object({
  success: z.boolean(),
  message: z.string(),
  task_id: z.string(),
  status: TaskStatus,
});

export const TaskParams = z.object({ task_id: z.string().min(1).max(200) });
