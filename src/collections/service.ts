import type { z } from 'zod';
import type { BucketSchema } from '../buckets/bucket-schema.js';
import type { Db, Queryable } from '../db/db.js';
import { ApiError, alreadyExists, badRequest, notFound, show, validationFailed } from '../errors/registry.js';
import type { ExtractorRegistry } from '../extractors/extractor.js';
import { compileFilters, compileSort, type FilterFields, SqlParams } from '../http/filters.js';
import { newId } from '../ids/new-id.js';
import type {
  CollectionResponse,
  CreateCollectionRequest,
  FeatureExtractorConfigOutput,
  ListCollectionsRequest,
  PatchCollectionRequest,
  SourceConfigInput,
  SourceConfigOutput,
} from './schema.js';
import {
  buildOutputSchema,
  checkGivenInputSchema,
  type InputBinding,
  lookupExtractor,
  mergeSchemas,
  resolveInputBindings,
  validateParameters,
} from './validate.js';

/** A collection row as services use it. */
export interface CollectionRow {
  id: string;
  organization_id: string;
  namespace_id: string;
  name: string;
  description: string | null;
  source: SourceConfigOutput;
  source_type: 'bucket' | 'collection';
  source_bucket_ids: string[];
  source_collection_ids: string[];
  feature_extractor: FeatureExtractorConfigOutput;
  /** Extractor input → binding; `null`: every source field by name (see resolveInputBindings). */
  input_bindings: Record<string, InputBinding> | null;
  input_schema: BucketSchema;
  output_schema: BucketSchema;
  /** Bucket id → schema at creation, for multi-bucket sources (Mixpeek's `source_bucket_schemas`). */
  source_bucket_schemas: Record<string, BucketSchema> | null;
  enabled: boolean;
  metadata: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}

/** The organization and namespace a collection request runs in. */
export interface CollectionScope {
  organizationId: string;
  namespaceId: string;
}

/** Finds a collection by `col_…` id or name inside one namespace; 404 otherwise. */
export async function requireCollection(
  q: Queryable,
  scope: CollectionScope,
  identifier: string,
  options: { lock?: 'update' | 'share' } = {},
): Promise<CollectionRow> {
  const lock = options.lock === 'update' ? 'FOR UPDATE' : options.lock === 'share' ? 'FOR SHARE' : '';
  const rows = await q.query<CollectionRow>(
    `SELECT * FROM collections WHERE organization_id = $1 AND namespace_id = $2 AND (id = $3 OR name = $3)
     ORDER BY (id = $3) DESC LIMIT 1 ${lock}`,
    [scope.organizationId, scope.namespaceId, identifier],
  );
  if (!rows[0]) throw notFound('collection', identifier);
  return rows[0];
}

/** Every collection of a namespace with what tier derivation needs (batches call this at submission). */
export async function collectionGraph(
  q: Queryable,
  scope: CollectionScope,
  options: { enabledOnly?: boolean } = {},
): Promise<{ id: string; source_bucket_ids: string[]; source_collection_ids: string[] }[]> {
  return q.query(
    `SELECT id, source_bucket_ids, source_collection_ids FROM collections
     WHERE organization_id = $1 AND namespace_id = $2 ${options.enabledOnly ? 'AND enabled' : ''} ORDER BY id`,
    [scope.organizationId, scope.namespaceId],
  );
}

/**
 * The collections that read a bucket directly. Deleting the bucket would leave them without a source:
 * `deleteBucket` should refuse (409 naming them) while this is non-empty — see the report to the lead.
 */
export async function collectionsReadingBucket(q: Queryable, namespaceId: string, bucketId: string): Promise<{ id: string; name: string }[]> {
  return q.query(`SELECT id, name FROM collections WHERE namespace_id = $1 AND $2 = ANY(source_bucket_ids) ORDER BY name`, [namespaceId, bucketId]);
}

/**
 * Resolves identifiers (ids or names) to rows in one query. Every identifier must match; the missing ones
 * are all named in one 404. Duplicates (an id and the name of the same row) collapse.
 */
async function resolveMany<R extends { id: string; name: string }>(
  q: Queryable,
  table: 'buckets' | 'collections',
  columns: string,
  scope: CollectionScope,
  identifiers: readonly string[],
  resource: string,
): Promise<R[]> {
  // Source rows are share-locked until the collection is written: a concurrent delete of a source waits,
  // then sees the new dependent and refuses (deleteCollection locks FOR UPDATE before it checks).
  const rows = await q.query<R>(
    `SELECT ${columns} FROM ${table} WHERE organization_id = $1 AND namespace_id = $2
     AND (id = ANY($3::text[]) OR name = ANY($3::text[])) ORDER BY id FOR SHARE`,
    [scope.organizationId, scope.namespaceId, identifiers],
  );
  const found: R[] = [];
  const missing: string[] = [];
  for (const identifier of identifiers) {
    const row = rows.find((r) => r.id === identifier) ?? rows.find((r) => r.name === identifier);
    if (!row) missing.push(identifier);
    else if (!found.includes(row)) found.push(row);
  }
  if (missing.length > 0) {
    throw new ApiError('not_found', `source ${resource}${missing.length > 1 ? 's' : ''} ${missing.map((m) => show(m)).join(', ')} not found in this namespace`, {
      resource,
      ids: missing,
    });
  }
  return found;
}

interface ResolvedSource {
  source: SourceConfigOutput;
  bucketIds: string[];
  collectionIds: string[];
  inputSchema: BucketSchema['properties'];
  sourceBucketSchemas: Record<string, BucketSchema> | null;
}

async function resolveSource(q: Queryable, scope: CollectionScope, source: SourceConfigInput): Promise<ResolvedSource> {
  const loc = ['body', 'source'];
  const refuse = (field: string, message: string) => validationFailed([{ type: 'invalid_source', location: [...loc, field], message }]);
  if (source.type === 'bucket') {
    if (!source.bucket_ids?.length) throw refuse('bucket_ids', 'source.type "bucket" needs bucket_ids (one or more bucket ids or names)');
    if (source.collection_id || source.collection_ids?.length) {
      throw refuse('collection_ids', 'source.type "bucket" does not take collection_id or collection_ids');
    }
    const buckets = await resolveMany<{ id: string; name: string; bucket_schema: BucketSchema }>(
      q,
      'buckets',
      'id, name, bucket_schema',
      scope,
      source.bucket_ids,
      'bucket',
    );
    const inputSchema = mergeSchemas(
      buckets.map((b) => ({ id: b.id, properties: b.bucket_schema.properties })),
      [...loc, 'bucket_ids'],
    );
    const bucketIds = buckets.map((b) => b.id);
    return {
      source: {
        type: 'bucket',
        bucket_ids: bucketIds,
        collection_id: null,
        collection_ids: null,
        inherited_bucket_ids: null,
        source_filters: source.source_filters ?? null,
      },
      bucketIds,
      collectionIds: [],
      inputSchema,
      sourceBucketSchemas: buckets.length > 1 ? Object.fromEntries(buckets.map((b) => [b.id, b.bucket_schema])) : null,
    };
  }
  if (source.bucket_ids?.length) throw refuse('bucket_ids', 'source.type "collection" does not take bucket_ids');
  if (source.collection_id && source.collection_ids?.length) {
    throw refuse('collection_ids', 'give collection_id or collection_ids, not both');
  }
  const identifiers = source.collection_ids?.length ? source.collection_ids : source.collection_id ? [source.collection_id] : [];
  if (identifiers.length === 0) {
    throw refuse('collection_id', 'source.type "collection" needs collection_id or collection_ids (collection ids or names)');
  }
  const parents = await resolveMany<{
    id: string;
    name: string;
    output_schema: BucketSchema;
    source_type: string;
    source_bucket_ids: string[];
    source: SourceConfigOutput;
  }>(q, 'collections', 'id, name, output_schema, source_type, source_bucket_ids, source', scope, identifiers, 'collection');
  const inputSchema = mergeSchemas(
    parents.map((c) => ({ id: c.id, properties: c.output_schema.properties })),
    [...loc, source.collection_ids?.length ? 'collection_ids' : 'collection_id'],
  );
  // The root buckets documents of this collection descend from, for lineage and for clients.
  const inherited = [
    ...new Set(parents.flatMap((c) => (c.source_type === 'bucket' ? c.source_bucket_ids : (c.source.inherited_bucket_ids ?? [])))),
  ].sort();
  const collectionIds = parents.map((c) => c.id);
  return {
    source: {
      type: 'collection',
      bucket_ids: null,
      collection_id: source.collection_ids?.length ? null : collectionIds[0]!,
      collection_ids: source.collection_ids?.length ? collectionIds : null,
      inherited_bucket_ids: inherited,
      source_filters: source.source_filters ?? null,
    },
    bucketIds: [],
    collectionIds,
    inputSchema,
    sourceBucketSchemas: null,
  };
}

/** Turns the unique-violation of `UNIQUE (namespace_id, name)` into a 409 naming the name. */
const uniqueName = (name: string) => (err: { code?: string }) => {
  if (err.code === '23505') throw alreadyExists('collection', 'collection_name', name);
  throw err;
};

/** How many documents each of these collections holds: one grouped statement, never one per collection. */
export async function documentCounts(q: Queryable, collectionIds: readonly string[]): Promise<Map<string, number>> {
  if (collectionIds.length === 0) return new Map();
  const rows = await q.query<{ collection_id: string; n: number }>(
    'SELECT collection_id, count(*)::int AS n FROM documents WHERE collection_id = ANY($1::text[]) GROUP BY collection_id',
    [collectionIds],
  );
  return new Map(rows.map((r) => [r.collection_id, r.n]));
}

/** A collection as answered; `documentCount` is read by the caller (see documentCounts). */
export function toResponse(row: CollectionRow, documentCount: number): CollectionResponse {
  return {
    collection_id: row.id,
    collection_name: row.name,
    description: row.description,
    input_schema: row.input_schema,
    output_schema: row.output_schema,
    feature_extractor: row.feature_extractor,
    source: row.source,
    source_bucket_schemas: row.source_bucket_schemas,
    // Not computed yet: lineage across tiers, vector and payload indexes (no vector store behind Sluice yet).
    source_lineage: [],
    vector_indexes: [],
    payload_indexes: [],
    enabled: row.enabled,
    metadata: row.metadata,
    schedule: null,
    trigger_id: null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    document_count: documentCount,
    schema_version: 1,
    last_schema_sync: null,
    schema_sync_enabled: false,
    taxonomy_applications: null,
    cluster_applications: null,
    alert_applications: null,
    retriever_enrichments: null,
    taxonomy_count: 0,
    retriever_count: 0,
  };
}

/**
 * Creates a collection: the extractor must be registered, its parameters valid, the sources present in
 * this namespace; the input schema comes from the sources, the output schema from passthrough fields and the
 * extractor. Cycles cannot arise here: sources must already exist, so the new collection is no one's
 * ancestor yet; and a collection's source never changes afterwards (PATCH refuses it).
 */
export async function createCollection(
  db: Db,
  registry: ExtractorRegistry,
  scope: CollectionScope,
  body: CreateCollectionRequest,
): Promise<CollectionResponse> {
  const fe = body.feature_extractor;
  const extractor = lookupExtractor(registry, fe);
  const parameters = validateParameters(extractor, fe.parameters);
  const row = await db.transaction(async (tx) => {
    const resolved = await resolveSource(tx, scope, body.source);
    let inputSchema = resolved.inputSchema;
    if (body.input_schema) {
      const issues = checkGivenInputSchema(body.input_schema, inputSchema);
      if (issues.length > 0) throw validationFailed(issues);
      inputSchema = body.input_schema.properties;
    }
    const bindings = resolveInputBindings(extractor, inputSchema, fe.input_mappings);
    const passthrough = fe.field_passthrough ?? [];
    const outputSchema = buildOutputSchema(extractor, parameters, inputSchema, bindings, passthrough, fe.include_all_source_fields);
    const featureExtractor: FeatureExtractorConfigOutput = {
      feature_extractor_name: fe.feature_extractor_name,
      version: fe.version,
      feature_extractor_id: extractor.id,
      params: fe.params ?? null,
      parameters: parameters as Record<string, unknown> | null,
      input_mappings: fe.input_mappings ?? null,
      field_passthrough: passthrough,
      include_all_source_fields: fe.include_all_source_fields,
    };
    const rows = await tx
      .query<CollectionRow>(
        `INSERT INTO collections (id, organization_id, namespace_id, name, description, source, source_type, source_bucket_ids,
           source_collection_ids, feature_extractor, input_bindings, input_schema, output_schema, source_bucket_schemas, enabled, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING *`,
        [
          newId('col'),
          scope.organizationId,
          scope.namespaceId,
          body.collection_name,
          body.description ?? null,
          JSON.stringify(resolved.source),
          resolved.source.type,
          resolved.bucketIds,
          resolved.collectionIds,
          JSON.stringify(featureExtractor),
          JSON.stringify(bindings),
          JSON.stringify({ properties: inputSchema }),
          JSON.stringify(outputSchema),
          resolved.sourceBucketSchemas ? JSON.stringify(resolved.sourceBucketSchemas) : null,
          body.enabled,
          JSON.stringify(body.metadata ?? {}),
        ],
      )
      .catch(uniqueName(body.collection_name));
    return rows[0]!;
  });
  // A new collection has no documents yet.
  return toResponse(row, 0);
}

export async function getCollection(q: Queryable, scope: CollectionScope, identifier: string): Promise<CollectionResponse> {
  const row = await requireCollection(q, scope, identifier);
  return toResponse(row, (await documentCounts(q, [row.id])).get(row.id) ?? 0);
}

/**
 * PATCH: name, description, metadata (replaced whole) and enabled. An absent or null field keeps its
 * value. Source and extractor are fixed at creation (refused by the request schema).
 */
export async function updateCollection(
  q: Queryable,
  scope: CollectionScope,
  identifier: string,
  body: PatchCollectionRequest,
): Promise<CollectionResponse> {
  const row = await requireCollection(q, scope, identifier);
  const name = body.collection_name ?? row.name;
  const rows = await q
    .query<CollectionRow>(
      `UPDATE collections SET
         name = $2,
         description = COALESCE($3, description),
         metadata = COALESCE($4::jsonb, metadata),
         enabled = COALESCE($5, enabled),
         updated_at = GREATEST(now(), updated_at + interval '1 millisecond')
       WHERE id = $1 RETURNING *`,
      [row.id, name, body.description ?? null, body.metadata ? JSON.stringify(body.metadata) : null, body.enabled ?? null],
    )
    .catch(uniqueName(name));
  if (!rows[0]) throw notFound('collection', identifier);
  return toResponse(rows[0], (await documentCounts(q, [row.id])).get(row.id) ?? 0);
}

/**
 * Deletes a collection unless other collections read from it: deleting it would leave them without a
 * source, so the answer is a 409 naming them (delete those first). The row lock makes the check and the
 * delete atomic against a concurrent create that names this collection as its source.
 */
export async function deleteCollection(
  db: Db,
  scope: CollectionScope,
  identifier: string,
): Promise<{ success: boolean; collection_id: string; collection_name: string; message: string }> {
  return db.transaction(async (tx) => {
    // Units first, before the collection row is locked: workers lock units, then (checking the foreign
    // key of units they queue) the collection, so taking the two in the other order could deadlock.
    const found = await requireCollection(tx, scope, identifier);
    await tx.query('DELETE FROM units WHERE collection_id = $1', [found.id]);
    const row = await requireCollection(tx, scope, found.id, { lock: 'update' });
    const dependents = await tx.query<{ id: string; name: string }>(
      `SELECT id, name FROM collections WHERE namespace_id = $1 AND $2 = ANY(source_collection_ids) ORDER BY name`,
      [scope.namespaceId, row.id],
    );
    if (dependents.length > 0) {
      throw new ApiError(
        'already_exists',
        `collection ${show(row.name)} is the source of ${dependents.map((d) => `${show(d.name)} (${d.id})`).join(', ')}; delete or re-create those first`,
        { resource: 'collection', id: row.id, dependent_collection_ids: dependents.map((d) => d.id) },
      );
    }
    await tx.query('DELETE FROM collections WHERE id = $1', [row.id]);
    return { success: true, collection_id: row.id, collection_name: row.name, message: `collection ${row.name} deleted` };
  });
}

/** What list filters and sorts may name, and the columns behind them. */
const LIST_FIELDS: FilterFields = {
  collection_id: { sql: 'id', kind: 'text' },
  collection_name: { sql: 'name', kind: 'text' },
  description: { sql: 'description', kind: 'text' },
  enabled: { sql: 'enabled', kind: 'boolean' },
  created_at: { sql: 'created_at', kind: 'timestamp' },
  updated_at: { sql: 'updated_at', kind: 'timestamp' },
  metadata: { sql: 'metadata', kind: 'json' },
  source: { sql: 'source', kind: 'json' },
  feature_extractor: { sql: 'feature_extractor', kind: 'json' },
};

/** Lists a namespace's collections with Mixpeek's filters, search and sort; one statement for page and count. */
export async function listCollections(
  q: Queryable,
  scope: CollectionScope,
  body: z.infer<typeof ListCollectionsRequest>,
  page: { offset: number; limit: number },
): Promise<{ rows: CollectionResponse[]; total: number; totalDocuments: number }> {
  const p = new SqlParams([scope.organizationId, scope.namespaceId]);
  const where = [`organization_id = $1`, `namespace_id = $2`, `(${compileFilters(body.filters, LIST_FIELDS, p, body.case_sensitive)})`];
  if (body.search) {
    const search = {
      OR: ['collection_id', 'collection_name', 'description', 'feature_extractor.feature_extractor_name'].map((field) => ({
        field,
        operator: 'contains',
        value: body.search,
      })),
    };
    where.push(`(${compileFilters(search, LIST_FIELDS, p, body.case_sensitive)})`);
  }
  const order = compileSort(body.sort, LIST_FIELDS, 'created_at DESC', 'id ASC');
  const sql = `
    WITH matched AS (SELECT * FROM collections WHERE ${where.join(' AND ')}),
         totals AS (SELECT count(*)::int AS match_count,
                           (SELECT count(*)::int FROM documents d WHERE d.collection_id IN (SELECT id FROM matched)) AS match_documents
                    FROM matched),
         page AS (SELECT * FROM matched ORDER BY ${order} LIMIT ${p.add(page.limit)} OFFSET ${p.add(page.offset)}),
         counted AS (SELECT collection_id, count(*)::int AS document_count FROM documents
                     WHERE collection_id IN (SELECT id FROM page) GROUP BY collection_id)
    SELECT totals.*, page.*, coalesce(counted.document_count, 0) AS document_count
    FROM totals LEFT JOIN page ON true LEFT JOIN counted ON counted.collection_id = page.id ORDER BY ${order}`;
  const rows = await q.query<CollectionRow & { match_count: number; match_documents: number; document_count: number }>(sql, p.values).catch((err: { code?: string; message?: string }) => {
    if (err.code === '2201B') throw badRequest(`invalid regex in filters: ${err.message}`);
    if (err.code === '22007' || err.code === '22008' || err.code === '22P02') throw badRequest(`invalid value in filters: ${err.message}`);
    throw err;
  });
  const total = rows[0]?.match_count ?? 0;
  return {
    rows: rows.filter((r) => r.id !== null).map(({ match_count: _c, match_documents: _d, document_count, ...row }) => toResponse(row, document_count)),
    total,
    totalDocuments: rows[0]?.match_documents ?? 0,
  };
}
