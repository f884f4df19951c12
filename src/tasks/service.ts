import type { Queryable } from '../db/db.js';
import { notFound } from '../errors/registry.js';
import { newId } from '../ids/new-id.js';
import type { TaskResponse, TaskStatus } from './schema.js';

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

/** Reads a task of the caller's organization. */
export async function getTask(q: Queryable, organizationId: string, taskId: string): Promise<TaskResponse> {
  const rows = await q.query<TaskRow>('SELECT * FROM tasks WHERE id = $1 AND organization_id = $2', [taskId, organizationId]);
  if (!rows[0]) throw notFound('task', taskId);
  return toResponse(rows[0]);
}
