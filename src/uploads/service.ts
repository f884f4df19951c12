import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BlobTooLargeError } from '../blobs/blob-store.js';
import { type BlobType, blobTypeAccepts, blobTypeForMime, sniffMime } from '../blobs/sniff-mime.js';
import { blobProperties, uniqueKeyValue, validateMetadata } from '../buckets/bucket-schema.js';
import { type BucketRow, bucketBlobPrefix } from '../buckets/service.js';
import type { Queryable } from '../db/db.js';
import { ApiError, badRequest, notFound, show, type ValidationIssue, validationFailed } from '../errors/registry.js';
import type { AppDeps } from '../http/app.js';
import { compileFilters, compileSort, type FilterFields, SqlParams } from '../http/filters.js';
import { newId, randomBase36 } from '../ids/new-id.js';
import { createObjectsIndexed } from '../objects/service.js';
import { createTask } from '../tasks/service.js';
import type {
  BatchConfirmItem,
  ConfirmUploadResponse,
  CreateUploadRequest,
  ListUploadsRequest,
  UploadListStats,
  UploadResponse,
} from './schema.js';

/** The status an upload shows: an unfinished upload past its expiry is FAILED, whatever the row says. */
export const EFFECTIVE_STATUS = `CASE WHEN u.status IN ('PENDING', 'IN_PROGRESS') AND u.expires_at <= now() THEN 'FAILED' ELSE u.status END`;

/** The received bytes of an upload, as an object blob refers to them. */
export interface UploadedBlob {
  /** Key of the bytes in the BlobStore (`<org>/<ns>/<bucket>/uploads/<upload_id>`). */
  storageKey: string;
  sizeBytes: number;
  /** Hex SHA-256 of the bytes, measured while they were received. */
  sha256: string;
  /** The MIME type sniffed from the bytes; `undefined` when they match no known format. */
  mimeType: string | undefined;
  filename: string;
}

/**
 * The bytes of an upload, for an object blob that names `upload_id`. The upload's row is locked
 * (`FOR SHARE`) until the caller's transaction ends, so it cannot be canceled, nor its bytes replaced by
 * a new PUT, while an object is being made from it.
 *
 * Usable: a COMPLETED upload (confirmed), one being confirmed right now (PROCESSING: confirm creates the
 * object through this), and one whose bytes were received (IN_PROGRESS) and has not expired.
 * 404 when the upload does not exist in that bucket of that organization; 400 naming the upload and its
 * status when its bytes were never received, it was canceled or skipped, or it expired unconfirmed.
 *
 * The bytes stay at `storageKey`, owned by the upload, and nothing here changes the upload.
 */
export async function takeUploadedBlob(
  q: Queryable,
  args: { organizationId: string; bucketId: string; uploadId: string },
): Promise<UploadedBlob> {
  const rows = await q.query<{
    id: string;
    status: string;
    effective_status: string;
    expires_at: Date;
    storage_key: string | null;
    received_size_bytes: number | null;
    received_sha256: string | null;
    detected_mime_type: string | null;
    filename: string;
  }>(
    `SELECT u.id, u.status, ${EFFECTIVE_STATUS} AS effective_status, u.expires_at, u.storage_key,
            u.received_size_bytes, u.received_sha256, u.detected_mime_type, u.filename
       FROM uploads u
      WHERE u.id = $1 AND u.organization_id = $2 AND u.bucket_id = $3
      FOR SHARE`,
    [args.uploadId, args.organizationId, args.bucketId],
  );
  const row = rows[0];
  if (!row) throw notFound('upload', args.uploadId);
  const id = show(row.id);
  const details = { upload_id: row.id, status: row.effective_status };
  switch (row.status) {
    case 'CANCELED':
      throw badRequest(`upload ${id} was canceled (status CANCELED); create a new upload`, details);
    case 'SKIPPED':
      throw badRequest(`upload ${id} was skipped (status SKIPPED: its object already exists) and holds no bytes`, details);
    case 'FAILED':
      throw badRequest(`upload ${id} failed (status FAILED); create a new upload`, details);
  }
  if (row.effective_status === 'FAILED') {
    throw badRequest(
      `upload ${id} expired at ${row.expires_at.toISOString()} before it was confirmed (status FAILED); create a new upload`,
      details,
    );
  }
  if (row.storage_key === null || row.received_size_bytes === null || row.received_sha256 === null) {
    throw badRequest(
      `upload ${id} has not received its bytes (status ${row.effective_status}): PUT the file to its presigned_url first`,
      details,
    );
  }
  return {
    storageKey: row.storage_key,
    sizeBytes: Number(row.received_size_bytes),
    sha256: row.received_sha256,
    mimeType: row.detected_mime_type ?? undefined,
    filename: row.filename,
  };
}

/** The request scope of a namespaced upload route. */
export interface UploadScope {
  organizationId: string;
  namespaceId: string;
}

/** One item of a batch: its answer, or the error that refused it. */
export type ItemResult<T> = { ok: true; value: T } | { ok: false; error: ApiError };

interface UploadRow {
  id: string;
  organization_id: string;
  namespace_id: string;
  bucket_id: string;
  filename: string;
  content_type: string;
  file_size_bytes: number | null;
  token_hash: string;
  expires_at: Date;
  status: string;
  effective_status: string;
  metadata: Record<string, unknown>;
  create_object_on_confirm: boolean;
  object_metadata: Record<string, unknown> | null;
  blob_property: string | null;
  blob_type: string | null;
  file_hash: string | null;
  skip_duplicates: boolean;
  duplicate_of_upload_id: string | null;
  storage_key: string | null;
  received_size_bytes: number | null;
  received_sha256: string | null;
  detected_mime_type: string | null;
  etag: string | null;
  object_id: string | null;
  error: string | null;
  created_at: Date;
  received_at: Date | null;
  claimed_at: Date | null;
  verified_at: Date | null;
  completed_at: Date | null;
}

const UPLOAD_COLUMNS = `u.*, ${EFFECTIVE_STATUS} AS effective_status`;

/** Where an upload's bytes live in the blob store, beside the bucket's object blobs. */
function uploadKey(row: Pick<UploadRow, 'organization_id' | 'namespace_id' | 'bucket_id' | 'id'>): string {
  return `${bucketBlobPrefix({ organization_id: row.organization_id, namespace_id: row.namespace_id, id: row.bucket_id })}/uploads/${row.id}`;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);
const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');
/** The ETag the upload URL answers: the SHA-256 of the bytes, quoted as HTTP entity tags are. */
const etagOf = (sha256: string): string => `"${sha256}"`;

function toUploadResponse(
  row: UploadRow,
  extra: { presignedUrl?: string; duplicateOf?: string; message?: string; taskId?: string } = {},
): UploadResponse {
  const skipped = row.status === 'SKIPPED';
  const expired = row.effective_status === 'FAILED' && row.status !== 'FAILED';
  return {
    upload_id: row.id,
    bucket_id: row.bucket_id,
    filename: row.filename,
    content_type: row.content_type,
    file_size_bytes: row.received_size_bytes ?? row.file_size_bytes,
    presigned_url: extra.presignedUrl ?? null,
    presigned_url_expiration: Math.round((row.expires_at.getTime() - row.created_at.getTime()) / 1000),
    s3_key: row.storage_key ?? uploadKey(row),
    status: row.effective_status as UploadResponse['status'],
    metadata: row.metadata,
    create_object_on_confirm: row.create_object_on_confirm,
    object_metadata: row.object_metadata,
    blob_property: row.blob_property,
    blob_type: row.blob_type,
    file_hash: row.file_hash,
    skip_duplicates: row.skip_duplicates,
    is_duplicate: (extra.duplicateOf ?? row.duplicate_of_upload_id) !== null,
    duplicate_of_upload_id: extra.duplicateOf ?? row.duplicate_of_upload_id,
    skipped_unique_key: skipped,
    existing_object_id: skipped ? row.object_id : null,
    message:
      extra.message ??
      (expired ? `upload URL expired at ${row.expires_at.toISOString()} before the upload was confirmed` : row.error),
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at.toISOString(),
    completed_at: iso(row.completed_at),
    verified_at: iso(row.verified_at),
    etag: row.etag,
    object_id: skipped ? null : row.object_id,
    task_id: extra.taskId ?? null,
  };
}

function toConfirmResponse(row: UploadRow, message: string | null, taskId: string | null = null): ConfirmUploadResponse {
  return {
    upload_id: row.id,
    status: row.effective_status as ConfirmUploadResponse['status'],
    etag: row.etag,
    file_size_bytes: row.received_size_bytes,
    file_hash: row.file_hash ?? row.received_sha256,
    verified_at: iso(row.verified_at),
    completed_at: iso(row.completed_at),
    object_id: row.object_id,
    task_id: taskId,
    message,
  };
}

/**
 * Mixpeek's default `blob_property`: the file name without its extension, made into a schema field name
 * (`product video.mp4` → `product_video`, `2024.jpg` → `_2024`).
 */
export function propertyFromFilename(filename: string): string {
  const dot = filename.lastIndexOf('.');
  const stem = dot > 0 ? filename.slice(0, dot) : filename;
  let name = stem.replace(/[^A-Za-z0-9_]+/g, '_').slice(0, 127);
  if (name === '' || name === '_') name = 'file';
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

const mediaType = (contentType: string): string => contentType.split(';')[0]!.trim().toLowerCase();

/** What one new upload will be, decided before anything is written. */
interface UploadPlan {
  index: number;
  item: CreateUploadRequest;
  id: string;
  token: string;
  property: string;
  type: BlobType | null;
  status: 'PENDING' | 'SKIPPED';
  /** The canonical unique-key value of `object_metadata`, when the bucket has a unique key. */
  uniqueKey: string | null;
  objectId: string | null;
  message: string | null;
}

/**
 * Checks one create request against the limits and the bucket schema (Mixpeek validates everything before
 * it hands out a URL, so that a client learns of a mistake before sending gigabytes).
 */
function planUpload(
  deps: AppDeps,
  bucket: BucketRow,
  item: CreateUploadRequest,
  index: number,
  location: (string | number)[],
): UploadPlan {
  const limit = deps.limits.uploadMaxBytes;
  if (item.file_size_bytes != null && item.file_size_bytes > limit) {
    throw new ApiError(
      'payload_too_large',
      `file_size_bytes ${item.file_size_bytes} is larger than the upload limit of ${limit} bytes`,
      { file_size_bytes: item.file_size_bytes, limit_bytes: limit },
    );
  }
  const derived = item.blob_property == null;
  const property = item.blob_property ?? propertyFromFilename(item.filename);
  let type: BlobType | null = item.blob_type ?? blobTypeForMime(item.content_type) ?? null;
  let uniqueKey: string | null = null;
  if (item.create_object_on_confirm) {
    const issues: ValidationIssue[] = [];
    const props = blobProperties(bucket.bucket_schema);
    const def = props.get(property);
    const known = [...props].map(([name, p]) => `${name} (${p.type})`).join(', ') || 'none';
    if (!def) {
      issues.push({
        type: 'unknown_blob_property',
        location: [...location, 'blob_property'],
        message: `blob_property ${show(property)}${derived ? ` (derived from filename ${show(item.filename)})` : ''} is not a blob property of bucket ${show(bucket.name)}; its blob properties: ${known}`,
      });
    } else if (item.blob_type != null && item.blob_type !== def.type) {
      issues.push({
        type: 'blob_type_mismatch',
        location: [...location, 'blob_type'],
        message: `blob_type ${show(item.blob_type)} does not match property ${show(property)}, which has type ${def.type}`,
      });
    } else {
      // Generic declared types (application/octet-stream) are let through: the bytes are sniffed on arrival.
      // A declared type that names another kind of file is refused now.
      const declared = mediaType(item.content_type);
      if (blobTypeForMime(declared) !== undefined && !blobTypeAccepts(def.type, declared)) {
        issues.push({
          type: 'content_type_mismatch',
          location: [...location, 'content_type'],
          message: `content_type ${show(item.content_type)} does not fit property ${show(property)} of type ${def.type}`,
        });
      }
      type = def.type;
    }
    const checked = validateMetadata(bucket.bucket_schema, item.object_metadata ?? {}, [...location, 'object_metadata']);
    issues.push(...checked.issues);
    if (issues.length === 0 && bucket.unique_key && bucket.unique_key.fields.length > 0) {
      const key = uniqueKeyValue(bucket.unique_key.fields, checked.value);
      // Without its key values the object cannot be created; say so now rather than at confirm.
      issues.push(...key.issues.map((i) => ({ ...i, location: [...location, 'object_metadata', ...i.location.slice(2)] })));
      uniqueKey = key.value;
    }
    if (issues.length > 0) throw validationFailed(issues);
  }
  return {
    index,
    item,
    id: newId('upl'),
    token: randomBytes(32).toString('base64url'),
    property,
    type,
    status: 'PENDING',
    uniqueKey,
    objectId: null,
    message: null,
  };
}

const asApiError = (err: unknown): ApiError => {
  if (err instanceof ApiError) return err;
  throw err;
};

/**
 * Creates uploads in one bucket: one item for `POST …/uploads`, up to 100 for `…/uploads/batch`. Items
 * are checked one by one (a refused item is reported in its slot); everything else is set-based: one
 * query for duplicates, one for unique keys, one multi-row INSERT.
 */
export async function createUploads(
  deps: AppDeps,
  scope: UploadScope,
  bucket: BucketRow,
  items: CreateUploadRequest[],
  baseUrl: string,
  locationOf: (index: number) => (string | number)[],
): Promise<ItemResult<UploadResponse>[]> {
  const results: ItemResult<UploadResponse>[] = new Array(items.length);
  let plans: UploadPlan[] = [];
  items.forEach((item, i) => {
    try {
      plans.push(planUpload(deps, bucket, item, i, locationOf(i)));
    } catch (err) {
      results[i] = { ok: false, error: asApiError(err) };
    }
  });

  // Mixpeek: a file whose hash matches a COMPLETED upload of the bucket is not uploaded again; the answer
  // is the existing upload, flagged as a duplicate, without a URL.
  const hashes = plans.filter((p) => p.item.skip_duplicates && p.item.file_hash).map((p) => p.item.file_hash!);
  if (hashes.length > 0) {
    const originals = await deps.db.query<UploadRow>(
      `SELECT DISTINCT ON (u.file_hash) ${UPLOAD_COLUMNS} FROM uploads u
        WHERE u.bucket_id = $1 AND u.status = 'COMPLETED' AND u.file_hash = ANY($2::text[])
        ORDER BY u.file_hash, u.completed_at, u.id`,
      [bucket.id, hashes],
    );
    const byHash = new Map(originals.map((r) => [r.file_hash!, r]));
    plans = plans.filter((p) => {
      const original = p.item.skip_duplicates && p.item.file_hash ? byHash.get(p.item.file_hash) : undefined;
      if (!original) return true;
      results[p.index] = {
        ok: true,
        value: toUploadResponse(original, {
          duplicateOf: original.id,
          message: `a file with SHA-256 ${p.item.file_hash} was already uploaded to this bucket as ${original.id}; no upload needed`,
        }),
      };
      return false;
    });
  }

  // Mixpeek: when the object's unique key already exists (and the bucket inserts rather than updates),
  // the upload is recorded as SKIPPED with the existing object, and no bytes are asked for.
  const policy = bucket.unique_key?.default_policy ?? 'insert';
  const keys = plans.filter((p) => p.uniqueKey !== null).map((p) => p.uniqueKey!);
  if (keys.length > 0 && policy === 'insert') {
    const existing = await deps.db.query<{ id: string; unique_key_value: string }>(
      'SELECT id, unique_key_value FROM objects WHERE bucket_id = $1 AND unique_key_value = ANY($2::text[])',
      [bucket.id, keys],
    );
    const byKey = new Map(existing.map((r) => [r.unique_key_value, r.id]));
    for (const p of plans) {
      const objectId = p.uniqueKey === null ? undefined : byKey.get(p.uniqueKey);
      if (!objectId) continue;
      p.status = 'SKIPPED';
      p.objectId = objectId;
      p.message = `object ${objectId} already has this unique key ${p.uniqueKey}; upload skipped`;
    }
  }

  if (plans.length > 0) {
    const records = plans.map((p) => ({
      id: p.id,
      filename: p.item.filename,
      content_type: p.item.content_type,
      file_size_bytes: p.item.file_size_bytes ?? null,
      token_hash: sha256Hex(p.token),
      expiration: p.item.presigned_url_expiration,
      status: p.status,
      metadata: p.item.metadata,
      create_object_on_confirm: p.item.create_object_on_confirm,
      object_metadata: p.item.object_metadata ?? null,
      blob_property: p.property,
      blob_type: p.type,
      file_hash: p.item.file_hash ?? null,
      skip_duplicates: p.item.skip_duplicates,
      object_id: p.objectId,
      error: p.message,
    }));
    const rows = await deps.db.query<UploadRow>(
      `INSERT INTO uploads AS u (id, organization_id, namespace_id, bucket_id, filename, content_type, file_size_bytes,
                                 token_hash, expires_at, status, metadata, create_object_on_confirm, object_metadata,
                                 blob_property, blob_type, file_hash, skip_duplicates, object_id, error)
       SELECT r.id, $1, $2, $3, r.filename, r.content_type, r.file_size_bytes, r.token_hash,
              now() + make_interval(secs => r.expiration), r.status, coalesce(r.metadata, '{}'::jsonb),
              r.create_object_on_confirm, r.object_metadata, r.blob_property, r.blob_type, r.file_hash,
              r.skip_duplicates, r.object_id, r.error
         FROM jsonb_to_recordset($4::jsonb) AS r(id text, filename text, content_type text, file_size_bytes bigint,
              token_hash text, expiration integer, status text, metadata jsonb, create_object_on_confirm boolean,
              object_metadata jsonb, blob_property text, blob_type text, file_hash text, skip_duplicates boolean,
              object_id text, error text)
       RETURNING ${UPLOAD_COLUMNS}`,
      [scope.organizationId, scope.namespaceId, bucket.id, JSON.stringify(records)],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const base = baseUrl.replace(/\/+$/, '');
    for (const p of plans) {
      const row = byId.get(p.id)!;
      const presignedUrl =
        p.status === 'PENDING' ? `${base}/v1/uploads/${encodeURIComponent(p.id)}/content?token=${p.token}` : undefined;
      results[p.index] = { ok: true, value: toUploadResponse(row, { presignedUrl, message: p.message ?? undefined }) };
    }
  }
  return results;
}

/** Reads one upload of a bucket; 404 when it is not there (or belongs to another organization). */
export async function getUpload(q: Queryable, scope: UploadScope, bucket: BucketRow, uploadId: string): Promise<UploadResponse> {
  const rows = await q.query<UploadRow>(
    `SELECT ${UPLOAD_COLUMNS} FROM uploads u WHERE u.id = $1 AND u.organization_id = $2 AND u.bucket_id = $3`,
    [uploadId, scope.organizationId, bucket.id],
  );
  if (!rows[0]) throw notFound('upload', uploadId);
  return toUploadResponse(rows[0]);
}

/** Whether an object blob refers to these bytes in place (an object made from an unconfirmed upload). */
async function bytesInUse(q: Queryable, row: UploadRow): Promise<string | undefined> {
  if (row.storage_key === null || row.received_sha256 === null) return undefined;
  const rows = await q.query<{ object_id: string }>(
    'SELECT object_id FROM blobs WHERE bucket_id = $1 AND sha256 = $2 AND storage_key = $3 LIMIT 1',
    [row.bucket_id, row.received_sha256, row.storage_key],
  );
  return rows[0]?.object_id;
}

/**
 * Cancels an upload (`DELETE …/uploads/{id}`). COMPLETED uploads cannot be canceled (their object owns the
 * file now), nor one being confirmed at this moment. Canceling twice is not an error. With
 * `deleteBytes`, received bytes are deleted once the cancellation is committed.
 */
export async function cancelUpload(
  deps: AppDeps,
  scope: UploadScope,
  bucket: BucketRow,
  uploadId: string,
  deleteBytes: boolean,
): Promise<void> {
  const key = await deps.db.transaction(async (tx) => {
    const rows = await tx.query<UploadRow>(
      `SELECT ${UPLOAD_COLUMNS} FROM uploads u WHERE u.id = $1 AND u.organization_id = $2 AND u.bucket_id = $3 FOR UPDATE`,
      [uploadId, scope.organizationId, bucket.id],
    );
    const row = rows[0];
    if (!row) throw notFound('upload', uploadId);
    const details = { upload_id: row.id, status: row.effective_status };
    if (row.status === 'COMPLETED') {
      throw badRequest(
        `upload ${show(row.id)} is COMPLETED and cannot be canceled${row.object_id ? `; delete its object ${row.object_id} instead` : ''}`,
        details,
      );
    }
    if (row.status === 'PROCESSING' && !claimAbandoned(row)) {
      throw badRequest(`upload ${show(row.id)} is being confirmed (status PROCESSING) and cannot be canceled now`, details);
    }
    if (deleteBytes) {
      const objectId = await bytesInUse(tx, row);
      if (objectId) {
        throw badRequest(
          `the bytes of upload ${show(row.id)} are used by object ${objectId}; cancel with delete_s3_object=false or delete the object first`,
          { ...details, object_id: objectId },
        );
      }
    }
    await tx.query(
      `UPDATE uploads SET status = 'CANCELED', error = 'canceled by the client',
              storage_key = CASE WHEN $2 THEN NULL ELSE storage_key END
        WHERE id = $1`,
      [row.id, deleteBytes],
    );
    return deleteBytes ? row.storage_key : null;
  });
  // After the commit: a failed delete leaves an unreferenced file under the bucket's prefix (removed with
  // the bucket), never a row pointing at nothing.
  if (key) await deps.blobs.delete([key]);
}

const LIST_FIELDS: FilterFields = {
  upload_id: { sql: 'u.id', kind: 'text' },
  bucket_id: { sql: 'u.bucket_id', kind: 'text' },
  status: { sql: `(${EFFECTIVE_STATUS})`, kind: 'text' },
  filename: { sql: 'u.filename', kind: 'text' },
  content_type: { sql: 'u.content_type', kind: 'text' },
  file_size_bytes: { sql: 'coalesce(u.received_size_bytes, u.file_size_bytes)', kind: 'number' },
  file_hash: { sql: 'u.file_hash', kind: 'text' },
  blob_property: { sql: 'u.blob_property', kind: 'text' },
  blob_type: { sql: 'u.blob_type', kind: 'text' },
  object_id: { sql: 'u.object_id', kind: 'text' },
  create_object_on_confirm: { sql: 'u.create_object_on_confirm', kind: 'boolean' },
  duplicate_of_upload_id: { sql: 'u.duplicate_of_upload_id', kind: 'text' },
  created_at: { sql: 'u.created_at', kind: 'timestamp' },
  expires_at: { sql: 'u.expires_at', kind: 'timestamp' },
  completed_at: { sql: 'u.completed_at', kind: 'timestamp' },
  verified_at: { sql: 'u.verified_at', kind: 'timestamp' },
  metadata: { sql: 'u.metadata', kind: 'json' },
  object_metadata: { sql: 'u.object_metadata', kind: 'json' },
};

const regexError = (err: { code?: string; message?: string }): never => {
  if (err.code === '2201B') throw badRequest(`invalid regex in filters: ${err.message}`);
  throw err;
};

/**
 * Lists a bucket's uploads with Mixpeek's filters, search and sort. Two statements: the page, and the
 * statistics over every match (grouped by status), both filtered alike.
 */
export async function listUploads(
  q: Queryable,
  scope: UploadScope,
  bucket: BucketRow,
  body: ListUploadsRequest,
  page: { offset: number; limit: number },
): Promise<{ rows: UploadResponse[]; total: number; stats: UploadListStats }> {
  const p = new SqlParams([scope.organizationId, bucket.id]);
  const where = ['u.organization_id = $1', 'u.bucket_id = $2', compileFilters(body.filters, LIST_FIELDS, p)];
  if (body.search) {
    const term = p.add(`%${body.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`(u.filename ILIKE ${term} OR EXISTS (SELECT 1 FROM jsonb_each_text(u.metadata) m WHERE m.value ILIKE ${term}))`);
  }
  const whereSql = where.join(' AND ');
  const order = compileSort(body.sort, LIST_FIELDS, 'u.created_at DESC', 'u.id ASC');
  const filterParams = [...p.values];
  const rows = await q
    .query<UploadRow>(
      `SELECT ${UPLOAD_COLUMNS} FROM uploads u WHERE ${whereSql} ORDER BY ${order} LIMIT ${p.add(page.limit)} OFFSET ${p.add(page.offset)}`,
      p.values,
    )
    .catch(regexError);
  const groups = await q
    .query<{ status: string; n: number; sized: number; bytes: number }>(
      `SELECT ${EFFECTIVE_STATUS} AS status, count(*)::int AS n,
              count(coalesce(u.received_size_bytes, u.file_size_bytes))::int AS sized,
              coalesce(sum(coalesce(u.received_size_bytes, u.file_size_bytes)), 0)::float8 AS bytes
         FROM uploads u WHERE ${whereSql} GROUP BY 1`,
      filterParams,
    )
    .catch(regexError);
  const byStatus: Record<string, number> = {};
  let total = 0;
  let sized = 0;
  let bytes = 0;
  for (const g of groups) {
    byStatus[g.status] = g.n;
    total += g.n;
    sized += g.sized;
    bytes += g.bytes;
  }
  return {
    rows: rows.map((r) => toUploadResponse(r)),
    total,
    stats: {
      total_uploads: total,
      total_size_bytes: bytes,
      uploads_by_status: byStatus,
      avg_file_size_bytes: sized > 0 ? bytes / sized : 0,
      unique_buckets: total > 0 ? 1 : 0,
    },
  };
}

/** What a PUT to an upload URL stored. */
export interface ReceivedContent {
  upload_id: string;
  status: 'IN_PROGRESS';
  size_bytes: number;
  sha256: string;
  etag: string;
  detected_mime_type: string | null;
}

/** Declared types that say nothing about the bytes: clients send them when they know no better. */
const GENERIC_TYPES = new Set(['application/octet-stream', 'binary/octet-stream']);

const tokenMatches = (token: string, tokenHash: string): boolean => {
  const expected = Buffer.from(tokenHash, 'hex');
  const given = createHash('sha256').update(token).digest();
  return expected.length === given.length && timingSafeEqual(expected, given);
};

/**
 * Receives the bytes PUT to an upload URL. The token in the URL is the only credential (like an S3
 * presigned URL), compared in constant time through its hash. The bytes are streamed to the blob store,
 * never held in memory, under a temporary key; once size, hash and kind check out, a short transaction
 * re-reads the upload under a row lock and moves them to the upload's key, so two PUTs racing each
 * other, or a PUT racing a cancel or confirm, always leave the row describing the file that is there.
 * Sending again before confirming replaces the bytes, as re-uploading to a presigned URL would.
 */
export async function receiveUploadContent(
  deps: AppDeps,
  args: {
    uploadId: string;
    token: string | undefined;
    source: AsyncIterable<Uint8Array>;
    contentLength: number | undefined;
    contentType: string | undefined;
  },
): Promise<ReceivedContent> {
  const rows = await deps.db.query<UploadRow>(`SELECT ${UPLOAD_COLUMNS} FROM uploads u WHERE u.id = $1`, [args.uploadId]);
  const row = rows[0];
  if (!row) throw notFound('upload', args.uploadId);
  const id = show(row.id);
  if (!args.token) {
    throw new ApiError('unauthorized', `upload URL for ${id} has no token: PUT to the presigned_url exactly as it was returned`);
  }
  if (!tokenMatches(args.token, row.token_hash)) {
    throw new ApiError('forbidden', `the token in this URL is not the token of upload ${id}`);
  }
  const details = { upload_id: row.id, status: row.effective_status };
  if (row.effective_status === 'FAILED' && row.status !== 'FAILED') {
    throw new ApiError('forbidden', `upload URL for ${id} expired at ${row.expires_at.toISOString()}; create a new upload`, details);
  }
  if (row.status !== 'PENDING' && row.status !== 'IN_PROGRESS') {
    throw badRequest(`upload ${id} is ${row.status}; its bytes can no longer be sent`, details);
  }
  if (args.contentType) {
    const sent = mediaType(args.contentType);
    if (!GENERIC_TYPES.has(sent) && sent !== mediaType(row.content_type)) {
      throw badRequest(`Content-Type ${show(args.contentType)} differs from the upload's content_type ${show(row.content_type)}`, {
        ...details,
        content_type: row.content_type,
      });
    }
  }

  const limit = deps.limits.uploadMaxBytes;
  const declared = row.file_size_bytes === null ? null : Number(row.file_size_bytes);
  const tooLarge = (size: number | string) =>
    new ApiError('payload_too_large', `upload ${id} is larger (${size} bytes) than the upload limit of ${limit} bytes`, {
      ...details,
      limit_bytes: limit,
    });
  const sizeMismatch = (received: number | string) =>
    validationFailed([
      {
        type: 'size_mismatch',
        location: ['body'],
        message: `received ${received} bytes for upload ${id}, but its file_size_bytes is ${declared}`,
      },
    ]);
  if (args.contentLength !== undefined) {
    if (args.contentLength > limit) throw tooLarge(args.contentLength);
    if (declared !== null && args.contentLength !== declared) throw sizeMismatch(args.contentLength);
  }

  const partKey = `${uploadKey(row)}.part-${randomBase36(10)}`;
  let stored: Awaited<ReturnType<AppDeps['blobs']['put']>>;
  try {
    stored = await deps.blobs.put(partKey, args.source, { maxBytes: Math.min(limit, declared ?? limit) });
  } catch (err) {
    // The store removed its partial file already.
    if (err instanceof BlobTooLargeError) {
      throw declared !== null && declared < limit ? sizeMismatch(`more than ${declared}`) : tooLarge(`more than ${limit}`);
    }
    throw err;
  }
  const finalKey = uploadKey(row);
  let moved = false;
  try {
    if (stored.sizeBytes === 0) throw badRequest(`no bytes were received for upload ${id}`, details);
    if (declared !== null && stored.sizeBytes !== declared) throw sizeMismatch(stored.sizeBytes);
    if (row.file_hash !== null && stored.sha256 !== row.file_hash) {
      throw validationFailed([
        {
          type: 'hash_mismatch',
          location: ['body'],
          message: `the received bytes of upload ${id} have SHA-256 ${stored.sha256}, but its file_hash is ${row.file_hash}`,
        },
      ]);
    }
    const mime = sniffMime(stored.head);
    const type = row.blob_type as BlobType | null;
    if (row.create_object_on_confirm && type !== null && !blobTypeAccepts(type, mime)) {
      throw validationFailed([
        {
          type: 'blob_type_mismatch',
          location: ['body'],
          message: `the bytes of upload ${id} look like ${mime ?? 'no known format'}, which property ${show(row.blob_property)} of type ${type} cannot hold`,
        },
      ]);
    }
    const etag = etagOf(stored.sha256);
    await deps.db.transaction(async (tx) => {
      const current = await tx.query<UploadRow>(`SELECT ${UPLOAD_COLUMNS} FROM uploads u WHERE u.id = $1 FOR UPDATE`, [row.id]);
      const now = current[0];
      if (!now) throw notFound('upload', row.id);
      if (now.status !== 'PENDING' && now.status !== 'IN_PROGRESS') {
        throw badRequest(`upload ${id} became ${now.status} while its bytes were being received; they were discarded`, {
          upload_id: row.id,
          status: now.effective_status,
        });
      }
      const objectId = await bytesInUse(tx, now);
      if (objectId) {
        throw badRequest(`the bytes of upload ${id} are already used by object ${objectId} and cannot be replaced`, {
          upload_id: row.id,
          object_id: objectId,
        });
      }
      await tx.query(
        `UPDATE uploads SET status = 'IN_PROGRESS', storage_key = $2, received_size_bytes = $3, received_sha256 = $4,
                detected_mime_type = $5, etag = $6, received_at = now(), error = NULL
          WHERE id = $1`,
        [row.id, finalKey, stored.sizeBytes, stored.sha256, mime ?? null, etag],
      );
      // Inside the lock, so the file at finalKey and the row describing it change together.
      await deps.blobs.move(partKey, finalKey);
      moved = true;
    });
    return {
      upload_id: row.id,
      status: 'IN_PROGRESS',
      size_bytes: stored.sizeBytes,
      sha256: stored.sha256,
      etag,
      detected_mime_type: mime ?? null,
    };
  } catch (err) {
    await deps.blobs.delete([partKey]).catch(() => {});
    if (moved) {
      // The commit failed after the move: the row no longer matches the file, so neither may stay.
      await deps.blobs.delete([finalKey]).catch(() => {});
      await deps.db
        .query(
          `UPDATE uploads SET status = 'PENDING', storage_key = NULL, received_size_bytes = NULL, received_sha256 = NULL,
                  detected_mime_type = NULL, etag = NULL, received_at = NULL
            WHERE id = $1 AND status IN ('PENDING', 'IN_PROGRESS')`,
          [row.id],
        )
        .catch(() => {});
    }
    throw err;
  }
}

const unquoteEtag = (etag: string): string =>
  etag
    .trim()
    .replace(/^W\//i, '')
    .replace(/^"(.*)"$/, '$1')
    .toLowerCase();

/** Mixpeek's optional integrity checks of a confirmation; issues name both values. */
function confirmChecks(row: UploadRow, item: BatchConfirmItem, location: (string | number)[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (item.etag != null && row.received_sha256 !== null && unquoteEtag(item.etag) !== row.received_sha256) {
    issues.push({
      type: 'etag_mismatch',
      location: [...location, 'etag'],
      message: `etag ${show(item.etag)} does not match the ETag ${row.etag} of the bytes upload ${row.id} received`,
    });
  }
  if (item.file_size_bytes != null && row.received_size_bytes !== null && item.file_size_bytes !== Number(row.received_size_bytes)) {
    issues.push({
      type: 'size_mismatch',
      location: [...location, 'file_size_bytes'],
      message: `file_size_bytes ${item.file_size_bytes} does not match the ${row.received_size_bytes} bytes upload ${row.id} received`,
    });
  }
  return issues;
}

/** Why an upload cannot be confirmed now, or `undefined` when it can. */
function notConfirmable(row: UploadRow): ApiError | undefined {
  const id = show(row.id);
  const details = { upload_id: row.id, status: row.effective_status };
  switch (row.status) {
    case 'CANCELED':
      return badRequest(`upload ${id} was canceled (status CANCELED) and cannot be confirmed`, details);
    case 'SKIPPED':
      return badRequest(`upload ${id} was skipped (its object ${row.object_id} already exists) and holds nothing to confirm`, {
        ...details,
        existing_object_id: row.object_id,
      });
    case 'FAILED':
      return badRequest(`upload ${id} failed (status FAILED): ${row.error ?? 'no reason recorded'}`, details);
    case 'PROCESSING':
      if (!claimAbandoned(row)) {
        return badRequest(`upload ${id} is being confirmed by another request (status PROCESSING); try again shortly`, details);
      }
  }
  if (row.effective_status === 'FAILED') {
    return badRequest(`upload ${id} expired at ${row.expires_at.toISOString()} before it was confirmed (status FAILED)`, details);
  }
  if (row.received_at === null) {
    return badRequest(`upload ${id} has not received its bytes yet (status ${row.effective_status}): PUT the file to its presigned_url first`, details);
  }
  return undefined;
}

/**
 * A confirm that has held its claim this long died with its process (a live one settles in well under a
 * second, object creation included): the upload may be confirmed again.
 */
export const CLAIM_TIMEOUT_MS = 5 * 60_000;

function claimAbandoned(row: UploadRow): boolean {
  return row.status === 'PROCESSING' && (row.claimed_at === null || Date.now() - row.claimed_at.getTime() > CLAIM_TIMEOUT_MS);
}

interface Claimed {
  index: number;
  row: UploadRow;
  /** An object the abandoned confirm had already made from these bytes: settle with it, make no other. */
  existingObjectId?: string;
  /** A COMPLETED upload of the same bytes whose object still exists: confirm reuses that object. */
  original: { id: string; object_id: string } | undefined;
}

/**
 * Confirms uploads of one bucket: one for `…/confirm`, up to 100 for `…/uploads/confirm/batch`.
 *
 * 1. One transaction locks the rows, checks each (status, expiry, the optional etag and size), looks up
 *    duplicates by hash in one query, and claims the confirmable ones as PROCESSING. A concurrent confirm
 *    of the same upload then answers 400 instead of creating a second object.
 * 2. Objects are created one per upload through the object service, outside that transaction (it runs its
 *    own, and reads the bytes through {@link takeUploadedBlob}).
 * 3. One statement settles every claim: COMPLETED with its object, or back to IN_PROGRESS with the error,
 *    so a failed confirm can be retried or the upload canceled.
 * A COMPLETED upload confirms again idempotently, with the same answer.
 */
export async function confirmUploads(
  deps: AppDeps,
  scope: UploadScope,
  bucket: BucketRow,
  items: (BatchConfirmItem & { index: number })[],
  locationOf: (index: number) => (string | number)[],
  options: { rethrowUnexpected?: boolean } = {},
): Promise<Map<number, ItemResult<ConfirmUploadResponse>>> {
  const results = new Map<number, ItemResult<ConfirmUploadResponse>>();
  const seen = new Set<string>();
  const unique: typeof items = [];
  for (const item of items) {
    if (seen.has(item.upload_id)) {
      results.set(item.index, { ok: false, error: badRequest(`upload ${show(item.upload_id)} is listed more than once`) });
    } else {
      seen.add(item.upload_id);
      unique.push(item);
    }
  }
  if (unique.length === 0) return results;

  const claimed = await deps.db.transaction(async (tx) => {
    const rows = await tx.query<UploadRow>(
      `SELECT ${UPLOAD_COLUMNS} FROM uploads u
        WHERE u.organization_id = $1 AND u.bucket_id = $2 AND u.id = ANY($3::text[])
        ORDER BY u.id FOR UPDATE`,
      [scope.organizationId, bucket.id, unique.map((i) => i.upload_id)],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const claims: Claimed[] = [];
    for (const item of unique) {
      const row = byId.get(item.upload_id);
      if (!row) {
        results.set(item.index, { ok: false, error: notFound('upload', item.upload_id) });
        continue;
      }
      if (row.status === 'COMPLETED') {
        const issues = confirmChecks(row, item, locationOf(item.index));
        results.set(
          item.index,
          issues.length > 0
            ? { ok: false, error: validationFailed(issues) }
            : { ok: true, value: toConfirmResponse(row, `upload ${row.id} was already confirmed`) },
        );
        continue;
      }
      const refusal = notConfirmable(row);
      if (refusal) {
        results.set(item.index, { ok: false, error: refusal });
        continue;
      }
      const issues = confirmChecks(row, item, locationOf(item.index));
      if (issues.length > 0) {
        results.set(item.index, { ok: false, error: validationFailed(issues) });
        continue;
      }
      claims.push({ index: item.index, row, original: undefined });
    }
    if (claims.length === 0) return claims;
    // Mixpeek: a confirmed upload whose bytes match an earlier COMPLETED upload of the bucket is a
    // duplicate; when that upload's object still exists it is referenced instead of making another.
    const hashes = claims.filter((c) => c.row.skip_duplicates).map((c) => c.row.received_sha256!);
    if (hashes.length > 0) {
      const originals = await tx.query<{ id: string; object_id: string; file_hash: string }>(
        `SELECT DISTINCT ON (u.file_hash) u.id, u.object_id, u.file_hash
           FROM uploads u JOIN objects o ON o.id = u.object_id
          WHERE u.bucket_id = $1 AND u.status = 'COMPLETED' AND u.file_hash = ANY($2::text[])
          ORDER BY u.file_hash, u.completed_at, u.id`,
        [bucket.id, hashes],
      );
      const byHash = new Map(originals.map((o) => [o.file_hash, o]));
      for (const c of claims) {
        if (c.row.skip_duplicates) c.original = byHash.get(c.row.received_sha256!);
      }
    }
    // A confirm that died after creating the object but before settling left that object behind.
    const retaken = claims.filter((c) => c.row.status === 'PROCESSING' && c.row.storage_key);
    if (retaken.length > 0) {
      const made = await tx.query<{ storage_key: string; object_id: string }>(
        `SELECT DISTINCT ON (storage_key) storage_key, object_id FROM blobs
          WHERE bucket_id = $1 AND storage_key = ANY($2::text[]) ORDER BY storage_key, created_at, id`,
        [bucket.id, retaken.map((c) => c.row.storage_key)],
      );
      const byKey = new Map(made.map((m) => [m.storage_key, m.object_id]));
      for (const c of retaken) c.existingObjectId = byKey.get(c.row.storage_key!);
    }
    await tx.query(`UPDATE uploads SET status = 'PROCESSING', claimed_at = now() WHERE id = ANY($1::text[])`, [
      claims.map((c) => c.row.id),
    ]);
    return claims;
  });
  if (claimed.length === 0) return results;

  const outcomes = new Map<string, { objectId: string | null; error: ApiError | null; unexpected?: unknown }>();
  const toCreate: Claimed[] = [];
  for (const c of claimed) {
    if (!c.row.create_object_on_confirm || c.original || c.existingObjectId) {
      outcomes.set(c.row.id, { objectId: c.existingObjectId ?? c.original?.object_id ?? null, error: null });
    } else {
      toCreate.push(c);
    }
  }
  if (toCreate.length > 0) {
    // All objects of a confirm are written together (one statement per table), each reported on its own.
    try {
      const created = await createObjectsIndexed(
        deps,
        scope,
        bucket,
        toCreate.map((c) => ({
          index: c.index,
          body: {
            metadata: c.row.object_metadata ?? undefined,
            blobs: [{ property: c.row.blob_property!, type: c.row.blob_type!, upload_id: c.row.id }],
          },
        })),
        undefined,
        locationOf,
      );
      for (const c of toCreate) {
        const outcome = created.get(c.index);
        if (outcome && 'ok' in outcome) outcomes.set(c.row.id, { objectId: outcome.ok.object_id, error: null });
        else outcomes.set(c.row.id, { objectId: null, error: outcome?.error ?? badRequest(`no object was made for upload ${c.row.id}`) });
      }
    } catch (err) {
      // Every claim must be settled below, whatever went wrong, or the uploads would stay PROCESSING.
      for (const c of toCreate) {
        const error =
          err instanceof ApiError ? err : new ApiError('internal', `creating the object of upload ${c.row.id} failed`, { upload_id: c.row.id });
        outcomes.set(c.row.id, { objectId: null, error, unexpected: err instanceof ApiError ? undefined : err });
      }
    }
  }

  const ids = claimed.map((c) => c.row.id);
  const settled = await deps.db.query<UploadRow>(
    `UPDATE uploads u SET
        status = CASE WHEN x.ok THEN 'COMPLETED' ELSE 'IN_PROGRESS' END,
        completed_at = CASE WHEN x.ok THEN now() ELSE u.completed_at END,
        verified_at = CASE WHEN x.ok THEN now() ELSE u.verified_at END,
        object_id = CASE WHEN x.ok THEN x.object_id ELSE u.object_id END,
        duplicate_of_upload_id = CASE WHEN x.ok THEN x.duplicate_of ELSE u.duplicate_of_upload_id END,
        file_hash = CASE WHEN x.ok THEN u.received_sha256 ELSE u.file_hash END,
        error = x.error
       FROM unnest($1::text[], $2::boolean[], $3::text[], $4::text[], $5::text[]) AS x(id, ok, object_id, duplicate_of, error)
      WHERE u.id = x.id AND u.status = 'PROCESSING'
      RETURNING ${UPLOAD_COLUMNS}`,
    [
      ids,
      ids.map((id) => outcomes.get(id)!.error === null),
      ids.map((id) => outcomes.get(id)!.objectId),
      claimed.map((c) => c.original?.id ?? null),
      ids.map((id) => outcomes.get(id)!.error?.message ?? null),
    ],
  );
  if (settled.some((r) => r.status === 'COMPLETED')) {
    await deps.db.query('UPDATE buckets SET last_upload_at = now() WHERE id = $1', [bucket.id]);
  }
  const settledById = new Map(settled.map((r) => [r.id, r]));
  for (const c of claimed) {
    const outcome = outcomes.get(c.row.id)!;
    const row = settledById.get(c.row.id);
    // A bug, not bad input: a single confirm lets the error handler log it (and answer 500).
    if (outcome.unexpected !== undefined && options.rethrowUnexpected) throw outcome.unexpected;
    if (outcome.error) {
      results.set(c.index, { ok: false, error: outcome.error });
    } else if (!row) {
      results.set(c.index, { ok: false, error: badRequest(`upload ${show(c.row.id)} changed while it was being confirmed`) });
    } else {
      const message = c.original
        ? `duplicate of upload ${c.original.id}: its object ${c.original.object_id} is reused, no new object created`
        : row.object_id
          ? `upload confirmed; object ${row.object_id} created`
          : 'upload confirmed; no object created (create_object_on_confirm is false)';
      results.set(c.index, { ok: true, value: toConfirmResponse(row, message) });
    }
  }
  return results;
}

/** Confirms one upload; `async=true` also records a task, since Mixpeek answers async confirms with one. */
export async function confirmUpload(
  deps: AppDeps,
  scope: UploadScope,
  bucket: BucketRow,
  item: BatchConfirmItem,
  options: { async: boolean },
): Promise<ConfirmUploadResponse> {
  const result = (await confirmUploads(deps, scope, bucket, [{ ...item, index: 0 }], () => ['body'], {
    rethrowUnexpected: true,
  })).get(0)!;
  if (!result.ok) throw result.error;
  if (!options.async) return result.value;
  const task = await createTask(deps.db, {
    organizationId: scope.organizationId,
    namespaceId: scope.namespaceId,
    taskType: 'api_buckets_uploads_confirm',
    status: 'COMPLETED',
    inputs: [{ upload_id: item.upload_id }],
    outputs: [result.value],
  });
  return { ...result.value, task_id: task.task_id };
}

/**
 * Batch confirm (`…/uploads/confirm/batch`). Mixpeek answers with a task; Sluice confirms synchronously
 * (each confirm is a few statements) and records the finished task, whose `outputs` hold one result per
 * confirmation in request order: `{upload_id, success, status, object_id, …}` or `{upload_id, success:
 * false, error}`.
 */
export async function confirmUploadBatch(
  deps: AppDeps,
  scope: UploadScope,
  bucket: BucketRow,
  confirmations: Record<string, unknown>[],
  parse: (raw: Record<string, unknown>, index: number) => ItemResult<BatchConfirmItem>,
) {
  const parsed = confirmations.map((raw, index) => ({ raw, index, result: parse(raw, index) }));
  const valid = parsed.flatMap((p) => (p.result.ok ? [{ ...p.result.value, index: p.index }] : []));
  const results = await confirmUploads(deps, scope, bucket, valid, (i) => ['body', 'confirmations', i]);
  const outputs = parsed.map((p) => {
    const r = p.result.ok ? results.get(p.index)! : p.result;
    const uploadId = typeof p.raw.upload_id === 'string' ? p.raw.upload_id : null;
    return r.ok
      ? { index: p.index, success: true, ...r.value }
      : {
          index: p.index,
          upload_id: uploadId,
          success: false,
          error: { type: r.error.type, status: r.error.status, message: r.error.message, details: r.error.details },
        };
  });
  const succeeded = outputs.filter((o) => o.success).length;
  const status = succeeded === outputs.length ? 'COMPLETED' : succeeded === 0 ? 'FAILED' : 'COMPLETED_WITH_ERRORS';
  const task = await createTask(deps.db, {
    organizationId: scope.organizationId,
    namespaceId: scope.namespaceId,
    taskType: 'api_buckets_uploads_batch_confirm',
    status,
    inputs: confirmations,
    outputs,
    additionalData: { bucket_id: bucket.id, confirmations_count: outputs.length, succeeded, failed: outputs.length - succeeded },
    error: succeeded === outputs.length ? null : `${outputs.length - succeeded} of ${outputs.length} confirmations failed`,
  });
  return {
    task_id: task.task_id,
    status: task.status,
    confirmations_count: outputs.length,
    task,
    message:
      succeeded === outputs.length
        ? `all ${outputs.length} uploads confirmed`
        : `${succeeded} of ${outputs.length} uploads confirmed; see task outputs for the errors`,
  };
}
