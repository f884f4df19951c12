import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../http/app.js';

/** `/v1/buckets/{bucket}/uploads…` (being written). */
export function uploadRoutes(_app: FastifyInstance, _deps: AppDeps): void {}
