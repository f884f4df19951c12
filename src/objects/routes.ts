import type { FastifyInstance, FastifyReply, FastifySchemaCompiler } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type AutoProcessOutcome, autoProcess, checkAutoProcess } from '../batches/auto-process.js';
import { requireBucket } from '../buckets/service.js';
import { type ApiError, type ValidationIssue, validationFailed } from '../errors/registry.js';
import type { AppDeps } from '../http/app.js';
import { ListQuery } from '../http/pagination.js';
import { zodValidatorCompiler } from '../http/zod-validator.js';
import { listObjects } from './list.js';
import {
  BatchObjectsQuery,
  BucketParams,
  CreateObjectQuery,
  CreateObjectRequest,
  CreateObjectsBatchRequest,
  CreateObjectsBatchResponse,
  DeleteObjectResponse,
  GetObjectQuery,
  ListObjectsRequest,
  ListObjectsResponse,
  ObjectParams,
  ObjectResponse,
  PatchObjectRequest,
  UpdateObjectRequest,
} from './schema.js';
import { type CreateObjectBody, createObject, createObjectsBatch, deleteObject, getObject, updateObject } from './service.js';

/**
 * `auto_process=true`: the batch made for the new objects is named in response headers (Mixpeek's object
 * responses have no field for it); if it could not be made, the objects stay and the reason is given instead.
 */
function reportAutoProcess(reply: FastifyReply, outcome: AutoProcessOutcome | undefined): void {
  if (!outcome) return;
  if ('error' in outcome) {
    reply.header('x-sluice-auto-process-error', outcome.error.replace(/[^\x20-\x7e]/g, '?').slice(0, 500));
  } else {
    reply.header('x-sluice-batch-id', outcome.batchId);
    reply.header('x-sluice-task-id', outcome.taskId);
  }
}

/**
 * The batch body is checked in two steps: the envelope here (an `objects` array of at most 100), each
 * object by the handler, so that one malformed object fails alone (partial success) instead of the batch.
 */
const BatchEnvelope = z.object({ objects: z.array(z.unknown()).max(100) });
const batchValidatorCompiler: FastifySchemaCompiler<z.ZodType> = (route) =>
  zodValidatorCompiler(route.httpPart === 'body' ? { ...route, schema: BatchEnvelope } : route);

/** Checks one object of a batch like a single create body; locations point into `objects[index]`. */
const checkCreateBody = zodValidatorCompiler({ schema: CreateObjectRequest, httpPart: 'body', method: 'POST', url: '' }) as (
  data: unknown,
) => { value?: CreateObjectRequest; error?: ApiError };

function checkBatchItem(data: unknown, index: number): { body?: CreateObjectBody; error?: ApiError } {
  const result = checkCreateBody(data);
  if (!result.error) return { body: result.value };
  const issues = (result.error.details?.validation_errors ?? []) as ValidationIssue[];
  return {
    error: validationFailed(
      issues.map((i) => ({ ...i, location: ['body', 'objects', index, ...i.location.slice(i.location[0] === 'body' ? 1 : 0)] })),
    ),
  };
}

/** `/v1/buckets/{bucket}/objects…`: create (one or a batch), read, update, patch, delete and list objects. */
export function objectRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Bucket Objects'];
  const { db } = deps;
  const scopeOf = (req: { auth: { organizationId: string }; namespace: { id: string } }) => ({
    organizationId: req.auth.organizationId,
    namespaceId: req.namespace.id,
  });

  r.post('/v1/buckets/:bucket_identifier/objects', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Create Object',
      params: BucketParams,
      querystring: CreateObjectQuery,
      body: CreateObjectRequest,
      response: { 200: ObjectResponse },
    },
    handler: async (req, reply) => {
      const scope = scopeOf(req);
      const bucket = await requireBucket(db, scope, req.params.bucket_identifier);
      if (req.query.auto_process) await checkAutoProcess(db, scope, bucket);
      const created = await createObject(deps, scope, bucket, req.body, req.query.policy);
      if (req.query.auto_process) reportAutoProcess(reply, await autoProcess(db, scope, bucket, [created.object_id]));
      return created;
    },
  });

  r.post('/v1/buckets/:bucket_identifier/objects/batch', {
    config: { permission: 'write', namespaced: true },
    // Fastify types a route-level compiler by the whole route schema; this one is the zod compiler.
    validatorCompiler: batchValidatorCompiler as never,
    schema: {
      tags,
      summary: 'Create Objects in Batch',
      params: BucketParams,
      querystring: BatchObjectsQuery,
      body: CreateObjectsBatchRequest,
      response: { 200: CreateObjectsBatchResponse },
    },
    handler: async (req, reply) => {
      const scope = scopeOf(req);
      const bucket = await requireBucket(db, scope, req.params.bucket_identifier);
      if (req.query.auto_process) await checkAutoProcess(db, scope, bucket);
      const raw = (req.body as unknown as { objects: unknown[] }).objects;
      const items = raw.map((data, index) => ({ index, ...checkBatchItem(data, index) }));
      const result = await createObjectsBatch(deps, scope, bucket, items, req.query.policy);
      if (req.query.auto_process) {
        reportAutoProcess(reply, await autoProcess(db, scope, bucket, result.succeeded.map((o) => o.object_id)));
      }
      return result;
    },
  });

  r.post('/v1/buckets/:bucket_identifier/objects/list', {
    config: { permission: 'read', namespaced: true },
    schema: {
      tags,
      summary: 'List Objects',
      params: BucketParams,
      querystring: ListQuery,
      body: ListObjectsRequest,
      response: { 200: ListObjectsResponse },
    },
    handler: async (req) => {
      const bucket = await requireBucket(db, scopeOf(req), req.params.bucket_identifier);
      return listObjects(db, bucket, req.body, req.query);
    },
  });

  r.get('/v1/buckets/:bucket_identifier/objects/:object_identifier', {
    config: { permission: 'read', namespaced: true },
    schema: { tags, summary: 'Get Object', params: ObjectParams, querystring: GetObjectQuery, response: { 200: ObjectResponse } },
    handler: (req) => getObject(db, scopeOf(req), req.params.bucket_identifier, req.params.object_identifier),
  });

  r.put('/v1/buckets/:bucket_identifier/objects/:object_identifier', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Update Object',
      params: ObjectParams,
      body: UpdateObjectRequest,
      response: { 200: ObjectResponse },
    },
    handler: (req) => updateObject(deps, scopeOf(req), req.params.bucket_identifier, req.params.object_identifier, req.body),
  });

  r.patch('/v1/buckets/:bucket_identifier/objects/:object_identifier', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Partially Update Object',
      params: ObjectParams,
      body: PatchObjectRequest,
      response: { 200: ObjectResponse },
    },
    handler: (req) => {
      // Mixpeek's PATCH takes user fields flat at the root; a `metadata` object is merged the same way.
      const { key_prefix, skip_duplicates: _skip, metadata, ...flat } = req.body;
      return updateObject(deps, scopeOf(req), req.params.bucket_identifier, req.params.object_identifier, {
        key_prefix,
        metadata: { ...(metadata ?? {}), ...flat },
      });
    },
  });

  r.delete('/v1/buckets/:bucket_identifier/objects/:object_identifier', {
    config: { permission: 'delete', namespaced: true },
    schema: { tags, summary: 'Delete Object', params: ObjectParams, response: { 200: DeleteObjectResponse } },
    handler: async (req) => {
      const deleted = await deleteObject(deps, scopeOf(req), req.params.bucket_identifier, req.params.object_identifier);
      return { success: true, message: `object ${deleted.id} deleted`, object_id: deleted.id, bucket_id: deleted.bucketId };
    },
  });
}
