import { createHash } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrganization } from '../../src/organizations/service.js';
import { createTestContext, expectEnvelope, type TestContext } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

const USER = 'member@test.local';
const keysUrl = (email: string = USER) => `/v1/organizations/users/${encodeURIComponent(email)}/api-keys`;
const keyUrl = (name: string, email: string = USER) => `${keysUrl(email)}/${encodeURIComponent(name)}`;

interface KeyModel {
  key_id: string;
  key_hash: string;
  key_prefix: string;
  name: string;
  description: string;
  permissions: string[];
  status: string;
  organization_id: string;
  user_id: string;
  created_by: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  last_used_at: string | null;
  expires_at: string | null;
  key?: string;
}

for (const backend of BACKENDS) {
  describe(`api keys (${backend.name})`, () => {
    let t: TestContext;
    let adminKeyId: string;
    let seq = 0;
    const uniq = (base: string) => `${base}-${++seq}`;

    async function create(body: Record<string, unknown>, email: string = USER): Promise<KeyModel & { key: string }> {
      const res = await t.call({ method: 'POST', url: keysUrl(email), payload: body });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    }

    async function list(includeRevoked?: boolean, email: string = USER): Promise<LightMyRequestResponse> {
      const query = includeRevoked === undefined ? '' : `?include_revoked=${includeRevoked}`;
      const res = await t.call({ method: 'GET', url: `${keysUrl(email)}${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return res;
    }

    const names = (res: LightMyRequestResponse) => (res.json().results as KeyModel[]).map((k) => k.name);

    /** A request that needs `read`. */
    const readWith = (key: string) => t.call({ method: 'POST', url: '/v1/namespaces/list', payload: {}, key });
    /** A request that needs `write`. */
    const writeWith = (key: string) =>
      t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: { namespace_name: uniq('ns'), feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
        key,
      });

    beforeAll(async () => {
      t = await createTestContext(backend);
      const rows = await t.db.query<{ id: string }>('SELECT id FROM api_keys WHERE key_hash = $1', [sha256(t.adminKey)]);
      adminKeyId = rows[0]!.id;
    });
    afterAll(() => t.close());

    describe('create', () => {
      it('returns the plaintext once, with its prefix and SHA-256, and stores only the hash', async () => {
        const name = uniq('backend-service');
        const created = await create({ name, description: 'ingestion pipeline', permissions: ['read', 'write'], rate_limit_override: 120 });
        expect(created.key).toMatch(/^sk_live_[0-9A-Za-z]{32,}$/);
        expect(created.key_prefix).toBe(created.key.slice(0, 10));
        expect(created.key_hash).toBe(sha256(created.key));
        expect(created).toMatchObject({
          name,
          description: 'ingestion pipeline',
          permissions: ['read', 'write'],
          status: 'active',
          organization_id: t.orgId,
          created_by: adminKeyId,
          revoked_at: null,
          last_used_at: null,
          rate_limit_override: 120,
        });

        const rows = await t.db.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE id = $1', [created.key_id]);
        expect(rows).toHaveLength(1);
        const row = rows[0]!;
        expect(row.key_hash).toBe(sha256(created.key));
        expect(row.key_prefix).toBe(created.key.slice(0, 10));
        const stored = JSON.stringify(row);
        expect(stored).not.toContain(created.key);
        // Not even the secret part beyond the prefix, in any column.
        expect(stored).not.toContain(created.key.slice(10, 30));
      });

      it('issues a key that authenticates right away, with exactly the permissions asked for', async () => {
        const { key } = await create({ name: uniq('reader'), permissions: ['read'] });
        expect((await readWith(key)).statusCode).toBe(200);
        expectEnvelope(await writeWith(key), 403, 'ForbiddenError');
      });

      it('gives a key created without permissions read access only', async () => {
        const created = await create({ name: uniq('least-privilege') });
        expect(created.permissions).toEqual(['read']);
        expect((await readWith(created.key)).statusCode).toBe(200);
        expectEnvelope(await writeWith(created.key), 403, 'ForbiddenError');
      });

      it('issues a different secret each time', async () => {
        const a = await create({ name: uniq('twin') });
        const b = await create({ name: uniq('twin') });
        expect(a.key).not.toBe(b.key);
        expect(a.key_hash).not.toBe(b.key_hash);
      });

      it('answers 409 AlreadyExistsError for a duplicate name of the same user, and keeps the first key', async () => {
        const name = uniq('dup');
        const first = await create({ name, permissions: ['read'] });
        const res = await t.call({ method: 'POST', url: keysUrl(), payload: { name, permissions: ['admin'] } });
        const error = expectEnvelope(res, 409, 'AlreadyExistsError');
        expect(error.message).toContain(name);
        const rows = await t.db.query<{ id: string }>('SELECT id FROM api_keys WHERE name = $1', [name]);
        expect(rows.map((r) => r.id)).toEqual([first.key_id]);
        expect((await readWith(first.key)).statusCode).toBe(200);
      });

      it('allows the same name for another user, and again once the old key is revoked', async () => {
        const name = uniq('shared');
        await create({ name });
        const other = await create({ name }, 'someone-else@test.local');
        expect(other.name).toBe(name);
        expect((await t.call({ method: 'DELETE', url: keyUrl(name) })).statusCode).toBe(200);
        const again = await create({ name });
        expect(again.status).toBe('active');
      });

      it('answers 422 naming an invalid permission value', async () => {
        const res = await t.call({ method: 'POST', url: keysUrl(), payload: { name: uniq('bad-perm'), permissions: ['read', 'superuser'] } });
        const error = expectEnvelope(res, 422, 'ValidationError');
        expect(error.message).toContain('superuser');
        expect(error.details?.validation_errors).toEqual(
          expect.arrayContaining([expect.objectContaining({ location: ['body', 'permissions', 1] })]),
        );
      });

      it('answers 422 for an empty permission list, a missing name and an expiry in the past', async () => {
        const past = new Date(Date.now() - 3_600_000).toISOString();
        for (const [payload, mentions] of [
          [{ name: uniq('none'), permissions: [] }, 'permissions'],
          [{ permissions: ['read'] }, 'name'],
          [{ name: uniq('stale'), expires_at: past }, past],
          [{ name: uniq('garbled'), expires_at: 'next tuesday' }, 'next tuesday'],
        ] as const) {
          const res = await t.call({ method: 'POST', url: keysUrl(), payload });
          const error = expectEnvelope(res, 422, 'ValidationError');
          expect(error.message, JSON.stringify(payload)).toContain(mentions);
        }
      });

      it('accepts an expiry in the future and reports it', async () => {
        const future = new Date(Date.now() + 86_400_000).toISOString();
        const created = await create({ name: uniq('temporary'), expires_at: future });
        expect(Date.parse(created.expires_at!)).toBe(Date.parse(future));
        expect(created.status).toBe('active');
        expect((await readWith(created.key)).statusCode).toBe(200);
      });
    });

    describe('list', () => {
      it('lists a user’s keys without any plaintext, hiding revoked ones unless asked', async () => {
        const live = await create({ name: uniq('listed-live'), description: 'stays' });
        const gone = await create({ name: uniq('listed-gone') });
        expect((await t.call({ method: 'DELETE', url: keyUrl(gone.name) })).statusCode).toBe(200);

        for (const res of [await list(), await list(false), await list(true)]) {
          expect(res.body).not.toContain(live.key);
          expect(res.body).not.toContain(gone.key);
          expect(res.body).not.toContain(live.key.slice(10, 30));
          const results = res.json().results as KeyModel[];
          expect(res.json().total_count).toBe(results.length);
          for (const k of results) expect(k).not.toHaveProperty('key');
        }

        const hidden = await list(false);
        expect(names(hidden)).toContain(live.name);
        expect(names(hidden)).not.toContain(gone.name);
        expect(names(await list())).not.toContain(gone.name);

        const all = (await list(true)).json().results as KeyModel[];
        expect(all.find((k) => k.name === live.name)).toMatchObject({ status: 'active', key_prefix: live.key_prefix });
        expect(all.find((k) => k.name === gone.name)).toMatchObject({ status: 'revoked', revoked_by: adminKeyId });
        expect(all.find((k) => k.name === gone.name)?.revoked_at).toEqual(expect.any(String));
      });

      it('lists only that user’s keys', async () => {
        const mine = await create({ name: uniq('mine') });
        const theirs = await create({ name: uniq('theirs') }, 'lister-other@test.local');
        const res = await list(true);
        expect(names(res)).toContain(mine.name);
        expect(names(res)).not.toContain(theirs.name);
        const theirList = await list(true, 'lister-other@test.local');
        expect(names(theirList)).toEqual([theirs.name]);
      });

      it('reports a key past its expiry as expired', async () => {
        const created = await create({ name: uniq('aging') });
        await t.db.query(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [created.key_id]);
        const found = ((await list()).json().results as KeyModel[]).find((k) => k.key_id === created.key_id);
        expect(found?.status).toBe('expired');
      });

      it('answers 404 NotFoundError naming an unknown user', async () => {
        const res = await t.call({ method: 'GET', url: keysUrl('nobody@test.local') });
        const error = expectEnvelope(res, 404, 'NotFoundError');
        expect(error.message).toContain('nobody@test.local');
      });

      it('answers 422 naming a bad include_revoked value', async () => {
        const res = await t.call({ method: 'GET', url: `${keysUrl()}?include_revoked=maybe` });
        const error = expectEnvelope(res, 422, 'ValidationError');
        expect(error.message).toContain('maybe');
      });
    });

    describe('patch', () => {
      it('changes name, description and permissions; new permissions apply to the next request', async () => {
        const created = await create({ name: uniq('evolving'), description: 'before', permissions: ['read'] });
        expectEnvelope(await writeWith(created.key), 403, 'ForbiddenError');

        const renamed = uniq('evolved');
        const res = await t.call({
          method: 'PATCH',
          url: keyUrl(created.name),
          payload: { name: renamed, description: 'after', permissions: ['write'] },
        });
        expect(res.statusCode, res.body).toBe(200);
        const patched = res.json() as KeyModel;
        expect(patched).toMatchObject({ key_id: created.key_id, name: renamed, description: 'after', permissions: ['write'] });
        expect(patched.key_hash).toBe(created.key_hash);
        expect(res.body).not.toContain(created.key);

        // Same secret, new rights, straight away.
        expect((await writeWith(created.key)).statusCode).toBe(200);
        expectEnvelope(await t.call({ method: 'DELETE', url: '/v1/namespaces/anything', key: created.key }), 403, 'ForbiddenError');

        const listed = ((await list()).json().results as KeyModel[]).find((k) => k.key_id === created.key_id);
        expect(listed).toMatchObject({ name: renamed, description: 'after', permissions: ['write'] });
        // The old name no longer addresses the key.
        expectEnvelope(await t.call({ method: 'PATCH', url: keyUrl(created.name), payload: { description: 'x' } }), 404, 'NotFoundError');
      });

      it('can take permissions away, which stops the key at once', async () => {
        const created = await create({ name: uniq('demoted'), permissions: ['write'] });
        expect((await writeWith(created.key)).statusCode).toBe(200);
        const res = await t.call({ method: 'PATCH', url: keyUrl(created.name), payload: { permissions: ['read'] } });
        expect(res.statusCode, res.body).toBe(200);
        const error = expectEnvelope(await writeWith(created.key), 403, 'ForbiddenError');
        expect(error.details?.required_permission).toBe('write');
      });

      it('leaves fields that are absent untouched', async () => {
        const created = await create({ name: uniq('steady'), description: 'keep me', permissions: ['delete'] });
        const res = await t.call({ method: 'PATCH', url: keyUrl(created.name), payload: {} });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toMatchObject({ name: created.name, description: 'keep me', permissions: ['delete'], status: 'active' });
      });

      it('answers 404 NotFoundError naming an unknown key', async () => {
        const res = await t.call({ method: 'PATCH', url: keyUrl('no-such-key'), payload: { description: 'x' } });
        const error = expectEnvelope(res, 404, 'NotFoundError');
        expect(error.message).toContain('no-such-key');
      });

      it('answers 409 when renaming onto another live key of the user, changing neither', async () => {
        const a = await create({ name: uniq('rename-a'), description: 'a' });
        const b = await create({ name: uniq('rename-b'), description: 'b' });
        const res = await t.call({ method: 'PATCH', url: keyUrl(a.name), payload: { name: b.name, description: 'clobbered' } });
        const error = expectEnvelope(res, 409, 'AlreadyExistsError');
        expect(error.message).toContain(b.name);
        const rows = await t.db.query<{ id: string; name: string; description: string }>(
          'SELECT id, name, description FROM api_keys WHERE id = ANY($1) ORDER BY name',
          [[a.key_id, b.key_id]],
        );
        expect(rows).toEqual([
          { id: a.key_id, name: a.name, description: 'a' },
          { id: b.key_id, name: b.name, description: 'b' },
        ]);
      });

      it('answers 422 naming an invalid permission value and changes nothing', async () => {
        const created = await create({ name: uniq('typo'), permissions: ['read'] });
        const res = await t.call({ method: 'PATCH', url: keyUrl(created.name), payload: { permissions: ['wirte'] } });
        const error = expectEnvelope(res, 422, 'ValidationError');
        expect(error.message).toContain('wirte');
        const rows = await t.db.query<{ permissions: string[] }>('SELECT permissions FROM api_keys WHERE id = $1', [created.key_id]);
        expect(rows[0]?.permissions).toEqual(['read']);
      });

      it('revokes through status: revoked', async () => {
        const created = await create({ name: uniq('patched-off') });
        const res = await t.call({ method: 'PATCH', url: keyUrl(created.name), payload: { status: 'revoked' } });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toMatchObject({ status: 'revoked', revoked_by: adminKeyId });
        expectEnvelope(await readWith(created.key), 401, 'UnauthorizedError');
      });
    });

    describe('delete', () => {
      it('revokes the key: it stops working, and a second delete finds nothing', async () => {
        const created = await create({ name: uniq('doomed'), permissions: ['admin'] });
        expect((await readWith(created.key)).statusCode).toBe(200);
        const res = await t.call({ method: 'DELETE', url: keyUrl(created.name) });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toMatchObject({ success: true });
        expect(res.json().message).toContain(created.name);

        const error = expectEnvelope(await readWith(created.key), 401, 'UnauthorizedError');
        expect(error.message).toMatch(/revoked/);
        const rows = await t.db.query<{ status: string; revoked_by: string }>('SELECT status, revoked_by FROM api_keys WHERE id = $1', [
          created.key_id,
        ]);
        expect(rows).toEqual([{ status: 'revoked', revoked_by: adminKeyId }]);

        expectEnvelope(await t.call({ method: 'DELETE', url: keyUrl(created.name) }), 404, 'NotFoundError');
        expectEnvelope(await t.call({ method: 'DELETE', url: keyUrl(created.name, 'ghost@test.local') }), 404, 'NotFoundError');
      });

      it('lets an admin key revoke itself, after which it is refused', async () => {
        const created = await create({ name: uniq('self-revoking'), permissions: ['admin'] });
        const res = await t.call({ method: 'DELETE', url: keyUrl(created.name), key: created.key });
        expect(res.statusCode, res.body).toBe(200);
        expectEnvelope(await readWith(created.key), 401, 'UnauthorizedError');
      });
    });

    describe('users', () => {
      it('treats an email in any letter case as the same user', async () => {
        const created = await create({ name: uniq('cased') }, 'Mixed.Case@Test.Local');
        const res = await list(false, 'mixed.case@test.local');
        expect(names(res)).toContain(created.name);
        const upper = await list(false, 'MIXED.CASE@TEST.LOCAL');
        expect(names(upper)).toEqual(names(res));
        const rows = await t.db.query<{ email: string }>('SELECT email FROM users WHERE id = $1', [created.user_id]);
        expect(rows[0]?.email).toBe('mixed.case@test.local');
      });
    });

    describe('rotate', () => {
      it('returns a new secret under the same name and settings; the old one is refused, the new one works', async () => {
        const created = await create({ name: uniq('rotating'), description: 'ci deploys', permissions: ['write'] });
        expect((await writeWith(created.key)).statusCode).toBe(200);

        const res = await t.call({ method: 'POST', url: `${keyUrl(created.name)}/rotate` });
        expect(res.statusCode, res.body).toBe(200);
        const rotated = res.json() as KeyModel & { key: string };
        expect(rotated.key).toMatch(/^sk_live_[0-9A-Za-z]{32,}$/);
        expect(rotated.key).not.toBe(created.key);
        expect(rotated).toMatchObject({ name: created.name, description: 'ci deploys', permissions: ['write'], status: 'active' });
        expect(rotated.key_prefix).toBe(rotated.key.slice(0, 10));
        expect(rotated.key_hash).toBe(sha256(rotated.key));

        const old = expectEnvelope(await readWith(created.key), 401, 'UnauthorizedError');
        expect(old.message).not.toContain(created.key.slice(10));
        expect((await writeWith(rotated.key)).statusCode).toBe(200);

        const live = ((await list()).json().results as KeyModel[]).filter((k) => k.name === created.name);
        expect(live.map((k) => k.key_prefix)).toEqual([rotated.key_prefix]);
        const stored = await t.db.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE name = $1', [created.name]);
        expect(JSON.stringify(stored)).not.toContain(rotated.key);

        // Rotating again works on the new secret, by the same name.
        const again = await t.call({ method: 'POST', url: `${keyUrl(created.name)}/rotate` });
        expect(again.statusCode, again.body).toBe(200);
        expectEnvelope(await readWith(rotated.key), 401, 'UnauthorizedError');
        expect((await readWith(again.json().key)).statusCode).toBe(200);
      });

      it('never leaves two live keys behind concurrent rotations; only the last secret works', async () => {
        const created = await create({ name: uniq('contended'), permissions: ['write'] });
        const results = await Promise.all(
          Array.from({ length: 4 }, () => t.call({ method: 'POST', url: `${keyUrl(created.name)}/rotate` })),
        );
        // Run one after another (PGlite) each rotation replaces the previous one; run truly at once (PostgreSQL)
        // the losers wait for the winner and then find the key they aimed at gone. Never a conflict or a 500.
        const winners = results.filter((r) => r.statusCode === 200).map((r) => (r.json() as { key: string }).key);
        for (const r of results.filter((x) => x.statusCode !== 200)) expectEnvelope(r, 404, 'NotFoundError');
        expect(winners.length).toBeGreaterThanOrEqual(1);

        const live = await t.db.query<{ key_hash: string; permissions: string[] }>(
          `SELECT key_hash, permissions FROM api_keys WHERE name = $1 AND status <> 'revoked'`,
          [created.name],
        );
        expect(live).toHaveLength(1);
        expect(live[0]?.permissions).toEqual(['write']);
        const current = winners.find((k) => sha256(k) === live[0]?.key_hash);
        expect(current).toBeDefined();
        expect((await writeWith(current!)).statusCode).toBe(200);
        for (const stale of [created.key, ...winners.filter((k) => k !== current)]) {
          expectEnvelope(await readWith(stale), 401, 'UnauthorizedError');
        }
      });

      it('renews a key whose expiry has passed instead of handing out a dead secret', async () => {
        const created = await create({ name: uniq('lapsed'), permissions: ['read'] });
        await t.db.query(`UPDATE api_keys SET expires_at = now() - interval '1 hour' WHERE key_hash = $1`, [sha256(created.key)]);
        expectEnvelope(await readWith(created.key), 401, 'UnauthorizedError');
        const res = await t.call({ method: 'POST', url: `${keyUrl(created.name)}/rotate` });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().expires_at).toBeNull();
        expect((await readWith(res.json().key)).statusCode).toBe(200);
      });

      it('answers 404 for an unknown or revoked key', async () => {
        expectEnvelope(await t.call({ method: 'POST', url: `${keyUrl('never-was')}/rotate` }), 404, 'NotFoundError');
        const created = await create({ name: uniq('rotate-revoked') });
        await t.call({ method: 'DELETE', url: keyUrl(created.name) });
        expectEnvelope(await t.call({ method: 'POST', url: `${keyUrl(created.name)}/rotate` }), 404, 'NotFoundError');
        expectEnvelope(await readWith(created.key), 401, 'UnauthorizedError');
      });
    });

    describe('the protected admin-key', () => {
      it('cannot be patched, deleted or rotated (403), and keeps working', async () => {
        const url = keyUrl('admin-key', 'admin@test.local');
        for (const res of [
          await t.call({ method: 'PATCH', url, payload: { permissions: ['read'] } }),
          await t.call({ method: 'PATCH', url, payload: { status: 'revoked' } }),
          await t.call({ method: 'DELETE', url }),
          await t.call({ method: 'POST', url: `${url}/rotate` }),
        ]) {
          const error = expectEnvelope(res, 403, 'ForbiddenError');
          expect(error.message).toContain('admin-key');
        }
        const rows = await t.db.query<{ status: string; permissions: string[]; key_hash: string }>(
          `SELECT status, permissions, key_hash FROM api_keys WHERE name = 'admin-key'`,
        );
        expect(rows).toEqual([{ status: 'active', permissions: ['admin'], key_hash: sha256(t.adminKey) }]);
        expect((await t.call({ method: 'GET', url: keysUrl('admin@test.local') })).statusCode).toBe(200);
      });

      it('is listed like any other key, without its secret', async () => {
        const res = await list(true, 'admin@test.local');
        expect(names(res)).toContain('admin-key');
        expect(res.body).not.toContain(t.adminKey);
      });
    });

    describe('path validation', () => {
      it('answers 422 naming an invalid email on every route', async () => {
        const bad = 'not-an-email';
        for (const res of [
          await t.call({ method: 'POST', url: keysUrl(bad), payload: { name: 'x' } }),
          await t.call({ method: 'GET', url: keysUrl(bad) }),
          await t.call({ method: 'PATCH', url: keyUrl('x', bad), payload: {} }),
          await t.call({ method: 'DELETE', url: keyUrl('x', bad) }),
          await t.call({ method: 'POST', url: `${keyUrl('x', bad)}/rotate` }),
        ]) {
          const error = expectEnvelope(res, 422, 'ValidationError');
          expect(error.message).toContain(bad);
          expect(error.details?.validation_errors).toEqual([expect.objectContaining({ location: ['path', 'user_email'] })]);
        }
        const users = await t.db.query(`SELECT 1 FROM users WHERE email = $1`, [bad]);
        expect(users).toHaveLength(0);
      });

      it('addresses keys whose names need URL encoding', async () => {
        const name = uniq('ci deploy/key?');
        const created = await create({ name });
        const res = await t.call({ method: 'PATCH', url: keyUrl(name), payload: { description: 'encoded' } });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toMatchObject({ key_id: created.key_id, description: 'encoded' });
      });
    });

    it('records last_used_at after the key is used', async () => {
      const created = await create({ name: uniq('used') });
      const before = await t.db.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE id = $1', [created.key_id]);
      expect(before[0]?.last_used_at).toBeNull();

      expect((await readWith(created.key)).statusCode).toBe(200);
      // The write happens off the request path: poll briefly, bounded.
      let lastUsed: Date | null = null;
      for (let i = 0; i < 50 && !lastUsed; i++) {
        const rows = await t.db.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE id = $1', [created.key_id]);
        lastUsed = rows[0]?.last_used_at ?? null;
        if (!lastUsed) await new Promise((r) => setTimeout(r, 100));
      }
      expect(lastUsed).toBeInstanceOf(Date);
      const listed = ((await list()).json().results as KeyModel[]).find((k) => k.key_id === created.key_id);
      expect(listed?.last_used_at).toBe(lastUsed!.toISOString());
    });
  });

  describe(`cross-organization isolation of api keys (${backend.name})`, () => {
    let t: TestContext;
    let otherKey: string;
    let victim: KeyModel & { key: string };

    const asOther = (opts: Parameters<TestContext['call']>[0]) => t.call({ ...opts, key: otherKey });

    beforeAll(async () => {
      t = await createTestContext(backend);
      // Same admin email as the first organization: users are per organization, so this is a different user.
      const other = await createOrganization(t.db, `other-org-${Date.now()}`, 'admin@test.local');
      otherKey = other.adminKey;
      const res = await t.call({ method: 'POST', url: keysUrl(), payload: { name: 'victim', permissions: ['write'] } });
      expect(res.statusCode, res.body).toBe(200);
      victim = res.json();
      const ns = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: { namespace_name: 'victim-ns', feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
      });
      expect(ns.statusCode, ns.body).toBe(200);
    });
    afterAll(() => t.close());

    it('cannot list, patch, revoke or rotate another organization’s keys (404), which stay intact', async () => {
      const attempts = [
        asOther({ method: 'GET', url: keysUrl() }),
        asOther({ method: 'GET', url: `${keysUrl()}?include_revoked=true` }),
        asOther({ method: 'PATCH', url: keyUrl('victim'), payload: { permissions: ['read'] } }),
        asOther({ method: 'DELETE', url: keyUrl('victim') }),
        asOther({ method: 'POST', url: `${keyUrl('victim')}/rotate` }),
      ];
      for (const res of await Promise.all(attempts)) {
        expectEnvelope(res, 404, 'NotFoundError');
        expect(res.body).not.toContain(victim.key_prefix);
      }
      const rows = await t.db.query<{ status: string; permissions: string[]; key_hash: string }>(
        'SELECT status, permissions, key_hash FROM api_keys WHERE id = $1',
        [victim.key_id],
      );
      expect(rows).toEqual([{ status: 'active', permissions: ['write'], key_hash: victim.key_hash }]);
      const stillWorks = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: { namespace_name: 'written-by-victim', feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
        key: victim.key,
      });
      expect(stillWorks.statusCode, stillWorks.body).toBe(200);
    });

    it('sees only its own user behind an email both organizations use', async () => {
      const res = await asOther({ method: 'GET', url: `${keysUrl('admin@test.local')}?include_revoked=true` });
      expect(res.statusCode, res.body).toBe(200);
      const results = res.json().results as KeyModel[];
      expect(results.map((k) => k.name)).toEqual(['admin-key']);
      expect(results[0]?.key_hash).toBe(sha256(otherKey));
      expect(results[0]?.organization_id).not.toBe(t.orgId);
      // And its protected admin-key is its own, not the first organization's.
      expectEnvelope(await asOther({ method: 'DELETE', url: keyUrl('admin-key', 'admin@test.local') }), 403, 'ForbiddenError');
    });

    it('creating a key for the same email makes a key in its own organization only', async () => {
      const res = await asOther({ method: 'POST', url: keysUrl(), payload: { name: 'victim', permissions: ['read'] } });
      expect(res.statusCode, res.body).toBe(200);
      const mine = res.json() as KeyModel;
      expect(mine.organization_id).not.toBe(t.orgId);
      expect(mine.user_id).not.toBe(victim.user_id);
      // The first organization still sees exactly its own 'victim'.
      const own = await t.call({ method: 'GET', url: keysUrl() });
      expect((own.json().results as KeyModel[]).filter((k) => k.name === 'victim').map((k) => k.key_id)).toEqual([victim.key_id]);
      // The new key reads its own organization: none of the first organization's namespaces.
      const listed = await t.call({ method: 'POST', url: '/v1/namespaces/list', payload: {}, key: (res.json() as { key: string }).key });
      expect(listed.statusCode).toBe(200);
      expect(listed.body).not.toContain('victim-ns');
    });
  });
}
