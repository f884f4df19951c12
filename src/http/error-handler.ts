import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, envelope, ERROR_KINDS, type ErrorKind, show } from '../errors/registry.js';

const KIND_BY_STATUS = new Map<number, ErrorKind>(
  Object.entries(ERROR_KINDS).map(([kind, def]) => [def.status, kind as ErrorKind]),
);

/** Turns anything thrown into the one envelope. No input may produce a 500; only our own bugs do. */
export function toApiError(err: unknown, request: FastifyRequest, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as FastifyError & { code?: string; constraint?: string; detail?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('payload_too_large', `request body is larger than the limit of ${bodyLimit} bytes`, {
        limit_bytes: bodyLimit,
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(
        'unsupported_media_type',
        `content type ${show(request.headers['content-type'])} is not supported here; send application/json`,
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('bad_request', 'Content-Length does not match the body that was sent');
    case 'FST_ERR_BAD_URL':
      return new ApiError('bad_request', `path ${show(request.url.split('?')[0])} is not valid percent-encoded UTF-8`);
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ApiError('bad_request', `a path parameter in ${show(request.url.split('?')[0])} is too long`);
    // A unique constraint the service did not translate itself: still a conflict, never a 500.
    case '23505':
      return new ApiError('already_exists', `already exists (${e.detail ?? e.constraint ?? 'unique constraint'})`);
  }
  // PostgreSQL class 22 is "data exception": a value the database refused (bad encoding, out of range,
  // malformed JSON…). Validation should have caught it; if it did not, the input is still at fault, not us.
  if (typeof e.code === 'string' && /^22[0-9A-Z]{3}$/.test(e.code)) {
    return new ApiError('bad_request', `the database refused a value in this request: ${e.message}`, {
      sqlstate: e.code,
    });
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    return new ApiError(KIND_BY_STATUS.get(status) ?? 'bad_request', e.message);
  }
  return new ApiError('internal', 'Internal server error', { request_id: request.id });
}

/**
 * The handler for errors Fastify raises before routing (bad percent-encoding, an over-long path
 * parameter), which never reach `setErrorHandler`: pass it as Fastify's `frameworkErrors` option.
 */
export function frameworkErrorHandler(bodyLimit: number): (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => void {
  return (err, request, reply) => {
    const apiError = toApiError(err, request, bodyLimit);
    reply.headers(apiError.headers).code(apiError.status).send(envelope(apiError));
  };
}

/** Installs the one error handler and the 404 handler for unknown routes. */
export function installErrorHandling(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err, request: FastifyRequest, reply: FastifyReply) => {
    const apiError = toApiError(err, request, bodyLimit);
    if (apiError.status >= 500) request.log.error({ err }, 'request failed');
    else if (apiError.details?.sqlstate) request.log.warn({ err }, 'input refused by the database, not by validation');
    reply.headers(apiError.headers).code(apiError.status).send(envelope(apiError));
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    const err = new ApiError('not_found', `no route ${request.method} ${show(path)}`, {
      method: request.method,
      path,
    });
    reply.code(404).send(envelope(err));
  });
}
