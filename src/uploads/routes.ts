import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { requireBucket } from '../buckets/service.js';
import { type ApiError, validationFailed } from '../errors/registry.js';
import type { AppDeps } from '../http/app.js';
import { paginate, startOffset } from '../http/pagination.js';
import { zodValidatorCompiler } from '../http/zod-validator.js';
import {
  BatchConfirmItem,
  BatchConfirmRequest,
  BatchConfirmResponse,
  BatchUploadRequest,
  BatchUploadResponse,
  BucketParams,
  BucketUploadParams,
  ConfirmQuery,
  ConfirmUploadRequest,
  ConfirmUploadResponse,
  ContentParams,
  ContentQuery,
  ContentResponse,
  CreateUploadRequest,
  DeleteUploadQuery,
  GetUploadQuery,
  ListUploadsQuery,
  ListUploadsRequest,
  ListUploadsResponse,
  UploadResponse,
} from './schema.js';
import {
  cancelUpload,
  confirmUpload,
  confirmUploadBatch,
  createUploads,
  getUpload,
  type ItemResult,
  listUploads,
  receiveUploadContent,
} from './service.js';

const scopeOf = (req: FastifyRequest) => ({ organizationId: req.auth.organizationId, namespaceId: req.namespace.id });

/**
 * Validates one item of a batch body with the same compiler as whole bodies, so a refused item carries the
 * same 422 (naming field and value) as a single request would, located at `body.<list>.<index>`.
 */
function parseItem<S extends z.ZodType>(schema: S, list: string) {
  const validate = zodValidatorCompiler({ schema, method: 'POST', url: '', httpPart: 'body' });
  return (raw: unknown, index: number): ItemResult<z.infer<S>> => {
    const result = validate(raw) as { value?: z.infer<S>; error?: ApiError };
    if (!result.error) return { ok: true, value: result.value as z.infer<S> };
    const issues = (result.error.details?.validation_errors ?? []) as { type: string; location: (string | number)[]; message: string }[];
    return {
      ok: false,
      error: validationFailed(issues.map((i) => ({ ...i, location: ['body', list, index, ...i.location.slice(1)] }))),
    };
  };
}

/**
 * Base of the upload URLs Sluice hands out: the configured public URL, or the address this request came
 * to (right for direct access; behind a proxy, set the public URL).
 */
const baseUrlOf = (deps: AppDeps, req: FastifyRequest): string => deps.publicUrl ?? `${req.protocol}://${req.host}`;

/** `/v1/buckets/{bucket}/uploads…` and the upload URL itself, `PUT /v1/uploads/{upload_id}/content`. */
export function uploadRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { db } = deps;
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Bucket Uploads'];
  const namespaced = { namespaced: true } as const;

  r.post('/v1/buckets/:bucket_identifier/uploads', {
    config: { permission: 'write', ...namespaced },
    schema: {
      tags,
      summary: 'Create Upload',
      description:
        'Creates an upload and answers a `presigned_url` on this server: PUT the file there (streamed to storage), then confirm.',
      params: BucketParams,
      body: CreateUploadRequest,
      response: { 200: UploadResponse },
    },
    handler: async (req) => {
      const bucket = await requireBucket(db, scopeOf(req), req.params.bucket_identifier);
      const [result] = await createUploads(deps, scopeOf(req), bucket, [req.body], baseUrlOf(deps, req), () => ['body']);
      if (!result!.ok) throw result!.error;
      return result!.value;
    },
  });

  const parseUpload = parseItem(CreateUploadRequest, 'uploads');
  r.post('/v1/buckets/:bucket_identifier/uploads/batch', {
    config: { permission: 'write', ...namespaced },
    schema: {
      tags,
      summary: 'Batch Create Uploads',
      description:
        'Up to 100 uploads. `shared_metadata` / `shared_object_metadata` are merged under each item (the item wins). ' +
        'Items that are refused are listed in `errors` (index and envelope error); the others are created.',
      params: BucketParams,
      body: BatchUploadRequest,
      response: { 200: BatchUploadResponse },
    },
    handler: async (req) => {
      const bucket = await requireBucket(db, scopeOf(req), req.params.bucket_identifier);
      const { uploads, shared_metadata, shared_object_metadata } = req.body;
      const parsed = uploads.map((raw, i) => parseUpload(raw, i));
      const valid: { index: number; item: CreateUploadRequest }[] = [];
      for (const [index, p] of parsed.entries()) {
        if (!p.ok) continue;
        const item = p.value;
        valid.push({
          index,
          item: {
            ...item,
            metadata: { ...shared_metadata, ...item.metadata },
            object_metadata:
              shared_object_metadata || item.object_metadata ? { ...shared_object_metadata, ...item.object_metadata } : item.object_metadata,
          },
        });
      }
      const created = await createUploads(
        deps,
        scopeOf(req),
        bucket,
        valid.map((v) => v.item),
        baseUrlOf(deps, req),
        (i) => ['body', 'uploads', valid[i]!.index],
      );
      const results = new Map(valid.map((v, i) => [v.index, created[i]!]));
      const answers: z.infer<typeof UploadResponse>[] = [];
      const errors: z.infer<typeof BatchUploadResponse>['errors'] = [];
      parsed.forEach((p, index) => {
        const result = p.ok ? results.get(index)! : p;
        if (result.ok) answers.push(result.value);
        else {
          const raw = uploads[index]!;
          errors.push({
            index,
            upload_id: null,
            filename: typeof raw.filename === 'string' ? raw.filename : null,
            error: { type: result.error.type, status: result.error.status, message: result.error.message, details: result.error.details },
          });
        }
      });
      return { uploads: answers, total: answers.length, errors };
    },
  });

  r.post('/v1/buckets/:bucket_identifier/uploads/list', {
    config: { permission: 'read', ...namespaced },
    schema: {
      tags,
      summary: 'List Uploads',
      params: BucketParams,
      querystring: ListUploadsQuery,
      body: ListUploadsRequest,
      response: { 200: ListUploadsResponse },
    },
    handler: async (req) => {
      const bucket = await requireBucket(db, scopeOf(req), req.params.bucket_identifier);
      const limit = req.query.limit ?? req.body.limit;
      const offset = req.query.cursor
        ? startOffset({ ...req.query, limit, offset: 0, include_total: req.query.include_total })
        : (req.query.offset ?? req.body.offset);
      const { rows, total, stats } = await listUploads(db, scopeOf(req), bucket, req.body, { offset, limit });
      return { results: rows, pagination: paginate(offset, limit, rows.length, total), stats };
    },
  });

  const parseConfirmation = parseItem(BatchConfirmItem, 'confirmations');
  r.post('/v1/buckets/:bucket_identifier/uploads/confirm/batch', {
    config: { permission: 'write', ...namespaced },
    schema: {
      tags,
      summary: 'Batch Confirm Uploads',
      description:
        'Up to 100 confirmations `{upload_id, etag?, file_size_bytes?}`. Sluice confirms them before answering; the task ' +
        '(`api_buckets_uploads_batch_confirm`) is already finished and its `outputs` hold one result per confirmation.',
      params: BucketParams,
      body: BatchConfirmRequest,
      response: { 200: BatchConfirmResponse },
    },
    handler: async (req) => {
      const bucket = await requireBucket(db, scopeOf(req), req.params.bucket_identifier);
      return confirmUploadBatch(deps, scopeOf(req), bucket, req.body.confirmations, parseConfirmation);
    },
  });

  r.get('/v1/buckets/:bucket_identifier/uploads/:upload_id', {
    config: { permission: 'read', ...namespaced },
    schema: { tags, summary: 'Get Upload', params: BucketUploadParams, querystring: GetUploadQuery, response: { 200: UploadResponse } },
    handler: async (req) => {
      const bucket = await requireBucket(db, scopeOf(req), req.params.bucket_identifier);
      return getUpload(db, scopeOf(req), bucket, req.params.upload_id);
    },
  });

  r.delete('/v1/buckets/:bucket_identifier/uploads/:upload_id', {
    config: { permission: 'delete', ...namespaced },
    schema: { tags, summary: 'Delete Upload', params: BucketUploadParams, querystring: DeleteUploadQuery },
    handler: async (req, reply) => {
      const bucket = await requireBucket(db, scopeOf(req), req.params.bucket_identifier);
      await cancelUpload(deps, scopeOf(req), bucket, req.params.upload_id, req.query.delete_s3_object);
      return reply.code(204).send();
    },
  });

  r.post('/v1/buckets/:bucket_identifier/uploads/:upload_id/confirm', {
    config: { permission: 'write', ...namespaced },
    schema: {
      tags,
      summary: 'Confirm Upload',
      params: BucketUploadParams,
      querystring: ConfirmQuery,
      body: ConfirmUploadRequest,
      response: { 200: ConfirmUploadResponse },
    },
    handler: async (req) => {
      const bucket = await requireBucket(db, scopeOf(req), req.params.bucket_identifier);
      return confirmUpload(deps, scopeOf(req), bucket, { upload_id: req.params.upload_id, ...req.body }, { async: req.query.async });
    },
  });

  // The upload URL takes raw bytes of any type, so it lives in its own plugin scope: no JSON parser, no
  // body limit. The catch-all parser leaves the request stream unread for the handler to pipe to storage.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    const s = scope.withTypeProvider<ZodTypeProvider>();
    s.put('/v1/uploads/:upload_id/content', {
      config: { permission: 'public' },
      schema: {
        tags,
        summary: 'Upload URL (PUT the file bytes)',
        description:
          'The `presigned_url` of an upload. Authenticated by its `token` alone. The body is the file, streamed to storage; ' +
          'its size and SHA-256 are checked against `file_size_bytes` / `file_hash` when those were given. Answers the ETag to confirm with.',
        security: [],
        params: ContentParams,
        querystring: ContentQuery,
        response: { 200: ContentResponse },
      },
      handler: async (req, reply) => {
        const length = req.headers['content-length'];
        const contentLength = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
        try {
          const received = await receiveUploadContent(deps, {
            uploadId: req.params.upload_id,
            token: req.query.token,
            // Not destroyed when storage stops reading early (a refused or oversize body): the error
            // answer still reaches the client, and Node discards the rest of the body.
            source: req.raw.iterator({ destroyOnReturn: false }),
            contentLength,
            contentType: req.headers['content-type'],
          });
          return reply.header('etag', received.etag).send(received);
        } catch (err) {
          // The body may be unread: this connection cannot carry another request.
          reply.header('connection', 'close');
          throw err;
        }
      },
    });
  });
}
