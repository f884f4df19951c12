import { selectFields } from '../http/select-fields.js';
import type { CollectionRow } from '../collections/service.js';
import type { Queryable } from '../db/db.js';
import { badRequest, show } from '../errors/registry.js';
import { compileFilters, compileSort, type FilterField, type FilterFields, SqlParams } from '../http/filters.js';
import { type ListQuery, type PaginationResponse, paginate, startOffset } from '../http/pagination.js';
import { vectorFieldNames } from './document-shape.js';
import type { DocumentListStats, ListDocumentsRequest, ListedDocument } from './schema.js';
import { type DocumentRow, documentColumns, toDocumentResponse } from './service.js';

const lineageText = (key: string): FilterField => ({ sql: `(d.lineage ->> '${key}')`, kind: 'text' });

/** System fields lists filter and sort on: ids, timestamps, and `_internal` paths (lineage, processing metadata). */
const SYSTEM_FIELDS: FilterFields = {
  document_id: { sql: 'd.id', kind: 'text' },
  collection_id: { sql: 'd.collection_id', kind: 'text' },
  created_at: { sql: 'd.created_at', kind: 'timestamp' },
  updated_at: { sql: 'd.updated_at', kind: 'timestamp' },
  root_object_id: { sql: 'd.root_object_id', kind: 'text' },
  source_object_id: lineageText('source_object_id'),
  '_internal.document_id': { sql: 'd.id', kind: 'text' },
  '_internal.collection_id': { sql: 'd.collection_id', kind: 'text' },
  '_internal.created_at': { sql: 'd.created_at', kind: 'timestamp' },
  '_internal.updated_at': { sql: 'd.updated_at', kind: 'timestamp' },
  '_internal.lineage.root_object_id': { sql: 'd.root_object_id', kind: 'text' },
  '_internal.lineage.root_bucket_id': lineageText('root_bucket_id'),
  '_internal.lineage.source_type': lineageText('source_type'),
  '_internal.lineage.source_object_id': lineageText('source_object_id'),
  '_internal.lineage.source_document_id': lineageText('source_document_id'),
  '_internal.lineage.source_collection_id': lineageText('source_collection_id'),
  '_internal.lineage.path': lineageText('path'),
  '_internal.metadata.batch_id': { sql: 'd.batch_id', kind: 'text' },
  '_internal.metadata.source_type': { sql: 'd.source_type', kind: 'text' },
  '_internal.metadata.source_id': { sql: 'd.source_id', kind: 'text' },
  '_internal.metadata.position': { sql: 'd.position', kind: 'number' },
};

/** A user field name (one path segment): what may be spliced into SQL as a quoted jsonb key. */
const FIELD_NAME = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The filterable fields of a collection's documents: the system fields, and every user field at the root of
 * the document (`title`, `info.author`), whatever its name. User fields are open-ended (extractor output,
 * passthrough, PATCHed extras), so they are answered on demand: any name that is one plain path segment and
 * not a system name reads `fields -> name` (or `vectors -> name` for a vector field). Names are checked by
 * FIELD_NAME before they reach SQL; values stay parameters.
 */
function documentFields(vectorNames: readonly string[]): FilterFields {
  return new Proxy(SYSTEM_FIELDS, {
    get(target, key) {
      if (typeof key !== 'string') return undefined;
      if (Object.hasOwn(target, key)) return target[key];
      if (!FIELD_NAME.test(key) || key === '_internal') return undefined;
      return { sql: `(d.${vectorNames.includes(key) ? 'vectors' : 'fields'} -> '${key}')`, kind: 'json' } satisfies FilterField;
    },
  });
}

/** Fields `select` never drops: a document is always identifiable. */
const ALWAYS_SELECTED = ['document_id', 'collection_id'];


/**
 * Cursors of the default order (created_at, id) carry the position of the last row handed out, so the next
 * page starts right after it: documents deleted or re-made meanwhile never make a page skip or repeat one.
 * They carry the offset too, for page numbers. A sorted list uses the shared offset cursor.
 */
interface KeysetCursor {
  offset: number;
  createdAt: string;
  id: string;
}

const KEYSET = /^k\|(\d{1,9})\|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)\|([A-Za-z0-9_-]{1,128})$/;

const encodeKeyset = (c: KeysetCursor): string => Buffer.from(`k|${c.offset}|${c.createdAt}|${c.id}`, 'utf8').toString('base64url');

function decodeKeyset(cursor: string): KeysetCursor | null {
  const m = KEYSET.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m ? { offset: Number(m[1]), createdAt: m[2]!, id: m[3]! } : null;
}

/** Database errors caused by values in the request (a bad regex, a malformed timestamp) are the client's: 400. */
function clientError(err: { code?: string; message?: string }): never {
  if (err.code === '2201B') throw badRequest(`invalid regex in filters: ${err.message}`);
  if (err.code === '22007' || err.code === '22008' || err.code === '22P02' || err.code === '22003') {
    throw badRequest(`invalid value in filters: ${err.message}`);
  }
  throw err;
}

/**
 * Lists a collection's documents: Mixpeek's filters over system fields, `_internal` lineage paths and any user
 * field path; `search` over the id and every string value (at any depth); `sort` (default created_at, then
 * id); `select`; vectors only with `return_vectors` (the column is not even read otherwise). The match is
 * counted (pagination total, stats) only with `include_total`: counting a large collection costs a scan.
 * One statement for the page (it reads one row more to know whether another page follows), one for the count.
 */
export async function listDocuments(
  q: Queryable,
  collection: CollectionRow,
  body: ListDocumentsRequest,
  query: ListQuery,
): Promise<{ results: ListedDocument[]; groups: null; pagination: PaginationResponse; stats: DocumentListStats | null; group_by_field: null }> {
  if (body.group_by) {
    throw badRequest(`group_by ${show(body.group_by)} is not supported by Sluice; list without group_by and group the results yourself`, {
      parameter: 'group_by',
    });
  }
  const vectorNames = vectorFieldNames(collection.output_schema);
  const fields = documentFields(vectorNames);
  const p = new SqlParams([collection.id, collection.organization_id]);
  const where = ['d.collection_id = $1', 'd.organization_id = $2', `(${compileFilters(body.filters, fields, p)})`];
  if (body.search) {
    const term = p.add(`%${body.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(
      `(d.id ILIKE ${term} OR EXISTS (SELECT 1 FROM jsonb_path_query(d.fields, 'strict $.**') v
                                    WHERE jsonb_typeof(v) = 'string' AND (v #>> '{}') ILIKE ${term}))`,
    );
  }
  const sort = body.sort ? { field: body.sort.field, direction: body.sort.direction } : null;
  const order = compileSort(sort, fields, 'd.created_at ASC', 'd.id ASC');

  const cursor = query.cursor ?? body.cursor ?? null;
  const keyset = cursor ? decodeKeyset(cursor) : null;
  if (keyset && sort) {
    throw badRequest(`cursor ${show(cursor)} belongs to a list in the default order; it cannot continue a list sorted by ${show(sort.field)}`);
  }
  const offset = keyset ? keyset.offset : startOffset({ ...query, cursor });

  const countParams = p.values;
  const pageParams = new SqlParams(p.values);
  const pageWhere = [...where];
  if (keyset) pageWhere.push(`(d.created_at, d.id) > (${pageParams.add(keyset.createdAt)}::timestamptz, ${pageParams.add(keyset.id)})`);

  const select = body.select ?? null;
  const withVectors =
    (body.return_vectors ?? false) && vectorNames.length > 0 && (select === null || select.some((s) => vectorNames.includes(s.split('.')[0]!)));
  const rows = await q
    .query<DocumentRow & { created_key: string }>(
      `SELECT ${documentColumns(withVectors)},
              to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_key
       FROM documents d WHERE ${pageWhere.join(' AND ')} ORDER BY ${order}
       LIMIT ${pageParams.add(query.limit + 1)} OFFSET ${pageParams.add(keyset ? 0 : offset)}`,
      pageParams.values,
    )
    .catch(clientError);
  const hasMore = rows.length > query.limit;
  const page = hasMore ? rows.slice(0, query.limit) : rows;

  let total: number | null = null;
  if (query.include_total) {
    const counted = await q
      .query<{ n: number }>(`SELECT count(*)::int AS n FROM documents d WHERE ${where.join(' AND ')}`, countParams)
      .catch(clientError);
    total = counted[0]?.n ?? 0;
  }

  const pagination = paginate(offset, query.limit, page.length, total);
  const last = page.at(-1);
  const nextOffset = offset + page.length;
  pagination.next_page = hasMore ? String(Math.floor(offset / query.limit) + 2) : null;
  pagination.next_cursor = !hasMore
    ? null
    : sort || !last
      ? (paginate(offset, query.limit, page.length, null).next_cursor ?? null)
      : encodeKeyset({ offset: nextOffset, createdAt: last.created_key, id: last.id });

  const results = page.map(({ created_key: _k, ...row }) => {
    const doc = toDocumentResponse(row);
    return select === null ? doc : (selectFields(doc, select, ALWAYS_SELECTED) as ListedDocument);
  });
  const stats: DocumentListStats | null =
    total === null ? null : { total_documents: total, avg_blobs_per_document: 0, total_groups: null, avg_documents_per_group: null };
  return { results, groups: null, pagination, stats, group_by_field: null };
}
