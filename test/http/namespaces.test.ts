import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrganization } from '../../src/organizations/service.js';
import { createTestContext, expectEnvelope, type TestContext, validationIssues } from '../helpers/test-app.js';
import { BACKENDS } from '../helpers/test-db.js';

const EXTRACTORS = [
  { feature_extractor_name: 'multimodal_extractor', version: 'v1' },
  { feature_extractor_name: 'image_extractor', version: 'v2', params: { model: 'siglip_base' } },
];

const INDEXES = [
  {
    field_name: 'metadata.title',
    type: 'text',
    field_schema: { type: 'text', tokenizer: 'word', lowercase: true },
    is_protected: false,
  },
  { field_name: 'user_id', type: 'keyword', is_protected: false },
];

interface Namespace {
  namespace_id: string;
  namespace_name: string;
  namespace_type: string;
  description: string | null;
  feature_extractors: { feature_extractor_id: string; feature_extractor_name: string; version: string; params?: unknown }[];
  payload_indexes: unknown[] | null;
  auto_create_indexes: boolean;
  created_at: string;
  updated_at: string;
}

interface ListAnswer {
  results: Namespace[];
  pagination: { next_cursor: string | null; page_size: number | null; total: number | null };
  total_count: number;
}

/** Every validation issue of a 422, flattened so that a test can look for one field. */
const issues = validationIssues;

for (const backend of BACKENDS) {
  describe(`namespaces (${backend.name})`, () => {
    let t: TestContext;
    beforeAll(async () => {
      t = await createTestContext(backend);
    });
    afterAll(() => t.close());

    const create = (payload: Record<string, unknown>) => t.call({ method: 'POST', url: '/v1/namespaces', payload });
    const createOk = async (name: string, extra: Record<string, unknown> = {}): Promise<Namespace> => {
      const res = await create({ namespace_name: name, feature_extractors: EXTRACTORS.slice(0, 1), ...extra });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    };

    describe('create, read, update, delete', () => {
      it('creates a namespace with the spec fields and answers a NamespaceModel', async () => {
        const res = await create({
          namespace_name: 'crud_full',
          description: 'Playlists from Spotify',
          feature_extractors: EXTRACTORS,
          payload_indexes: INDEXES,
          auto_create_indexes: true,
        });
        expect(res.statusCode, res.body).toBe(200);
        const ns: Namespace = res.json();
        expect(ns.namespace_id).toMatch(/^ns_/);
        expect(ns.namespace_name).toBe('crud_full');
        expect(ns.namespace_type).toBe('standard');
        expect(ns.description).toBe('Playlists from Spotify');
        expect(ns.auto_create_indexes).toBe(true);
        expect(ns.feature_extractors).toEqual([
          { feature_extractor_name: 'multimodal_extractor', version: 'v1', feature_extractor_id: 'multimodal_extractor_v1' },
          {
            feature_extractor_name: 'image_extractor',
            version: 'v2',
            params: { model: 'siglip_base' },
            feature_extractor_id: 'image_extractor_v2',
          },
        ]);
        expect(ns.payload_indexes).toEqual(INDEXES);
        expect(Number.isNaN(Date.parse(ns.created_at))).toBe(false);
        expect(ns.updated_at).toBe(ns.created_at);
      });

      it('defaults optional fields when only the required ones are sent', async () => {
        const ns = await createOk('crud_minimal');
        expect(ns.description).toBeNull();
        expect(ns.payload_indexes).toBeNull();
        expect(ns.auto_create_indexes).toBe(false);
        expect(ns.namespace_type).toBe('standard');
      });

      it('gets a namespace by name and by ns_ id', async () => {
        const ns = await createOk('crud_get', { description: 'by both' });
        const byName = await t.call({ method: 'GET', url: '/v1/namespaces/crud_get' });
        const byId = await t.call({ method: 'GET', url: `/v1/namespaces/${ns.namespace_id}` });
        expect(byName.statusCode).toBe(200);
        expect(byId.statusCode).toBe(200);
        expect(byName.json()).toEqual(ns);
        expect(byId.json()).toEqual(ns);
      });

      it('answers 404 naming the identifier for an unknown namespace', async () => {
        const err = expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/no_such_ns' }), 404, 'NotFoundError');
        expect(err.message).toContain('no_such_ns');
        const err2 = expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/ns_doesnotexist' }), 404, 'NotFoundError');
        expect(err2.message).toContain('ns_doesnotexist');
      });

      it('PATCH renames, changes description and payload_indexes, keeps the rest, moves updated_at', async () => {
        const ns = await createOk('crud_patch', { description: 'before', payload_indexes: INDEXES, auto_create_indexes: true });
        const res = await t.call({
          method: 'PATCH',
          url: '/v1/namespaces/crud_patch',
          payload: { namespace_name: 'crud_patched', description: 'after' },
        });
        expect(res.statusCode, res.body).toBe(200);
        const patched: Namespace = res.json();
        expect(patched.namespace_id).toBe(ns.namespace_id);
        expect(patched.namespace_name).toBe('crud_patched');
        expect(patched.description).toBe('after');
        expect(patched.payload_indexes).toEqual(INDEXES);
        expect(patched.auto_create_indexes).toBe(true);
        expect(patched.feature_extractors).toEqual(ns.feature_extractors);
        expect(patched.created_at).toBe(ns.created_at);
        expect(Date.parse(patched.updated_at)).toBeGreaterThan(Date.parse(ns.updated_at));

        // The old name is gone, the new one and the id both resolve.
        expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/crud_patch' }), 404, 'NotFoundError');
        expect((await t.call({ method: 'GET', url: '/v1/namespaces/crud_patched' })).json()).toEqual(patched);

        const onlyIndexes = await t.call({
          method: 'PATCH',
          url: `/v1/namespaces/${ns.namespace_id}`,
          payload: { payload_indexes: [INDEXES[1]] },
        });
        expect(onlyIndexes.statusCode, onlyIndexes.body).toBe(200);
        const second: Namespace = onlyIndexes.json();
        expect(second.payload_indexes).toEqual([INDEXES[1]]);
        expect(second.namespace_name).toBe('crud_patched');
        expect(second.description).toBe('after');
        expect(Date.parse(second.updated_at)).toBeGreaterThan(Date.parse(patched.updated_at));
      });

      it('PUT renames and replaces payload_indexes, keeps description and extractors', async () => {
        const ns = await createOk('crud_put', { description: 'stays' });
        const res = await t.call({
          method: 'PUT',
          url: `/v1/namespaces/${ns.namespace_id}`,
          payload: { namespace_name: 'crud_put_renamed', payload_indexes: INDEXES },
        });
        expect(res.statusCode, res.body).toBe(200);
        const put: Namespace = res.json();
        expect(put.namespace_id).toBe(ns.namespace_id);
        expect(put.namespace_name).toBe('crud_put_renamed');
        expect(put.payload_indexes).toEqual(INDEXES);
        expect(put.description).toBe('stays');
        expect(put.feature_extractors).toEqual(ns.feature_extractors);
        expect(Date.parse(put.updated_at)).toBeGreaterThan(Date.parse(ns.updated_at));
        expect((await t.call({ method: 'GET', url: '/v1/namespaces/crud_put_renamed' })).json()).toEqual(put);
      });

      it('an update that changes nothing still answers the namespace unchanged apart from updated_at', async () => {
        const ns = await createOk('crud_noop', { description: 'same' });
        const res = await t.call({ method: 'PATCH', url: '/v1/namespaces/crud_noop', payload: {} });
        expect(res.statusCode, res.body).toBe(200);
        const { updated_at: _u, ...rest } = res.json() as Namespace;
        const { updated_at: _v, ...before } = ns;
        expect(rest).toEqual(before);
      });

      it('renaming onto an existing name answers 409 and changes nothing', async () => {
        await createOk('crud_taken');
        const ns = await createOk('crud_mover');
        for (const method of ['PUT', 'PATCH'] as const) {
          const err = expectEnvelope(
            await t.call({ method, url: '/v1/namespaces/crud_mover', payload: { namespace_name: 'crud_taken' } }),
            409,
            'AlreadyExistsError',
          );
          expect(err.message).toContain('crud_taken');
        }
        expect((await t.call({ method: 'GET', url: '/v1/namespaces/crud_mover' })).json()).toEqual(ns);
      });

      it('renaming a namespace to its own name is not a conflict', async () => {
        await createOk('crud_self');
        const res = await t.call({ method: 'PATCH', url: '/v1/namespaces/crud_self', payload: { namespace_name: 'crud_self' } });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().namespace_name).toBe('crud_self');
      });

      it('updating an unknown namespace answers 404', async () => {
        for (const method of ['PUT', 'PATCH'] as const) {
          const err = expectEnvelope(
            await t.call({ method, url: '/v1/namespaces/crud_ghost', payload: { namespace_name: 'x_ghost' } }),
            404,
            'NotFoundError',
          );
          expect(err.message).toContain('crud_ghost');
        }
      });

      it('an invalid new name on update answers 422 naming the field and value', async () => {
        await createOk('crud_badrename');
        const res = await t.call({
          method: 'PATCH',
          url: '/v1/namespaces/crud_badrename',
          payload: { namespace_name: 'has space' },
        });
        const err = expectEnvelope(res, 422, 'ValidationError');
        expect(issues(err).some((i) => i.location.join('.') === 'body.namespace_name')).toBe(true);
        expect(err.message).toContain('has space');
      });

      it('deletes by name and by id; afterwards GET, update and delete answer 404', async () => {
        const a = await createOk('crud_del_a');
        const b = await createOk('crud_del_b');
        const byName = await t.call({ method: 'DELETE', url: '/v1/namespaces/crud_del_a' });
        expect(byName.statusCode, byName.body).toBe(200);
        expect(byName.json()).toMatchObject({ success: true, namespace_id: a.namespace_id, namespace_name: 'crud_del_a' });
        const byId = await t.call({ method: 'DELETE', url: `/v1/namespaces/${b.namespace_id}` });
        expect(byId.statusCode, byId.body).toBe(200);
        expect(byId.json()).toMatchObject({ success: true, namespace_id: b.namespace_id, namespace_name: 'crud_del_b' });

        for (const id of ['crud_del_a', a.namespace_id, 'crud_del_b', b.namespace_id]) {
          expectEnvelope(await t.call({ method: 'GET', url: `/v1/namespaces/${id}` }), 404, 'NotFoundError');
          expectEnvelope(await t.call({ method: 'DELETE', url: `/v1/namespaces/${id}` }), 404, 'NotFoundError');
        }
        expectEnvelope(
          await t.call({ method: 'PATCH', url: `/v1/namespaces/${a.namespace_id}`, payload: { description: 'x' } }),
          404,
          'NotFoundError',
        );
        // A deleted name is free again.
        const again = await createOk('crud_del_a');
        expect(again.namespace_id).not.toBe(a.namespace_id);
      });

      it('a duplicate name answers 409 naming it', async () => {
        await createOk('crud_dup');
        const err = expectEnvelope(
          await create({ namespace_name: 'crud_dup', feature_extractors: EXTRACTORS }),
          409,
          'AlreadyExistsError',
        );
        expect(err.message).toContain('crud_dup');
      });

      it('names are per organization: another org may reuse a name and cannot see ours', async () => {
        const mine = await createOk('crud_shared_name');
        const other = await createOrganization(t.db, `other-${Date.now()}`, 'other@test.local');
        const res = await t.call({
          method: 'POST',
          url: '/v1/namespaces',
          key: other.adminKey,
          payload: { namespace_name: 'crud_shared_name', feature_extractors: EXTRACTORS },
        });
        expect(res.statusCode, res.body).toBe(200);
        const theirs: Namespace = res.json();
        expect(theirs.namespace_id).not.toBe(mine.namespace_id);

        // Our id is invisible to them (404, like a missing one), and theirs to us.
        for (const method of ['GET', 'DELETE'] as const) {
          expectEnvelope(
            await t.call({ method, url: `/v1/namespaces/${mine.namespace_id}`, key: other.adminKey }),
            404,
            'NotFoundError',
          );
        }
        expectEnvelope(await t.call({ method: 'GET', url: `/v1/namespaces/${theirs.namespace_id}` }), 404, 'NotFoundError');
        expect((await t.call({ method: 'GET', url: '/v1/namespaces/crud_shared_name' })).json()).toEqual(mine);
        const theirList = await t.call({ method: 'POST', url: '/v1/namespaces/list', key: other.adminKey, payload: {} });
        expect(theirList.json().results.map((n: Namespace) => n.namespace_id)).toEqual([theirs.namespace_id]);
      });
    });

    describe('create validation', () => {
      const invalidNames: [string, unknown][] = [
        ['a name with spaces', 'has spaces'],
        ['a name starting with ns_', 'ns_reserved'],
        ['an empty name', ''],
        ['a name with a slash', 'a/b'],
        ['a name that is a number', 42],
      ];
      for (const [label, value] of invalidNames) {
        it(`rejects ${label} with 422 naming the field and the value`, async () => {
          const err = expectEnvelope(
            await create({ namespace_name: value, feature_extractors: EXTRACTORS }),
            422,
            'ValidationError',
          );
          const found = issues(err).filter((i) => i.location.join('.') === 'body.namespace_name');
          expect(found.length, JSON.stringify(err)).toBeGreaterThan(0);
          expect(found[0]!.message).toContain(JSON.stringify(value));
          expect(err.message).toContain('namespace_name');
          expect(err.message).toContain(JSON.stringify(value));
        });
      }

      it('rejects a missing namespace_name', async () => {
        const err = expectEnvelope(await create({ feature_extractors: EXTRACTORS }), 422, 'ValidationError');
        expect(issues(err).map((i) => i.location.join('.'))).toContain('body.namespace_name');
      });

      it('rejects missing feature_extractors with 422', async () => {
        const err = expectEnvelope(await create({ namespace_name: 'val_missing_fe' }), 422, 'ValidationError');
        expect(issues(err).map((i) => i.location.join('.'))).toContain('body.feature_extractors');
        expect(err.message).toContain('feature_extractors');
      });

      it('rejects empty feature_extractors with 422', async () => {
        const err = expectEnvelope(
          await create({ namespace_name: 'val_empty_fe', feature_extractors: [] }),
          422,
          'ValidationError',
        );
        expect(issues(err).map((i) => i.location.join('.'))).toContain('body.feature_extractors');
        expect(err.message).toContain('[]');
      });

      it('rejects a feature extractor without a version, locating the array element', async () => {
        const err = expectEnvelope(
          await create({ namespace_name: 'val_fe_version', feature_extractors: [{ feature_extractor_name: 'x' }] }),
          422,
          'ValidationError',
        );
        expect(issues(err).map((i) => i.location.join('.'))).toContain('body.feature_extractors.0.version');
      });

      it('rejects an unknown payload index type naming it', async () => {
        const err = expectEnvelope(
          await create({
            namespace_name: 'val_index_type',
            feature_extractors: EXTRACTORS,
            payload_indexes: [{ field_name: 'x', type: 'vector' }],
          }),
          422,
          'ValidationError',
        );
        expect(issues(err).map((i) => i.location.join('.'))).toContain('body.payload_indexes.0.type');
        expect(err.message).toContain('"vector"');
      });

      it('rejects payload indexes that repeat a field_name, on create and on update', async () => {
        const payload_indexes = [INDEXES[0], INDEXES[1], { field_name: 'user_id', type: 'integer' }];
        const err = expectEnvelope(
          await create({ namespace_name: 'val_dup_index', feature_extractors: EXTRACTORS, payload_indexes }),
          422,
          'ValidationError',
        );
        const found = issues(err).find((i) => i.location.join('.') === 'body.payload_indexes.2.field_name');
        expect(found?.message).toContain('"user_id"');
        await createOk('val_dup_index');
        for (const method of ['PUT', 'PATCH'] as const) {
          const res = await t.call({ method, url: '/v1/namespaces/val_dup_index', payload: { payload_indexes } });
          expect(issues(expectEnvelope(res, 422, 'ValidationError')).map((i) => i.location.join('.'))).toContain(
            'body.payload_indexes.2.field_name',
          );
        }
        expect((await t.call({ method: 'GET', url: '/v1/namespaces/val_dup_index' })).json().payload_indexes).toBeNull();
      });

      it('creates nothing when validation fails', async () => {
        await create({ namespace_name: 'val_nothing', feature_extractors: [] });
        expectEnvelope(await t.call({ method: 'GET', url: '/v1/namespaces/val_nothing' }), 404, 'NotFoundError');
      });
    });

    describe('list', () => {
      let lt: TestContext;
      const names = ['alpha', 'Apple', 'beta', 'gamma', 'avocado', 'delta', 'Zeta'];
      const byName = new Map<string, Namespace>();
      beforeAll(async () => {
        // A separate database so that namespaces from other tests do not change the counts here.
        lt = await createTestContext(backend);
        for (const name of names) {
          const res = await lt.call({
            method: 'POST',
            url: '/v1/namespaces',
            payload: {
              namespace_name: name,
              feature_extractors: EXTRACTORS,
              description: name === 'delta' ? 'Holds the FRUIT catalogue' : `about ${name}`,
            },
          });
          expect(res.statusCode, res.body).toBe(200);
          byName.set(name, res.json());
        }
      });
      afterAll(() => lt.close());

      const listIn = async (body?: unknown, query = ''): Promise<ListAnswer> => {
        const res = await lt.call({ method: 'POST', url: `/v1/namespaces/list${query}`, payload: body as object });
        expect(res.statusCode, res.body).toBe(200);
        return res.json();
      };
      const listErr = (body: unknown, query = '') =>
        lt.call({ method: 'POST', url: `/v1/namespaces/list${query}`, payload: body as object });
      const namesOf = (a: ListAnswer) => a.results.map((n) => n.namespace_name);

      it('lists everything with no body and with {}', async () => {
        const noBody = await lt.call({ method: 'POST', url: '/v1/namespaces/list' });
        expect(noBody.statusCode, noBody.body).toBe(200);
        const a: ListAnswer = noBody.json();
        const b = await listIn({});
        for (const answer of [a, b]) {
          expect(answer.total_count).toBe(names.length);
          expect(new Set(namesOf(answer))).toEqual(new Set(names));
        }
        // The full model, not a summary.
        expect(b.results.find((n) => n.namespace_name === 'alpha')).toEqual(byName.get('alpha'));
      });

      it('filters on an exact namespace_name', async () => {
        const a = await listIn({ filters: { namespace_name: 'beta' } });
        expect(namesOf(a)).toEqual(['beta']);
        expect(a.total_count).toBe(1);
      });

      it('filters on namespace_id', async () => {
        const id = byName.get('gamma')!.namespace_id;
        const a = await listIn({ filters: { namespace_id: id } });
        expect(a.results.map((n) => n.namespace_id)).toEqual([id]);
        expect(a.total_count).toBe(1);
      });

      it('filters with $regex (case-insensitive unless case_sensitive)', async () => {
        const a = await listIn({ filters: { namespace_name: { $regex: '^a' } } });
        expect(new Set(namesOf(a))).toEqual(new Set(['alpha', 'Apple', 'avocado']));
        expect(a.total_count).toBe(3);
        const cs = await listIn({ filters: { namespace_name: { $regex: '^a' } }, case_sensitive: true });
        expect(new Set(namesOf(cs))).toEqual(new Set(['alpha', 'avocado']));
      });

      it('filters with $in', async () => {
        const a = await listIn({ filters: { namespace_name: { $in: ['alpha', 'delta', 'nope'] } } });
        expect(new Set(namesOf(a))).toEqual(new Set(['alpha', 'delta']));
        expect(a.total_count).toBe(2);
      });

      it('folds case in exact, $eq, $ne, $in and $nin filters unless case_sensitive', async () => {
        expect(namesOf(await listIn({ filters: { namespace_name: 'APPLE' } }))).toEqual(['Apple']);
        expect(namesOf(await listIn({ filters: { namespace_name: 'APPLE' }, case_sensitive: true }))).toEqual([]);
        expect(namesOf(await listIn({ filters: { namespace_name: { $eq: 'zeta' } } }))).toEqual(['Zeta']);
        expect(namesOf(await listIn({ filters: { namespace_name: { $eq: 'zeta' } }, case_sensitive: true }))).toEqual([]);
        const inFolded = await listIn({ filters: { namespace_name: { $in: ['ALPHA', 'apple'] } } });
        expect(new Set(namesOf(inFolded))).toEqual(new Set(['alpha', 'Apple']));
        const inExact = await listIn({ filters: { namespace_name: { $in: ['ALPHA', 'Apple'] } }, case_sensitive: true });
        expect(namesOf(inExact)).toEqual(['Apple']);
        const nin = await listIn({ filters: { namespace_name: { $nin: ['ALPHA', 'BETA'] } } });
        expect(new Set(namesOf(nin))).toEqual(new Set(names.filter((n) => n !== 'alpha' && n !== 'beta')));
        const ne = await listIn({ filters: { namespace_name: { $ne: 'GAMMA' } } });
        expect(ne.total_count).toBe(names.length - 1);
        expect(namesOf(ne)).not.toContain('gamma');
      });

      it('combines filters with AND', async () => {
        const a = await listIn({ filters: { namespace_name: { $regex: '^a' }, namespace_id: byName.get('alpha')!.namespace_id } });
        expect(namesOf(a)).toEqual(['alpha']);
      });

      it('searches name and description, case-insensitively by default', async () => {
        const byDescription = await listIn({ search: 'fruit' });
        expect(namesOf(byDescription)).toEqual(['delta']);
        const byNamePart = await listIn({ search: 'PPL' });
        expect(namesOf(byNamePart)).toEqual(['Apple']);
        expect(byNamePart.total_count).toBe(1);
      });

      it('honours case_sensitive: true in search', async () => {
        expect(namesOf(await listIn({ search: 'fruit', case_sensitive: true }))).toEqual([]);
        expect(namesOf(await listIn({ search: 'FRUIT', case_sensitive: true }))).toEqual(['delta']);
        expect(namesOf(await listIn({ search: 'ppl', case_sensitive: true }))).toEqual(['Apple']);
        expect(namesOf(await listIn({ search: 'PPL', case_sensitive: true }))).toEqual([]);
      });

      it('treats search wildcards literally', async () => {
        const a = await listIn({ search: '%' });
        expect(a.results).toEqual([]);
        expect(a.total_count).toBe(0);
        // Ids are `ns_…`, so an unescaped `_` would match everything here.
        expect((await listIn({ search: 'l_h' })).total_count).toBe(0);
      });

      it('sorts by namespace_name ascending and descending', async () => {
        const asc = namesOf(await listIn({ sort: { field: 'namespace_name', direction: 'asc' } }));
        expect(new Set(asc)).toEqual(new Set(names));
        // Collations disagree on where upper case goes; among lower-case names every collation agrees.
        const lower = names.filter((n) => n === n.toLowerCase()).sort();
        expect(asc.filter((n) => lower.includes(n))).toEqual(lower);
        const desc = namesOf(await listIn({ sort: { field: 'namespace_name', direction: 'desc' } }));
        expect(desc).toEqual([...asc].reverse());
      });

      it('paginates with ?limit= and ?offset=', async () => {
        const all = namesOf(await listIn({ sort: { field: 'namespace_name', direction: 'asc' } }));
        const page = await listIn({ sort: { field: 'namespace_name', direction: 'asc' } }, '?limit=2&offset=3');
        expect(namesOf(page)).toEqual(all.slice(3, 5));
        expect(page.total_count).toBe(names.length);
        expect(page.pagination.page_size).toBe(2);
        const past = await listIn({}, '?limit=2&offset=100');
        expect(past.results).toEqual([]);
        expect(past.total_count).toBe(names.length);
        expect(past.pagination.next_cursor).toBeNull();
      });

      it('walks every page through next_cursor, seeing each namespace exactly once', async () => {
        for (const sort of [undefined, { field: 'namespace_name', direction: 'asc' }]) {
          const seen: string[] = [];
          let cursor: string | null = null;
          let pages = 0;
          do {
            const query: string = `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
            const page = await listIn(sort ? { sort } : {}, query);
            expect(page.total_count).toBe(names.length);
            expect(page.results.length).toBeLessThanOrEqual(3);
            seen.push(...namesOf(page));
            cursor = page.pagination.next_cursor;
            pages++;
          } while (cursor && pages < 20);
          expect(pages).toBe(Math.ceil(names.length / 3));
          expect(seen).toHaveLength(names.length);
          expect(new Set(seen)).toEqual(new Set(names));
        }
      });

      it('counts total_count over the filter, not the page', async () => {
        const a = await listIn({ filters: { namespace_name: { $regex: '^a' } } }, '?limit=1');
        expect(a.results).toHaveLength(1);
        expect(a.total_count).toBe(3);
        expect(a.pagination.next_cursor).not.toBeNull();
      });

      it('rejects an unknown filter field with 422 naming it', async () => {
        const err = expectEnvelope(await listErr({ filters: { colour: 'red' } }), 422, 'ValidationError');
        expect(err.message).toContain('colour');
        expect(issues(err)[0]!.location).toEqual(['body', 'filters', 'colour']);
      });

      it('rejects an invalid $regex with 400, not 500', async () => {
        const err = expectEnvelope(
          await listErr({ filters: { namespace_name: { $regex: '(unclosed' } } }),
          400,
          'BadRequestError',
        );
        expect(err.message).toContain('$regex');
      });

      it('rejects an unsupported filter operator or value with 400 naming it', async () => {
        const err = expectEnvelope(await listErr({ filters: { namespace_name: { $gt: 'a' } } }), 400, 'BadRequestError');
        expect(err.message).toContain('$gt');
        const err2 = expectEnvelope(await listErr({ filters: { namespace_name: 7 } }), 400, 'BadRequestError');
        expect(err2.message).toContain('7');
        const err3 = expectEnvelope(await listErr({ filters: { namespace_name: { $in: 'alpha' } } }), 400, 'BadRequestError');
        expect(err3.message).toContain('alpha');
      });

      it('rejects a garbage cursor with 400 naming it', async () => {
        for (const cursor of ['garbage!', 'bm90LWEtY3Vyc29y', Buffer.from('o:-5').toString('base64url')]) {
          const err = expectEnvelope(await listErr({}, `?cursor=${encodeURIComponent(cursor)}`), 400, 'BadRequestError');
          expect(err.message).toContain(cursor);
        }
      });

      it('rejects out-of-range limit and offset with 422 located in the query', async () => {
        for (const query of ['?limit=0', '?limit=abc', '?limit=1001', '?offset=-1']) {
          const err = expectEnvelope(await listErr({}, query), 422, 'ValidationError');
          expect(issues(err)[0]!.location[0]).toBe('query');
        }
      });

      it('rejects an unknown sort field with 422', async () => {
        const err = expectEnvelope(await listErr({ sort: { field: 'colour', direction: 'asc' } }), 422, 'ValidationError');
        expect(issues(err).map((i) => i.location.join('.'))).toContain('body.sort.field');
        expect(err.message).toContain('colour');
      });
    });

  });
}
