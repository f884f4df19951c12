import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { buildApp } from '../../src/http/app.js';
import { createOrganization } from '../../src/organizations/service.js';
import { createTestContext, expectEnvelope, type TestContext, tempBlobStore } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const EXTRACTORS = [{ feature_extractor_name: 'text_extractor', version: 'v1' }];

/** One request over a real socket, so that header case and framing reach Node exactly as an SDK sends them. */
function rawRequest(
  port: number,
  options: { method: string; path: string; headers: Record<string, string>; body?: string; chunked?: boolean },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: options.method, path: options.path, headers: options.headers, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (options.chunked) req.setHeader('Transfer-Encoding', 'chunked');
    req.end(options.body);
  });
}

for (const backend of BACKENDS) {
  describe(`SDK-style requests (${backend.name})`, () => {
    let t: TestContext;
    beforeAll(async () => {
      t = await createTestContext(backend);
      for (const name of ['sdk_one', 'sdk_two']) {
        const res = await t.call({ method: 'POST', url: '/v1/namespaces', payload: { namespace_name: name, feature_extractors: EXTRACTORS } });
        expect(res.statusCode, res.body).toBe(200);
      }
    });
    afterAll(() => t.close());

    describe('list endpoints POSTed with an empty body', () => {
      for (const contentType of [
        'application/json',
        'application/json; charset=utf-8',
        'Application/JSON; Charset=UTF-8',
        undefined,
      ]) {
        it(`answers 200 with every namespace for Content-Type ${contentType ?? '(none)'}`, async () => {
          const res = await t.call({
            method: 'POST',
            url: '/v1/namespaces/list',
            payload: '',
            headers: contentType ? { 'content-type': contentType } : {},
          });
          expect(res.statusCode, res.body).toBe(200);
          expect(res.json().total_count).toBe(2);
          expect(res.json().results.map((n: { namespace_name: string }) => n.namespace_name).sort()).toEqual(['sdk_one', 'sdk_two']);
        });
      }

      it('treats a whitespace-only JSON body as empty', async () => {
        const res = await t.call({
          method: 'POST',
          url: '/v1/namespaces/list',
          payload: ' \n ',
          headers: { 'content-type': 'application/json' },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().total_count).toBe(2);
      });

      it('still requires a body where the contract does (create)', async () => {
        const res = await t.call({ method: 'POST', url: '/v1/namespaces', payload: '', headers: { 'content-type': 'application/json' } });
        const err = expectEnvelope(res, 422, 'ValidationError');
        expect(err.message).toContain('missing');
      });
    });

    it('accepts JSON with a charset parameter on create', async () => {
      const res = await t.call({
        method: 'POST',
        url: '/v1/namespaces',
        payload: JSON.stringify({ namespace_name: 'sdk_charset', feature_extractors: EXTRACTORS, description: 'naïve café' }),
        headers: { 'content-type': 'application/json; charset=utf-8' },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().description).toBe('naïve café');
      await t.call({ method: 'DELETE', url: '/v1/namespaces/sdk_charset' });
    });

    it('accepts the Authorization header and Bearer scheme in any case', async () => {
      const variants: [string, string][] = [
        ['AUTHORIZATION', 'Bearer'],
        ['authorization', 'bearer'],
        ['Authorization', 'BEARER'],
      ];
      for (const [name, scheme] of variants) {
        const res = await t.call({ method: 'GET', url: '/v1/namespaces/sdk_one', key: null, headers: { [name]: `${scheme} ${t.adminKey}` } });
        expect(res.statusCode, `${name}: ${scheme}`).toBe(200);
      }
    });

    describe('unknown extra fields', () => {
      it('are ignored on create: accepted, not stored, not echoed', async () => {
        const res = await t.call({
          method: 'POST',
          url: '/v1/namespaces',
          payload: {
            namespace_name: 'sdk_extra',
            feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1', future_option: true }],
            payload_indexes: [{ field_name: 'title', type: 'keyword', sdk_hint: 'x' }],
            unknown_top_level: { nested: 1 },
            vector_inference_map: { a: 'b' },
          },
        });
        expect(res.statusCode, res.body).toBe(200);
        const created = res.json();
        expect(created).not.toHaveProperty('unknown_top_level');
        expect(created.feature_extractors[0]).not.toHaveProperty('future_option');
        expect(created.payload_indexes[0]).not.toHaveProperty('sdk_hint');
        const fetched = (await t.call({ method: 'GET', url: '/v1/namespaces/sdk_extra' })).json();
        expect(fetched).toEqual(created);
        expect(JSON.stringify(fetched)).not.toMatch(/unknown_top_level|future_option|sdk_hint/);
        await t.call({ method: 'DELETE', url: '/v1/namespaces/sdk_extra' });
      });

      it('are ignored on list and update bodies', async () => {
        const list = await t.call({ method: 'POST', url: '/v1/namespaces/list', payload: { page_size: 1, return_stats: true } });
        expect(list.statusCode, list.body).toBe(200);
        expect(list.json().total_count).toBe(2);
        const patch = await t.call({ method: 'PATCH', url: '/v1/namespaces/sdk_two', payload: { description: 'd', colour: 'red' } });
        expect(patch.statusCode, patch.body).toBe(200);
        expect(patch.json().description).toBe('d');
        expect(patch.json()).not.toHaveProperty('colour');
      });
    });

    describe('trailing slashes', () => {
      it('route POST /v1/namespaces/ and /v1/namespaces/list/', async () => {
        const created = await t.call({
          method: 'POST',
          url: '/v1/namespaces/',
          payload: { namespace_name: 'sdk_slash', feature_extractors: EXTRACTORS },
        });
        expect(created.statusCode, created.body).toBe(200);
        const list = await t.call({ method: 'POST', url: '/v1/namespaces/list/', payload: { filters: { namespace_name: 'sdk_slash' } } });
        expect(list.statusCode, list.body).toBe(200);
        expect(list.json().results.map((n: { namespace_id: string }) => n.namespace_id)).toEqual([created.json().namespace_id]);
      });

      it('route GET, PATCH and DELETE /v1/namespaces/{id}/', async () => {
        const get = await t.call({ method: 'GET', url: '/v1/namespaces/sdk_slash/' });
        expect(get.statusCode, get.body).toBe(200);
        expect(get.json().namespace_name).toBe('sdk_slash');
        const patch = await t.call({ method: 'PATCH', url: '/v1/namespaces/sdk_slash/', payload: { description: 'slashed' } });
        expect(patch.json().description).toBe('slashed');
        expect((await t.call({ method: 'DELETE', url: '/v1/namespaces/sdk_slash/' })).statusCode).toBe(200);
        expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/sdk_slash' }), 404, 'NotFoundError');
      });
    });

    describe('OpenAPI and docs', () => {
      interface OpenApiDoc {
        openapi: string;
        paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> } }>>;
        components?: { schemas?: Record<string, unknown> };
      }
      let doc: OpenApiDoc;
      beforeAll(async () => {
        const res = await t.call({ method: 'GET', url: '/openapi.json', key: null });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        doc = res.json();
      });

      /** Resolves a `$ref` into components, once, so that a test can read properties either way. */
      const resolve = (schema: Record<string, unknown>): Record<string, unknown> => {
        const ref = schema.$ref;
        if (typeof ref !== 'string') return schema;
        const name = ref.split('/').pop()!;
        return (doc.components?.schemas?.[name] ?? {}) as Record<string, unknown>;
      };
      const bodySchema = (path: string, method: string) => {
        const op = doc.paths[path]?.[method];
        expect(op, `${method.toUpperCase()} ${path} in the document`).toBeDefined();
        const schema = op!.requestBody?.content['application/json']?.schema;
        expect(schema, `request body of ${method.toUpperCase()} ${path}`).toBeDefined();
        return resolve(schema!);
      };

      it('is an OpenAPI 3.1 document, served without a key', () => {
        expect(doc.openapi).toMatch(/^3\.1\./);
      });

      it('describes the namespace paths with request-body schemas', () => {
        const create = bodySchema('/v1/namespaces', 'post');
        expect(Object.keys(create.properties as object)).toEqual(
          expect.arrayContaining(['namespace_name', 'feature_extractors', 'payload_indexes', 'description']),
        );
        expect(create.required).toEqual(expect.arrayContaining(['namespace_name', 'feature_extractors']));
        expect(Object.keys(bodySchema('/v1/namespaces/list', 'post').properties as object)).toEqual(
          expect.arrayContaining(['filters', 'sort', 'search', 'case_sensitive']),
        );
        const item = doc.paths['/v1/namespaces/{namespace_identifier}'];
        expect(Object.keys(item ?? {})).toEqual(expect.arrayContaining(['get', 'put', 'patch', 'delete']));
        expect(Object.keys(bodySchema('/v1/namespaces/{namespace_identifier}', 'patch').properties as object)).toEqual(
          expect.arrayContaining(['namespace_name', 'description', 'payload_indexes']),
        );
        expect(Object.keys(bodySchema('/v1/namespaces/{namespace_identifier}', 'put').properties as object)).toEqual(
          expect.arrayContaining(['namespace_name', 'payload_indexes']),
        );
      });

      it('describes the API-key paths with request-body schemas', () => {
        const base = '/v1/organizations/users/{user_email}/api-keys';
        const create = bodySchema(base, 'post');
        expect(Object.keys(create.properties as object)).toEqual(expect.arrayContaining(['name', 'permissions']));
        expect(Object.keys(doc.paths[base] ?? {})).toEqual(expect.arrayContaining(['get', 'post']));
        expect(doc.paths[`${base}/{key_name}`]).toBeDefined();
      });

      it('serves the docs UI as HTML at /docs', async () => {
        for (const url of ['/docs', '/docs/']) {
          const res = await t.call({ method: 'GET', url, key: null });
          expect(res.statusCode, url).toBe(200);
          expect(res.headers['content-type']).toMatch(/^text\/html/);
          expect(res.body).toMatch(/<html/i);
        }
      });
    });

    describe('X-Namespace resolution on namespaced routes', () => {
      let db: Db;
      let app: FastifyInstance;
      let key: string;
      let otherKey: string;
      let nsId: string;
      let otherNsId: string;

      beforeAll(async () => {
        db = await backend.open();
        app = await buildApp({
          db,
          blobs: tempBlobStore().blobs,
          // A namespaced route that only reports what the hook resolved: no real namespaced route exists yet.
          extraRoutes(a) {
            a.get('/v1/test/whereami', { config: { permission: 'read', namespaced: true } }, async (req) => req.namespace);
            a.post('/v1/test/whereami', { config: { permission: 'write', namespaced: true } }, async (req) => req.namespace);
          },
        });
        key = (await createOrganization(db, `sdk-${Date.now()}`, 'sdk@test.local')).adminKey;
        otherKey = (await createOrganization(db, `sdk-other-${Date.now()}`, 'o@test.local')).adminKey;
        const make = async (k: string, name: string) => {
          const res = await app.inject({
            method: 'POST',
            url: '/v1/namespaces',
            headers: { authorization: `Bearer ${k}` },
            payload: { namespace_name: name, feature_extractors: EXTRACTORS },
          });
          expect(res.statusCode, res.body).toBe(200);
          return res.json().namespace_id as string;
        };
        nsId = await make(key, 'home');
        otherNsId = await make(otherKey, 'elsewhere');
      });
      afterAll(async () => {
        await app.close();
        await db.close();
      });

      const whereami = (headers: Record<string, string>, query = '', k: string | null = key) =>
        app.inject({
          method: 'GET',
          url: `/v1/test/whereami${query}`,
          headers: { ...(k ? { authorization: `Bearer ${k}` } : {}), ...headers },
        });

      it('resolves a name or an ns_ id from X-Namespace in any header case', async () => {
        for (const header of ['X-Namespace', 'x-namespace', 'X-NAMESPACE']) {
          for (const value of ['home', nsId]) {
            const res = await whereami({ [header]: value });
            expect(res.statusCode, `${header}: ${value} → ${res.body}`).toBe(200);
            expect(res.json()).toEqual({ id: nsId, name: 'home' });
          }
        }
      });

      it('falls back to ?namespace= and prefers the header when both are sent', async () => {
        const byQuery = await whereami({}, '?namespace=home');
        expect(byQuery.statusCode, byQuery.body).toBe(200);
        expect(byQuery.json().id).toBe(nsId);
        const both = await whereami({ 'x-namespace': nsId }, '?namespace=does_not_exist');
        expect(both.statusCode, both.body).toBe(200);
        expect(both.json().id).toBe(nsId);
      });

      it('answers 400 naming X-Namespace when it is missing or blank', async () => {
        for (const headers of [{}, { 'x-namespace': '   ' }] as Record<string, string>[]) {
          const err = expectEnvelope(await whereami(headers), 400, 'BadRequestError');
          expect(err.message).toContain('X-Namespace');
        }
      });

      it('answers 404 naming an unknown namespace, and for another organization’s', async () => {
        const err = expectEnvelope(await whereami({ 'x-namespace': 'nowhere' }), 404, 'NotFoundError');
        expect(err.message).toContain('nowhere');
        for (const value of ['elsewhere', otherNsId]) {
          const res = await whereami({ 'x-namespace': value });
          expect(expectEnvelope(res, 404, 'NotFoundError').message).toContain(value);
        }
        // The other organization reaches its own namespace through the same route.
        const theirs = await whereami({ 'x-namespace': 'elsewhere' }, '', otherKey);
        expect(theirs.json().id).toBe(otherNsId);
      });

      it('answers 400 for an over-long identifier', async () => {
        const long = 'a'.repeat(201);
        expect(expectEnvelope(await whereami({ 'x-namespace': long }), 400, 'BadRequestError').message).toContain('too long');
      });

      it('authenticates before resolving: no key is 401 even with an unknown namespace', async () => {
        expectEnvelope(await whereami({ 'x-namespace': 'nowhere' }, '', null), 401, 'UnauthorizedError');
      });

      it('works over a real socket with SDK-style raw headers and an empty JSON body', async () => {
        await app.listen({ host: '127.0.0.1', port: 0 });
        const { port } = app.server.address() as AddressInfo;
        const headers = { AUTHORIZATION: `Bearer ${key}`, 'X-Namespace': 'home', 'Content-Type': 'application/json; charset=utf-8' };
        const posted = await rawRequest(port, { method: 'POST', path: '/v1/test/whereami/', headers, body: '' });
        expect(posted.status, posted.body).toBe(200);
        expect(JSON.parse(posted.body)).toEqual({ id: nsId, name: 'home' });
        // Chunked framing with no chunks: the shape some HTTP clients use for an empty streamed body.
        const chunked = await rawRequest(port, {
          method: 'POST',
          path: '/v1/namespaces/list',
          headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
          chunked: true,
        });
        expect(chunked.status, chunked.body).toBe(200);
        expect(JSON.parse(chunked.body).total_count).toBe(1);
      });
    });
  });
}
