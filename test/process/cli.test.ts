import fs from 'node:fs';
import { MIGRATIONS_DIR } from '../../src/db/migrate.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SLUICE_VERSION } from '../../src/version.js';
import { BACKENDS } from '../helpers/test-db.js';
import {
  api,
  killAll,
  namespaceBody,
  type ProcessDatabase,
  processDatabase,
  randomBootstrapKey,
  runSluice,
  startServer,
  startSluice,
  tempDir,
  waitForOutput,
} from './sluice-process.js';

const KEY = /^sk_live_[0-9A-Za-z]{40}$/;

/** The one line a failed command printed, checked to be exactly one line. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  return lines[0]!;
}

for (const backend of BACKENDS) {
  // Several cold PGlite starts per test: slow when the whole suite shares two cores, still bounded.
  describe(`sluice command line (${backend.name})`, { timeout: 180_000 }, () => {
    const dirs: string[] = [];
    const databases: ProcessDatabase[] = [];
    afterEach(killAll);
    afterAll(async () => {
      await killAll();
      for (const db of databases) await db.drop();
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    });

    /** A data dir plus, on PostgreSQL, a fresh migrated database: the env every command gets. */
    async function deployment(opts: { empty?: boolean } = {}): Promise<Record<string, string>> {
      const dataDir = tempDir('cli');
      dirs.push(dataDir);
      const database = await processDatabase(backend.name, opts);
      databases.push(database);
      return { SLUICE_DATA_DIR: dataDir, ...database.env };
    }

    describe('org create and keys create', () => {
      let env: Record<string, string>;
      let acmeKey: string;
      let readKey: string;
      beforeAll(async () => {
        env = await deployment();
      });

      it('org create prints only the new admin key on stdout', async () => {
        const res = await runSluice(['org', 'create', 'acme'], env);
        expect(res.code, res.stderr).toBe(0);
        acmeKey = res.stdout.trim();
        expect(acmeKey).toMatch(KEY);
        expect(res.stderr).toContain('acme');
      });

      it('a second org create with the same name fails, naming the name', async () => {
        const res = await runSluice(['org', 'create', 'acme'], env);
        expect(res.code).toBe(1);
        expect(res.stdout).toBe('');
        expect(oneLine(res.stderr)).toMatch(/organization .*"acme".* already exists/);
      });

      it('org create refuses a malformed name with usage exit 2', async () => {
        const res = await runSluice(['org', 'create', 'bad name!'], env);
        expect(res.code).toBe(2);
        expect(oneLine(res.stderr)).toContain('bad name!');
      });

      it('keys create --permissions read prints a key of the default organization', async () => {
        const res = await runSluice(['keys', 'create', '--permissions', 'read', '--name', 'reader'], env);
        expect(res.code, res.stderr).toBe(0);
        readKey = res.stdout.trim();
        expect(readKey).toMatch(KEY);
        expect(res.stderr).toContain('reader');
      });

      it('keys create refuses unknown permissions and unknown organizations with exit 2', async () => {
        const perms = await runSluice(['keys', 'create', '--permissions', 'read,superuser'], env);
        expect(perms.code).toBe(2);
        expect(oneLine(perms.stderr)).toContain('read,superuser');
        const org = await runSluice(['keys', 'create', '--org', 'no-such-org'], env);
        expect(org.code).toBe(2);
        expect(oneLine(org.stderr)).toContain('no-such-org');
      });

      it('the keys work against a server on that deployment, each within its own organization', async () => {
        const bootstrapKey = randomBootstrapKey();
        const { proc, baseUrl } = await startServer(env.SLUICE_DATA_DIR!, { ...env, SLUICE_BOOTSTRAP_API_KEY: bootstrapKey });

        const mine = await api(baseUrl, 'POST', '/v1/namespaces', { key: bootstrapKey, body: namespaceBody('default-ns') });
        expect(mine.status).toBe(200);

        // acme's admin key works, and sees nothing of the default organization.
        const acmeList = await api(baseUrl, 'POST', '/v1/namespaces/list', { key: acmeKey, body: {} });
        expect(acmeList.status).toBe(200);
        expect((acmeList.body as { results: unknown[] }).results).toEqual([]);
        const peek = await api(baseUrl, 'GET', '/v1/namespaces/default-ns', { key: acmeKey });
        expect(peek.status).toBe(404);
        expect(peek.body).toMatchObject({ success: false, status: 404, error: { type: 'NotFoundError' } });
        const peekById = await api(baseUrl, 'GET', `/v1/namespaces/${(mine.body as { namespace_id: string }).namespace_id}`, {
          key: acmeKey,
        });
        expect(peekById.status).toBe(404);
        // The same name is free in acme: names are unique per organization.
        const theirs = await api(baseUrl, 'POST', '/v1/namespaces', { key: acmeKey, body: namespaceBody('default-ns') });
        expect(theirs.status).toBe(200);
        expect((theirs.body as { namespace_id: string }).namespace_id).not.toBe((mine.body as { namespace_id: string }).namespace_id);

        // The read key reads the default organization but may not write.
        const readList = await api(baseUrl, 'POST', '/v1/namespaces/list', { key: readKey, body: {} });
        expect(readList.status).toBe(200);
        expect((readList.body as { results: { namespace_name: string }[] }).results.map((r) => r.namespace_name)).toEqual([
          'default-ns',
        ]);
        const write = await api(baseUrl, 'POST', '/v1/namespaces', { key: readKey, body: namespaceBody('nope') });
        expect(write.status).toBe(403);
        expect(write.body).toMatchObject({ success: false, status: 403, error: { type: 'ForbiddenError' } });
        expect((write.body as { error: { message: string } }).error.message).toContain('write');

        expect(await proc.stop()).toEqual({ code: 0, signal: null });
      });
    });

    describe('bad usage and configuration', () => {
      let env: Record<string, string>;
      beforeAll(async () => {
        env = await deployment();
      });

      it('PORT=abc stops serve with exit 2 and one line naming the variable and value', async () => {
        const res = await runSluice(['serve'], { ...env, PORT: 'abc' });
        expect(res.code).toBe(2);
        const line = oneLine(res.stderr);
        expect(line).toContain('PORT');
        expect(line).toContain('abc');
      });

      it('flags mirror the variables and are validated the same way', async () => {
        const res = await runSluice(['serve', '--port', '70000'], env);
        expect(res.code).toBe(2);
        expect(oneLine(res.stderr)).toMatch(/PORT.*70000/);
        const workers = await runSluice(['serve', '--workers', 'many'], env);
        expect(workers.code).toBe(2);
        expect(oneLine(workers.stderr)).toMatch(/SLUICE_WORKERS.*many/);
      });

      it.each([
        ['SLUICE_WORKERS', '-1'],
        ['SLUICE_ALLOW_PRIVATE_URLS', 'maybe'],
        ['DATABASE_URL', 'mysql://db.example/sluice'],
        ['SLUICE_BOOTSTRAP_API_KEY', 'not-a-key'],
      ])('%s=%s stops serve with exit 2 and one line naming it', async (name, value) => {
        const res = await runSluice(['serve'], { ...env, [name]: value });
        expect(res.code).toBe(2);
        expect(oneLine(res.stderr)).toContain(name);
      });

      it('an unknown flag, a stray argument or an unknown command exits 2 naming it', async () => {
        const flag = await runSluice(['serve', '--bogus'], env);
        expect(flag.code).toBe(2);
        expect(oneLine(flag.stderr)).toContain('--bogus');
        const stray = await runSluice(['serve', 'extra'], env);
        expect(stray.code).toBe(2);
        expect(oneLine(stray.stderr)).toContain('extra');
        const missing = await runSluice(['serve', '--port'], env);
        expect(missing.code).toBe(2);
        expect(oneLine(missing.stderr)).toContain('--port');
        const command = await runSluice(['frobnicate'], env);
        expect(command.code).toBe(2);
        expect(oneLine(command.stderr)).toContain('frobnicate');
      });

      it('--help and --version answer on stdout with exit 0', async () => {
        const help = await runSluice(['--help'], env);
        expect(help.code).toBe(0);
        expect(help.stdout).toMatch(/sluice serve/);
        expect(help.stdout).toMatch(/sluice org create/);
        const version = await runSluice(['--version'], env);
        expect(version.code).toBe(0);
        expect(version.stdout.trim()).toBe(SLUICE_VERSION);
      });

      it('sluice worker without DATABASE_URL exits 2 explaining it needs PostgreSQL', async () => {
        const { DATABASE_URL: _omit, ...noDatabase } = env;
        const res = await runSluice(['worker'], noDatabase);
        expect(res.code).toBe(2);
        expect(oneLine(res.stderr)).toMatch(/DATABASE_URL/);
      });

      it('an unreachable PostgreSQL stops start-up with one line naming it, without the password', async () => {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        const url = 'postgres://sluice:hunter2@127.0.0.1:1/sluice';
        const res = await runSluice(['worker'], { ...env, DATABASE_URL: url });
        expect(res.code).toBe(1);
        const line = oneLine(res.stderr);
        expect(line).toMatch(/cannot connect to PostgreSQL at postgres:\/\/sluice:\*\*\*@127\.0\.0\.1:1\/sluice/);
        expect(line).not.toContain('hunter2');
      });
    });

    it('sluice migrate applies the migrations once, then reports the database up to date', async () => {
      const env = await deployment({ empty: true });
      const first = await runSluice(['migrate'], env);
      expect(first.code, first.stderr).toBe(0);
      const versions = fs.readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).map((f) => Number(f.slice(0, 4)));
      expect(first.stdout.trim()).toBe(`applied migrations ${versions.sort((a, b) => a - b).join(', ')}`);
      const second = await runSluice(['migrate'], env);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout.trim()).toBe('database is up to date');
    });

    if (backend.name === 'postgres') {
      it('sluice worker runs against PostgreSQL and stops cleanly on SIGTERM', async () => {
        const env = await deployment({ empty: true });
        const worker = startSluice(['worker', '--workers', '2'], env);
        await waitForOutput(worker, /sluice worker .* running \(2 concurrent units\)/);
        expect(await worker.stop()).toEqual({ code: 0, signal: null });
        expect(worker.stderr).toContain('shutting down gracefully');
        // It migrated the empty database before it began.
        const migrated = await runSluice(['migrate'], env);
        expect(migrated.stdout.trim()).toBe('database is up to date');
      });
    }
  });
}
