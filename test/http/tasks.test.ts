import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrganization } from '../../src/organizations/service.js';
import { createTestContext, expectEnvelope, type TestContext, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

interface Task {
  task_id: string;
  task_type: string;
  status: string;
  inputs: unknown[] | null;
  outputs: unknown[] | null;
  additional_data: Record<string, unknown> | null;
  error: string | null;
}

interface TaskList {
  results: Task[];
  total_count: number;
  pagination: { total: number | null; page_size: number | null; next_cursor: string | null };
}

const NS = 'task_tests';

for (const backend of BACKENDS) {
  describe(`tasks (${backend.name})`, () => {
    let t: TestContext;
    let counter = 0;

    const inNs = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
      t.call({ method, url, headers: { 'x-namespace': NS }, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
    const ok = async <T>(res: Awaited<ReturnType<typeof inNs>>): Promise<T> => {
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as T;
    };
    const list = async (payload: unknown = {}, query = '') =>
      ok<TaskList>(await t.call({ method: 'POST', url: `/v1/tasks/list${query}`, payload: payload as Record<string, unknown> }));
    const getTask = async (id: string) => ok<Task>(await t.call({ method: 'GET', url: `/v1/tasks/${id}` }));

    /** A submitted batch of two objects, read by one collection; answers its ids and the task. */
    const submittedBatch = async () => {
      const name = `bkt-${++counter}`;
      const bucket = await ok<{ bucket_id: string }>(
        await inNs('POST', '/v1/buckets', { bucket_name: name, bucket_schema: { properties: { title: { type: 'string' } } } }),
      );
      const made = await ok<{ succeeded: { object_id: string }[] }>(
        await inNs('POST', `/v1/buckets/${name}/objects/batch`, { objects: [{ metadata: { title: 'a' } }, { metadata: { title: 'b' } }] }),
      );
      await ok(
        await inNs('POST', '/v1/collections', {
          collection_name: `col-${counter}`,
          source: { type: 'bucket', bucket_ids: [name] },
          feature_extractor: { feature_extractor_name: 'passthrough_extractor', version: 'v1' },
        }),
      );
      const batch = await ok<{ batch_id: string }>(
        await inNs('POST', `/v1/buckets/${name}/batches`, { object_ids: made.succeeded.map((o) => o.object_id) }),
      );
      const task = await ok<Task>(await inNs('POST', `/v1/buckets/${name}/batches/${batch.batch_id}/submit`));
      return { bucketId: bucket.bucket_id, bucketName: name, batchId: batch.batch_id, task };
    };
    const setBatch = (batchId: string, status: string, error: string | null = null) =>
      t.db.query('UPDATE batches SET status = $2, error = $3 WHERE id = $1', [batchId, status, error]);

    beforeAll(async () => {
      t = await createTestContext(backend);
      const res = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: { namespace_name: NS, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
      });
      expect(res.statusCode, res.body).toBe(200);
    });
    afterAll(() => t.close());

    describe('get', () => {
      it('follows the batch status and error without writing the task row', async () => {
        const { batchId, task } = await submittedBatch();
        expect(task.status).toBe('PENDING');
        for (const status of ['IN_PROGRESS', 'COMPLETED_WITH_ERRORS', 'COMPLETED']) {
          await setBatch(batchId, status);
          expect((await getTask(task.task_id)).status).toBe(status);
        }
        await setBatch(batchId, 'FAILED', 'every unit failed');
        expect(await getTask(task.task_id)).toMatchObject({ status: 'FAILED', error: 'every unit failed', task_type: 'api_buckets_batches_process' });
        const [row] = await t.db.query<{ status: string }>('SELECT status FROM tasks WHERE id = $1', [task.task_id]);
        expect(row!.status).toBe('PENDING');
      });

      it('answers 404 naming an unknown task, and for a task of another organization', async () => {
        const err = expectEnvelope(await t.call({ method: 'GET', url: '/v1/tasks/task_nope' }), 404, 'NotFoundError');
        expect(err.message).toContain('task_nope');
        const { task } = await submittedBatch();
        const other = await createOrganization(t.db, `other-${Date.now()}`, 'x@test.local');
        expectEnvelope(await t.call({ method: 'GET', url: `/v1/tasks/${task.task_id}`, key: other.adminKey }), 404, 'NotFoundError');
        const listed = await ok<TaskList>(await t.call({ method: 'POST', url: '/v1/tasks/list', key: other.adminKey }));
        expect(listed.results.map((r) => r.task_id)).not.toContain(task.task_id);
      });
    });

    describe('list', () => {
      it('lists newest first, filters on the status clients see, the type, filters and search', async () => {
        const first = await submittedBatch();
        const second = await submittedBatch();
        // A task of another type: deleting a bucket records a finished api_buckets_delete task.
        await ok(await inNs('POST', '/v1/buckets', { bucket_name: 'to-delete', bucket_schema: { properties: {} } }));
        const deleted = await ok<{ task_id: string }>(await inNs('DELETE', '/v1/buckets/to-delete'));
        await setBatch(first.batchId, 'IN_PROGRESS');

        const all = await list();
        expect(all.results[0]!.task_id).toBe(deleted.task_id);
        expect(all.total_count).toBe(all.results.length);
        const ids = all.results.map((r) => r.task_id);
        expect(ids.indexOf(second.task.task_id)).toBeLessThan(ids.indexOf(first.task.task_id));
        // An omitted body lists the same.
        const bare = await ok<TaskList>(await t.call({ method: 'POST', url: '/v1/tasks/list' }));
        expect(bare.results.map((r) => r.task_id)).toEqual(ids);

        const inProgress = await list({ status: 'IN_PROGRESS' });
        expect(inProgress.results.map((r) => r.task_id)).toEqual([first.task.task_id]);
        expect(inProgress.results[0]!.status).toBe('IN_PROGRESS');

        const deletes = await list({ task_type: 'api_buckets_delete' });
        expect(deletes.results.map((r) => r.task_id)).toEqual([deleted.task_id]);

        const byBatch = await list({ filters: { 'additional_data.batch_id': second.batchId } });
        expect(byBatch.results.map((r) => r.task_id)).toEqual([second.task.task_id]);
        const byShorthandStatus = await list({ filters: { status: { $in: ['IN_PROGRESS', 'COMPLETED'] } } });
        expect(byShorthandStatus.results.map((r) => r.task_id)).toContain(first.task.task_id);
        expect(byShorthandStatus.results.map((r) => r.task_id)).toContain(deleted.task_id);
        expect(byShorthandStatus.results.map((r) => r.task_id)).not.toContain(second.task.task_id);

        const searched = await list({ search: first.task.task_id.slice(5) });
        expect(searched.results.map((r) => r.task_id)).toEqual([first.task.task_id]);

        const oldestFirst = await list({ sort: { field: 'created_at', direction: 'asc' } });
        expect(oldestFirst.results.map((r) => r.task_id)).toEqual([...ids].reverse());
      });

      it('pages with limit, offset and cursor', async () => {
        await submittedBatch();
        await submittedBatch();
        const all = await list();
        expect(all.total_count).toBeGreaterThanOrEqual(3);
        const firstPage = await list({}, '?limit=2');
        expect(firstPage.results.map((r) => r.task_id)).toEqual(all.results.slice(0, 2).map((r) => r.task_id));
        expect(firstPage.pagination).toMatchObject({ total: all.total_count, page_size: 2 });
        const next = await list({}, `?limit=2&cursor=${firstPage.pagination.next_cursor}`);
        expect(next.results.map((r) => r.task_id)).toEqual(all.results.slice(2, 4).map((r) => r.task_id));
        const offset = await list({}, '?limit=1&offset=1');
        expect(offset.results.map((r) => r.task_id)).toEqual([all.results[1]!.task_id]);
      });

      it('refuses bad input naming the value', async () => {
        const status = expectEnvelope(await t.call({ method: 'POST', url: '/v1/tasks/list', payload: { status: 'DONE' } }), 422, 'ValidationError');
        expect(status.message).toContain('DONE');
        const type = expectEnvelope(await t.call({ method: 'POST', url: '/v1/tasks/list', payload: { task_type: 'nope' } }), 422, 'ValidationError');
        expect(validationIssues(type)[0]!.location).toEqual(['body', 'task_type']);
        const field = expectEnvelope(await t.call({ method: 'POST', url: '/v1/tasks/list', payload: { filters: { colour: 'red' } } }), 422, 'ValidationError');
        expect(field.message).toContain('colour');
        const limit = expectEnvelope(await t.call({ method: 'POST', url: '/v1/tasks/list?limit=0', payload: {} }), 422, 'ValidationError');
        expect(validationIssues(limit)[0]!.location).toEqual(['query', 'limit']);
        const cursor = expectEnvelope(await t.call({ method: 'POST', url: '/v1/tasks/list?cursor=garbage', payload: {} }), 400, 'BadRequestError');
        expect(cursor.message).toContain('garbage');
      });
    });

    describe('kill', () => {
      it("cancels a running batch's task, then refuses to kill it again", async () => {
        const { batchId, bucketName, task } = await submittedBatch();
        await setBatch(batchId, 'IN_PROGRESS');
        const writer = await t.key(['write']);
        expectEnvelope(await t.call({ method: 'DELETE', url: `/v1/tasks/${task.task_id}`, key: writer }), 403, 'ForbiddenError');
        const killed = await ok<{ success: boolean; status: string; task_id: string }>(await t.call({ method: 'DELETE', url: `/v1/tasks/${task.task_id}` }));
        expect(killed).toMatchObject({ success: true, status: 'CANCELED', task_id: task.task_id });
        const units = await t.db.query<{ status: string }>('SELECT status FROM units WHERE batch_id = $1', [batchId]);
        expect(units.map((u) => u.status)).toEqual(['canceled', 'canceled']);
        const batch = await ok<{ status: string }>(await inNs('GET', `/v1/buckets/${bucketName}/batches/${batchId}`));
        expect(batch.status).toBe('CANCELED');
        expect((await getTask(task.task_id)).status).toBe('CANCELED');
        const again = expectEnvelope(await t.call({ method: 'DELETE', url: `/v1/tasks/${task.task_id}` }), 400, 'BadRequestError');
        expect(again.message).toContain('CANCELED');
      });

      it('refuses a finished task (400 naming its status) and answers 404 for an unknown one', async () => {
        await ok(await inNs('POST', '/v1/buckets', { bucket_name: 'kill-me', bucket_schema: { properties: {} } }));
        const deleted = await ok<{ task_id: string }>(await inNs('DELETE', '/v1/buckets/kill-me'));
        const err = expectEnvelope(await t.call({ method: 'DELETE', url: `/v1/tasks/${deleted.task_id}` }), 400, 'BadRequestError');
        expect(err.message).toContain('COMPLETED');
        const unknown = expectEnvelope(await t.call({ method: 'DELETE', url: '/v1/tasks/task_gone' }), 404, 'NotFoundError');
        expect(unknown.message).toContain('task_gone');
      });
    });
  });
}
