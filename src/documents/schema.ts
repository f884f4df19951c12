import { z } from 'zod';
import { PaginationResponse, SortOption } from '../http/pagination.js';

const BooleanQuery = z
  .enum(['true', 'false', '1', '0'])
  .transform((v) => v === 'true' || v === '1')
  .default(false);

const Identifier = z.string().min(1).max(200);

export const DocumentParams = z.object({ collection_identifier: Identifier, document_id: Identifier });
/** The lineage route names its collection `collection_id` in Mixpeek's spec (a name is accepted too). */
export const LineageParams = z.object({ collection_id: Identifier, document_id: Identifier });
export const CollectionParams = z.object({ collection_identifier: Identifier });

export const GetDocumentQuery = z.object({
  return_vectors: BooleanQuery,
  /** Accepted for compatibility: Sluice documents carry no blobs to sign. */
  return_presigned_urls: BooleanQuery,
});

/** Mixpeek's `InternalLineageModel` (extra keys pass). */
export const InternalLineage = z.looseObject({
  root_object_id: z.string().nullish(),
  root_bucket_id: z.string().nullish(),
  source_type: z.enum(['bucket', 'collection']).nullish(),
  source_object_id: z.string().nullish(),
  source_document_id: z.string().nullish(),
  source_collection_id: z.string().nullish(),
  path: z.string().nullish(),
  chain: z.array(z.record(z.string(), z.unknown())).nullish(),
});

/** Mixpeek's `InternalPayloadModel`, the fields Sluice fills. */
export const InternalPayload = z.looseObject({
  internal_id: z.string(),
  namespace_id: z.string(),
  document_id: z.string(),
  collection_id: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  lineage: InternalLineage.nullable(),
  metadata: z.looseObject({
    batch_id: z.string().nullable(),
    source_type: z.enum(['object', 'document']),
    source_id: z.string(),
    position: z.number().int(),
  }),
});

/** Mixpeek's `DocumentResponse`: user fields flat at the root beside `document_id` and `collection_id`. */
export const DocumentResponse = z.looseObject({
  document_id: z.string(),
  collection_id: z.string(),
  document_blobs: z.array(z.record(z.string(), z.unknown())),
  _internal: InternalPayload,
});
export type DocumentResponse = z.infer<typeof DocumentResponse>;

/** With `select`, a listed document holds only the chosen fields; `document_id` and `collection_id` always. */
export const ListedDocument = z.looseObject({ document_id: z.string(), collection_id: z.string() });
export type ListedDocument = z.infer<typeof ListedDocument>;

/**
 * Mixpeek's `PatchDocumentRequest` and `DocumentUpdateRequest`: any object of user fields. Which keys are
 * refused (system fields) and which are vectors is decided by the service, which knows the collection.
 */
export const DocumentFieldsRequest = z.record(z.string(), z.unknown());
export type DocumentFieldsRequest = z.infer<typeof DocumentFieldsRequest>;

/** Mixpeek's `GenericDeleteResponse`, plus the ids (as other Sluice deletes answer). */
export const DeleteDocumentResponse = z.object({
  success: z.boolean(),
  message: z.string(),
  document_id: z.string(),
  collection_id: z.string(),
});

export const ListDocumentsRequest = z
  .object({
    filters: z.record(z.string(), z.unknown()).nullish(),
    sort: SortOption.nullish(),
    search: z.string().max(1000).nullish(),
    cursor: z.string().max(200).nullish(),
    return_url: z.boolean().nullish(),
    return_vectors: z.boolean().nullish(),
    group_by: z.string().min(1).max(300).nullish(),
    select: z.array(z.string().min(1).max(300)).max(100).nullish(),
  })
  .default({});
export type ListDocumentsRequest = z.infer<typeof ListDocumentsRequest>;

export const DocumentListStats = z.object({
  total_documents: z.number().int(),
  avg_blobs_per_document: z.number(),
  total_groups: z.number().int().nullable(),
  avg_documents_per_group: z.number().nullable(),
});
export type DocumentListStats = z.infer<typeof DocumentListStats>;

export const ListDocumentsResponse = z.object({
  results: z.array(ListedDocument).nullable(),
  groups: z.null(),
  pagination: PaginationResponse,
  stats: DocumentListStats.nullable(),
  group_by_field: z.null(),
});

/** Our answer to Mixpeek's untyped lineage response: the stored lineage, the document, and its ancestors. */
export const DocumentLineageResponse = z.looseObject({
  document_id: z.string(),
  collection_id: z.string(),
  lineage: InternalLineage,
  ancestors: z.array(
    z.object({
      document_id: z.string(),
      collection_id: z.string().nullable(),
      feature_extractor_id: z.string().nullable(),
      timestamp: z.string().nullable(),
      /** Whether the ancestor document still exists (it may have been deleted or re-made since). */
      exists: z.boolean(),
    }),
  ),
  ancestor_document_ids: z.array(z.string()),
  depth: z.number().int(),
});
export type DocumentLineageResponse = z.infer<typeof DocumentLineageResponse>;
