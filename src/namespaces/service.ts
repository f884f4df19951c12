import type { z } from 'zod';
import type { Queryable } from '../db/db.js';
import { alreadyExists, badRequest, notFound, show, validationFailed } from '../errors/registry.js';
import { newId } from '../ids/new-id.js';
import type {
  CreateNamespaceRequest,
  ListNamespacesRequest,
  NamespaceModel,
  PatchNamespaceRequest,
  PayloadIndexConfig,
} from './schema.js';

/** The namespace a namespaced request runs in. */
export interface NamespaceRef {
  id: string;
  name: string;
}

interface NamespaceRow {
  id: string;
  name: string;
  namespace_type: 'standard' | 'marketplace';
  description: string | null;
  feature_extractors: { feature_extractor_name: string; version: string; params?: Record<string, unknown> | null }[];
  payload_indexes: z.infer<typeof PayloadIndexConfig>[] | null;
  auto_create_indexes: boolean;
  infrastructure: Record<string, unknown> | null;
  created_at: Date;
  updated_at: Date;
  /** From {@link COUNTS}; absent on rows that did not ask for them. */
  bucket_count?: number;
  object_count?: number;
}

/**
 * Select-list items that count a namespace's buckets and their objects (each bucket keeps its
 * object_count in step with its objects, so this sums a few bucket rows, never scans objects). `ns` is
 * the namespaces row's name or alias in the statement.
 */
const COUNTS = (ns: string) =>
  `(SELECT count(*)::int FROM buckets b WHERE b.namespace_id = ${ns}.id) AS bucket_count,
   (SELECT coalesce(sum(b.object_count), 0)::bigint FROM buckets b WHERE b.namespace_id = ${ns}.id) AS object_count`;

function toModel(row: NamespaceRow): NamespaceModel {
  return {
    namespace_id: row.id,
    namespace_name: row.name,
    namespace_type: row.namespace_type,
    infrastructure: row.infrastructure,
    cluster_id: null,
    description: row.description,
    feature_extractors: row.feature_extractors.map((fe) => ({
      ...fe,
      feature_extractor_id: `${fe.feature_extractor_name}_${fe.version}`,
    })),
    payload_indexes: row.payload_indexes,
    // Collections and documents arrive with their own features; until then they are not counted.
    document_count: null,
    bucket_count: row.bucket_count ?? 0,
    collection_count: null,
    object_count: row.object_count ?? 0,
    auto_create_indexes: row.auto_create_indexes,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

const uniqueName = (name: string) => (err: { code?: string }) => {
  if (err.code === '23505') throw alreadyExists('namespace', 'namespace_name', name);
  throw err;
};

/**
 * Finds a namespace by `ns_…` id or by name, within one organization only. Counts are asked for only
 * where they are shown: every namespaced request resolves its namespace through here.
 */
async function findRow(
  q: Queryable,
  organizationId: string,
  identifier: string,
  withCounts = false,
): Promise<NamespaceRow | undefined> {
  const rows = await q.query<NamespaceRow>(
    `SELECT *${withCounts ? `, ${COUNTS('namespaces')}` : ''} FROM namespaces
     WHERE organization_id = $1 AND (id = $2 OR name = $2) ORDER BY (id = $2) DESC LIMIT 1`,
    [organizationId, identifier],
  );
  return rows[0];
}

async function requireRow(q: Queryable, organizationId: string, identifier: string, withCounts = false): Promise<NamespaceRow> {
  const row = await findRow(q, organizationId, identifier, withCounts);
  if (!row) throw notFound('namespace', identifier);
  return row;
}

/** Resolves the namespace of a namespaced request (the `X-Namespace` hook). */
export async function resolveNamespace(q: Queryable, organizationId: string, identifier: string): Promise<NamespaceRef> {
  const row = await requireRow(q, organizationId, identifier);
  return { id: row.id, name: row.name };
}

export async function createNamespace(
  q: Queryable,
  organizationId: string,
  body: z.infer<typeof CreateNamespaceRequest>,
): Promise<NamespaceModel> {
  const rows = await q
    .query<NamespaceRow>(
      `INSERT INTO namespaces (id, organization_id, name, namespace_type, description, feature_extractors,
                               payload_indexes, auto_create_indexes, infrastructure)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
      [
        newId('ns'),
        organizationId,
        body.namespace_name,
        body.namespace_type ?? 'standard',
        body.description ?? null,
        JSON.stringify(body.feature_extractors),
        body.payload_indexes ? JSON.stringify(body.payload_indexes) : null,
        body.auto_create_indexes ?? false,
        body.infrastructure ? JSON.stringify(body.infrastructure) : null,
      ],
    )
    .catch(uniqueName(body.namespace_name));
  return toModel(rows[0]!);
}

export async function getNamespace(q: Queryable, organizationId: string, identifier: string): Promise<NamespaceModel> {
  return toModel(await requireRow(q, organizationId, identifier, true));
}

/**
 * Applies an update. PUT and PATCH share it: absent or `null` fields keep their value, as Mixpeek's
 * update models declare every field optional. `updated_at` always moves forward by at least the 1 ms the
 * API shows, so a client comparing timestamps sees every update, even one in the same millisecond.
 */
export async function updateNamespace(
  q: Queryable,
  organizationId: string,
  identifier: string,
  body: z.infer<typeof PatchNamespaceRequest>,
): Promise<NamespaceModel> {
  const row = await requireRow(q, organizationId, identifier);
  const name = body.namespace_name ?? row.name;
  const rows = await q
    .query<NamespaceRow>(
      `UPDATE namespaces SET
         name = $2,
         description = COALESCE($3, description),
         payload_indexes = COALESCE($4::jsonb, payload_indexes),
         auto_create_indexes = COALESCE($5, auto_create_indexes),
         infrastructure = COALESCE($6::jsonb, infrastructure),
         updated_at = GREATEST(now(), updated_at + interval '1 millisecond')
       WHERE id = $1 RETURNING *, ${COUNTS('namespaces')}`,
      [
        row.id,
        name,
        body.description ?? null,
        body.payload_indexes ? JSON.stringify(body.payload_indexes) : null,
        body.auto_create_indexes ?? null,
        body.infrastructure ? JSON.stringify(body.infrastructure) : null,
      ],
    )
    .catch(uniqueName(name));
  // Deleted by someone else between the read and the update.
  if (!rows[0]) throw notFound('namespace', identifier);
  return toModel(rows[0]);
}

/** Deletes a namespace and, through foreign keys, everything in it. */
export async function deleteNamespace(q: Queryable, organizationId: string, identifier: string): Promise<NamespaceRef> {
  const row = await requireRow(q, organizationId, identifier);
  await q.query('DELETE FROM namespaces WHERE id = $1', [row.id]);
  return { id: row.id, name: row.name };
}

const FILTER_COLUMNS: Record<string, string> = { namespace_id: 'id', namespace_name: 'name', namespace_type: 'namespace_type' };
const SORT_COLUMNS: Record<string, string> = {
  namespace_name: 'name',
  namespace_id: 'id',
  created_at: 'created_at',
  updated_at: 'updated_at',
};

/** Lists an organization's namespaces with Mixpeek's filters (exact value, `$in` or `$regex`), search and sort. */
export async function listNamespaces(
  q: Queryable,
  organizationId: string,
  body: z.infer<typeof ListNamespacesRequest>,
  page: { offset: number; limit: number },
): Promise<{ rows: NamespaceModel[]; total: number }> {
  const params: unknown[] = [organizationId];
  const where: string[] = ['organization_id = $1'];
  const p = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  const like = body.case_sensitive ? 'LIKE' : 'ILIKE';
  const regexOp = body.case_sensitive ? '~' : '~*';
  for (const [field, condition] of Object.entries(body.filters ?? {})) {
    const column = FILTER_COLUMNS[field];
    if (!column) {
      throw validationFailed([
        {
          type: 'unknown_filter',
          location: ['body', 'filters', field],
          message: `cannot filter namespaces on ${show(field)}; use ${Object.keys(FILTER_COLUMNS).join(', ')}`,
        },
      ]);
    }
    // Mixpeek: `case_sensitive` governs filters as well as search, so every comparison folds case unless set.
    const col = body.case_sensitive ? column : `lower(${column})`;
    const val = (value: string) => (body.case_sensitive ? p(value) : `lower(${p(value)})`);
    const anyOf = (values: string[]) =>
      body.case_sensitive ? `ANY(${p(values)}::text[])` : `ANY(SELECT lower(v) FROM unnest(${p(values)}::text[]) AS v)`;
    if (typeof condition === 'string') {
      where.push(`${col} = ${val(condition)}`);
    } else if (condition && typeof condition === 'object' && !Array.isArray(condition)) {
      for (const [op, value] of Object.entries(condition)) {
        if (op === '$regex' && typeof value === 'string') where.push(`${column} ${regexOp} ${p(value)}`);
        else if ((op === '$in' || op === '$nin') && Array.isArray(value) && value.every((v) => typeof v === 'string'))
          where.push(`${op === '$nin' ? 'NOT ' : ''}(${col} = ${anyOf(value)})`);
        else if ((op === '$eq' || op === '$ne') && typeof value === 'string')
          where.push(`${col} ${op === '$eq' ? '=' : '<>'} ${val(value)}`);
        else throw badRequest(`unsupported filter ${show({ [field]: { [op]: value } })}; use a string, $eq, $ne, $in, $nin or $regex`);
      }
    } else {
      throw badRequest(`unsupported filter ${show({ [field]: condition })}; use a string, $eq, $ne, $in, $nin or $regex`);
    }
  }
  if (body.search) {
    const term = p(`%${body.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`(id ${like} ${term} OR name ${like} ${term} OR coalesce(description, '') ${like} ${term})`);
  }
  const sort = body.sort ?? { field: 'created_at', direction: 'desc' };
  const order = `${SORT_COLUMNS[sort.field]} ${sort.direction === 'asc' ? 'ASC' : 'DESC'}, id ASC`;
  const whereSql = where.join(' AND ');
  // One statement: the window count rides along with the page, so listing costs one round trip.
  const rows = await q
    .query<NamespaceRow & { total: number }>(
      `SELECT *, ${COUNTS('namespaces')}, count(*) OVER ()::int AS total FROM namespaces WHERE ${whereSql} ORDER BY ${order}
       LIMIT ${p(page.limit)} OFFSET ${p(page.offset)}`,
      params,
    )
    .catch((err: { code?: string; message?: string }) => {
      if (err.code === '2201B') throw badRequest(`invalid $regex in filters: ${err.message}`);
      throw err;
    });
  let total = rows[0]?.total ?? 0;
  if (rows.length === 0 && page.offset > 0) {
    const counted = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM namespaces WHERE ${whereSql}`, params.slice(0, -2));
    total = counted[0]?.n ?? 0;
  }
  return { rows: rows.map(toModel), total };
}
