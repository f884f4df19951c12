import type { BucketSchemaField } from '../buckets/bucket-schema.js';
import { notFound } from '../errors/registry.js';
import type { Extractor, ExtractorRegistry } from '../extractors/extractor.js';
import { describeExtractor } from '../extractors/registry.js';
import type { CollectionRow } from './service.js';
import type { FeatureExtractorResponseModel } from './schema.js';

/** One catalogue entry (Mixpeek's `FeatureExtractorResponseModel`) for a registered extractor. */
export function catalogueEntry(extractor: Extractor): FeatureExtractorResponseModel {
  return describeExtractor(extractor);
}

export function listCatalogue(registry: ExtractorRegistry): FeatureExtractorResponseModel[] {
  return [...registry.values()].sort((a, b) => a.id.localeCompare(b.id)).map(catalogueEntry);
}

export function getCatalogueEntry(registry: ExtractorRegistry, id: string): FeatureExtractorResponseModel {
  const extractor = registry.get(id);
  if (!extractor) throw notFound('feature extractor', id);
  return catalogueEntry(extractor);
}

const isVector = (field: BucketSchemaField) =>
  field.type === 'array' && (field.items?.type === 'float' || field.items?.type === 'number');

/**
 * A collection's searchable features: its output fields that hold vectors (arrays of floats). Dimensions
 * depend on the embedding model and are not known from the schema, so they are `null`.
 */
export function describeFeatures(row: Pick<CollectionRow, 'feature_extractor' | 'output_schema'>): {
  features: {
    feature_address: string;
    feature_extractor_name: string;
    version: string;
    vector_index: {
      name: string | null;
      description: string;
      dimensions: number | null;
      type: string;
      distance: string | null;
      datatype: string | null;
      inference_name: string | null;
    };
    primary: boolean;
  }[];
} {
  const fe = row.feature_extractor;
  const vectors = Object.entries(row.output_schema.properties).filter(([, field]) => isVector(field));
  return {
    features: vectors.map(([name, field], i) => ({
      feature_address: `mixpeek://${fe.feature_extractor_name}@${fe.version}/${name}`,
      feature_extractor_name: fe.feature_extractor_name,
      version: fe.version,
      vector_index: {
        name,
        description: field.description ?? `Dense vector ${name} produced by ${fe.feature_extractor_id}`,
        dimensions: null,
        type: 'dense',
        distance: 'cosine',
        datatype: 'float32',
        inference_name: null,
      },
      primary: i === 0,
    })),
  };
}
