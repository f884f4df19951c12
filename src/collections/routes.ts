import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ExtractorRegistry } from '../extractors/extractor.js';
import type { AppDeps } from '../http/app.js';
import { paginate, startOffset } from '../http/pagination.js';
import { describeFeatures, getCatalogueEntry, listCatalogue } from './catalogue.js';
import {
  CollectionIdentifierParams,
  CollectionResponse,
  CreateCollectionRequest,
  DeleteCollectionResponse,
  DescribeCollectionFeaturesResponse,
  FeatureExtractorIdParams,
  FeatureExtractorResponseModel,
  ListCollectionsQuery,
  ListCollectionsRequest,
  ListCollectionsResponse,
  PatchCollectionRequest,
} from './schema.js';
import { createCollection, deleteCollection, getCollection, listCollections, requireCollection, updateCollection } from './service.js';

/**
 * `/v1/collections…`: create, read, update, delete and list the collections of the request's namespace, and
 * the catalogue of extractors this server runs. The registry is passed in (not part of AppDeps yet).
 */
export function collectionRoutes(app: FastifyInstance, { db }: Pick<AppDeps, 'db'>, registry: ExtractorRegistry): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Collections'];
  const scopeOf = (req: { auth: { organizationId: string }; namespace: { id: string } }) => ({
    organizationId: req.auth.organizationId,
    namespaceId: req.namespace.id,
  });

  r.post('/v1/collections', {
    config: { permission: 'write', namespaced: true },
    schema: { tags, summary: 'Create Collection', body: CreateCollectionRequest, response: { 200: CollectionResponse } },
    handler: (req) => createCollection(db, registry, scopeOf(req), req.body),
  });

  r.post('/v1/collections/list', {
    config: { permission: 'read', namespaced: true },
    schema: {
      tags,
      summary: 'List Collections',
      querystring: ListCollectionsQuery,
      body: ListCollectionsRequest,
      response: { 200: ListCollectionsResponse },
    },
    handler: async (req) => {
      const limit = req.query.limit;
      const offset = startOffset(req.query);
      const { rows, total, totalDocuments } = await listCollections(db, scopeOf(req), req.body, { offset, limit });
      return {
        results: rows,
        total_count: total,
        pagination: paginate(offset, limit, rows.length, total),
        stats: {
          // Over the whole match, not the page; each collection has exactly one extractor.
          total_documents: totalDocuments,
          avg_documents_per_collection: total === 0 ? 0 : totalDocuments / total,
          collections_with_taxonomies: 0,
          total_feature_extractors: total,
          total_taxonomies: 0,
          total_retrievers: 0,
        },
      };
    },
  });

  // The catalogue does not depend on a namespace: every namespace sees the extractors the server runs.
  r.get('/v1/collections/features/extractors', {
    config: { permission: 'read' },
    schema: { tags, summary: 'List Feature Extractors', response: { 200: z.array(FeatureExtractorResponseModel) } },
    handler: async () => listCatalogue(registry),
  });

  r.get('/v1/collections/features/extractors/:feature_extractor_id', {
    config: { permission: 'read' },
    schema: {
      tags,
      summary: 'Get Feature Extractor',
      params: FeatureExtractorIdParams,
      response: { 200: FeatureExtractorResponseModel },
    },
    handler: async (req) => getCatalogueEntry(registry, req.params.feature_extractor_id),
  });

  r.get('/v1/collections/:collection_identifier', {
    config: { permission: 'read', namespaced: true },
    schema: { tags, summary: 'Get Collection', params: CollectionIdentifierParams, response: { 200: CollectionResponse } },
    handler: (req) => getCollection(db, scopeOf(req), req.params.collection_identifier),
  });

  r.get('/v1/collections/:collection_identifier/features', {
    config: { permission: 'read', namespaced: true },
    schema: {
      tags,
      summary: 'Describe Collection Features',
      params: CollectionIdentifierParams,
      response: { 200: DescribeCollectionFeaturesResponse },
    },
    handler: async (req) => describeFeatures(await requireCollection(db, scopeOf(req), req.params.collection_identifier)),
  });

  r.patch('/v1/collections/:collection_identifier', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Update Collection',
      params: CollectionIdentifierParams,
      body: PatchCollectionRequest,
      response: { 200: CollectionResponse },
    },
    handler: (req) => updateCollection(db, scopeOf(req), req.params.collection_identifier, req.body),
  });

  r.delete('/v1/collections/:collection_identifier', {
    config: { permission: 'delete', namespaced: true },
    schema: { tags, summary: 'Delete Collection', params: CollectionIdentifierParams, response: { 200: DeleteCollectionResponse } },
    handler: (req) => deleteCollection(db, scopeOf(req), req.params.collection_identifier),
  });
}
