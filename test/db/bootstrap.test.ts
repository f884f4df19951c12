import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/auth/api-key-secret.js';
import { authenticate } from '../../src/auth/authenticate.js';
import type { Db } from '../../src/db/db.js';
import { openPgDb } from '../../src/db/pg-db.js';
import { ApiError } from '../../src/errors/registry.js';
import { bootstrap, createOrganization, DEFAULT_ORGANIZATION } from '../../src/organizations/service.js';
import { withDatabase } from '../helpers/global-setup.js';
import { BACKENDS } from '../helpers/test-db.js';
import { randomBootstrapKey, tempDir } from '../process/sluice-process.js';

async function keyRows(db: Db): Promise<{ name: string; status: string; permissions: string[]; organization_id: string }[]> {
  return db.query('SELECT name, status, permissions, organization_id FROM api_keys ORDER BY created_at, id');
}

async function defaultOrgId(db: Db): Promise<string> {
  const rows = await db.query<{ id: string }>('SELECT id FROM organizations WHERE is_default AND name = $1', [
    DEFAULT_ORGANIZATION,
  ]);
  expect(rows).toHaveLength(1);
  return rows[0]!.id;
}

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('expected a rejection');
}

for (const backend of BACKENDS) {
  describe(`bootstrap (${backend.name})`, () => {
    const dirs: string[] = [];
    let db: Db;
    let dataDir: string;
    beforeEach(async () => {
      db = await backend.open();
      dataDir = tempDir('bootstrap');
      dirs.push(dataDir);
    });
    afterEach(async () => {
      await db.close();
    });
    afterAll(() => {
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    });

    describe('with SLUICE_BOOTSTRAP_API_KEY', () => {
      it('registers the key as an admin key of the default organization, writing no file', async () => {
        const key = randomBootstrapKey();
        const result = await bootstrap(db, { bootstrapApiKey: key, dataDir });
        expect(result.bootstrapKeyEnsured).toBe(true);
        expect(result.createdAdminKey).toBeUndefined();
        const orgId = await defaultOrgId(db);
        expect(result.organizationId).toBe(orgId);

        const auth = await authenticate(db, `Bearer ${key}`, 'admin');
        expect(auth.organizationId).toBe(orgId);
        expect(auth.permissions).toEqual(['admin']);
        expect(auth.keyName).toBe('bootstrap-key');
        expect(fs.existsSync(path.join(dataDir, 'admin-api-key'))).toBe(false);
        // Only the hash is stored, never the plaintext.
        const stored = await db.query<{ key_hash: string }>('SELECT key_hash FROM api_keys');
        expect(stored).toEqual([{ key_hash: hashApiKey(key) }]);
      });

      it('is idempotent: a second start leaves one key row', async () => {
        const key = randomBootstrapKey();
        const first = await bootstrap(db, { bootstrapApiKey: key, dataDir });
        const second = await bootstrap(db, { bootstrapApiKey: key, dataDir });
        expect(second.organizationId).toBe(first.organizationId);
        expect(await keyRows(db)).toEqual([
          { name: 'bootstrap-key', status: 'active', permissions: ['admin'], organization_id: first.organizationId },
        ]);
        expect((await db.query('SELECT id FROM organizations')).length).toBe(1);
        expect((await authenticate(db, `Bearer ${key}`, 'admin')).organizationId).toBe(first.organizationId);
      });

      it('re-activates a revoked (or downgraded, or expired) bootstrap key on the next start', async () => {
        const key = randomBootstrapKey();
        await bootstrap(db, { bootstrapApiKey: key, dataDir });
        await db.query(
          `UPDATE api_keys SET status = 'revoked', revoked_at = now(), revoked_by = 'test', permissions = '{read}',
                  expires_at = now() - interval '1 day'`,
        );
        const refused = await rejection(authenticate(db, `Bearer ${key}`, 'read'));
        expect(refused.status).toBe(401);
        expect(refused.message).toMatch(/revoked/);

        await bootstrap(db, { bootstrapApiKey: key, dataDir });
        const auth = await authenticate(db, `Bearer ${key}`, 'admin');
        expect(auth.permissions).toEqual(['admin']);
        const rows = await db.query<{ status: string; revoked_at: Date | null; expires_at: Date | null }>(
          'SELECT status, revoked_at, expires_at FROM api_keys',
        );
        expect(rows).toEqual([{ status: 'active', revoked_at: null, expires_at: null }]);
      });

      it('a changed bootstrap key replaces the old one, which stops working', async () => {
        const oldKey = randomBootstrapKey();
        const newKey = randomBootstrapKey();
        await bootstrap(db, { bootstrapApiKey: oldKey, dataDir });
        await bootstrap(db, { bootstrapApiKey: newKey, dataDir });
        expect((await authenticate(db, `Bearer ${newKey}`, 'admin')).keyName).toBe('bootstrap-key');
        expect((await rejection(authenticate(db, `Bearer ${oldKey}`, 'read'))).status).toBe(401);
        expect((await keyRows(db)).map((r) => r.status)).toEqual(['revoked', 'active']);
      });

      it('creates no generated admin key beside it, even on an empty database', async () => {
        await bootstrap(db, { bootstrapApiKey: randomBootstrapKey(), dataDir });
        await bootstrap(db, { dataDir });
        expect((await keyRows(db)).map((r) => r.name)).toEqual(['bootstrap-key']);
        expect(fs.existsSync(path.join(dataDir, 'admin-api-key'))).toBe(false);
      });
    });

    describe('without a bootstrap key', () => {
      it('creates exactly one admin key on an empty database and saves it with mode 0600', async () => {
        const result = await bootstrap(db, { dataDir });
        expect(result.bootstrapKeyEnsured).toBe(false);
        const key = result.createdAdminKey!;
        expect(key).toMatch(/^sk_live_[0-9A-Za-z]{40}$/);
        expect(result.adminKeyFile).toBe(path.join(dataDir, 'admin-api-key'));
        expect(fs.readFileSync(result.adminKeyFile!, 'utf8')).toBe(`${key}\n`);
        expect(fs.statSync(result.adminKeyFile!).mode & 0o777).toBe(0o600);

        const auth = await authenticate(db, `Bearer ${key}`, 'admin');
        expect(auth.organizationId).toBe(await defaultOrgId(db));
        expect(await keyRows(db)).toEqual([
          { name: 'admin-key', status: 'active', permissions: ['admin'], organization_id: auth.organizationId },
        ]);
      });

      it('creates none on the next start, and leaves the saved key alone', async () => {
        const first = await bootstrap(db, { dataDir });
        const second = await bootstrap(db, { dataDir });
        expect(second.createdAdminKey).toBeUndefined();
        expect(second.adminKeyFile).toBeUndefined();
        expect(second.organizationId).toBe(first.organizationId);
        expect(await keyRows(db)).toHaveLength(1);
        expect(fs.readFileSync(path.join(dataDir, 'admin-api-key'), 'utf8')).toBe(`${first.createdAdminKey}\n`);
      });

      it('tightens an existing key file to 0600 when it overwrites it', async () => {
        const keyFile = path.join(dataDir, 'admin-api-key');
        fs.writeFileSync(keyFile, 'left over from an earlier deployment\n', { mode: 0o644 });
        const result = await bootstrap(db, { dataDir });
        expect(fs.readFileSync(keyFile, 'utf8')).toBe(`${result.createdAdminKey}\n`);
        expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
      });

      it('replaces a symlink at the key file instead of writing through it', async () => {
        const elsewhere = path.join(dataDir, 'elsewhere.txt');
        fs.writeFileSync(elsewhere, 'not yours\n');
        fs.symlinkSync(elsewhere, path.join(dataDir, 'admin-api-key'));
        const result = await bootstrap(db, { dataDir });
        expect(fs.readFileSync(elsewhere, 'utf8')).toBe('not yours\n');
        const keyFile = path.join(dataDir, 'admin-api-key');
        expect(fs.lstatSync(keyFile).isFile()).toBe(true);
        expect(fs.readFileSync(keyFile, 'utf8')).toBe(`${result.createdAdminKey}\n`);
        expect(fs.readdirSync(dataDir).sort()).toEqual(['admin-api-key', 'elsewhere.txt']);
      });

      it('creates the data dir when it does not exist yet', async () => {
        const nested = path.join(dataDir, 'not', 'yet');
        const result = await bootstrap(db, { dataDir: nested });
        expect(fs.readFileSync(path.join(nested, 'admin-api-key'), 'utf8')).toBe(`${result.createdAdminKey}\n`);
      });

      it('writes no key when the database already has keys (an organization made with the CLI)', async () => {
        const { adminKey } = await createOrganization(db, 'acme', 'admin@acme.local');
        const result = await bootstrap(db, { dataDir });
        expect(result.createdAdminKey).toBeUndefined();
        expect(fs.existsSync(path.join(dataDir, 'admin-api-key'))).toBe(false);
        expect((await authenticate(db, `Bearer ${adminKey}`, 'admin')).organizationId).not.toBe(result.organizationId);
      });

      it('leaves nothing behind when the key file cannot be written', async () => {
        // A regular file where the data dir should be: mkdir fails, and the transaction must roll back.
        const blocked = path.join(dataDir, 'a-file');
        fs.writeFileSync(blocked, '');
        await expect(bootstrap(db, { dataDir: blocked })).rejects.toThrow();
        expect(await keyRows(db)).toEqual([]);
        // A later start with a usable directory then creates the key that was never shown.
        expect((await bootstrap(db, { dataDir })).createdAdminKey).toMatch(/^sk_live_/);
      });
    });

    if (backend.name === 'postgres') {
      describe('several processes starting at once', () => {
        const connections: Db[] = [];
        afterEach(async () => {
          for (const c of connections.splice(0)) await c.close();
        });

        async function connect(n: number): Promise<Db[]> {
          const [row] = await db.query<{ name: string }>('SELECT current_database() AS name');
          const url = withDatabase(process.env.SLUICE_TEST_DATABASE_URL!, row!.name);
          for (let i = 0; i < n; i++) connections.push(await openPgDb({ connectionString: url, max: 2 }));
          return connections;
        }

        it('three concurrent bootstraps without a key create exactly one admin key', async () => {
          const conns = await connect(3);
          const results = await Promise.all(conns.map((c, i) => bootstrap(c, { dataDir: path.join(dataDir, `p${i}`) })));
          const created = results.filter((r) => r.createdAdminKey !== undefined);
          expect(created).toHaveLength(1);
          expect(new Set(results.map((r) => r.organizationId)).size).toBe(1);
          expect(await keyRows(db)).toHaveLength(1);
          expect((await db.query('SELECT id FROM organizations')).length).toBe(1);
          expect((await authenticate(db, `Bearer ${created[0]!.createdAdminKey}`, 'admin')).organizationId).toBe(
            results[0]!.organizationId,
          );
        });

        it('three concurrent bootstraps with the same key leave one active key row', async () => {
          const key = randomBootstrapKey();
          const conns = await connect(3);
          await Promise.all(conns.map((c) => bootstrap(c, { bootstrapApiKey: key, dataDir })));
          expect((await keyRows(db)).map((r) => [r.name, r.status])).toEqual([['bootstrap-key', 'active']]);
          expect((await authenticate(db, `Bearer ${key}`, 'admin')).keyName).toBe('bootstrap-key');
        });
      });
    }
  });
}
