import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { cancelBatchById } from '../batches/service.js';
import type { Db } from '../db/db.js';
import { badRequest } from '../errors/registry.js';
import { ListQuery, paginate, startOffset } from '../http/pagination.js';
import { KillTaskResponse, ListTasksRequest, ListTasksResponse, TaskParams, TaskResponse } from './schema.js';
import { cancelPlainTask, getTask, listTasks, readTask, TERMINAL_TASK_STATUSES } from './service.js';

/** `/v1/tasks…`: follow, list and kill asynchronous operations. Tasks belong to the organization, not a namespace. */
export function taskRoutes(app: FastifyInstance, db: Db): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Tasks'];

  r.get('/v1/tasks/:task_id', {
    config: { permission: 'read' },
    schema: { tags, summary: 'Get Task', params: TaskParams, response: { 200: TaskResponse } },
    handler: (req) => getTask(db, req.auth.organizationId, req.params.task_id),
  });

  r.post('/v1/tasks/list', {
    config: { permission: 'read' },
    schema: { tags, summary: 'List Tasks', querystring: ListQuery, body: ListTasksRequest, response: { 200: ListTasksResponse } },
    handler: async (req) => {
      const limit = req.query.limit;
      const offset = startOffset(req.query);
      const { rows, total } = await listTasks(db, req.auth.organizationId, req.body, { offset, limit });
      return { results: rows, total_count: total, pagination: paginate(offset, limit, rows.length, total) };
    },
  });

  // Kill: stops the work behind the task. A batch's task cancels its batch (as POST …/batches/{id}/cancel);
  // the record stays, so GET /v1/tasks/{id} then answers CANCELED. A finished task cannot be killed (400).
  r.delete('/v1/tasks/:task_id', {
    config: { permission: 'delete' },
    schema: { tags, summary: 'Kill Task', params: TaskParams, response: { 200: KillTaskResponse } },
    handler: async (req) => {
      const orgId = req.auth.organizationId;
      const task = await readTask(db, orgId, req.params.task_id);
      const refuse = (status: string) =>
        badRequest(`task ${task.id} is ${status}: only a task that has not finished can be killed`, { task_id: task.id, status });
      if (TERMINAL_TASK_STATUSES.includes(task.status)) throw refuse(task.status);
      if (task.batch_id && task.batch_bucket_id) {
        const answer = await cancelBatchById(db, { organizationId: orgId }, task.batch_bucket_id, task.batch_id);
        return { success: true, message: `task ${task.id} killed: batch ${task.batch_id} canceled`, task_id: task.id, status: answer.status };
      }
      if (!(await cancelPlainTask(db, orgId, task.id))) throw refuse((await readTask(db, orgId, task.id)).status);
      return { success: true, message: `task ${task.id} killed`, task_id: task.id, status: 'CANCELED' as const };
    },
  });
}
