import { z } from 'zod';
import { BucketSchema } from '../buckets/bucket-schema.js';
import { ListQuery, PaginationResponse, SortOption } from '../http/pagination.js';

/**
 * Collection names appear in URLs (`/v1/collections/{collection_identifier}`): URL-safe characters only,
 * 3–100 long as Mixpeek's `CollectionResponse` declares, and no `col_` prefix, which is reserved for ids so
 * that a name never shadows one.
 */
export const CollectionName = z
  .string()
  .min(3)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must start with a letter or digit and hold only letters, digits, _ . -')
  .refine((v) => !v.startsWith('col_'), 'must not start with col_ (reserved for collection ids)');

const Description = z.string().max(2000);
const Metadata = z.record(z.string(), z.unknown());
const Identifier = z.string().min(1).max(200);

/** Mixpeek's `SourceConfig`. Only bucket and collection sources exist here (no taxonomies or clusters). */
export const SourceConfigInput = z.object({
  type: z.enum(['bucket', 'collection']),
  bucket_ids: z.array(Identifier).min(1).max(100).nullish(),
  collection_id: Identifier.nullish(),
  collection_ids: z.array(Identifier).min(1).max(100).nullish(),
  inherited_bucket_ids: z.array(z.string()).nullish(),
  source_filters: z.record(z.string(), z.unknown()).nullish(),
});
export type SourceConfigInput = z.infer<typeof SourceConfigInput>;

export const SourceConfigOutput = z.object({
  type: z.enum(['bucket', 'collection']),
  bucket_ids: z.array(z.string()).nullable(),
  collection_id: z.string().nullable(),
  collection_ids: z.array(z.string()).nullable(),
  inherited_bucket_ids: z.array(z.string()).nullable(),
  source_filters: z.record(z.string(), z.unknown()).nullable(),
});
export type SourceConfigOutput = z.infer<typeof SourceConfigOutput>;

/** Mixpeek's `InputMapping`: where one extractor input comes from. */
export const InputMapping = z.object({
  input_key: z.string().min(1).max(128),
  source_type: z.enum(['payload', 'literal', 'vector']).nullish(),
  path: z.string().min(1).max(1000).nullish(),
  override: z.unknown().optional(),
});
export type InputMapping = z.infer<typeof InputMapping>;

/** Mixpeek's `FieldPassthrough`. */
export const FieldPassthrough = z.object({
  source_path: z.string().min(1).max(1000),
  target_path: z.string().min(1).max(1000).nullish(),
  default: z.unknown().optional(),
  required: z.boolean().default(false),
});
export type FieldPassthrough = z.infer<typeof FieldPassthrough>;

export const InputMappings = z.union([z.record(z.string(), z.string()), z.array(InputMapping).max(100)]);

export const FeatureExtractorConfigInput = z.object({
  feature_extractor_name: z.string().min(1).max(128),
  version: z.string().min(1).max(32),
  params: z.record(z.string(), z.unknown()).nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  input_mappings: InputMappings.nullish(),
  field_passthrough: z.array(FieldPassthrough).max(500).nullish(),
  include_all_source_fields: z.boolean().default(false),
});
export type FeatureExtractorConfigInput = z.infer<typeof FeatureExtractorConfigInput>;

export const FeatureExtractorConfigOutput = z.object({
  feature_extractor_name: z.string(),
  version: z.string(),
  feature_extractor_id: z.string(),
  params: z.record(z.string(), z.unknown()).nullable(),
  parameters: z.record(z.string(), z.unknown()).nullable(),
  input_mappings: InputMappings.nullable(),
  field_passthrough: z.array(FieldPassthrough),
  include_all_source_fields: z.boolean(),
});
export type FeatureExtractorConfigOutput = z.infer<typeof FeatureExtractorConfigOutput>;

/**
 * Mixpeek fields Sluice does not implement (schedules, taxonomies, clusters, alerts, enrichments). Accepting
 * them silently would let a client believe they run, so a non-empty value is refused with the reason.
 */
const unsupported = (field: string) =>
  z
    .unknown()
    .refine((v) => v === undefined || v === null || (Array.isArray(v) && v.length === 0), `${field} is not supported by Sluice`)
    .optional()
    .meta({ description: `Not supported by Sluice: send null or omit it.` });

export const CreateCollectionRequest = z.object({
  collection_name: CollectionName,
  description: Description.nullish(),
  source: SourceConfigInput,
  input_schema: BucketSchema.nullish(),
  feature_extractor: FeatureExtractorConfigInput,
  enabled: z.boolean().default(true),
  metadata: Metadata.nullish(),
  schedule: unsupported('schedule'),
  taxonomy_applications: unsupported('taxonomy_applications'),
  cluster_applications: unsupported('cluster_applications'),
  alert_applications: unsupported('alert_applications'),
  retriever_enrichments: unsupported('retriever_enrichments'),
});
export type CreateCollectionRequest = z.infer<typeof CreateCollectionRequest>;

/**
 * Changing the source or extractor would change what existing documents mean (and could make a
 * collection its own ancestor); Mixpeek's PATCH takes free-form updates, Sluice refuses these with the reason.
 */
const immutable = (field: string) =>
  z
    .unknown()
    .refine((v) => v === undefined, `${field} cannot be changed after the collection is created; create a new collection`)
    .optional()
    .meta({ description: `Not accepted: ${field} is fixed when the collection is created.` });

export const PatchCollectionRequest = z.object({
  collection_name: CollectionName.nullish(),
  description: Description.nullish(),
  metadata: Metadata.nullish(),
  enabled: z.boolean().nullish(),
  source: immutable('source'),
  feature_extractor: immutable('feature_extractor'),
  input_schema: immutable('input_schema'),
  output_schema: immutable('output_schema'),
});
export type PatchCollectionRequest = z.infer<typeof PatchCollectionRequest>;

export const CollectionResponse = z.object({
  collection_id: z.string(),
  collection_name: z.string(),
  description: z.string().nullable(),
  input_schema: BucketSchema,
  output_schema: BucketSchema,
  feature_extractor: FeatureExtractorConfigOutput,
  source: SourceConfigOutput,
  source_bucket_schemas: z.record(z.string(), BucketSchema).nullable(),
  source_lineage: z.array(z.unknown()),
  vector_indexes: z.array(z.unknown()),
  payload_indexes: z.array(z.unknown()),
  enabled: z.boolean(),
  metadata: Metadata.nullable(),
  schedule: z.null(),
  trigger_id: z.null(),
  created_at: z.string().nullable(),
  updated_at: z.string().nullable(),
  document_count: z.number().int().nullable(),
  schema_version: z.number().int(),
  last_schema_sync: z.string().nullable(),
  schema_sync_enabled: z.boolean(),
  taxonomy_applications: z.array(z.unknown()).nullable(),
  cluster_applications: z.array(z.unknown()).nullable(),
  alert_applications: z.array(z.unknown()).nullable(),
  retriever_enrichments: z.array(z.unknown()).nullable(),
  taxonomy_count: z.number().int().nullable(),
  retriever_count: z.number().int().nullable(),
});
export type CollectionResponse = z.infer<typeof CollectionResponse>;

export const ListCollectionsRequest = z
  .object({
    filters: z.record(z.string(), z.unknown()).nullish(),
    sort: SortOption.nullish(),
    search: z.string().max(1000).nullish(),
    case_sensitive: z.boolean().default(false),
  })
  .default({ case_sensitive: false });

/** Mixpeek's collection list pages 10 at a time by default; the rest is every list's query. */
export const ListCollectionsQuery = ListQuery.extend({
  limit: z.coerce.number().int().min(1).max(1000).default(10),
});

export const CollectionListStats = z.object({
  total_documents: z.number().int(),
  avg_documents_per_collection: z.number(),
  collections_with_taxonomies: z.number().int(),
  total_feature_extractors: z.number().int(),
  total_taxonomies: z.number().int(),
  total_retrievers: z.number().int(),
});

export const ListCollectionsResponse = z.object({
  results: z.array(CollectionResponse),
  pagination: PaginationResponse,
  total_count: z.number().int(),
  stats: CollectionListStats.nullable(),
});

/** What `DELETE /v1/collections/{collection_identifier}` answers (Mixpeek publishes no shape). */
export const DeleteCollectionResponse = z.object({
  success: z.boolean(),
  collection_id: z.string(),
  collection_name: z.string(),
  message: z.string(),
});

export const VectorIndex = z.object({
  name: z.string().nullable(),
  description: z.string(),
  dimensions: z.number().int().nullable(),
  type: z.string(),
  distance: z.string().nullable(),
  datatype: z.string().nullable(),
  inference_name: z.string().nullable(),
});

export const CollectionFeatureDescriptor = z.object({
  feature_address: z.string(),
  feature_extractor_name: z.string(),
  version: z.string(),
  vector_index: VectorIndex,
  primary: z.boolean(),
});

export const DescribeCollectionFeaturesResponse = z.object({ features: z.array(CollectionFeatureDescriptor) });

/** Mixpeek's `FeatureExtractorResponseModel`: one entry of the extractor catalogue. */
export const FeatureExtractorResponseModel = z.object({
  feature_extractor_name: z.string(),
  version: z.string(),
  feature_extractor_id: z.string(),
  description: z.string(),
  icon: z.string(),
  source: z.enum(['builtin', 'custom', 'community']),
  input_schema: z.record(z.string(), z.unknown()),
  output_schema: z.record(z.string(), z.unknown()),
  parameter_schema: z.record(z.string(), z.unknown()).nullable(),
  supported_input_types: z.array(z.string()),
  max_inputs: z.record(z.string(), z.number().int()),
  default_parameters: z.record(z.string(), z.unknown()),
  costs: z.null(),
  required_vector_indexes: z.array(z.unknown()).nullable(),
  required_payload_indexes: z.array(z.unknown()).nullable(),
  position_fields: z.array(z.string()),
});
export type FeatureExtractorResponseModel = z.infer<typeof FeatureExtractorResponseModel>;

export const CollectionIdentifierParams = z.object({ collection_identifier: Identifier });
export const FeatureExtractorIdParams = z.object({ feature_extractor_id: Identifier });
