import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { ApiError } from '../../src/errors/registry.js';
import { buildApp } from '../../src/http/app.js';
import { frameworkErrorHandler, installErrorHandling } from '../../src/http/error-handler.js';
import { MAX_DEPTH } from '../../src/http/zod-validator.js';
import { createOrganization } from '../../src/organizations/service.js';
import { createTestContext, expectEnvelope, type TestContext, tempBlobStore, type ValidationIssueShape, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const EXTRACTORS = [{ feature_extractor_name: 'text_extractor', version: 'v1' }];

/** Checks the shape DESIGN-NOTES §3 gives `details.validation_errors` and returns the issues. */
function checkedIssues(error: { details: Record<string, unknown> | null }): ValidationIssueShape[] {
  const issues = validationIssues(error);
  expect(issues.length).toBeGreaterThan(0);
  for (const issue of issues) {
    expect(Object.keys(issue).sort()).toEqual(['location', 'message', 'type']);
    expect(typeof issue.type).toBe('string');
    expect(typeof issue.message).toBe('string');
    expect(Array.isArray(issue.location)).toBe(true);
    expect(['body', 'query', 'path']).toContain(issue.location[0]);
  }
  return issues;
}

/** `depth` nested arrays around a string, as JSON text: `JSON.stringify` itself overflows on deep values. */
const nestedJson = (depth: number): string => `${'['.repeat(depth)}"leaf"${']'.repeat(depth)}`;

for (const backend of BACKENDS) {
  describe(`error envelope (${backend.name})`, () => {
    let t: TestContext;
    beforeAll(async () => {
      t = await createTestContext(backend);
    });
    afterAll(() => t.close());

    const post = (url: string, payload: string, contentType = 'application/json', key?: string) =>
      t.call({ method: 'POST', url, payload, key, headers: { 'content-type': contentType } });

    describe('400 BadRequestError', () => {
      it('answers malformed JSON with 400 on create and on list', async () => {
        for (const url of ['/v1/namespaces', '/v1/namespaces/list']) {
          const res = await post(url, '{"namespace_name": "half');
          const err = expectEnvelope(res, 400, 'BadRequestError');
          expect(err.message).toMatch(/not valid JSON/);
          expect(res.headers['content-type']).toMatch(/^application\/json/);
        }
      });

      it('creates nothing from a malformed body', async () => {
        await post('/v1/namespaces', `{"namespace_name": "err_half", "feature_extractors": ${JSON.stringify(EXTRACTORS)}`);
        expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/err_half' }), 404, 'NotFoundError');
      });

      it('answers a Content-Length that does not match the body with 400', async () => {
        const res = await t.call({
          method: 'POST',
          url: '/v1/namespaces/list',
          payload: '{"search": "abcdefgh"}',
          headers: { 'content-type': 'application/json', 'content-length': '3' },
        });
        expectEnvelope(res, 400, 'BadRequestError');
      });
    });

    describe('401 UnauthorizedError', () => {
      it('answers a missing key with 401 and WWW-Authenticate', async () => {
        const res = await t.call({ method: 'POST', url: '/v1/namespaces/list', key: null, payload: {} });
        const err = expectEnvelope(res, 401, 'UnauthorizedError');
        expect(err.message).toMatch(/API key/);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      });

      it('answers an unknown key with 401 naming its prefix, never the whole key', async () => {
        const bogus = 'sk_live_NOTAREALKEY0000000000000000000000000000';
        const res = await t.call({ method: 'GET', url: '/v1/namespaces/anything', key: bogus });
        const err = expectEnvelope(res, 401, 'UnauthorizedError');
        expect(err.message).toContain(bogus.slice(0, 10));
        expect(res.body).not.toContain(bogus);
      });

      it('checks the key before anything else: no 404, 413 or 422 leaks to an anonymous caller', async () => {
        expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/ns_missing', key: null }), 401, 'UnauthorizedError');
        expectEnvelope(
          await t.call({ method: 'POST', url: '/v1/namespaces', key: null, payload: { namespace_name: '' } }),
          401,
          'UnauthorizedError',
        );
      });
    });

    describe('403 ForbiddenError', () => {
      it('answers a key without the needed permission with 403 naming both', async () => {
        const readKey = await t.key(['read']);
        const res = await t.call({
          method: 'POST',
          url: '/v1/namespaces',
          key: readKey,
          payload: { namespace_name: 'err_forbidden', feature_extractors: EXTRACTORS },
        });
        const err = expectEnvelope(res, 403, 'ForbiddenError');
        expect(err.message).toContain('write');
        expect(err.message).toContain('read');
        expect(err.details).toMatchObject({ required_permission: 'write', key_permissions: ['read'] });
        expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/err_forbidden' }), 404, 'NotFoundError');

        const writeKey = await t.key(['write']);
        const del = await t.call({ method: 'DELETE', url: '/v1/namespaces/whatever', key: writeKey });
        expect(expectEnvelope(del, 403, 'ForbiddenError').message).toContain('delete');
      });
    });

    describe('404 NotFoundError', () => {
      it('answers an unknown route with the envelope, even with no API key', async () => {
        for (const key of [null, undefined]) {
          const res = await t.call({ method: 'GET', url: '/v1/no/such/route?x=1', key });
          const err = expectEnvelope(res, 404, 'NotFoundError');
          expect(err.message).toContain('/v1/no/such/route');
          expect(err.message).toContain('GET');
          expect(err.details).toEqual({ method: 'GET', path: '/v1/no/such/route' });
        }
        const outside = await t.call({ method: 'POST', url: '/totally-unknown', key: null, payload: {} });
        expect(expectEnvelope(outside, 404, 'NotFoundError').message).toContain('/totally-unknown');
      });

      it('answers a known path with a method it does not serve with the 404 envelope', async () => {
        const err = expectEnvelope(await t.call({ method: 'DELETE', url: '/v1/namespaces', key: null }), 404, 'NotFoundError');
        expect(err.message).toContain('DELETE');
      });

      it('answers an unknown namespace with 404 naming it', async () => {
        const err = expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/err_nowhere' }), 404, 'NotFoundError');
        expect(err.message).toContain('err_nowhere');
      });
    });

    describe('409 AlreadyExistsError', () => {
      it('answers a duplicate namespace name with 409 naming it', async () => {
        const body = { namespace_name: 'err_dup', feature_extractors: EXTRACTORS };
        expect((await t.call({ method: 'POST', url: '/v1/namespaces', payload: body })).statusCode).toBe(200);
        const err = expectEnvelope(await t.call({ method: 'POST', url: '/v1/namespaces', payload: body }), 409, 'AlreadyExistsError');
        expect(err.message).toContain('err_dup');
      });
    });

    describe('413 PayloadTooLargeError', () => {
      let small: TestContext;
      beforeAll(async () => {
        small = await createTestContext(backend, { bodyLimitBytes: 2048 });
      });
      afterAll(() => small.close());

      it('answers a body over the limit with 413 naming the limit', async () => {
        const payload = JSON.stringify({ namespace_name: 'err_big', feature_extractors: EXTRACTORS, description: 'x'.repeat(4000) });
        const res = await small.call({ method: 'POST', url: '/v1/namespaces', payload, headers: { 'content-type': 'application/json' } });
        const err = expectEnvelope(res, 413, 'PayloadTooLargeError');
        expect(err.message).toContain('2048');
        expect(err.details).toEqual({ limit_bytes: 2048 });
        expectEnvelope(await small.call({ method: 'GET', url: '/v1/namespaces/err_big' }), 404, 'NotFoundError');
      });

      it('accepts a body under the same limit', async () => {
        const res = await small.call({
          method: 'POST',
          url: '/v1/namespaces',
          payload: { namespace_name: 'err_fits', feature_extractors: EXTRACTORS, description: 'x'.repeat(1500) },
        });
        expect(res.statusCode, res.body).toBe(200);
      });
    });

    describe('415 UnsupportedMediaTypeError', () => {
      for (const contentType of ['application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x', 'garbage']) {
        it(`answers Content-Type ${contentType} with 415 naming it`, async () => {
          const res = await post('/v1/namespaces', 'namespace_name=err_form', contentType);
          const err = expectEnvelope(res, 415, 'UnsupportedMediaTypeError');
          expect(err.message).toContain(contentType);
          expect(err.message).toContain('application/json');
        });
      }

      // Fastify registers a text/plain parser by default; Sluice removes it so such bodies are refused.
      it('answers Content-Type text/plain with 415', async () => {
        const body = JSON.stringify({ namespace_name: 'err_text', feature_extractors: EXTRACTORS });
        const err = expectEnvelope(await post('/v1/namespaces', body, 'text/plain'), 415, 'UnsupportedMediaTypeError');
        expect(err.message).toContain('text/plain');
      });

      it('never stores a text/plain body, whatever it answers', async () => {
        const body = JSON.stringify({ namespace_name: 'err_text2', feature_extractors: EXTRACTORS });
        const res = await post('/v1/namespaces', body, 'text/plain');
        expect(res.statusCode).toBeGreaterThanOrEqual(400);
        expect(res.statusCode).toBeLessThan(500);
        expect(res.json().success).toBe(false);
        expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/err_text2' }), 404, 'NotFoundError');
      });
    });

    describe('422 ValidationError', () => {
      it('locates body issues under "body" and names field and value', async () => {
        const res = await t.call({
          method: 'POST',
          url: '/v1/namespaces',
          payload: { namespace_name: 'bad name', feature_extractors: 'none' },
        });
        const err = expectEnvelope(res, 422, 'ValidationError');
        const issues = checkedIssues(err);
        const byLocation = new Map(issues.map((i) => [i.location.join('.'), i]));
        expect(byLocation.get('body.namespace_name')?.message).toContain('"bad name"');
        expect(byLocation.get('body.feature_extractors')?.message).toContain('"none"');
        expect(err.message).toContain('body.namespace_name');
        expect(err.message).toContain('"bad name"');
      });

      it('says a required field is missing', async () => {
        const err = expectEnvelope(await t.call({ method: 'POST', url: '/v1/namespaces', payload: {} }), 422, 'ValidationError');
        const issues = checkedIssues(err);
        expect(issues.find((i) => i.location.join('.') === 'body.feature_extractors')?.message).toContain('missing');
      });

      it('answers a body of the wrong JSON type with 422 located at "body"', async () => {
        for (const payload of ['[]', '"text"', '42']) {
          const err = expectEnvelope(await post('/v1/namespaces', payload), 422, 'ValidationError');
          expect(checkedIssues(err)[0]!.location).toEqual(['body']);
          expect(err.message).toContain(payload);
        }
      });

      it('locates query issues under "query"', async () => {
        const err = expectEnvelope(await post('/v1/namespaces/list?limit=zero&offset=-3', '{}'), 422, 'ValidationError');
        const issues = checkedIssues(err);
        expect(issues.map((i) => i.location.join('.')).sort()).toEqual(['query.limit', 'query.offset']);
        // The value as sent, not as coerced (NaN would render as null).
        expect(issues.find((i) => i.location[1] === 'limit')!.message).toContain('"zero"');
        expect(issues.find((i) => i.location[1] === 'offset')!.message).toContain('-3');
      });

      it('locates path issues under "path"', async () => {
        const err = expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/a%00b' }), 422, 'ValidationError');
        expect(checkedIssues(err)[0]!.location).toEqual(['path', 'namespace_identifier']);
      });

      it('refuses NUL characters and lone surrogates anywhere in a stored value, naming where', async () => {
        const cases: [Record<string, unknown>, string][] = [
          [{ description: 'a\u0000b' }, 'body.description'],
          [{ feature_extractors: [{ feature_extractor_name: 'x', version: 'v1', params: { model: 'm\u0000' } }] }, 'body.feature_extractors.0.params.model'],
          [{ feature_extractors: [{ feature_extractor_name: 'x', version: 'v1', params: { 'k\u0000': 1 } }] }, 'body.feature_extractors.0.params.k\u0000'],
          [{ feature_extractors: [{ feature_extractor_name: 'x', version: 'v1', params: { s: 'a\ud800b' } }] }, 'body.feature_extractors.0.params.s'],
          [{ description: 'tail \udc00' }, 'body.description'],
        ];
        for (const [extra, where] of cases) {
          const payload = { namespace_name: 'err_nul', feature_extractors: EXTRACTORS, ...extra };
          const err = expectEnvelope(await t.call({ method: 'POST', url: '/v1/namespaces', payload }), 422, 'ValidationError');
          expect(checkedIssues(err).map((i) => i.location.join('.'))).toContain(where);
        }
        const list = await t.call({ method: 'POST', url: '/v1/namespaces/list', payload: { search: 'x\u0000' } });
        expect(checkedIssues(expectEnvelope(list, 422, 'ValidationError'))[0]!.location).toEqual(['body', 'search']);
        expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/err_nul' }), 404, 'NotFoundError');
      });

      it('keeps a valid surrogate pair (emoji) intact', async () => {
        const payload = { namespace_name: 'err_emoji', feature_extractors: EXTRACTORS, description: 'rocket 🚀 ok' };
        const res = await t.call({ method: 'POST', url: '/v1/namespaces', payload });
        expect(res.statusCode, res.body).toBe(200);
        expect((await t.call({ method: 'GET', url: '/v1/namespaces/err_emoji' })).json().description).toBe('rocket 🚀 ok');
      });

      it(`refuses bodies nested deeper than ${MAX_DEPTH} levels with 422, at any depth, and accepts shallower ones`, async () => {
        for (const depth of [MAX_DEPTH + 1, 5000, 200_000]) {
          const payload = `{"namespace_name": "err_deep", "feature_extractors": [{"feature_extractor_name": "x", "version": "v1", "params": {"x": ${nestedJson(depth)}}}]}`;
          const err = expectEnvelope(await post('/v1/namespaces', payload), 422, 'ValidationError');
          const issue = checkedIssues(err)[0]!;
          expect(issue.type).toBe('too_deep');
          expect(issue.location.slice(0, 5)).toEqual(['body', 'feature_extractors', 0, 'params', 'x']);
        }
        const bare = expectEnvelope(await post('/v1/namespaces/list', nestedJson(100_000)), 422, 'ValidationError');
        expect(validationIssues(bare)[0]!.type).toBe('too_deep');

        const params = { x: JSON.parse(nestedJson(10)) };
        const ok = await t.call({
          method: 'POST',
          url: '/v1/namespaces',
          payload: { namespace_name: 'err_shallow', feature_extractors: [{ feature_extractor_name: 'x', version: 'v1', params }] },
        });
        expect(ok.statusCode, ok.body).toBe(200);
        expect(ok.json().feature_extractors[0].params).toEqual(params);
      });

      it('caps the number of reported issues', async () => {
        const payload_indexes = Array.from({ length: 300 }, (_, i) => ({ field_name: `f${i}`, type: 'nope' }));
        const err = expectEnvelope(
          await t.call({ method: 'POST', url: '/v1/namespaces', payload: { namespace_name: 'err_many', feature_extractors: EXTRACTORS, payload_indexes } }),
          422,
          'ValidationError',
        );
        const issues = checkedIssues(err);
        expect(issues.length).toBeLessThanOrEqual(51);
        expect(issues.at(-1)).toMatchObject({ type: 'too_many_issues', location: ['body'] });
        expect(issues.at(-1)!.message).toContain(String(300 - (issues.length - 1)));
      });
    });

    // Errors Fastify raises before routing (undecodable URLs, long parameters) must still be envelopes.
    it('answers a badly percent-encoded URL with the 400 envelope', async () => {
      const err = expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/%E0%A4%A' }), 400, 'BadRequestError');
      expect(err.message).toContain('%E0%A4%A');
    });

    it('serves a namespace whose (valid, 128-character) name is longer than 100 characters', async () => {
      const name = `n${'x'.repeat(127)}`;
      const created = await t.call({ method: 'POST', url: '/v1/namespaces', payload: { namespace_name: name, feature_extractors: EXTRACTORS } });
      expect(created.statusCode, created.body).toBe(200);
      const res = await t.call({ method: 'GET', url: `/v1/namespaces/${name}` });
      expect(res.statusCode, res.body).toBe(200);
    });

    describe('errors raised inside handlers', () => {
      let db: Db;
      let app: Awaited<ReturnType<typeof buildApp>>;
      let key: string;
      beforeAll(async () => {
        db = await backend.open();
        app = await buildApp({
          db,
          blobs: tempBlobStore().blobs,
          extraRoutes(a, { db: routeDb }) {
            const config = { permission: 'read' as const };
            a.get('/v1/test/bug', { config }, async () => {
              throw new Error('secret internal detail');
            });
            a.get('/v1/test/bad-cast', { config }, async () => routeDb.query(`SELECT 'not-a-number'::int AS n`));
            // The same name twice in one org, bypassing the service that would translate the violation.
            a.get('/v1/test/unique', { config }, async (req) => {
              const insert = `INSERT INTO namespaces (id, organization_id, name) VALUES ($1, $2, 'raw_dup')`;
              await routeDb.query(insert, [`ns_raw${Date.now()}a`, req.auth.organizationId]);
              return routeDb.query(insert, [`ns_raw${Date.now()}b`, req.auth.organizationId]);
            });
            a.get('/v1/test/too-many', { config }, async () => {
              throw new ApiError('too_many_requests', 'slow down', { retry_after_ms: 2000 }, { 'Retry-After': '2' });
            });
          },
        });
        key = (await createOrganization(db, `errs-${Date.now()}`, 'e@test.local')).adminKey;
      });
      afterAll(async () => {
        await app.close();
        await db.close();
      });
      const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });

      it('answers an unexpected throw with the 500 envelope and a request id, hiding the message', async () => {
        const res = await get('/v1/test/bug');
        const err = expectEnvelope(res, 500, 'InternalServerError');
        expect(res.body).not.toContain('secret internal detail');
        expect(err.details).toEqual({ request_id: expect.any(String) });
      });

      it('answers a value the database refuses (SQLSTATE class 22) with 400, not 500', async () => {
        const err = expectEnvelope(await get('/v1/test/bad-cast'), 400, 'BadRequestError');
        expect(err.message).toContain('not-a-number');
        expect(err.details).toEqual({ sqlstate: '22P02' });
      });

      it('answers an untranslated unique violation with 409', async () => {
        expectEnvelope(await get('/v1/test/unique'), 409, 'AlreadyExistsError');
      });

      it('carries an ApiError’s headers, e.g. Retry-After on 429', async () => {
        const res = await get('/v1/test/too-many');
        const err = expectEnvelope(res, 429, 'TooManyRequestsError');
        expect(err.details).toEqual({ retry_after_ms: 2000 });
        expect(res.headers['retry-after']).toBe('2');
      });
    });

    // Needs no database; inside the loop only because every file runs per backend.
    describe('frameworkErrorHandler', () => {
      it('renders errors Fastify raises before routing as the envelope', async () => {
        const app = Fastify({ frameworkErrors: frameworkErrorHandler(1024), routerOptions: { maxParamLength: 10 } });
        installErrorHandling(app, 1024);
        app.get('/x/:id', async () => ({ ok: true }));
        await app.ready();
        try {
          const bad = await app.inject({ method: 'GET', url: '/x/%E0%A4%A' });
          expect(expectEnvelope(bad, 400, 'BadRequestError').message).toContain('/x/%E0%A4%A');
          const long = await app.inject({ method: 'GET', url: `/x/${'y'.repeat(20)}` });
          expect(expectEnvelope(long, 400, 'BadRequestError').message).toContain('too long');
          expect((await app.inject({ method: 'GET', url: '/x/short' })).json()).toEqual({ ok: true });
        } finally {
          await app.close();
        }
      });
    });
  });
}
