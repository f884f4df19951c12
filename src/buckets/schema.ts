import { z } from 'zod';
import { BodyPagedListQuery, PaginationResponse, SortOption } from '../http/pagination.js';
import { TaskStatus } from '../tasks/schema.js';
import { BucketSchema } from './bucket-schema.js';

/**
 * Bucket names appear in URLs (`/v1/buckets/{bucket_identifier}`), so they follow the namespace-name rules:
 * URL-safe characters only, and no `bkt_` prefix, which is reserved for ids so a name never shadows one.
 */
export const BucketName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must start with a letter or digit and hold only letters, digits, _ . -')
  .refine((v) => !v.startsWith('bkt_'), 'must not start with bkt_ (reserved for bucket ids)');

const Description = z.string().max(2000);
const Metadata = z.record(z.string(), z.unknown());

/** Mixpeek's `UniqueKeyConfig`. Whether the fields exist and are scalar is checked against the schema. */
export const UniqueKeyConfig = z.object({
  fields: z.array(z.string().min(1).max(128)).min(1).max(16),
  default_policy: z.enum(['insert', 'update', 'upsert']).nullish(),
});

export const BucketCreateRequest = z.object({
  bucket_name: BucketName,
  description: Description.nullish(),
  bucket_schema: BucketSchema,
  unique_key: UniqueKeyConfig.nullish(),
  metadata: Metadata.default({}),
});

/**
 * Mixpeek fixes a bucket's schema and unique key at creation; its update models do not carry them. A
 * client that sends them anyway would otherwise see a 200 and believe the change was made, so they are
 * refused with a message saying why.
 */
const immutable = (field: string) =>
  z
    .unknown()
    .refine((v) => v === undefined || v === null, `${field} cannot be changed after the bucket is created`)
    .optional()
    .meta({ description: `Not accepted: ${field} is fixed when the bucket is created.` });

export const BucketUpdateRequest = z.object({
  bucket_name: BucketName.nullish(),
  description: Description.nullish(),
  metadata: Metadata.nullish(),
  bucket_schema: immutable('bucket_schema'),
  unique_key: immutable('unique_key'),
});

export const BucketPatchRequest = BucketUpdateRequest;

export const BatchStatistics = z.object({
  total: z.number().int(),
  active: z.number().int(),
  completed: z.number().int(),
  failed: z.number().int(),
});
export type BatchStatistics = z.infer<typeof BatchStatistics>;

export const StorageStatistics = z.object({
  total_size_bytes: z.number().int(),
  avg_size_bytes: z.number().int(),
  max_size_bytes: z.number().int(),
  min_size_bytes: z.number().int(),
});
export type StorageStatistics = z.infer<typeof StorageStatistics>;

export const BucketResponse = z.object({
  bucket_id: z.string(),
  bucket_name: z.string(),
  description: z.string().nullable(),
  bucket_schema: BucketSchema.nullable(),
  unique_key: UniqueKeyConfig.nullable(),
  metadata: Metadata,
  object_count: z.number().int(),
  total_size_bytes: z.number().int(),
  created_at: z.string().nullable(),
  updated_at: z.string().nullable(),
  last_upload_at: z.string().nullable(),
  stats_updated_at: z.string().nullable(),
  status: TaskStatus,
  is_locked: z.boolean(),
  batch_stats: BatchStatistics.nullable(),
  storage_stats: StorageStatistics.nullable(),
});
export type BucketResponse = z.infer<typeof BucketResponse>;


export const ListBucketsRequest = z
  .object({
    search: z.string().max(1000).nullish(),
    filters: z.record(z.string(), z.unknown()).nullish(),
    sort: SortOption.nullish(),
    case_sensitive: z.boolean().default(false),
    limit: z.number().int().min(1).max(1000).default(10),
    offset: z.number().int().min(0).max(10000).default(0),
  })
  .default({ case_sensitive: false, limit: 10, offset: 0 });

/**
 * Query parameters of `POST /v1/buckets/list`. Mixpeek puts `limit`/`offset` in the body; Sluice's other
 * lists take them as query parameters. Both are accepted here, so no default: an absent query value
 * falls back to the body's.
 */
export const ListBucketsQuery = BodyPagedListQuery;

export const BucketListStats = z.object({
  total_objects: z.number().int(),
  total_size_bytes: z.number().int(),
  avg_objects_per_bucket: z.number(),
  avg_size_per_bucket: z.number(),
});
export type BucketListStats = z.infer<typeof BucketListStats>;

export const ListBucketsResponse = z.object({
  results: z.array(BucketResponse),
  total_count: z.number().int(),
  pagination: PaginationResponse,
  stats: BucketListStats.nullable(),
});

/** What `DELETE /v1/buckets/{bucket_identifier}` answers (Mixpeek describes it in prose only). */
export const DeleteBucketResponse = z.object({
  task_id: z.string(),
  status: TaskStatus,
  bucket_id: z.string(),
  bucket_name: z.string(),
  object_count: z.number().int(),
  message: z.string(),
});
export type DeleteBucketResponse = z.infer<typeof DeleteBucketResponse>;

export const BucketIdentifierParams = z.object({ bucket_identifier: z.string().min(1).max(200) });
