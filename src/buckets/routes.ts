import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../http/app.js';

/** `/v1/buckets…` (being written). */
export function bucketRoutes(_app: FastifyInstance, _deps: AppDeps): void {}
