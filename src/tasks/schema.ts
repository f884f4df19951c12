import { z } from 'zod';

export const TASK_STATUSES = [
  'PENDING',
  'IN_PROGRESS',
  'PROCESSING',
  'COMPLETED',
  'COMPLETED_WITH_ERRORS',
  'FAILED',
  'CANCELED',
  'UNKNOWN',
  'SKIPPED',
  'DRAFT',
  'ACTIVE',
  'ARCHIVED',
  'SUSPENDED',
] as const;
export const TaskStatus = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatus>;

/** Mixpeek's `TaskResponse`. */
export const TaskResponse = z.object({
  task_id: z.string(),
  task_type: z.string(),
  status: TaskStatus,
  inputs: z.array(z.unknown()).nullable(),
  outputs: z.array(z.unknown()).nullable(),
  additional_data: z.record(z.string(), z.unknown()).nullable(),
  error: z.string().nullable(),
});
export type TaskResponse = z.infer<typeof TaskResponse>;
