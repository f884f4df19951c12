import { z } from 'zod';
import { BLOB_TYPES } from '../blobs/sniff-mime.js';
import { BodyPagedListQuery, PaginationResponse, SortOption } from '../http/pagination.js';
import { TaskResponse, TaskStatus } from '../tasks/schema.js';

/**
 * A file name as a client's file system would write it: no directory parts, no `..`, no control
 * characters. The name is only ever shown and stored, never used as a path, but a name that smuggles in
 * a path is a client mistake worth refusing early (Mixpeek refuses `../` and `\`).
 */
export const Filename = z
  .string()
  .min(1)
  .max(255)
  .refine((v) => !/[/\\]/.test(v), 'must be a file name without directory parts (no / or \\)')
  .refine((v) => v !== '.' && v !== '..', 'must not be . or ..')
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  .refine((v) => !/[\u0000-\u001f\u007f]/.test(v), 'must not contain control characters');

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
/** `type/subtype` with optional `; param=value` parts (RFC 9110 media-type). */
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;\\s*${TOKEN}=("[^"]*"|${TOKEN}))*$`);

export const ContentType = z
  .string()
  .min(3)
  .max(255)
  .regex(MEDIA_TYPE, 'must be a MIME type such as video/mp4 or image/jpeg');

/** `VIDEO`, `video` and `Video` all name the schema field type `video` (Mixpeek's docs use upper case). */
export const BlobTypeInput = z
  .string()
  .transform((v) => v.trim().toLowerCase())
  .pipe(z.enum(BLOB_TYPES, { error: `must be one of ${BLOB_TYPES.join(', ')}` }));

const Sha256Hex = z
  .string()
  .regex(/^[a-fA-F0-9]{64}$/, 'must be a SHA-256 hash: 64 hexadecimal characters')
  .transform((v) => v.toLowerCase());

const Metadata = z.record(z.string(), z.unknown());

/** Mixpeek's `CreateUploadRequest`. */
export const CreateUploadRequest = z.object({
  filename: Filename,
  content_type: ContentType,
  file_size_bytes: z.number().int().min(1).nullish(),
  presigned_url_expiration: z.number().int().min(60).max(86400).default(3600),
  metadata: Metadata.default({}),
  create_object_on_confirm: z.boolean().default(true),
  object_metadata: Metadata.nullish(),
  blob_property: z
    .string()
    .max(128)
    .regex(/^[a-zA-Z0-9_]+$/, 'must hold only letters, digits and _')
    .nullish(),
  blob_type: BlobTypeInput.nullish(),
  file_hash: Sha256Hex.nullish(),
  skip_duplicates: z.boolean().default(true),
});
export type CreateUploadRequest = z.infer<typeof CreateUploadRequest>;

export const UPLOAD_STATUSES = ['PENDING', 'IN_PROGRESS', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELED', 'SKIPPED'] as const;

/** Mixpeek's `UploadResponse`. */
export const UploadResponse = z.object({
  upload_id: z.string(),
  bucket_id: z.string(),
  filename: z.string(),
  content_type: z.string(),
  file_size_bytes: z.number().int().nullable(),
  presigned_url: z.string().nullable(),
  presigned_url_expiration: z.number().int(),
  s3_key: z.string(),
  status: TaskStatus,
  metadata: Metadata,
  create_object_on_confirm: z.boolean(),
  object_metadata: Metadata.nullable(),
  blob_property: z.string().nullable(),
  blob_type: z.string().nullable(),
  file_hash: z.string().nullable(),
  skip_duplicates: z.boolean(),
  is_duplicate: z.boolean(),
  duplicate_of_upload_id: z.string().nullable(),
  skipped_unique_key: z.boolean(),
  existing_object_id: z.string().nullable(),
  message: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  completed_at: z.string().nullable(),
  verified_at: z.string().nullable(),
  etag: z.string().nullable(),
  object_id: z.string().nullable(),
  task_id: z.string().nullable(),
});
export type UploadResponse = z.infer<typeof UploadResponse>;

/** Mixpeek's `ConfirmUploadRequest`: both checks are optional. */
export const ConfirmUploadRequest = z
  .object({
    etag: z.string().max(200).nullish(),
    file_size_bytes: z.number().int().min(1).nullish(),
  })
  .default({});
export type ConfirmUploadRequest = z.infer<typeof ConfirmUploadRequest>;

/** Mixpeek's `ConfirmUploadResponse`. */
export const ConfirmUploadResponse = z.object({
  upload_id: z.string(),
  status: TaskStatus,
  etag: z.string().nullable(),
  file_size_bytes: z.number().int().nullable(),
  file_hash: z.string().nullable(),
  verified_at: z.string().nullable(),
  completed_at: z.string().nullable(),
  object_id: z.string().nullable(),
  task_id: z.string().nullable(),
  message: z.string().nullable(),
});
export type ConfirmUploadResponse = z.infer<typeof ConfirmUploadResponse>;

export const ConfirmQuery = z.object({
  async: z
    .enum(['true', 'false', '1', '0'])
    .transform((v) => v === 'true' || v === '1')
    .default(false),
});


/** Mixpeek's `ListUploadsRequest`; the body may be empty (generated SDKs POST nothing). */
export const ListUploadsRequest = z
  .object({
    filters: z.record(z.string(), z.unknown()).nullish(),
    sort: SortOption.nullish(),
    search: z.string().max(500).nullish(),
    return_presigned_urls: z.boolean().default(false),
    limit: z.number().int().min(1).max(100).default(20),
    offset: z.number().int().min(0).max(10000).default(0),
  })
  .default({ return_presigned_urls: false, limit: 20, offset: 0 });
export type ListUploadsRequest = z.infer<typeof ListUploadsRequest>;

/**
 * The list endpoint's query. Mixpeek puts `limit`/`offset` in both the body and the query: a value given
 * in the query wins, so these have no defaults here (the body's apply otherwise).
 */
export const ListUploadsQuery = BodyPagedListQuery;
export type ListUploadsQuery = z.infer<typeof ListUploadsQuery>;

/** Mixpeek's `UploadListStats`, computed over every upload the filters match (not only the page). */
export const UploadListStats = z.object({
  total_uploads: z.number().int(),
  total_size_bytes: z.number().int(),
  uploads_by_status: z.record(z.string(), z.number().int()),
  avg_file_size_bytes: z.number(),
  unique_buckets: z.number().int(),
});
export type UploadListStats = z.infer<typeof UploadListStats>;

export const ListUploadsResponse = z.object({
  results: z.array(UploadResponse),
  pagination: PaginationResponse,
  stats: UploadListStats,
});

/** One item that could not be created or confirmed: batch endpoints report per item instead of failing whole. */
export const BatchItemError = z.object({
  index: z.number().int(),
  upload_id: z.string().nullable(),
  filename: z.string().nullable(),
  error: z.object({
    type: z.string(),
    status: z.number().int(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).nullable(),
  }),
});
export type BatchItemError = z.infer<typeof BatchItemError>;

/**
 * Mixpeek's `BatchUploadRequest`. Items are checked one by one (a bad item is reported, not fatal), so the
 * array holds objects here and each is validated as a `CreateUploadRequest` by the service.
 */
export const BatchUploadRequest = z.object({
  uploads: z.array(z.record(z.string(), z.unknown())).min(1).max(100),
  shared_metadata: Metadata.nullish(),
  shared_object_metadata: Metadata.nullish(),
});
export type BatchUploadRequest = z.infer<typeof BatchUploadRequest>;

/** Mixpeek's `BatchUploadResponse`, plus `errors` for the items that were refused (our extension). */
export const BatchUploadResponse = z.object({
  uploads: z.array(UploadResponse),
  total: z.number().int(),
  errors: z.array(BatchItemError),
});

/** Mixpeek's `BatchConfirmRequest`: each confirmation holds `upload_id` and the optional checks. */
export const BatchConfirmRequest = z.object({
  confirmations: z.array(z.record(z.string(), z.unknown())).min(1).max(100),
});
export type BatchConfirmRequest = z.infer<typeof BatchConfirmRequest>;

export const BatchConfirmItem = z.object({
  upload_id: z.string().min(1).max(200),
  etag: z.string().max(200).nullish(),
  file_size_bytes: z.number().int().min(1).nullish(),
});
export type BatchConfirmItem = z.infer<typeof BatchConfirmItem>;

/** Mixpeek's `BatchConfirmResponse`. */
export const BatchConfirmResponse = z.object({
  task_id: z.string(),
  status: TaskStatus,
  confirmations_count: z.number().int(),
  task: TaskResponse,
  message: z.string(),
});

export const BucketUploadParams = z.object({
  bucket_identifier: z.string().min(1).max(200),
  upload_id: z.string().min(1).max(200),
});

export const BucketParams = z.object({ bucket_identifier: z.string().min(1).max(200) });

export const GetUploadQuery = z.object({
  return_presigned_urls: z.enum(['true', 'false', '1', '0']).optional(),
});

export const DeleteUploadQuery = z.object({
  delete_s3_object: z
    .enum(['true', 'false', '1', '0'])
    .transform((v) => v === 'true' || v === '1')
    .default(true),
});

export const ContentParams = z.object({ upload_id: z.string().min(1).max(200) });
export const ContentQuery = z.object({ token: z.string().max(200).optional() });

/** What the upload URL answers once the bytes are stored. */
export const ContentResponse = z.object({
  upload_id: z.string(),
  status: TaskStatus,
  size_bytes: z.number().int(),
  sha256: z.string(),
  etag: z.string(),
  detected_mime_type: z.string().nullable(),
});
