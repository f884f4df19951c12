import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../http/app.js';

/** `/v1/buckets/{bucket}/objects…` (being written). */
export function objectRoutes(_app: FastifyInstance, _deps: AppDeps): void {}
