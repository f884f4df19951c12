import { type CollectionRow, type CollectionScope, requireCollection } from '../collections/service.js';
import type { Queryable } from '../db/db.js';
import { notFound, show, type ValidationIssue, validationFailed } from '../errors/registry.js';
import { type DocumentLineage, vectorFieldNames } from './document-shape.js';
import type { DocumentFieldsRequest, DocumentLineageResponse, DocumentResponse } from './schema.js';
import { setField } from '../util/set-field.js';

/** A documents row as services read it; `vectors` only when it was selected. */
export interface DocumentRow {
  id: string;
  organization_id: string;
  namespace_id: string;
  collection_id: string;
  source_type: 'object' | 'document';
  source_id: string;
  position: number;
  batch_id: string | null;
  fields: Record<string, unknown>;
  vectors?: Record<string, unknown> | null;
  lineage: DocumentLineage;
  created_at: Date;
  updated_at: Date;
}

/** Every column but `vectors`: documents are read without their vectors unless asked. */
export const DOCUMENT_COLUMNS =
  'd.id, d.organization_id, d.namespace_id, d.collection_id, d.source_type, d.source_id, d.position, d.batch_id, d.fields, d.lineage, d.created_at, d.updated_at';

/** The columns to read, with `vectors` when the answer shows them. */
export const documentColumns = (withVectors: boolean): string => (withVectors ? `${DOCUMENT_COLUMNS}, d.vectors` : DOCUMENT_COLUMNS);

/**
 * Keys a document answer owns: user fields of these names would shadow (or fake) system data, so clients
 * cannot write them and stored fields of these names are not shown.
 */
export const RESERVED_FIELDS: readonly string[] = ['document_id', 'collection_id', '_internal', 'document_blobs'];


/** Mixpeek's `DocumentResponse`: user fields (and vectors, when read) flat at the root, system data in `_internal`. */
export function toDocumentResponse(row: DocumentRow): DocumentResponse {
  const out: Record<string, unknown> = { document_id: row.id, collection_id: row.collection_id };
  // defineProperty, not assignment: a stored field named `__proto__` is data, not a prototype.
  for (const [key, value] of Object.entries(row.fields ?? {})) if (!RESERVED_FIELDS.includes(key)) setField(out, key, value);
  for (const [key, value] of Object.entries(row.vectors ?? {})) if (!RESERVED_FIELDS.includes(key)) setField(out, key, value);
  out.document_blobs = [];
  out._internal = {
    internal_id: row.organization_id,
    namespace_id: row.namespace_id,
    document_id: row.id,
    collection_id: row.collection_id,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    lineage: row.lineage,
    metadata: { batch_id: row.batch_id, source_type: row.source_type, source_id: row.source_id, position: row.position },
  };
  return out as DocumentResponse;
}

/** Reads one document of a collection; 404 naming it when absent (or in another collection). */
async function readDocument(q: Queryable, collection: CollectionRow, documentId: string, withVectors: boolean): Promise<DocumentRow> {
  const rows = await q.query<DocumentRow>(
    `SELECT ${documentColumns(withVectors)} FROM documents d WHERE d.id = $1 AND d.collection_id = $2 AND d.organization_id = $3`,
    [documentId, collection.id, collection.organization_id],
  );
  if (!rows[0]) throw notFound('document', documentId);
  return rows[0];
}

export async function getDocument(
  q: Queryable,
  scope: CollectionScope,
  collectionIdentifier: string,
  documentId: string,
  options: { returnVectors: boolean },
): Promise<DocumentResponse> {
  const collection = await requireCollection(q, scope, collectionIdentifier);
  return toDocumentResponse(await readDocument(q, collection, documentId, options.returnVectors));
}

/** Longest vector a write accepts; far above any embedding model's dimension. */
const MAX_VECTOR_LENGTH = 65536;

/**
 * Splits a PATCH/PUT body into user fields and vectors (the collection's vector fields), refusing system
 * fields and vectors that are not arrays of finite numbers, every problem at once. A vector sent as `null`
 * is removed.
 */
function splitBody(
  body: DocumentFieldsRequest,
  vectorNames: readonly string[],
): { fields: Record<string, unknown>; vectors: Record<string, unknown>; removeVectors: string[] } {
  const issues: ValidationIssue[] = [];
  const fields: Record<string, unknown> = {};
  const vectors: Record<string, unknown> = {};
  const removeVectors: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    if (RESERVED_FIELDS.includes(key)) {
      issues.push({
        type: 'not_editable',
        location: ['body', key],
        message: `${show(key)} is managed by Sluice and cannot be written (got ${show(value)}); send user fields only`,
      });
    } else if (vectorNames.includes(key)) {
      if (value === null) removeVectors.push(key);
      else if (!Array.isArray(value) || value.length === 0 || value.length > MAX_VECTOR_LENGTH || !value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        issues.push({
          type: 'invalid_vector',
          location: ['body', key],
          message: `vector field ${show(key)} takes a non-empty array of at most ${MAX_VECTOR_LENGTH} finite numbers, or null to remove it (got ${show(value)})`,
        });
      } else setField(vectors, key, value);
    } else setField(fields, key, value);
  }
  if (issues.length > 0) throw validationFailed(issues);
  return { fields, vectors, removeVectors };
}

/**
 * PATCH merges the body into the document's fields key by key (vector fields into its vectors); PUT replaces
 * the user fields with the body and replaces the vectors it names, keeping the others (a client that read
 * the document without `return_vectors` and writes it back must not wipe its embeddings).
 */
export async function writeDocument(
  q: Queryable,
  scope: CollectionScope,
  collectionIdentifier: string,
  documentId: string,
  body: DocumentFieldsRequest,
  mode: 'merge' | 'replace',
): Promise<DocumentResponse> {
  const collection = await requireCollection(q, scope, collectionIdentifier);
  const { fields, vectors, removeVectors } = splitBody(body, vectorFieldNames(collection.output_schema));
  const rows = await q.query<DocumentRow>(
    `UPDATE documents d SET
       fields = ${mode === 'merge' ? 'd.fields || $4::jsonb' : '$4::jsonb'},
       vectors = NULLIF((coalesce(d.vectors, '{}'::jsonb) || $5::jsonb) - $6::text[], '{}'::jsonb),
       updated_at = GREATEST(now(), d.updated_at + interval '1 millisecond')
     WHERE d.id = $1 AND d.collection_id = $2 AND d.organization_id = $3
     RETURNING ${DOCUMENT_COLUMNS}`,
    [documentId, collection.id, collection.organization_id, JSON.stringify(fields), JSON.stringify(vectors), removeVectors],
  );
  if (!rows[0]) throw notFound('document', documentId);
  return toDocumentResponse(rows[0]);
}

/**
 * Deletes one document. Documents made from it by downstream collections stay (their lineage keeps its id);
 * a re-run of the batch makes it again.
 */
export async function deleteDocument(
  q: Queryable,
  scope: CollectionScope,
  collectionIdentifier: string,
  documentId: string,
): Promise<{ success: boolean; message: string; document_id: string; collection_id: string }> {
  const collection = await requireCollection(q, scope, collectionIdentifier);
  const rows = await q.query<{ id: string }>(
    'DELETE FROM documents WHERE id = $1 AND collection_id = $2 AND organization_id = $3 RETURNING id',
    [documentId, collection.id, collection.organization_id],
  );
  if (!rows[0]) throw notFound('document', documentId);
  return { success: true, message: `document ${documentId} deleted`, document_id: documentId, collection_id: collection.id };
}

interface Ancestor {
  document_id: string;
  collection_id: string | null;
  feature_extractor_id: string | null;
  timestamp: string | null;
  exists: boolean;
}

/**
 * A document's lineage: the stored lineage and its ancestor documents, root first, from the lineage
 * `chain` (each step but the document's own), each marked whether it still exists. One statement.
 */
export async function getLineage(
  q: Queryable,
  scope: CollectionScope,
  collectionIdentifier: string,
  documentId: string,
): Promise<DocumentLineageResponse> {
  const collection = await requireCollection(q, scope, collectionIdentifier);
  const rows = await q.query<{ id: string; collection_id: string; lineage: DocumentLineage; ancestors: Ancestor[] }>(
    `SELECT d.id, d.collection_id, d.lineage,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'document_id', s.step ->> 'document_id',
                 'collection_id', s.step ->> 'collection_id',
                 'feature_extractor_id', s.step ->> 'feature_extractor_id',
                 'timestamp', s.step ->> 'timestamp',
                 'exists', EXISTS (SELECT 1 FROM documents a
                                   WHERE a.id = s.step ->> 'document_id' AND a.organization_id = d.organization_id))
               ORDER BY s.n), '[]'::jsonb)
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d.lineage -> 'chain') = 'array' THEN d.lineage -> 'chain' ELSE '[]'::jsonb END)
             WITH ORDINALITY AS s(step, n)
        WHERE jsonb_typeof(s.step) = 'object' AND s.step ->> 'document_id' IS NOT NULL
          AND s.step ->> 'document_id' <> d.id) AS ancestors
     FROM documents d WHERE d.id = $1 AND d.collection_id = $2 AND d.organization_id = $3`,
    [documentId, collection.id, collection.organization_id],
  );
  const row = rows[0];
  if (!row) throw notFound('document', documentId);
  return {
    document_id: row.id,
    collection_id: row.collection_id,
    lineage: row.lineage as DocumentLineage & Record<string, unknown>,
    ancestors: row.ancestors,
    ancestor_document_ids: row.ancestors.map((a) => a.document_id),
    depth: row.ancestors.length,
  };
}
