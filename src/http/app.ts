import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, serializerCompiler } from 'fastify-type-provider-zod';
import { apiKeyRoutes } from '../api-keys/routes.js';
import type { BlobStore } from '../blobs/blob-store.js';
import { batchRoutes } from '../batches/routes.js';
import { blobRoutes } from '../blobs/routes.js';
import { bucketRoutes } from '../buckets/routes.js';
import { collectionRoutes } from '../collections/routes.js';
import type { ExtractorRegistry } from '../extractors/extractor.js';
import { createExtractorRegistry } from '../extractors/registry.js';
import { authenticate } from '../auth/authenticate.js';
import type { Db } from '../db/db.js';
import type { BackoffPolicy } from '../engine/backoff.js';
import { documentRoutes } from '../documents/routes.js';
import { ApiError, badRequest, show } from '../errors/registry.js';
import { healthRoutes } from '../health/routes.js';
import { namespaceRoutes } from '../namespaces/routes.js';
import { objectRoutes } from '../objects/routes.js';
import { resolveNamespace } from '../namespaces/service.js';
import { taskRoutes } from '../tasks/routes.js';
import { uploadRoutes } from '../uploads/routes.js';
import { SLUICE_VERSION } from '../version.js';
import { frameworkErrorHandler, installErrorHandling } from './error-handler.js';
import './route-config.js';
import { zodValidatorCompiler } from './zod-validator.js';

/** Size limits the API enforces. */
export interface AppLimits {
  /** Largest request body in bytes (413 past it). */
  bodyLimitBytes: number;
  /** Largest blob sent inline in JSON, decoded bytes (413 past it). */
  inlineBlobMaxBytes: number;
  /** Largest file accepted through an upload URL (413 past it). */
  uploadMaxBytes: number;
}

/** Everything route handlers may use: storage, blobs, limits. Passed to each feature's routes. */
export interface AppDeps {
  db: Db;
  blobs: BlobStore;
  /** The feature extractors this server runs. */
  extractors: ExtractorRegistry;
  limits: AppLimits;
  /** Base URL for upload URLs; `undefined` derives it from the request. */
  publicUrl: string | undefined;
  /** Backoff of units re-queued by an operator retry (SLUICE_BACKOFF_BASE_MS / _CAP_MS). */
  backoff: BackoffPolicy;
}

/** What the HTTP app needs. */
export interface AppOptions {
  db: Db;
  blobs: BlobStore;
  /** Defaults to the built-in extractors with offline embeddings and no private webhook URLs. */
  extractors?: ExtractorRegistry;
  limits?: Partial<AppLimits>;
  publicUrl?: string;
  /** Backoff of retried units; defaults to base 1 s, cap 60 s. */
  backoff?: BackoffPolicy;
  /** Largest request body in bytes (413 past it); shorthand for `limits.bodyLimitBytes`. */
  bodyLimitBytes?: number;
  /** Fastify logger setting (`false` in tests). */
  logger?: FastifyServerOptions['logger'];
  /** More routes to register beside Sluice's own (embedding applications, tests of shared hooks). */
  extraRoutes?: (app: FastifyInstance, deps: AppDeps) => void;
}

/**
 * Builds the Fastify app with every route, the one error handler and the OpenAPI document. It does not
 * listen: tests use `app.inject()`, `createServer` listens.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { db } = options;
  const limits: AppLimits = {
    bodyLimitBytes: options.bodyLimitBytes ?? options.limits?.bodyLimitBytes ?? 16 * 1024 * 1024,
    inlineBlobMaxBytes: options.limits?.inlineBlobMaxBytes ?? 8 * 1024 * 1024,
    uploadMaxBytes: options.limits?.uploadMaxBytes ?? 5 * 1024 * 1024 * 1024,
  };
  const deps: AppDeps = {
    db,
    blobs: options.blobs,
    extractors: options.extractors ?? createExtractorRegistry({ allowPrivateUrls: false }),
    limits,
    publicUrl: options.publicUrl,
    backoff: options.backoff ?? { baseMs: 1000, capMs: 60_000 },
  };
  const bodyLimit = limits.bodyLimitBytes;
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit,
    // Mixpeek's SDKs are generated clients: they may send trailing slashes and any header case.
    // Namespace names may be 128 characters and other identifiers longer: the default cap of 100 is too low.
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 1024 },
    // Errors raised before routing (broken percent-encoding, …) get the envelope like every other error.
    frameworkErrors: frameworkErrorHandler(bodyLimit),
    requestIdHeader: 'x-request-id',
  });
  app.setValidatorCompiler(zodValidatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandling(app, bodyLimit);

  // Generated SDKs POST list endpoints with `Content-Type: application/json` and no body at all:
  // an empty body is an empty object (then validated like any other), not a JSON syntax error.
  app.removeContentTypeParser('application/json');
  // Sluice's API is JSON only; Fastify's built-in text parser would let text/plain through to validation.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(badRequest(`request body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });

  // Every /v1 route must declare its permission: an endpoint cannot be left open by forgetting.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/v1/') && route.config?.permission === undefined) {
      throw new Error(`route ${route.method} ${route.url} declares no permission`);
    }
  });

  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (!config?.permission || config.permission === 'public') return;
    request.auth = await authenticate(db, request.headers.authorization, config.permission);
    if (config.namespaced) {
      const query = request.query as Record<string, unknown> | undefined;
      const header = request.headers['x-namespace'];
      const identifier = (Array.isArray(header) ? header[0] : header) ?? query?.namespace;
      if (typeof identifier !== 'string' || identifier.trim() === '') {
        throw badRequest('missing namespace: send the X-Namespace header (namespace name or ns_… id)');
      }
      if (identifier.length > 200) throw new ApiError('bad_request', `namespace ${show(identifier)} is too long`);
      request.namespace = await resolveNamespace(db, request.auth.organizationId, identifier.trim());
    }
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Sluice',
        description: 'Self-hosted multimodal ingestion engine speaking the Mixpeek v1 API.',
        version: SLUICE_VERSION,
      },
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer sk_…' } },
      },
      security: [{ bearerAuth: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  app.get('/openapi.json', { schema: { hide: true }, config: { permission: 'public' } }, async () => app.swagger());
  healthRoutes(app, db, SLUICE_VERSION);
  apiKeyRoutes(app, db);
  namespaceRoutes(app, deps);
  bucketRoutes(app, deps);
  objectRoutes(app, deps);
  uploadRoutes(app, deps);
  blobRoutes(app, deps);
  batchRoutes(app, deps);
  taskRoutes(app, db);
  collectionRoutes(app, deps, deps.extractors);
  documentRoutes(app, deps);
  options.extraRoutes?.(app, deps);
  await app.ready();
  return app;
}
