import type { Queryable } from '../db/db.js';
import { badRequest, notFound } from '../errors/registry.js';
import { compileFilters, compileSort, type FilterFields, SqlParams } from '../http/filters.js';
import { newId } from '../ids/new-id.js';
import type { ListTasksRequest, TaskResponse, TaskStatus } from './schema.js';

interface TaskRow {
  id: string;
  task_type: string;
  status: TaskStatus;
  inputs: unknown[] | null;
  outputs: unknown[] | null;
  additional_data: Record<string, unknown> | null;
  error: string | null;
  created_at: Date;
  updated_at: Date;
}

function toResponse(row: TaskRow): TaskResponse {
  return {
    task_id: row.id,
    task_type: row.task_type,
    status: row.status,
    inputs: row.inputs,
    outputs: row.outputs,
    additional_data: {
      ...row.additional_data,
      created_at: row.created_at.toISOString(),
      updated_at: row.updated_at.toISOString(),
    },
    error: row.error,
  };
}

/** What a new task record holds. */
export interface NewTask {
  organizationId: string;
  namespaceId?: string | null;
  taskType: string;
  status: TaskStatus;
  inputs?: unknown[] | null;
  outputs?: unknown[] | null;
  additionalData?: Record<string, unknown> | null;
  error?: string | null;
}

/** Records a task. Asynchronous answers point at it, and `GET /v1/tasks/{id}` reads it back. */
export async function createTask(q: Queryable, task: NewTask): Promise<TaskResponse> {
  const rows = await q.query<TaskRow>(
    `INSERT INTO tasks (id, organization_id, namespace_id, task_type, status, inputs, outputs, additional_data, error)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
    [
      newId('task'),
      task.organizationId,
      task.namespaceId ?? null,
      task.taskType,
      task.status,
      task.inputs ? JSON.stringify(task.inputs) : null,
      task.outputs ? JSON.stringify(task.outputs) : null,
      task.additionalData ? JSON.stringify(task.additionalData) : null,
      task.error ?? null,
    ],
  );
  return toResponse(rows[0]!);
}

/**
 * Tasks as clients see them. A batch's task follows its batch: the batch's status (and error) is the
 * task's, so the engine writes batch progress once and never the task row. `batch_id`/`batch_bucket_id`
 * are set when the task belongs to a batch.
 */
const TASK_VIEW = `
  SELECT t.id, t.organization_id, t.namespace_id, t.task_type, t.inputs, t.outputs, t.additional_data, t.created_at,
         coalesce(b.status, t.status) AS status,
         coalesce(t.error, b.error) AS error,
         greatest(t.updated_at, b.updated_at) AS updated_at,
         b.id AS batch_id, b.bucket_id AS batch_bucket_id
  FROM tasks t LEFT JOIN batches b ON b.task_id = t.id AND b.organization_id = t.organization_id`;

interface TaskViewRow extends TaskRow {
  batch_id: string | null;
  batch_bucket_id: string | null;
}

/** Reads a task of the caller's organization, with a batch's status when it is a batch's task. */
export async function readTask(q: Queryable, organizationId: string, taskId: string): Promise<TaskViewRow> {
  const rows = await q.query<TaskViewRow>(`${TASK_VIEW} WHERE t.id = $1 AND t.organization_id = $2`, [taskId, organizationId]);
  if (!rows[0]) throw notFound('task', taskId);
  return rows[0];
}

/** Reads a task of the caller's organization (see {@link readTask}). */
export async function getTask(q: Queryable, organizationId: string, taskId: string): Promise<TaskResponse> {
  return toResponse(await readTask(q, organizationId, taskId));
}

/** Statuses after which a task changes no more. */
export const TERMINAL_TASK_STATUSES: readonly TaskStatus[] = ['COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED', 'CANCELED', 'SKIPPED'];

/** Marks a task that runs no work of its own (not a batch's) CANCELED, unless it finished meanwhile. */
export async function cancelPlainTask(q: Queryable, organizationId: string, taskId: string): Promise<boolean> {
  const rows = await q.query(
    `UPDATE tasks SET status = 'CANCELED', updated_at = now()
     WHERE id = $1 AND organization_id = $2 AND NOT (status = ANY($3::text[])) RETURNING id`,
    [taskId, organizationId, TERMINAL_TASK_STATUSES],
  );
  return rows.length > 0;
}

/** What list filters and sorts may name, and the columns of {@link TASK_VIEW} behind them. */
const LIST_FIELDS: FilterFields = {
  task_id: { sql: 'id', kind: 'text' },
  task_type: { sql: 'task_type', kind: 'text' },
  status: { sql: 'status', kind: 'text' },
  namespace_id: { sql: 'namespace_id', kind: 'text' },
  error: { sql: 'error', kind: 'text' },
  created_at: { sql: 'created_at', kind: 'timestamp' },
  updated_at: { sql: 'updated_at', kind: 'timestamp' },
  additional_data: { sql: 'additional_data', kind: 'json' },
};

/**
 * Lists the organization's tasks (newest first unless sorted), filtered on the status clients see (a
 * batch's task by its batch's status). One statement answers the page and the count.
 */
export async function listTasks(
  q: Queryable,
  organizationId: string,
  body: ListTasksRequest,
  page: { offset: number; limit: number },
): Promise<{ rows: TaskResponse[]; total: number }> {
  const p = new SqlParams([organizationId]);
  const where = [`organization_id = $1`, `(${compileFilters(body.filters, LIST_FIELDS, p, body.case_sensitive)})`];
  if (body.status) where.push(`status = ${p.add(body.status)}`);
  if (body.task_type) where.push(`task_type = ${p.add(body.task_type)}`);
  if (body.search) {
    const search = { OR: ['task_id', 'task_type', 'error'].map((field) => ({ field, operator: 'contains', value: body.search })) };
    where.push(`(${compileFilters(search, LIST_FIELDS, p, body.case_sensitive)})`);
  }
  const order = compileSort(body.sort, LIST_FIELDS, 'created_at DESC', 'id ASC');
  const sql = `
    WITH matched AS (SELECT * FROM (${TASK_VIEW} WHERE t.organization_id = $1) v WHERE ${where.join(' AND ')}),
         totals AS (SELECT count(*)::int AS match_count FROM matched),
         page AS (SELECT * FROM matched ORDER BY ${order} LIMIT ${p.add(page.limit)} OFFSET ${p.add(page.offset)})
    SELECT totals.*, page.* FROM totals LEFT JOIN page ON true ORDER BY ${order}`;
  const rows = await q.query<TaskViewRow & { match_count: number }>(sql, p.values).catch((err: { code?: string; message?: string }) => {
    if (err.code === '2201B') throw badRequest(`invalid regex in filters: ${err.message}`);
    if (err.code === '22007' || err.code === '22008' || err.code === '22P02') throw badRequest(`invalid value in filters: ${err.message}`);
    throw err;
  });
  return {
    rows: rows.filter((r) => r.id !== null).map(({ match_count: _c, ...row }) => toResponse(row)),
    total: rows[0]?.match_count ?? 0,
  };
}
