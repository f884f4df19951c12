import { createHash } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Permission } from '../../src/auth/permissions.js';
import { createOrganization } from '../../src/organizations/service.js';
import { createTestContext, expectEnvelope, type TestContext } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

const nsBody = (name: string, description?: string) => ({
  namespace_name: name,
  description,
  feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }],
});

// A well-formed key nobody issued: the secret part must never come back in an error message.
const UNKNOWN_KEY = 'sk_live_Q7xW2mLp9ZtR4vKc8NbY3hJd6FgS1aE5uTo0iPqXyVn';

for (const backend of BACKENDS) {
  describe(`authentication (${backend.name})`, () => {
    let t: TestContext;
    let seq = 0;
    const uniq = (base: string) => `${base}-${++seq}`;

    /** Creates a key over HTTP (so it can later be revoked over HTTP) and returns its plaintext and name. */
    async function apiKey(permissions: Permission[]): Promise<{ key: string; name: string }> {
      const name = uniq('auth-key');
      const res = await t.call({
        method: 'POST',
        url: '/v1/organizations/users/member@test.local/api-keys',
        payload: { name, permissions },
      });
      expect(res.statusCode, res.body).toBe(200);
      return { key: res.json().key, name };
    }

    /** A cheap request that needs `read`: listing namespaces. */
    const readCall = (headers: Record<string, string>) =>
      t.app.inject({ method: 'POST', url: '/v1/namespaces/list', payload: {}, headers });

    beforeAll(async () => {
      t = await createTestContext(backend);
    });
    afterAll(() => t.close());

    it('answers 401 UnauthorizedError with a Bearer challenge when no Authorization header is sent', async () => {
      const res = await t.call({ method: 'POST', url: '/v1/namespaces/list', payload: {}, key: null });
      const error = expectEnvelope(res, 401, 'UnauthorizedError');
      expect(error.message).toMatch(/missing API key/i);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    });

    it('treats an empty header or a bare "Bearer" as a missing key', async () => {
      for (const authorization of ['', '   ', 'Bearer', 'Bearer    ']) {
        const res = await readCall({ authorization });
        const error = expectEnvelope(res, 401, 'UnauthorizedError');
        expect(error.message, JSON.stringify(authorization)).toMatch(/missing API key/i);
      }
    });

    it('answers 401 for an unknown key, showing only its 10-character prefix', async () => {
      const res = await readCall({ authorization: `Bearer ${UNKNOWN_KEY}` });
      const error = expectEnvelope(res, 401, 'UnauthorizedError');
      expect(error.message).toContain(UNKNOWN_KEY.slice(0, 10));
      expect(res.body).not.toContain(UNKNOWN_KEY.slice(0, 11));
      expect(res.body).not.toContain(UNKNOWN_KEY.slice(10));
    });

    it('answers 401 for malformed keys without echoing them whole, however short', async () => {
      for (const token of ['Zq', 'abc123', 'Zq9-short-tok3n', 'sk_live_', 'not-a-key-at-all', '"quoted\'key";--']) {
        const res = await readCall({ authorization: `Bearer ${token}` });
        const error = expectEnvelope(res, 401, 'UnauthorizedError');
        expect(error.message, token).not.toContain(token);
        expect(res.body, token).not.toContain(token);
      }
    });

    it('answers 401 for an unsupported scheme and does not echo its credentials', async () => {
      const credentials = Buffer.from('user:hunter2-password').toString('base64');
      const res = await readCall({ authorization: `Basic ${credentials}` });
      const error = expectEnvelope(res, 401, 'UnauthorizedError');
      expect(error.message).toMatch(/Basic/);
      expect(res.body).not.toContain(credentials.slice(0, 6));
    });

    it('accepts the Bearer scheme in any case, and a bare sk_ key', async () => {
      const { key } = await apiKey(['read']);
      for (const authorization of [`Bearer ${key}`, `bearer ${key}`, `BEARER ${key}`, `BeArEr   ${key}  `, key, `  ${key}`]) {
        const res = await readCall({ authorization });
        expect(res.statusCode, `${JSON.stringify(authorization.replace(key, '<key>'))}: ${res.body}`).toBe(200);
      }
    });

    it('reads the Authorization header whatever the case of its name', async () => {
      const { key } = await apiKey(['read']);
      for (const name of ['authorization', 'Authorization', 'AUTHORIZATION', 'aUtHoRiZaTiOn']) {
        const res = await readCall({ [name]: `Bearer ${key}` });
        expect(res.statusCode, `${name}: ${res.body}`).toBe(200);
      }
    });

    it('rejects a key revoked through the DELETE endpoint at once (401)', async () => {
      const { key, name } = await apiKey(['read']);
      expect((await readCall({ authorization: `Bearer ${key}` })).statusCode).toBe(200);
      const del = await t.call({ method: 'DELETE', url: `/v1/organizations/users/member@test.local/api-keys/${name}` });
      expect(del.statusCode, del.body).toBe(200);
      const res = await readCall({ authorization: `Bearer ${key}` });
      const error = expectEnvelope(res, 401, 'UnauthorizedError');
      expect(error.message).toMatch(/revoked/);
      expect(error.message).toContain(key.slice(0, 10));
      expect(res.body).not.toContain(key.slice(10));
    });

    it('rejects a key whose expires_at has passed (401), even while its status still says active', async () => {
      const { key } = await apiKey(['admin']);
      expect((await readCall({ authorization: `Bearer ${key}` })).statusCode).toBe(200);
      const updated = await t.db.query<{ status: string }>(
        `UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE key_hash = $1 RETURNING status`,
        [sha256(key)],
      );
      expect(updated).toEqual([{ status: 'active' }]);
      const res = await readCall({ authorization: `Bearer ${key}` });
      const error = expectEnvelope(res, 401, 'UnauthorizedError');
      expect(error.message).toMatch(/expired/);
      expect(res.body).not.toContain(key.slice(10));
    });

    it('rejects a key whose status is expired (401)', async () => {
      const { key } = await apiKey(['read']);
      await t.db.query(`UPDATE api_keys SET status = 'expired' WHERE key_hash = $1`, [sha256(key)]);
      expectEnvelope(await readCall({ authorization: `Bearer ${key}` }), 401, 'UnauthorizedError');
    });

    it('keeps accepting a key whose expiry is still ahead', async () => {
      const { key } = await apiKey(['read']);
      await t.db.query(`UPDATE api_keys SET expires_at = now() + interval '1 hour' WHERE key_hash = $1`, [sha256(key)]);
      expect((await readCall({ authorization: `Bearer ${key}` })).statusCode).toBe(200);
    });

    it('answers 403 ForbiddenError naming the permission when a read key writes, and writes nothing', async () => {
      const key = await t.key(['read']);
      const name = uniq('ro-attempt');
      const res = await t.call({ method: 'POST', url: '/v1/namespaces', payload: nsBody(name), key });
      const error = expectEnvelope(res, 403, 'ForbiddenError');
      expect(error.message).toMatch(/\bwrite\b/);
      expect(error.details).toMatchObject({ required_permission: 'write', key_permissions: ['read'] });
      expectEnvelope(await t.call({ method: 'GET', url: `/v1/namespaces/${name}` }), 404, 'NotFoundError');
    });

    it('applies the hierarchy admin > delete > write > read', async () => {
      const keys = {
        read: await t.key(['read']),
        write: await t.key(['write']),
        delete: await t.key(['delete']),
        admin: await t.key(['admin']),
      };
      const rank: Permission[] = ['read', 'write', 'delete', 'admin'];
      const keyRoute = '/v1/organizations/users/member@test.local/api-keys';
      for (const holder of rank) {
        const key = keys[holder];
        const name = uniq(`h-${holder}`);
        const attempts: { needs: Permission; run: () => Promise<LightMyRequestResponse> }[] = [
          { needs: 'read', run: () => t.call({ method: 'POST', url: '/v1/namespaces/list', payload: {}, key }) },
          { needs: 'write', run: () => t.call({ method: 'POST', url: '/v1/namespaces', payload: nsBody(name), key }) },
          {
            needs: 'delete',
            // Deleting what the admin key created, so every holder has something to aim at.
            run: async () => {
              const victim = uniq('victim');
              const made = await t.call({ method: 'POST', url: '/v1/namespaces', payload: nsBody(victim) });
              expect(made.statusCode, made.body).toBe(200);
              return t.call({ method: 'DELETE', url: `/v1/namespaces/${victim}`, key });
            },
          },
          { needs: 'admin', run: () => t.call({ method: 'GET', url: keyRoute, key }) },
        ];
        for (const { needs, run } of attempts) {
          const res = await run();
          const allowed = rank.indexOf(holder) >= rank.indexOf(needs);
          if (allowed) {
            expect(res.statusCode, `${holder} key doing a ${needs} request: ${res.body}`).toBe(200);
          } else {
            const error = expectEnvelope(res, 403, 'ForbiddenError');
            expect(error.message, `${holder} key doing a ${needs} request`).toContain(needs);
            expect(error.details?.required_permission).toBe(needs);
          }
        }
      }
    });

    it('grants a key holding several permissions the strongest of them', async () => {
      const key = await t.key(['read', 'delete']);
      const res = await t.call({ method: 'POST', url: '/v1/namespaces', payload: nsBody(uniq('multi')), key });
      expect(res.statusCode, res.body).toBe(200);
      expectEnvelope(
        await t.call({ method: 'GET', url: '/v1/organizations/users/member@test.local/api-keys', key }),
        403,
        'ForbiddenError',
      );
    });

    it('refuses every key-management route to non-admin keys (403) and changes nothing', async () => {
      const { key: target, name: targetName } = await apiKey(['read']);
      const base = '/v1/organizations/users/member@test.local/api-keys';
      for (const perms of [['read'], ['write'], ['delete'], ['read', 'write', 'delete']] as Permission[][]) {
        const key = await t.key(perms);
        const calls = [
          t.call({ method: 'POST', url: base, payload: { name: uniq('sneaky'), permissions: ['admin'] }, key }),
          t.call({ method: 'GET', url: base, key }),
          t.call({ method: 'PATCH', url: `${base}/${targetName}`, payload: { permissions: ['admin'] }, key }),
          t.call({ method: 'DELETE', url: `${base}/${targetName}`, key }),
          t.call({ method: 'POST', url: `${base}/${targetName}/rotate`, key }),
        ];
        for (const res of await Promise.all(calls)) {
          const error = expectEnvelope(res, 403, 'ForbiddenError');
          expect(error.message).toContain('admin');
          expect(error.details?.required_permission).toBe('admin');
        }
      }
      // The target survived untouched: same secret, still read-only.
      expect((await readCall({ authorization: `Bearer ${target}` })).statusCode).toBe(200);
      const rows = await t.db.query<{ permissions: string[]; status: string }>(
        'SELECT permissions, status FROM api_keys WHERE key_hash = $1',
        [sha256(target)],
      );
      expect(rows).toEqual([{ permissions: ['read'], status: 'active' }]);
      const sneaky = await t.db.query(`SELECT 1 FROM api_keys WHERE name LIKE 'sneaky-%'`);
      expect(sneaky).toHaveLength(0);
    });
  });

  describe(`cross-organization isolation of namespaces (${backend.name})`, () => {
    let t: TestContext;
    let otherKey: string;
    let nsA: { namespace_id: string; namespace_name: string };

    const asOther = (opts: Parameters<TestContext['call']>[0]) => t.call({ ...opts, key: otherKey });

    beforeAll(async () => {
      t = await createTestContext(backend);
      const other = await createOrganization(t.db, `other-org-${Date.now()}`, 'admin@other.local');
      expect(other.organization.id).not.toBe(t.orgId);
      otherKey = other.adminKey;
      const res = await t.call({ method: 'POST', url: '/v1/namespaces', payload: nsBody('org-a-private', 'belongs to A') });
      expect(res.statusCode, res.body).toBe(200);
      nsA = res.json();
    });
    afterAll(() => t.close());

    /** The envelope with the identifier blanked out, so two 404s can be compared field by field. */
    const normalised = (res: LightMyRequestResponse, identifier: string) =>
      JSON.parse(res.body.split(identifier).join('<id>'));

    it('answers 404 for another organization’s namespace, exactly as for a missing one', async () => {
      const missingName = 'org-a-missing';
      const missingId = `ns_${'0'.repeat(nsA.namespace_id.length - 3)}`;
      for (const [identifier, missing] of [
        [nsA.namespace_name, missingName],
        [nsA.namespace_id, missingId],
      ] as const) {
        const res = await asOther({ method: 'GET', url: `/v1/namespaces/${identifier}` });
        const error = expectEnvelope(res, 404, 'NotFoundError');
        expect(error.message).toContain(identifier);
        const miss = await asOther({ method: 'GET', url: `/v1/namespaces/${missing}` });
        expectEnvelope(miss, 404, 'NotFoundError');
        expect(normalised(res, identifier)).toEqual(normalised(miss, missing));
        expect(res.body).not.toContain('belongs to A');
      }
    });

    it('never lists another organization’s namespaces, whatever the filter', async () => {
      for (const payload of [
        {},
        { search: 'org-a' },
        { filters: { namespace_name: nsA.namespace_name } },
        { filters: { namespace_id: nsA.namespace_id } },
        { filters: { namespace_name: { $regex: '.*' } } },
      ]) {
        const res = await asOther({ method: 'POST', url: '/v1/namespaces/list', payload });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().results, JSON.stringify(payload)).toEqual([]);
        expect(res.json().total_count).toBe(0);
        expect(res.body).not.toContain(nsA.namespace_id);
      }
      // The owner does see it: the empty lists above are isolation, not a broken listing.
      const own = await t.call({ method: 'POST', url: '/v1/namespaces/list', payload: {} });
      expect(own.json().results.map((n: { namespace_id: string }) => n.namespace_id)).toContain(nsA.namespace_id);
    });

    it('cannot update or delete another organization’s namespace (404) and leaves it intact', async () => {
      for (const identifier of [nsA.namespace_name, nsA.namespace_id]) {
        const attempts = [
          asOther({ method: 'PUT', url: `/v1/namespaces/${identifier}`, payload: { namespace_name: 'stolen' } }),
          asOther({ method: 'PATCH', url: `/v1/namespaces/${identifier}`, payload: { description: 'defaced' } }),
          asOther({ method: 'DELETE', url: `/v1/namespaces/${identifier}` }),
        ];
        for (const res of await Promise.all(attempts)) expectEnvelope(res, 404, 'NotFoundError');
      }
      const res = await t.call({ method: 'GET', url: `/v1/namespaces/${nsA.namespace_id}` });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ namespace_name: 'org-a-private', description: 'belongs to A' });
    });

    it('lets both organizations own a namespace of the same name, each seeing only its own', async () => {
      const name = 'shared-name';
      const a = await t.call({ method: 'POST', url: '/v1/namespaces', payload: nsBody(name, 'A copy') });
      const b = await asOther({ method: 'POST', url: '/v1/namespaces', payload: nsBody(name, 'B copy') });
      expect(a.statusCode, a.body).toBe(200);
      expect(b.statusCode, b.body).toBe(200);
      const idA = a.json().namespace_id;
      const idB = b.json().namespace_id;
      expect(idA).not.toBe(idB);

      expect((await t.call({ method: 'GET', url: `/v1/namespaces/${name}` })).json()).toMatchObject({
        namespace_id: idA,
        description: 'A copy',
      });
      expect((await asOther({ method: 'GET', url: `/v1/namespaces/${name}` })).json()).toMatchObject({
        namespace_id: idB,
        description: 'B copy',
      });
      // A's id stays out of reach even though B holds a namespace of that very name.
      expectEnvelope(await asOther({ method: 'GET', url: `/v1/namespaces/${idA}` }), 404, 'NotFoundError');

      const listB = await asOther({ method: 'POST', url: '/v1/namespaces/list', payload: {} });
      expect(listB.json().results.map((n: { namespace_id: string }) => n.namespace_id)).toEqual([idB]);

      // Deleting B's copy by name leaves A's copy alone.
      expect((await asOther({ method: 'DELETE', url: `/v1/namespaces/${name}` })).statusCode).toBe(200);
      expect((await t.call({ method: 'GET', url: `/v1/namespaces/${idA}` })).statusCode).toBe(200);
    });
  });
}
