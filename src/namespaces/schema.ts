import { z } from 'zod';
import { PaginationResponse } from '../http/pagination.js';

/**
 * Namespace names appear in URLs and the `X-Namespace` header, so they are restricted to URL-safe
 * characters; an `ns_` prefix is reserved for ids so that a name can never shadow one.
 */
export const NamespaceName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must start with a letter or digit and hold only letters, digits, _ . -')
  .refine((v) => !v.startsWith('ns_'), 'must not start with ns_ (reserved for namespace ids)');

export const FeatureExtractorInput = z.object({
  feature_extractor_name: z.string().min(1),
  version: z.string().min(1),
  params: z.record(z.string(), z.unknown()).nullish(),
});

export const FeatureExtractorOutput = FeatureExtractorInput.extend({
  feature_extractor_id: z.string(),
});

export const PayloadIndexConfig = z.object({
  field_name: z.string().min(1).max(255),
  type: z.enum(['keyword', 'integer', 'float', 'bool', 'geo', 'datetime', 'text', 'uuid']),
  field_schema: z.record(z.string(), z.unknown()).nullish(),
  is_protected: z.boolean().default(false),
});

/** Mixpeek: a payload index's field_name "must be unique within the namespace". */
const PayloadIndexes = z.array(PayloadIndexConfig).superRefine((indexes, ctx) => {
  const seen = new Set<string>();
  indexes.forEach((index, i) => {
    if (seen.has(index.field_name)) {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'field_name'],
        input: index.field_name,
        message: 'field_name must be unique within the namespace',
      });
    }
    seen.add(index.field_name);
  });
});

/** Stored and echoed as given: Sluice runs no Ray or Qdrant, so these settings change nothing here. */
const Infrastructure = z.record(z.string(), z.unknown());

export const CreateNamespaceRequest = z.object({
  namespace_name: NamespaceName,
  namespace_type: z.enum(['standard', 'marketplace']).nullish(),
  description: z.string().max(2000).nullish(),
  feature_extractors: z.array(FeatureExtractorInput).min(1),
  payload_indexes: PayloadIndexes.nullish(),
  auto_create_indexes: z.boolean().nullish(),
  infrastructure: Infrastructure.nullish(),
});

export const UpdateNamespaceRequest = z.object({
  namespace_name: NamespaceName.nullish(),
  payload_indexes: PayloadIndexes.nullish(),
});

export const PatchNamespaceRequest = z.object({
  namespace_name: NamespaceName.nullish(),
  description: z.string().max(2000).nullish(),
  payload_indexes: PayloadIndexes.nullish(),
  auto_create_indexes: z.boolean().nullish(),
  infrastructure: Infrastructure.nullish(),
});

export const NamespaceModel = z.object({
  namespace_id: z.string(),
  namespace_name: z.string(),
  namespace_type: z.enum(['standard', 'marketplace']),
  infrastructure: Infrastructure.nullable(),
  cluster_id: z.string().nullable(),
  description: z.string().nullable(),
  feature_extractors: z.array(FeatureExtractorOutput),
  payload_indexes: z.array(PayloadIndexConfig).nullable(),
  document_count: z.number().int().nullable(),
  bucket_count: z.number().int().nullable(),
  collection_count: z.number().int().nullable(),
  object_count: z.number().int().nullable(),
  auto_create_indexes: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type NamespaceModel = z.infer<typeof NamespaceModel>;

const SortSpec = z.object({
  field: z.enum(['namespace_name', 'namespace_id', 'created_at', 'updated_at']).default('created_at'),
  direction: z.enum(['asc', 'desc']).default('desc'),
});

export const ListNamespacesRequest = z
  .object({
    filters: z.record(z.string(), z.unknown()).nullish(),
    sort: SortSpec.nullish(),
    search: z.string().nullish(),
    case_sensitive: z.boolean().default(false),
  })
  .default({ case_sensitive: false });

export const ListNamespacesResponse = z.object({
  results: z.array(NamespaceModel),
  pagination: PaginationResponse,
  total_count: z.number().int(),
});

export const NamespaceIdentifierParams = z.object({ namespace_identifier: z.string().min(1).max(200) });
