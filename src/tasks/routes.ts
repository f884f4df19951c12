import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Db } from '../db/db.js';
import { TaskResponse } from './schema.js';
import { getTask } from './service.js';

/** `GET /v1/tasks/{task_id}`: follow an asynchronous operation. */
export function taskRoutes(app: FastifyInstance, db: Db): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/v1/tasks/:task_id', {
    config: { permission: 'read' },
    schema: {
      tags: ['Tasks'],
      summary: 'Get Task',
      params: z.object({ task_id: z.string().min(1).max(200) }),
      response: { 200: TaskResponse },
    },
    handler: (req) => getTask(db, req.auth.organizationId, req.params.task_id),
  });
}
