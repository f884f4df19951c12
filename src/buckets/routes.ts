import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AppDeps } from '../http/app.js';
import { paginate, startOffset } from '../http/pagination.js';
import {
  BucketCreateRequest,
  BucketIdentifierParams,
  BucketPatchRequest,
  BucketResponse,
  BucketUpdateRequest,
  DeleteBucketResponse,
  ListBucketsQuery,
  ListBucketsRequest,
  ListBucketsResponse,
} from './schema.js';
import { createBucket, deleteBucket, getBucket, listBuckets, updateBucket } from './service.js';

/** `/v1/buckets…`: create, read, update, delete and list the buckets of the request's namespace. */
export function bucketRoutes(app: FastifyInstance, { db, blobs }: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Buckets'];
  const scopeOf = (req: { auth: { organizationId: string }; namespace: { id: string } }) => ({
    organizationId: req.auth.organizationId,
    namespaceId: req.namespace.id,
  });

  r.post('/v1/buckets', {
    config: { permission: 'write', namespaced: true },
    schema: { tags, summary: 'Create Bucket', body: BucketCreateRequest, response: { 200: BucketResponse } },
    handler: (req) => createBucket(db, scopeOf(req), req.body),
  });

  r.post('/v1/buckets/list', {
    config: { permission: 'read', namespaced: true },
    schema: {
      tags,
      summary: 'List Buckets',
      querystring: ListBucketsQuery,
      body: ListBucketsRequest,
      response: { 200: ListBucketsResponse },
    },
    handler: async (req) => {
      // Mixpeek sends limit/offset in the body; query parameters (as on Sluice's other lists) win when
      // both are given, and a cursor wins over either offset.
      const limit = req.query.limit ?? req.body.limit;
      const offset = startOffset({
        limit,
        offset: req.query.offset ?? req.body.offset,
        cursor: req.query.cursor,
        include_total: true,
      });
      const { rows, total, stats } = await listBuckets(db, scopeOf(req), req.body, { offset, limit });
      return { results: rows, total_count: total, pagination: paginate(offset, limit, rows.length, total), stats };
    },
  });

  r.get('/v1/buckets/:bucket_identifier', {
    config: { permission: 'read', namespaced: true },
    schema: { tags, summary: 'Get Bucket (by name or id)', params: BucketIdentifierParams, response: { 200: BucketResponse } },
    handler: (req) => getBucket(db, scopeOf(req), req.params.bucket_identifier),
  });

  r.put('/v1/buckets/:bucket_identifier', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Update Bucket',
      params: BucketIdentifierParams,
      body: BucketUpdateRequest,
      response: { 200: BucketResponse },
    },
    handler: (req) => updateBucket(db, scopeOf(req), req.params.bucket_identifier, req.body),
  });

  r.patch('/v1/buckets/:bucket_identifier', {
    config: { permission: 'write', namespaced: true },
    schema: {
      tags,
      summary: 'Partially Update Bucket',
      params: BucketIdentifierParams,
      body: BucketPatchRequest,
      response: { 200: BucketResponse },
    },
    handler: (req) => updateBucket(db, scopeOf(req), req.params.bucket_identifier, req.body),
  });

  r.delete('/v1/buckets/:bucket_identifier', {
    config: { permission: 'delete', namespaced: true },
    schema: {
      tags,
      summary: 'Delete Bucket',
      params: BucketIdentifierParams,
      response: { 200: DeleteBucketResponse },
    },
    handler: (req) => deleteBucket(db, blobs, scopeOf(req), req.params.bucket_identifier),
  });
}
