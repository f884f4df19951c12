import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AppDeps } from '../http/app.js';
import { ListQuery, paginate, startOffset } from '../http/pagination.js';
import {
  CreateNamespaceRequest,
  ListNamespacesRequest,
  ListNamespacesResponse,
  NamespaceIdentifierParams,
  NamespaceModel,
  PatchNamespaceRequest,
  UpdateNamespaceRequest,
} from './schema.js';
import { createNamespace, deleteNamespace, getNamespace, listNamespaces, updateNamespace } from './service.js';

const DeleteNamespaceResponse = z.object({
  success: z.boolean(),
  message: z.string(),
  namespace_id: z.string(),
  namespace_name: z.string(),
});

/** `/v1/namespaces…`: create, read, update, delete and list namespaces of the caller's organization. */
export function namespaceRoutes(app: FastifyInstance, { db, blobs }: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Namespaces'];

  r.post('/v1/namespaces', {
    config: { permission: 'write' },
    schema: { tags, summary: 'Create Namespace', body: CreateNamespaceRequest, response: { 200: NamespaceModel } },
    handler: (req) => createNamespace(db, req.auth.organizationId, req.body),
  });

  r.post('/v1/namespaces/list', {
    config: { permission: 'read' },
    schema: {
      tags,
      summary: 'List Namespaces',
      querystring: ListQuery,
      body: ListNamespacesRequest,
      response: { 200: ListNamespacesResponse },
    },
    handler: async (req) => {
      const offset = startOffset(req.query);
      const { rows, total } = await listNamespaces(db, req.auth.organizationId, req.body, {
        offset,
        limit: req.query.limit,
      });
      return { results: rows, pagination: paginate(offset, req.query.limit, rows.length, total), total_count: total };
    },
  });

  r.get('/v1/namespaces/:namespace_identifier', {
    config: { permission: 'read' },
    schema: { tags, summary: 'Get Namespace (by name or id)', params: NamespaceIdentifierParams, response: { 200: NamespaceModel } },
    handler: (req) => getNamespace(db, req.auth.organizationId, req.params.namespace_identifier),
  });

  r.put('/v1/namespaces/:namespace_identifier', {
    config: { permission: 'write' },
    schema: {
      tags,
      summary: 'Update Namespace',
      params: NamespaceIdentifierParams,
      body: UpdateNamespaceRequest,
      response: { 200: NamespaceModel },
    },
    handler: (req) => updateNamespace(db, req.auth.organizationId, req.params.namespace_identifier, req.body),
  });

  r.patch('/v1/namespaces/:namespace_identifier', {
    config: { permission: 'write' },
    schema: {
      tags,
      summary: 'Patch Namespace',
      params: NamespaceIdentifierParams,
      body: PatchNamespaceRequest,
      response: { 200: NamespaceModel },
    },
    handler: (req) => updateNamespace(db, req.auth.organizationId, req.params.namespace_identifier, req.body),
  });

  r.delete('/v1/namespaces/:namespace_identifier', {
    config: { permission: 'delete' },
    schema: { tags, summary: 'Delete Namespace', params: NamespaceIdentifierParams, response: { 200: DeleteNamespaceResponse } },
    handler: async (req) => {
      const ns = await deleteNamespace(db, req.auth.organizationId, req.params.namespace_identifier);
      // Rows went with the namespace (foreign keys); its blobs live under one prefix of the blob store.
      await blobs.deletePrefix(`${req.auth.organizationId}/${ns.id}`);
      return {
        success: true,
        message: `namespace ${ns.name} deleted`,
        namespace_id: ns.id,
        namespace_name: ns.name,
      };
    },
  });
}
