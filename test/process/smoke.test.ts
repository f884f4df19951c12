import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BACKENDS } from '../helpers/test-db.js';
import {
  api,
  killAll,
  namespaceBody,
  type ProcessDatabase,
  processDatabase,
  randomBootstrapKey,
  startServer,
  tempDir,
} from './sluice-process.js';

// The one end-to-end test of the real binary: `node bin/sluice.js serve` as a child process, spoken to
// over HTTP with fetch(), stopped with SIGTERM.
for (const backend of BACKENDS) {
  // Several cold PGlite starts per test: slow when the whole suite shares two cores, still bounded.
  describe(`sluice serve, end to end (${backend.name})`, { timeout: 180_000 }, () => {
    const dirs: string[] = [];
    const databases: ProcessDatabase[] = [];
    afterEach(killAll);
    afterAll(async () => {
      await killAll();
      for (const db of databases) await db.drop();
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('serves the API with the bootstrap key and shuts down gracefully on SIGTERM', async () => {
      const dataDir = tempDir('smoke');
      dirs.push(dataDir);
      const database = await processDatabase(backend.name);
      databases.push(database);
      const key = randomBootstrapKey();
      const { proc, baseUrl } = await startServer(dataDir, { SLUICE_BOOTSTRAP_API_KEY: key, ...database.env });

      // The operator's own secret is never echoed, and no extra admin key is made when one is configured.
      expect(proc.stdout).not.toContain(key);
      expect(proc.stdout).not.toMatch(/sk_live_/);
      expect(fs.existsSync(path.join(dataDir, 'admin-api-key'))).toBe(false);

      const health = await api(baseUrl, 'GET', '/v1/health');
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'OK', meta: { database: backend.name } });

      const anonymous = await api(baseUrl, 'POST', '/v1/namespaces/list', { body: {} });
      expect(anonymous.status).toBe(401);
      expect(anonymous.body).toMatchObject({ success: false, status: 401, error: { type: 'UnauthorizedError' } });
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);

      const created = await api(baseUrl, 'POST', '/v1/namespaces', { key, body: namespaceBody('smoke-ns') });
      expect(created.status).toBe(200);
      const ns = created.body as { namespace_id: string; namespace_name: string };
      expect(ns.namespace_name).toBe('smoke-ns');
      expect(ns.namespace_id).toMatch(/^ns_/);

      const byName = await api(baseUrl, 'GET', '/v1/namespaces/smoke-ns', { key });
      expect(byName.status).toBe(200);
      expect((byName.body as { namespace_id: string }).namespace_id).toBe(ns.namespace_id);
      const byId = await api(baseUrl, 'GET', `/v1/namespaces/${ns.namespace_id}`, { key });
      expect((byId.body as { namespace_name: string }).namespace_name).toBe('smoke-ns');

      const list = await api(baseUrl, 'POST', '/v1/namespaces/list', { key, body: {} });
      expect(list.status).toBe(200);
      const results = (list.body as { results: { namespace_id: string }[] }).results;
      expect(results.map((r) => r.namespace_id)).toEqual([ns.namespace_id]);

      const openapi = await api(baseUrl, 'GET', '/openapi.json');
      expect(openapi.status).toBe(200);
      const doc = openapi.body as { openapi: string; paths: Record<string, unknown> };
      expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
      expect(Object.keys(doc.paths)).toContain('/v1/namespaces');

      const exit = await proc.stop('SIGTERM', 20_000);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(proc.stderr).toContain('shutting down gracefully');
      // PGlite released its lock; PostgreSQL never takes one (any number of processes share it).
      expect(fs.existsSync(path.join(dataDir, 'sluice.lock'))).toBe(false);
    });

    if (backend.name === 'pglite') {
      it('creates, prints and saves one admin key on the first start only', async () => {
        const dataDir = tempDir('first-start');
        dirs.push(dataDir);
        const first = await startServer(dataDir);
        const printed = first.proc.stdout.match(/sk_live_[0-9A-Za-z]{40}/g);
        expect(printed).toHaveLength(1);
        const key = printed![0];
        const keyFile = path.join(dataDir, 'admin-api-key');
        expect(fs.readFileSync(keyFile, 'utf8').trim()).toBe(key);
        expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);

        const created = await api(first.baseUrl, 'POST', '/v1/namespaces', { key, body: namespaceBody('first') });
        expect(created.status).toBe(200);
        expect(await first.proc.stop()).toEqual({ code: 0, signal: null });

        const second = await startServer(dataDir);
        expect(second.proc.stdout).not.toMatch(/sk_live_/);
        expect(second.proc.stdout).not.toMatch(/admin api key/i);
        expect(fs.readFileSync(keyFile, 'utf8').trim()).toBe(key);
        // The first key, and what it wrote, survived the restart.
        const got = await api(second.baseUrl, 'GET', '/v1/namespaces/first', { key });
        expect(got.status).toBe(200);
        expect((got.body as { namespace_id: string }).namespace_id).toBe((created.body as { namespace_id: string }).namespace_id);
        expect(await second.proc.stop()).toEqual({ code: 0, signal: null });
      });
    }
  });
}
