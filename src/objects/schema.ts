import { z } from 'zod';
import { FIELD_TYPES } from '../buckets/bucket-schema.js';
import { PaginationResponse, SortOption } from '../http/pagination.js';

/** Mixpeek's SDKs and docs write blob types in capitals (`IMAGE`); the schema's enum is lower case. */
const BlobTypeInput = z.string().toLowerCase().pipe(z.enum(FIELD_TYPES));

const Metadata = z.record(z.string(), z.unknown());
const KeyPrefix = z.string().max(1024);

/** Mixpeek's `CreateBlobRequest`. `data` is checked by `parseBlob`, which knows the schema property. */
export const CreateBlobRequest = z.object({
  property: z.string().min(1).max(100),
  key_prefix: KeyPrefix.nullish(),
  type: BlobTypeInput,
  data: z.unknown().optional(),
  upload_id: z
    .string()
    .regex(/^upl_[a-zA-Z0-9_-]+$/, 'must be an upload id (upl_…)')
    .max(200)
    .nullish(),
  metadata: Metadata.nullish(),
  canonicalize_source: z.boolean().nullish(),
  force_remirror: z.boolean().nullish(),
});
export type CreateBlobRequest = z.infer<typeof CreateBlobRequest>;

/**
 * Mixpeek's `CreateObjectRequest`. Its `metadata` is not among the declared fields but is how every example
 * sends object metadata (the model allows extra fields), so it is declared here.
 */
export const CreateObjectRequest = z.object({
  key_prefix: KeyPrefix.nullish(),
  metadata: Metadata.nullish(),
  blobs: z.array(CreateBlobRequest).max(500).default([]),
  skip_duplicates: z.boolean().default(false),
  canonicalize_source: z.boolean().default(true),
  force_remirror: z.boolean().default(false),
});
export type CreateObjectRequest = z.infer<typeof CreateObjectRequest>;

export const CreateObjectsBatchRequest = z.object({
  objects: z.array(CreateObjectRequest).max(100),
});

/** Mixpeek's `UpdateObjectRequest` (PUT): blobs replace those of the same property, metadata is merged. */
export const UpdateObjectRequest = z.object({
  key_prefix: KeyPrefix.nullish(),
  blobs: z.array(CreateBlobRequest).max(500).nullish(),
  metadata: Metadata.nullish(),
  skip_duplicates: z.boolean().nullish(),
});
export type UpdateObjectRequest = z.infer<typeof UpdateObjectRequest>;

/**
 * Mixpeek's `PatchObjectRequest`: its user fields are flat at the root ("no nested metadata dict"), and
 * `metadata` is accepted too; both are merged into the object's metadata.
 */
export const PatchObjectRequest = z.looseObject({
  key_prefix: KeyPrefix.nullish(),
  skip_duplicates: z.boolean().nullish(),
  metadata: Metadata.nullish(),
});
export type PatchObjectRequest = z.infer<typeof PatchObjectRequest>;

const BooleanQuery = z
  .enum(['true', 'false', '1', '0'])
  .transform((v) => v === 'true' || v === '1')
  .default(false);

export const CreateObjectQuery = z.object({
  policy: z.enum(['insert', 'update', 'upsert']).nullish(),
  auto_process: BooleanQuery,
});

export const BatchObjectsQuery = CreateObjectQuery;

export const GetObjectQuery = z.object({ return_presigned_urls: BooleanQuery });

export const BucketParams = z.object({ bucket_identifier: z.string().min(1).max(200) });
export const ObjectParams = BucketParams.extend({ object_identifier: z.string().min(1).max(200) });

export const BlobDetails = z.object({
  filename: z.string().nullable(),
  size_bytes: z.number().int().nullable(),
  mime_type: z.string().nullable(),
  hash: z.string().nullable(),
});

export const BlobModel = z.object({
  blob_id: z.string(),
  property: z.string(),
  key_prefix: z.string().nullable(),
  type: z.enum(FIELD_TYPES),
  properties: z.record(z.string(), z.unknown()),
  details: BlobDetails,
});
export type BlobModel = z.infer<typeof BlobModel>;

export const SourceDetails = z.object({
  type: z.enum(['bucket', 'collection', 'taxonomy', 'cluster']),
  source_id: z.string(),
});

export const ObjectResponse = z.object({
  object_id: z.string(),
  bucket_id: z.string(),
  key_prefix: z.string().nullable(),
  metadata: Metadata,
  blobs: z.array(BlobModel),
  source_details: z.array(SourceDetails),
  status: z.string(),
  error: z.string().nullable(),
  created_at: z.string().nullable(),
  updated_at: z.string().nullable(),
});
export type ObjectResponse = z.infer<typeof ObjectResponse>;

export const FailedObjectError = z.object({
  object_index: z.number().int(),
  error: z.string(),
  error_type: z.string(),
});
export type FailedObjectError = z.infer<typeof FailedObjectError>;

export const CreateObjectsBatchResponse = z.object({
  succeeded: z.array(ObjectResponse),
  failed: z.array(FailedObjectError),
  total_requested: z.number().int(),
  succeeded_count: z.number().int(),
  failed_count: z.number().int(),
});

export const DeleteObjectResponse = z.object({
  success: z.boolean(),
  message: z.string(),
  object_id: z.string(),
  bucket_id: z.string(),
});

export const ListObjectsRequest = z
  .object({
    filters: z.record(z.string(), z.unknown()).nullish(),
    sort: SortOption.nullish(),
    search: z.string().max(1000).nullish(),
    select: z.array(z.string().min(1).max(300)).max(100).nullish(),
  })
  .default({});
export type ListObjectsRequest = z.infer<typeof ListObjectsRequest>;

export const ObjectListStats = z.object({
  total_objects: z.number().int(),
  total_blobs: z.number().int(),
  avg_blobs_per_object: z.number(),
  objects_by_status: z.record(z.string(), z.number().int()),
});
export type ObjectListStats = z.infer<typeof ObjectListStats>;

/** With `select`, results hold only the chosen fields; `object_id` and `bucket_id` always. */
export const ListedObject = ObjectResponse.partial().extend({ object_id: z.string(), bucket_id: z.string() });

export const ListObjectsResponse = z.object({
  results: z.array(ListedObject),
  pagination: PaginationResponse,
  stats: ObjectListStats.nullable(),
});
