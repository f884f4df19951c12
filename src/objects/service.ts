import { blobTypeAccepts } from '../blobs/sniff-mime.js';
import { blobProperties, uniqueKeyValue, validateMetadata } from '../buckets/bucket-schema.js';
import { type BucketRow, bucketBlobPrefix, requireBucket } from '../buckets/service.js';
import type { Queryable } from '../db/db.js';
import { ApiError, badRequest, notFound, show, type ValidationIssue, validationFailed } from '../errors/registry.js';
import type { AppDeps } from '../http/app.js';
import { newId } from '../ids/new-id.js';
import { takeUploadedBlob } from '../uploads/service.js';
import { type CreateBlobBody, deleteQuietly, isUploadKey, type PreparedBlob, parseBlob, writeBlobFiles } from './blob-input.js';
import { type BlobRow, blobsOf, type ObjectRow, toObjectResponse } from './object-rows.js';
import type { FailedObjectError, ObjectResponse } from './schema.js';

/** How an object with a unique key meets an existing one: Mixpeek's insertion policies. */
export type InsertPolicy = 'insert' | 'update' | 'upsert';

/** What creating an object takes (`CreateObjectRequest`), from a request or from another service. */
export interface CreateObjectBody {
  key_prefix?: string | null;
  metadata?: Record<string, unknown> | null;
  blobs?: CreateBlobBody[];
}

/** The organization and namespace a call runs in. */
export interface ObjectScope {
  organizationId: string;
  namespaceId: string;
}

/** An object validated against its bucket, its inline bytes decoded but not yet written. */
interface PreparedObject {
  index: number;
  keyPrefix: string | null;
  metadata: Record<string, unknown>;
  /** Canonical unique-key text, or null when the bucket has no unique key. */
  uniqueKey: string | null;
  uniqueFields: Record<string, unknown> | null;
  blobs: PreparedBlob[];
}

/** Replaces the leading `body` of issue locations (as the bucket-schema helpers write them) by `location`. */
function relocate(issues: ValidationIssue[], location: (string | number)[]): ValidationIssue[] {
  if (location.length === 1 && location[0] === 'body') return issues;
  return issues.map((i) => ({ ...i, location: i.location[0] === 'body' ? [...location, ...i.location.slice(1)] : i.location }));
}

/** Refuses writes to a bucket marked read-only. */
function assertWritable(bucket: BucketRow): void {
  if (bucket.is_locked) {
    throw new ApiError('forbidden', `bucket ${show(bucket.name)} is locked (read-only): objects cannot be written`, {
      bucket_id: bucket.id,
    });
  }
}

/**
 * The policy a write runs under: `?policy=`, else the bucket's `default_policy`, else 400. `null` for a
 * bucket without a unique key, where policies do not apply.
 */
export function resolvePolicy(bucket: BucketRow, requested: InsertPolicy | null | undefined): InsertPolicy | null {
  if (!bucket.unique_key?.fields?.length) return null;
  const policy = requested ?? bucket.unique_key.default_policy ?? null;
  if (!policy) {
    throw badRequest(
      `bucket ${show(bucket.name)} has a unique key (${bucket.unique_key.fields.join(', ')}) and no default_policy: ` +
        'send ?policy=insert, ?policy=update or ?policy=upsert',
      { missing: 'policy', unique_key: bucket.unique_key },
    );
  }
  return policy;
}

/** Checks blobs against the schema's blob properties; issues for every problem, 413 for oversize data. */
function prepareBlobs(
  bucket: BucketRow,
  blobs: CreateBlobBody[],
  limit: number,
  location: (string | number)[],
): { blobs: PreparedBlob[]; issues: ValidationIssue[] } {
  const props = blobProperties(bucket.bucket_schema);
  const issues: ValidationIssue[] = [];
  const out: PreparedBlob[] = [];
  blobs.forEach((input, i) => {
    const parsed = parseBlob(input, props.get(input.property)?.type, limit, [...location, 'blobs', i]);
    issues.push(...parsed.issues);
    if (parsed.blob) out.push(parsed.blob);
  });
  return { blobs: out, issues };
}

/** Issues for required blob properties that `present` lacks. */
function missingRequiredBlobs(bucket: BucketRow, present: Iterable<string>, location: (string | number)[]): ValidationIssue[] {
  const have = new Set(present);
  const issues: ValidationIssue[] = [];
  for (const [name, def] of blobProperties(bucket.bucket_schema)) {
    if (def.required && !have.has(name)) {
      issues.push({
        type: 'missing',
        location: [...location, 'blobs'],
        message: `required blob property ${show(name)} (${def.type}) is missing`,
      });
    }
  }
  return issues;
}

/** The unique-key fields and values of some metadata, for messages. */
function keyFields(bucket: BucketRow, metadata: Record<string, unknown>): Record<string, unknown> | null {
  const fields = bucket.unique_key?.fields;
  if (!fields?.length) return null;
  return Object.fromEntries(fields.map((f) => [f, metadata[f] ?? null]));
}

/** Validates one object against its bucket: metadata, blobs, required blobs, unique key. Throws 422 / 413. */
function prepareObject(
  bucket: BucketRow,
  body: CreateObjectBody,
  limit: number,
  index: number,
  location: (string | number)[],
): PreparedObject {
  const meta = validateMetadata(bucket.bucket_schema, body.metadata ?? {}, [...location, 'metadata']);
  const blobs = prepareBlobs(bucket, body.blobs ?? [], limit, location);
  const issues = [...meta.issues, ...blobs.issues];
  issues.push(
    ...missingRequiredBlobs(
      bucket,
      (body.blobs ?? []).map((b) => b.property),
      location,
    ),
  );
  let uniqueKey: string | null = null;
  if (bucket.unique_key?.fields?.length) {
    const key = uniqueKeyValue(bucket.unique_key.fields, meta.value);
    issues.push(...relocate(key.issues, location));
    uniqueKey = key.value;
  }
  if (issues.length > 0) throw validationFailed(issues);
  return {
    index,
    keyPrefix: body.key_prefix ?? null,
    metadata: meta.value,
    uniqueKey,
    uniqueFields: keyFields(bucket, meta.value),
    blobs: blobs.blobs,
  };
}

/** Locks the bucket row for the rest of the transaction: object writes of one bucket run one at a time. */
async function lockBucket(tx: Queryable, bucket: BucketRow): Promise<BucketRow> {
  const rows = await tx.query<BucketRow>('SELECT * FROM buckets WHERE id = $1 AND organization_id = $2 FOR UPDATE', [
    bucket.id,
    bucket.organization_id,
  ]);
  const locked = rows[0];
  if (!locked) throw notFound('bucket', bucket.name);
  // Validation ran against the bucket read before the lock; that is sound because a bucket's schema and
  // unique key are fixed at creation (the bucket update models refuse them).
  assertWritable(locked);
  return locked;
}

/**
 * Points upload-backed blobs at their uploads' bytes (no copy), checking the bytes fit the property.
 * Runs inside the write transaction so that taking an upload commits or rolls back with the object.
 */
async function resolveUploads(tx: Queryable, bucket: BucketRow, item: PreparedObject, location: (string | number)[]): Promise<void> {
  for (const [i, blob] of item.blobs.entries()) {
    if (!blob.upload_id) continue;
    const up = await takeUploadedBlob(tx, { organizationId: bucket.organization_id, bucketId: bucket.id, uploadId: blob.upload_id });
    if (!blobTypeAccepts(blob.type, up.mimeType)) {
      throw validationFailed([
        {
          type: 'content_mismatch',
          location: [...location, 'blobs', i, 'upload_id'],
          message: `blob ${show(blob.property)} is a ${blob.type} field, but upload ${show(blob.upload_id)} holds ${up.mimeType ?? 'bytes of an unrecognised type'}`,
        },
      ]);
    }
    Object.assign(blob, {
      source: 'stored',
      storage_key: up.storageKey,
      size_bytes: up.sizeBytes,
      sha256: up.sha256,
      mime_type: up.mimeType ?? null,
      filename: up.filename,
    });
  }
}

const blobSize = (blobs: { size_bytes: number | null }[]): number => blobs.reduce((sum, b) => sum + (b.size_bytes ?? 0), 0);

/** Blob rows of objects, in one multi-row statement. */
async function insertBlobRows(tx: Queryable, bucket: BucketRow, rows: { objectId: string; firstPosition: number; blobs: PreparedBlob[] }[]): Promise<BlobRow[]> {
  const records = rows.flatMap(({ objectId, firstPosition, blobs }) =>
    blobs.map((b, i) => ({
      id: b.id,
      object_id: objectId,
      position: firstPosition + i,
      property: b.property,
      type: b.type,
      key_prefix: b.key_prefix,
      source: b.source,
      text_value: b.text_value,
      storage_key: b.storage_key,
      url: b.url,
      filename: b.filename,
      mime_type: b.mime_type,
      size_bytes: b.size_bytes,
      sha256: b.sha256,
      metadata: b.metadata,
    })),
  );
  if (records.length === 0) return [];
  return tx.query<BlobRow>(
    `INSERT INTO blobs (id, object_id, bucket_id, organization_id, position, property, type, key_prefix, source,
                        text_value, storage_key, url, filename, mime_type, size_bytes, sha256, metadata)
     SELECT x.id, x.object_id, $2, $3, x.position, x.property, x.type, x.key_prefix, x.source,
            x.text_value, x.storage_key, x.url, x.filename, x.mime_type, x.size_bytes, x.sha256, coalesce(x.metadata, '{}')
     FROM jsonb_to_recordset($1::jsonb) AS x(id text, object_id text, position int, property text, type text,
          key_prefix text, source text, text_value text, storage_key text, url text, filename text, mime_type text,
          size_bytes bigint, sha256 text, metadata jsonb)
     RETURNING *`,
    [JSON.stringify(records), bucket.id, bucket.organization_id],
  );
}

/** Moves the bucket's counters by what a write changed. */
async function bumpCounters(tx: Queryable, bucketId: string, objects: number, bytes: number, uploaded: boolean): Promise<void> {
  if (objects === 0 && bytes === 0 && !uploaded) return;
  await tx.query(
    `UPDATE buckets SET object_count = object_count + $2, total_size_bytes = total_size_bytes + $3,
            last_upload_at = CASE WHEN $4 THEN now() ELSE last_upload_at END
     WHERE id = $1`,
    [bucketId, objects, bytes, uploaded],
  );
}

/** The storage keys among `blobs` whose files belong to the objects (not to an upload). */
const ownedKeys = (blobs: { storage_key: string | null }[]): string[] =>
  blobs.flatMap((b) => (b.storage_key && !isUploadKey(b.storage_key) ? [b.storage_key] : []));

/** The outcome of one object of a write. */
/** How one object of a write ended. */
export type Outcome = { ok: ObjectResponse } | { error: ApiError };

const asApiError = (err: unknown): ApiError =>
  err instanceof ApiError ? err : new ApiError('internal', `could not store the object's blobs: ${(err as Error).message}`);

/**
 * Writes prepared objects. Order: blob files first, then every row and the bucket counters in one
 * transaction; if that transaction fails, the files written are deleted, so there is never a row
 * without its file nor a file without its row. Set-based: one INSERT for all objects, one for all blobs.
 *
 * `single` makes any object's failure throw (rolling the transaction back, upload takes included);
 * otherwise each object's failure is its own outcome and the others are written.
 */
async function writeObjects(
  deps: AppDeps,
  scope: ObjectScope,
  bucket: BucketRow,
  items: PreparedObject[],
  policy: InsertPolicy | null,
  single: boolean,
  locationOf: (index: number) => (string | number)[],
): Promise<Map<number, Outcome>> {
  const outcomes = new Map<number, Outcome>();
  const fail = (item: PreparedObject, err: unknown) => {
    if (single) throw err;
    outcomes.set(item.index, { error: asApiError(err) });
  };
  const prefix = bucketBlobPrefix(bucket);
  const limit = deps.limits.inlineBlobMaxBytes;

  // 1. Files, a few objects at a time; an object whose files fail is dropped with its files already removed.
  const filesOf = new Map<number, string[]>();
  for (let i = 0; i < items.length; i += 8) {
    const chunk = items.slice(i, i + 8);
    const results = await Promise.allSettled(chunk.map((item) => writeBlobFiles(deps.blobs, prefix, item.blobs, limit)));
    results.forEach((r, j) => {
      const item = chunk[j]!;
      if (r.status === 'fulfilled') filesOf.set(item.index, r.value);
      else outcomes.set(item.index, { error: asApiError(r.reason) });
    });
    if (single && outcomes.size > 0) throw (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason;
  }
  const allFiles = () => [...filesOf.values()].flat();

  // 2. Rows, in one transaction.
  let obsolete: string[] = [];
  try {
    obsolete = await deps.db.transaction(async (tx) => {
      await lockBucket(tx, bucket);
      let alive = items.filter((item) => !outcomes.has(item.index));

      // Which unique keys exist already. Under the bucket lock nobody else can add or remove one.
      const existing = new Map<string, { id: string; size_bytes: number }>();
      if (policy && alive.length > 0) {
        const rows = await tx.query<{ id: string; unique_key_value: string; size_bytes: number }>(
          `SELECT id, unique_key_value, size_bytes FROM objects
           WHERE bucket_id = $1 AND unique_key_value = ANY($2::text[]) FOR UPDATE`,
          [bucket.id, alive.map((item) => item.uniqueKey)],
        );
        for (const row of rows) existing.set(row.unique_key_value, row);
      }
      const updates = new Map<number, { id: string; size_bytes: number }>();
      for (const item of alive) {
        const hit = item.uniqueKey === null ? undefined : existing.get(item.uniqueKey);
        if (hit && policy === 'insert') {
          fail(
            item,
            new ApiError(
              'already_exists',
              `an object with unique key ${show(item.uniqueFields)} already exists in bucket ${show(bucket.name)} ` +
                `(${hit.id}); use ?policy=update or ?policy=upsert to replace it`,
              { resource: 'object', unique_key: item.uniqueFields, object_id: hit.id },
            ),
          );
        } else if (!hit && policy === 'update') {
          fail(
            item,
            new ApiError(
              'not_found',
              `no object with unique key ${show(item.uniqueFields)} in bucket ${show(bucket.name)}; ` +
                'use ?policy=insert or ?policy=upsert to create it',
              { resource: 'object', unique_key: item.uniqueFields },
            ),
          );
        } else if (hit) {
          updates.set(item.index, hit);
        }
      }
      alive = alive.filter((item) => !outcomes.has(item.index));

      for (const item of alive) {
        try {
          await resolveUploads(tx, bucket, item, locationOf(item.index));
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          fail(item, err);
        }
      }
      alive = alive.filter((item) => !outcomes.has(item.index));
      if (alive.length === 0) return [];

      const toInsert = alive.filter((item) => !updates.has(item.index));
      const toUpdate = alive.filter((item) => updates.has(item.index));
      const objectIdOf = new Map<number, string>();
      for (const item of toInsert) objectIdOf.set(item.index, newId('obj'));
      for (const item of toUpdate) objectIdOf.set(item.index, updates.get(item.index)!.id);
      const record = (item: PreparedObject) => ({
        id: objectIdOf.get(item.index),
        key_prefix: item.keyPrefix,
        metadata: item.metadata,
        unique_key_value: item.uniqueKey,
        size_bytes: blobSize(item.blobs),
      });

      const rows: ObjectRow[] = [];
      if (toInsert.length > 0) {
        rows.push(
          ...(await tx.query<ObjectRow>(
            // Millisecond timestamps, as the API shows them: a created_at read back filters exactly.
            `INSERT INTO objects (id, organization_id, namespace_id, bucket_id, key_prefix, metadata, unique_key_value, size_bytes,
                                  created_at, updated_at)
             SELECT x.id, $2, $3, $4, x.key_prefix, coalesce(x.metadata, '{}'), x.unique_key_value, x.size_bytes,
                    date_trunc('milliseconds', now()), date_trunc('milliseconds', now())
             FROM jsonb_to_recordset($1::jsonb)
                  AS x(id text, key_prefix text, metadata jsonb, unique_key_value text, size_bytes bigint)
             RETURNING *`,
            [JSON.stringify(toInsert.map(record)), scope.organizationId, scope.namespaceId, bucket.id],
          )),
        );
      }
      // Updating an object by its unique key replaces its blobs and metadata, keeping its id.
      let replaced: { storage_key: string | null; size_bytes: number | null }[] = [];
      if (toUpdate.length > 0) {
        const ids = toUpdate.map((item) => objectIdOf.get(item.index)!);
        replaced = await tx.query('DELETE FROM blobs WHERE object_id = ANY($1::text[]) RETURNING storage_key, size_bytes', [ids]);
        rows.push(
          ...(await tx.query<ObjectRow>(
            `UPDATE objects o SET key_prefix = x.key_prefix, metadata = coalesce(x.metadata, '{}'),
                    unique_key_value = x.unique_key_value, size_bytes = x.size_bytes,
                    updated_at = GREATEST(date_trunc('milliseconds', now()), o.updated_at + interval '1 millisecond')
             FROM jsonb_to_recordset($1::jsonb)
                  AS x(id text, key_prefix text, metadata jsonb, unique_key_value text, size_bytes bigint)
             WHERE o.id = x.id AND o.bucket_id = $2
             RETURNING o.*`,
            [JSON.stringify(toUpdate.map(record)), bucket.id],
          )),
        );
      }
      const blobRows = await insertBlobRows(
        tx,
        bucket,
        alive.map((item) => ({ objectId: objectIdOf.get(item.index)!, firstPosition: 0, blobs: item.blobs })),
      );
      const oldBytes = toUpdate.reduce((sum, item) => sum + updates.get(item.index)!.size_bytes, 0);
      const newBytes = alive.reduce((sum, item) => sum + blobSize(item.blobs), 0);
      await bumpCounters(tx, bucket.id, toInsert.length, newBytes - oldBytes, true);

      const rowById = new Map(rows.map((r) => [r.id, r]));
      const blobsById = new Map<string, BlobRow[]>();
      for (const b of blobRows) blobsById.set(b.object_id, [...(blobsById.get(b.object_id) ?? []), b]);
      for (const item of alive) {
        const id = objectIdOf.get(item.index)!;
        outcomes.set(item.index, { ok: toObjectResponse(rowById.get(id)!, blobsById.get(id) ?? []) });
      }
      return ownedKeys(replaced);
    });
  } catch (err) {
    await deleteQuietly(deps.blobs, allFiles());
    throw err;
  }
  // 3. Files nobody references any more: those of objects that failed, and those their update replaced.
  const orphaned = items.flatMap((item) => ('error' in (outcomes.get(item.index) ?? {}) ? (filesOf.get(item.index) ?? []) : []));
  await deleteQuietly(deps.blobs, [...orphaned, ...obsolete]);
  return outcomes;
}

/**
 * Creates one object in `bucket` (unique-key policy as given, else the bucket's default). Usable inside
 * or outside a request: errors are ApiErrors (422 invalid, 413 oversize inline data, 409/404 by policy).
 */
export async function createObject(
  deps: AppDeps,
  scope: ObjectScope,
  bucket: BucketRow,
  body: CreateObjectBody,
  policy?: InsertPolicy | null,
): Promise<ObjectResponse> {
  assertWritable(bucket);
  const resolved = resolvePolicy(bucket, policy);
  const item = prepareObject(bucket, body, deps.limits.inlineBlobMaxBytes, 0, ['body']);
  const outcomes = await writeObjects(deps, scope, bucket, [item], resolved, true, () => ['body']);
  const outcome = outcomes.get(0)!;
  if ('error' in outcome) throw outcome.error;
  return outcome.ok;
}

/** `CreateObjectsBatchResponse`. */
export interface BatchOutcome {
  succeeded: ObjectResponse[];
  failed: FailedObjectError[];
  total_requested: number;
  succeeded_count: number;
  failed_count: number;
}

/** One item of a partial-success create: its position in the request, and its body or why it has none. */
export interface CreateItem {
  index: number;
  body?: CreateObjectBody;
  error?: ApiError;
}

/**
 * Creates several objects with partial success and reports each by its index: prepared one by one (pure),
 * then written together — one multi-row statement per table, not one transaction per object. Uploads' batch
 * confirm uses it directly; `/objects/batch` shapes its answer from it.
 */
export async function createObjectsIndexed(
  deps: AppDeps,
  scope: ObjectScope,
  bucket: BucketRow,
  items: CreateItem[],
  policy?: InsertPolicy | null,
  locationOf: (index: number) => (string | number)[] = (i) => ['body', 'objects', i],
): Promise<Map<number, Outcome>> {
  assertWritable(bucket);
  const resolved = resolvePolicy(bucket, policy);
  const failures = new Map<number, Outcome>();
  const prepared: PreparedObject[] = [];
  const firstWithKey = new Map<string, number>();
  for (const item of items) {
    if (item.error || !item.body) {
      failures.set(item.index, { error: item.error ?? badRequest('object is missing') });
      continue;
    }
    try {
      const p = prepareObject(bucket, item.body, deps.limits.inlineBlobMaxBytes, item.index, locationOf(item.index));
      // Two objects of one batch with one key would race each other for it: the later one is refused.
      const first = p.uniqueKey === null ? undefined : firstWithKey.get(p.uniqueKey);
      if (first !== undefined) {
        failures.set(item.index, {
          error: new ApiError(
            'already_exists',
            `object_index ${item.index} has the same unique key ${show(p.uniqueFields)} as object_index ${first} of this batch`,
            { resource: 'object', unique_key: p.uniqueFields, duplicate_of_index: first },
          ),
        });
        continue;
      }
      if (p.uniqueKey !== null) firstWithKey.set(p.uniqueKey, item.index);
      prepared.push(p);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      failures.set(item.index, { error: err });
    }
  }
  const written = prepared.length > 0 ? await writeObjects(deps, scope, bucket, prepared, resolved, false, locationOf) : new Map<number, Outcome>();
  return new Map([...failures, ...written]);
}

/**
 * Creates up to 100 objects with partial success: each bad object becomes a `FailedObjectError`, the
 * others are written together.
 */
export async function createObjectsBatch(
  deps: AppDeps,
  scope: ObjectScope,
  bucket: BucketRow,
  items: CreateItem[],
  policy?: InsertPolicy | null,
): Promise<BatchOutcome> {
  const outcomes = await createObjectsIndexed(deps, scope, bucket, items, policy);
  const succeeded: ObjectResponse[] = [];
  const failed: FailedObjectError[] = [];
  for (const item of items) {
    const outcome = outcomes.get(item.index);
    if (!outcome) continue;
    if ('ok' in outcome) succeeded.push(outcome.ok);
    else failed.push({ object_index: item.index, error: outcome.error.message, error_type: outcome.error.type });
  }
  return { succeeded, failed, total_requested: items.length, succeeded_count: succeeded.length, failed_count: failed.length };
}

/** Finds an object of a bucket by id; 404 otherwise. */
async function requireObject(q: Queryable, bucket: BucketRow, objectId: string, forUpdate = false): Promise<ObjectRow> {
  const rows = await q.query<ObjectRow>(
    `SELECT * FROM objects WHERE id = $1 AND bucket_id = $2 AND organization_id = $3 ${forUpdate ? 'FOR UPDATE' : ''}`,
    [objectId, bucket.id, bucket.organization_id],
  );
  if (!rows[0]) throw notFound('object', objectId);
  return rows[0];
}

export async function getObject(q: Queryable, scope: ObjectScope, bucketIdentifier: string, objectId: string): Promise<ObjectResponse> {
  const bucket = await requireBucket(q, scope, bucketIdentifier);
  const row = await requireObject(q, bucket, objectId);
  const blobs = await blobsOf(q, [row.id]);
  return toObjectResponse(row, blobs.get(row.id) ?? []);
}

/** A change to one existing object: PUT (blobs by property, metadata merged) or PATCH (metadata merged). */
export interface ObjectChange {
  key_prefix?: string | null;
  metadata?: Record<string, unknown> | null;
  /** Blobs replacing the object's blobs of the same properties; `null`/absent keeps every blob. */
  blobs?: CreateBlobBody[] | null;
}

/**
 * Updates an object. Metadata is merged key by key over the stored metadata and revalidated (defaults,
 * required fields, unique key); given blobs replace the object's blobs of the same property, other blobs
 * stay. New files are written first; the merge runs under the bucket lock, so concurrent updates of one
 * object never lose each other's changes.
 */
export async function updateObject(
  deps: AppDeps,
  scope: ObjectScope,
  bucketIdentifier: string,
  objectId: string,
  change: ObjectChange,
): Promise<ObjectResponse> {
  const bucket = await requireBucket(deps.db, scope, bucketIdentifier);
  assertWritable(bucket);
  const limit = deps.limits.inlineBlobMaxBytes;
  const fresh = prepareBlobs(bucket, change.blobs ?? [], limit, ['body']);
  if (fresh.issues.length > 0) throw validationFailed(fresh.issues);
  const files = await writeBlobFiles(deps.blobs, bucketBlobPrefix(bucket), fresh.blobs, limit);
  let obsolete: string[] = [];
  let result: ObjectResponse;
  try {
    [result, obsolete] = await deps.db.transaction(async (tx): Promise<[ObjectResponse, string[]]> => {
      await lockBucket(tx, bucket);
      const row = await requireObject(tx, bucket, objectId, true);
      const current = (await blobsOf(tx, [row.id])).get(row.id) ?? [];
      const merged = validateMetadata(bucket.bucket_schema, { ...row.metadata, ...(change.metadata ?? {}) });
      const issues = [...merged.issues];
      const replacing = new Set(fresh.blobs.map((b) => b.property));
      const kept = change.blobs ? current.filter((b) => !replacing.has(b.property)) : current;
      const dropped = change.blobs ? current.filter((b) => replacing.has(b.property)) : [];
      issues.push(...missingRequiredBlobs(bucket, [...kept.map((b) => b.property), ...replacing], ['body']));
      let uniqueKey: string | null = null;
      if (bucket.unique_key?.fields?.length) {
        const key = uniqueKeyValue(bucket.unique_key.fields, merged.value);
        issues.push(...key.issues);
        uniqueKey = key.value;
      }
      if (issues.length > 0) throw validationFailed(issues);
      if (uniqueKey !== null && uniqueKey !== row.unique_key_value) {
        const clash = await tx.query<{ id: string }>(
          'SELECT id FROM objects WHERE bucket_id = $1 AND unique_key_value = $2 AND id <> $3',
          [bucket.id, uniqueKey, row.id],
        );
        if (clash[0]) {
          const fields = keyFields(bucket, merged.value);
          throw new ApiError(
            'already_exists',
            `another object (${clash[0].id}) already has unique key ${show(fields)} in bucket ${show(bucket.name)}`,
            { resource: 'object', unique_key: fields, object_id: clash[0].id },
          );
        }
      }
      const item: PreparedObject = {
        index: 0,
        keyPrefix: change.key_prefix ?? row.key_prefix,
        metadata: merged.value,
        uniqueKey,
        uniqueFields: null,
        blobs: fresh.blobs,
      };
      await resolveUploads(tx, bucket, item, ['body']);
      if (dropped.length > 0) {
        await tx.query('DELETE FROM blobs WHERE id = ANY($1::text[])', [dropped.map((b) => b.id)]);
      }
      const firstPosition = kept.reduce((max, b) => Math.max(max, b.position + 1), 0);
      const added = await insertBlobRows(tx, bucket, [{ objectId: row.id, firstPosition, blobs: fresh.blobs }]);
      const size = blobSize(kept) + blobSize(fresh.blobs);
      const [updated] = await tx.query<ObjectRow>(
        `UPDATE objects SET key_prefix = $2, metadata = $3, unique_key_value = $4, size_bytes = $5,
                updated_at = GREATEST(date_trunc('milliseconds', now()), updated_at + interval '1 millisecond')
         WHERE id = $1 RETURNING *`,
        [row.id, item.keyPrefix, JSON.stringify(item.metadata), uniqueKey, size],
      );
      await bumpCounters(tx, bucket.id, 0, size - row.size_bytes, fresh.blobs.length > 0);
      return [toObjectResponse(updated!, [...kept, ...added]), ownedKeys(dropped)];
    });
  } catch (err) {
    await deleteQuietly(deps.blobs, files);
    throw err;
  }
  await deleteQuietly(deps.blobs, obsolete);
  return result;
}

/** Deletes an object, its blob rows and the files it owns (not those of uploads), and moves the counters. */
export async function deleteObject(deps: AppDeps, scope: ObjectScope, bucketIdentifier: string, objectId: string): Promise<{ id: string; bucketId: string }> {
  const bucket = await requireBucket(deps.db, scope, bucketIdentifier);
  assertWritable(bucket);
  const keys = await deps.db.transaction(async (tx) => {
    await lockBucket(tx, bucket);
    const row = await requireObject(tx, bucket, objectId, true);
    const blobs = await tx.query<{ storage_key: string | null }>('DELETE FROM blobs WHERE object_id = $1 RETURNING storage_key', [row.id]);
    await tx.query('DELETE FROM objects WHERE id = $1', [row.id]);
    await bumpCounters(tx, bucket.id, -1, -row.size_bytes, false);
    return ownedKeys(blobs);
  });
  // After the commit: a failed delete leaves a file without a row, never a row without its file.
  await deleteQuietly(deps.blobs, keys);
  return { id: objectId, bucketId: bucket.id };
}
