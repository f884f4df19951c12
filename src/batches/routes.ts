import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AppDeps } from '../http/app.js';
import { TaskResponse } from '../tasks/schema.js';
import {
  AddObjectsToBatchRequest,
  BatchModel,
  BatchObjectsQuery,
  BatchParams,
  BucketParams,
  CreateBatchRequest,
  DeleteBatchResponse,
  BatchLogsQuery,
  BatchLogsResponse,
  FailedDocumentsQuery,
  FailedDocumentsResponse,
  ListBatchesRequest,
  ListBatchesResponse,
  PatchBatchRequest,
  RetryBatchRequest,
  RetryBatchResponse,
  RetryHeaders,
  SubmitBatchRequest,
} from './schema.js';
import {
  addObjects,
  cancelBatch,
  createBatch,
  deleteBatch,
  failedDocuments,
  getBatch,
  getBatchLogs,
  listBatches,
  retryBatch,
  submitBatch,
  updateBatch,
} from './service.js';

/**
 * `/v1/buckets/{bucket}/batches…`: create a batch of objects, add to it, submit it for processing, read,
 * list, update, cancel and delete it; list its failed units and retry them; read its processing log.
 */
export function batchRoutes(app: FastifyInstance, { db, backoff }: Pick<AppDeps, 'db' | 'backoff'>): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Bucket Batches'];
  const scopeOf = (req: { auth: { organizationId: string }; namespace: { id: string } }) => ({
    organizationId: req.auth.organizationId,
    namespaceId: req.namespace.id,
  });

  r.post('/v1/buckets/:bucket_identifier/batches', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Create Batch',
      params: BucketParams,
      querystring: BatchObjectsQuery,
      body: CreateBatchRequest,
      response: { 200: BatchModel },
    },
    handler: (req) =>
      createBatch(db, scopeOf(req), req.params.bucket_identifier, req.body, { skipValidation: req.query.skip_validation }),
  });

  r.post('/v1/buckets/:bucket_identifier/batches/list', {
    config: { permission: 'read', namespaced: true },
    schema: { tags, summary: 'List Batches', params: BucketParams, body: ListBatchesRequest, response: { 200: ListBatchesResponse } },
    handler: (req) => listBatches(db, scopeOf(req), req.params.bucket_identifier, req.body),
  });

  r.get('/v1/buckets/:bucket_identifier/batches/:batch_id', {
    config: { permission: 'read', namespaced: true },
    schema: { tags, summary: 'Get Batch Configuration', params: BatchParams, response: { 200: BatchModel } },
    handler: (req) => getBatch(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id),
  });

  r.post('/v1/buckets/:bucket_identifier/batches/:batch_id/objects', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Add Objects to Batch',
      params: BatchParams,
      querystring: BatchObjectsQuery,
      body: AddObjectsToBatchRequest,
      response: { 200: BatchModel },
    },
    handler: (req) =>
      addObjects(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id, req.body, {
        skipValidation: req.query.skip_validation,
      }),
  });

  r.post('/v1/buckets/:bucket_identifier/batches/:batch_id/submit', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Submit Batch for Processing',
      params: BatchParams,
      body: SubmitBatchRequest,
      response: { 200: TaskResponse },
    },
    handler: (req) => submitBatch(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id, req.body),
  });

  r.post('/v1/buckets/:bucket_identifier/batches/:batch_id/cancel', {
    config: { permission: 'write', namespaced: true },
    schema: { tags, summary: 'Cancel Batch', params: BatchParams, response: { 200: TaskResponse } },
    handler: (req) => cancelBatch(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id),
  });

  r.get('/v1/buckets/:bucket_identifier/batches/:batch_id/logs', {
    config: { permission: 'read', namespaced: true },
    schema: {
      tags,
      summary: 'Get Batch Logs',
      description: 'The batch\'s processing log: batch and tier transitions and every failed attempt kept in unit histories (newest 1000).',
      params: BatchParams,
      querystring: BatchLogsQuery,
      response: { 200: BatchLogsResponse },
    },
    handler: (req) => getBatchLogs(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id, req.query),
  });

  r.get('/v1/buckets/:bucket_identifier/batches/:batch_id/failed-documents', {
    config: { permission: 'read', namespaced: true },
    schema: {
      tags,
      summary: 'Get Failed Documents for Batch',
      params: BatchParams,
      querystring: FailedDocumentsQuery,
      response: { 200: FailedDocumentsResponse },
    },
    handler: (req) => failedDocuments(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id, req.query),
  });

  r.post('/v1/buckets/:bucket_identifier/batches/:batch_id/retry', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Retry Failed Documents',
      params: BatchParams,
      headers: RetryHeaders,
      body: RetryBatchRequest,
      response: { 200: RetryBatchResponse },
    },
    handler: (req) =>
      retryBatch(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id, req.body, {
        backoff,
        idempotencyKey: req.headers['idempotency-key'],
      }),
  });

  r.patch('/v1/buckets/:bucket_identifier/batches/:batch_id', {
    config: { permission: 'write', namespaced: true },
    schema: { tags, summary: 'Partially Update Batch', params: BatchParams, body: PatchBatchRequest, response: { 200: BatchModel } },
    handler: (req) => updateBatch(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id, req.body),
  });

  r.delete('/v1/buckets/:bucket_identifier/batches/:batch_id', {
    config: { permission: 'delete', namespaced: true },
    schema: { tags, summary: 'Delete Batch', params: BatchParams, response: { 200: DeleteBatchResponse } },
    handler: (req) => deleteBatch(db, scopeOf(req), req.params.bucket_identifier, req.params.batch_id),
  });
}
