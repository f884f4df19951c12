import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Db } from '../db/db.js';

const HealthCheckResponse = z.object({
  status: z.enum(['OK', 'DEGRADED']),
  data: z.object({
    cache: z.boolean(),
    metadata: z.boolean(),
    vector_store: z.boolean(),
    object_storage: z.boolean(),
    task_queue: z.boolean(),
    inference: z.boolean(),
    analytics: z.boolean().nullable(),
  }),
  errors: z.record(z.string(), z.string().nullable()).nullable(),
  meta: z.record(z.string(), z.unknown()).nullable(),
});

const HealthQuery = z.object({
  deep: z.enum(['true', 'false', '1', '0']).optional(),
  metrics: z.enum(['true', 'false', '1', '0']).optional(),
});

/**
 * Health, unauthenticated as in Mixpeek. Everything Sluice depends on lives in its database (metadata,
 * documents, the task queue), so one query answers for all of them; a failing database answers 503 with
 * the same body, which is what load balancers act on.
 */
export function healthRoutes(app: FastifyInstance, db: Db, version: string): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/v1/health', {
    config: { permission: 'public' },
    schema: {
      tags: ['Health'],
      summary: 'Health check',
      querystring: HealthQuery,
      response: { 200: HealthCheckResponse, 503: HealthCheckResponse },
    },
    handler: async (_req, reply) => {
      let dbError: string | null = null;
      try {
        await db.query('SELECT 1');
      } catch (err) {
        dbError = (err as Error).message;
      }
      const ok = dbError === null;
      reply.code(ok ? 200 : 503);
      return {
        status: ok ? ('OK' as const) : ('DEGRADED' as const),
        data: {
          cache: true,
          metadata: ok,
          vector_store: ok,
          object_storage: true,
          task_queue: ok,
          inference: true,
          analytics: null,
        },
        errors: ok ? null : { metadata: dbError, vector_store: dbError, task_queue: dbError },
        meta: { service: 'sluice', version, database: db.kind },
      };
    },
  });
  r.get('/v1/health/liveness', {
    config: { permission: 'public' },
    schema: { tags: ['Health'], summary: 'Liveness', response: { 200: z.object({ status: z.literal('alive') }) } },
    handler: async () => ({ status: 'alive' as const }),
  });
}
