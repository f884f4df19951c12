import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext, tempBlobStore } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

for (const backend of BACKENDS) {
  describe(`health (${backend.name})`, () => {
    let t: TestContext;
    beforeAll(async () => {
      t = await createTestContext(backend);
    });
    afterAll(() => t.close());

    it('answers OK without a key and reports the database kind', async () => {
      const res = await t.call({ method: 'GET', url: '/v1/health', key: null });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.status).toBe('OK');
      expect(body.data.metadata).toBe(true);
      expect(body.meta.database).toBe(backend.name);
    });

    it('answers 503 DEGRADED once the database is gone', async () => {
      const db = await backend.open();
      const { buildApp } = await import('../../src/http/app.js');
      const store = tempBlobStore();
      const app = await buildApp({ db, blobs: store.blobs });
      await db.close();
      const res = await app.inject({ method: 'GET', url: '/v1/health' });
      expect(res.statusCode).toBe(503);
      expect(res.json().status).toBe('DEGRADED');
      expect(res.json().errors.metadata).toEqual(expect.any(String));
      await app.close();
      store.remove();
    });
  });
}
