import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { requireCollection } from '../collections/service.js';
import type { AppDeps } from '../http/app.js';
import { ListQuery } from '../http/pagination.js';
import { listDocuments } from './list.js';
import {
  CollectionParams,
  DeleteDocumentResponse,
  DocumentFieldsRequest,
  DocumentLineageResponse,
  DocumentParams,
  DocumentResponse,
  GetDocumentQuery,
  LineageParams,
  ListDocumentsRequest,
  ListDocumentsResponse,
} from './schema.js';
import { deleteDocument, getDocument, getLineage, writeDocument } from './service.js';

/**
 * `/v1/collections/{collection}/documents…`: read, update, patch, delete and list the documents the engine
 * wrote, and a document's lineage. Documents are made by processing only: Mixpeek's create, batch, bulk and
 * aggregate routes are not offered (404), rather than half-working.
 */
export function documentRoutes(app: FastifyInstance, { db }: Pick<AppDeps, 'db'>): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Collection Documents'];
  const scopeOf = (req: { auth: { organizationId: string }; namespace: { id: string } }) => ({
    organizationId: req.auth.organizationId,
    namespaceId: req.namespace.id,
  });

  r.post('/v1/collections/:collection_identifier/documents/list', {
    config: { permission: 'read', namespaced: true },
    schema: {
      tags,
      summary: 'List documents.',
      params: CollectionParams,
      querystring: ListQuery,
      body: ListDocumentsRequest,
      response: { 200: ListDocumentsResponse },
    },
    handler: async (req) => {
      const collection = await requireCollection(db, scopeOf(req), req.params.collection_identifier);
      return listDocuments(db, collection, req.body, req.query);
    },
  });

  r.get('/v1/collections/:collection_identifier/documents/:document_id', {
    config: { permission: 'read', namespaced: true },
    schema: { tags, summary: 'Get a document by ID.', params: DocumentParams, querystring: GetDocumentQuery, response: { 200: DocumentResponse } },
    handler: (req) =>
      getDocument(db, scopeOf(req), req.params.collection_identifier, req.params.document_id, { returnVectors: req.query.return_vectors }),
  });

  r.put('/v1/collections/:collection_identifier/documents/:document_id', {
    config: { permission: 'write', namespaced: true },
    schema: { tags, summary: 'Update Document', params: DocumentParams, body: DocumentFieldsRequest, response: { 200: DocumentResponse } },
    handler: (req) => writeDocument(db, scopeOf(req), req.params.collection_identifier, req.params.document_id, req.body, 'replace'),
  });

  r.patch('/v1/collections/:collection_identifier/documents/:document_id', {
    config: { permission: 'write', namespaced: true },
    schema: { tags, summary: 'Patch Document', params: DocumentParams, body: DocumentFieldsRequest, response: { 200: DocumentResponse } },
    handler: (req) => writeDocument(db, scopeOf(req), req.params.collection_identifier, req.params.document_id, req.body, 'merge'),
  });

  r.delete('/v1/collections/:collection_identifier/documents/:document_id', {
    config: { permission: 'delete', namespaced: true },
    schema: { tags, summary: 'Delete a document by ID.', params: DocumentParams, response: { 200: DeleteDocumentResponse } },
    handler: (req) => deleteDocument(db, scopeOf(req), req.params.collection_identifier, req.params.document_id),
  });

  r.get('/v1/collections/:collection_id/documents/:document_id/lineage', {
    config: { permission: 'read', namespaced: true },
    schema: {
      tags: ['Document Lineage'],
      summary: 'Get document lineage',
      params: LineageParams,
      response: { 200: DocumentLineageResponse },
    },
    handler: (req) => getLineage(db, scopeOf(req), req.params.collection_id, req.params.document_id),
  });
}
