import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { ApiError } from '../../src/errors/registry.js';
import { compileFilters, compileSort, type FilterFields, SqlParams } from '../../src/http/filters.js';
import { BACKENDS } from '../helpers/test-db.js';

const FIELDS: FilterFields = {
  id: { sql: 'id', kind: 'text' },
  name: { sql: 'name', kind: 'text' },
  n: { sql: 'n', kind: 'number' },
  ts: { sql: 'ts', kind: 'timestamp' },
  flag: { sql: 'flag', kind: 'boolean' },
  doc: { sql: 'doc', kind: 'json' },
};

const ROWS = [
  { id: 'r1', name: 'Apple', n: 1, ts: '2024-01-01T00:00:00Z', flag: true, doc: { a: 1, s: 'Red', tags: ['x', 'y'], nested: { k: 'v' } } },
  { id: 'r2', name: 'apple pie', n: 10, ts: '2024-06-01T12:00:00Z', flag: false, doc: { a: 2.5, s: 'red', tags: ['y'], z: null } },
  { id: 'r3', name: 'Banana', n: 2, ts: null, flag: null, doc: { a: '10', s: 'Blue', tags: [] } },
  { id: 'r4', name: null, n: null, ts: '2025-01-01T00:00:00Z', flag: true, doc: {} },
  { id: 'r5', name: '50%_off', n: -3, ts: '2023-12-31T23:59:59Z', flag: false, doc: { a: -1, s: "O'Reilly", tags: ['x'], nested: { k: 'w' } } },
];
const ALL = ROWS.map((r) => r.id);

/** The error a compile throws, for its status and message. */
function thrown(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected an ApiError, nothing was thrown');
}

for (const backend of BACKENDS) {
  describe(`compileFilters against ${backend.name}`, () => {
    let db: Db;

    /** Ids of the rows a filter selects. */
    const match = async (filters: unknown, caseSensitive = false): Promise<string[]> => {
      const p = new SqlParams();
      const where = compileFilters(filters, FIELDS, p, caseSensitive);
      const rows = await db.query<{ id: string }>(`SELECT id FROM filter_rows WHERE ${where} ORDER BY id`, p.values);
      return rows.map((r) => r.id);
    };
    const cond = (field: string, operator: string, value?: unknown) => ({ AND: [{ field, operator, value }] });

    beforeAll(async () => {
      db = await backend.open();
      // A plain table (not TEMP): a PostgreSQL pool may run each query on another connection.
      await db.query('CREATE TABLE filter_rows (id text PRIMARY KEY, name text, n numeric, ts timestamptz, flag boolean, doc jsonb)');
      await db.query(
        `INSERT INTO filter_rows SELECT * FROM jsonb_to_recordset($1::jsonb)
           AS x(id text, name text, n numeric, ts timestamptz, flag boolean, doc jsonb)`,
        [JSON.stringify(ROWS)],
      );
    });
    afterAll(() => db.close());

    it('matches everything without filters', async () => {
      expect(await match(undefined)).toEqual(ALL);
      expect(await match(null)).toEqual(ALL);
      expect(await match({})).toEqual(ALL);
      expect(await match({ AND: [], OR: null })).toEqual(ALL);
    });

    it('eq / ne: case-insensitive by default, case_sensitive on request, inherited and overridden', async () => {
      expect(await match({ name: 'APPLE' })).toEqual(['r1']);
      expect(await match({ name: 'apple', case_sensitive: true })).toEqual([]);
      expect(await match({ name: 'Apple' }, true)).toEqual(['r1']);
      expect(await match({ case_sensitive: true, OR: [{ name: 'apple' }] })).toEqual([]);
      expect(await match({ case_sensitive: true, OR: [{ case_sensitive: false, name: 'APPLE' }] })).toEqual(['r1']);
      expect(await match({ field: 'name', value: 'banana' })).toEqual(['r3']);
      expect(await match({ name: { $ne: 'apple' } })).toEqual(['r2', 'r3', 'r4', 'r5']);
      expect(await match(cond('doc.s', 'ne', 'RED'))).toEqual(['r3', 'r4', 'r5']);
    });

    it('eq on numbers, booleans and JSON values compares values, not text', async () => {
      expect(await match({ n: 10 })).toEqual(['r2']);
      expect(await match({ n: 10.0 })).toEqual(['r2']);
      expect(await match({ 'doc.a': 1 })).toEqual(['r1']);
      expect(await match({ 'doc.a': 2.5 })).toEqual(['r2']);
      expect(await match({ 'doc.a': '10' })).toEqual(['r3']);
      expect(await match({ flag: true })).toEqual(['r1', 'r4']);
      expect(await match({ flag: false })).toEqual(['r2', 'r5']);
      expect(await match({ 'doc.nested.k': 'V' })).toEqual(['r1']);
    });

    it('eq null matches SQL NULL, a missing JSON key and a JSON null', async () => {
      expect(await match({ name: null })).toEqual(['r4']);
      expect(await match({ 'doc.s': null })).toEqual(['r4']);
      expect(await match({ 'doc.z': null })).toEqual(ALL);
      expect(await match({ 'doc.s': { $ne: null } })).toEqual(['r1', 'r2', 'r3', 'r5']);
    });

    it('range operators compare numbers numerically, also numeric text, and JSON numbers only as numbers', async () => {
      expect(await match({ n: { $gt: 1 } })).toEqual(['r2', 'r3']);
      expect(await match({ n: { $gte: 1, $lt: 10 } })).toEqual(['r1', 'r3']);
      expect(await match({ n: { $gt: '9' } })).toEqual(['r2']);
      expect(await match(cond('n', 'lte', -3))).toEqual(['r5']);
      expect(await match({ 'doc.a': { $gt: 0 } })).toEqual(['r1', 'r2']);
      expect(await match({ 'doc.s': { $lt: 'C' } })).toEqual(['r3']);
      expect(thrown(() => compileFilters({ n: { $gt: 'abc' } }, FIELDS, new SqlParams())).status).toBe(400);
      expect(thrown(() => compileFilters({ name: { $gt: 5 } }, FIELDS, new SqlParams())).status).toBe(400);
      expect(thrown(() => compileFilters({ n: { $gt: true } }, FIELDS, new SqlParams())).status).toBe(400);
    });

    it('timestamps compare as instants, whatever the offset they are written with', async () => {
      expect(await match({ ts: '2024-01-01T00:00:00Z' })).toEqual(['r1']);
      expect(await match({ ts: '2024-01-01T01:00:00+01:00' })).toEqual(['r1']);
      expect(await match({ ts: { $gte: '2024-01-01T00:00:00Z' } })).toEqual(['r1', 'r2', 'r4']);
      expect(await match({ ts: { $lt: '2024-01-01T00:00:00.001Z' } })).toEqual(['r1', 'r5']);
      expect(await match(cond('ts', 'in', ['2025-01-01T00:00:00Z', '2023-12-31T23:59:59Z']))).toEqual(['r4', 'r5']);
      expect(await match(cond('ts', 'nin', ['2025-01-01T00:00:00Z']))).toEqual(['r1', 'r2', 'r3', 'r5']);
      expect(await match(cond('ts', 'is_null', true))).toEqual(['r3']);
      expect(thrown(() => compileFilters({ ts: { $lt: 5 } }, FIELDS, new SqlParams())).status).toBe(400);
      expect(thrown(() => compileFilters({ ts: 5 }, FIELDS, new SqlParams())).status).toBe(400);
      // A string that is no timestamp is refused by the database as a data exception (class 22: a 400).
      await expect(match({ ts: 'yesterday-ish' })).rejects.toMatchObject({ code: expect.stringMatching(/^22/) });
    });

    it('in / nin, as operators, Mongo operators and the array shorthand', async () => {
      expect(await match({ name: ['apple', 'BANANA'] })).toEqual(['r1', 'r3']);
      expect(await match({ name: { $in: ['Apple'] }, case_sensitive: true })).toEqual(['r1']);
      expect(await match({ name: { $nin: ['apple'] } })).toEqual(['r2', 'r3', 'r4', 'r5']);
      expect(await match(cond('n', 'in', [1, 2]))).toEqual(['r1', 'r3']);
      expect(await match(cond('doc.a', 'in', [1, '10']))).toEqual(['r1', 'r3']);
      expect(await match(cond('id', 'nin', ['r1', 'r2', 'r3']))).toEqual(['r4', 'r5']);
      expect(thrown(() => compileFilters(cond('n', 'in', 5), FIELDS, new SqlParams())).status).toBe(400);
      expect(thrown(() => compileFilters(cond('n', 'in', Array(1001).fill(1)), FIELDS, new SqlParams())).status).toBe(400);
    });

    it('contains / starts_with / ends_with / text, with LIKE wildcards taken literally', async () => {
      expect(await match(cond('name', 'contains', 'PIE'))).toEqual(['r2']);
      expect(await match(cond('name', 'contains', '%_'))).toEqual(['r5']);
      expect(await match(cond('name', 'contains', '_'))).toEqual(['r5']);
      expect(await match(cond('name', 'starts_with', 'apple'))).toEqual(['r1', 'r2']);
      expect(await match(cond('name', 'ends_with', 'ANA'))).toEqual(['r3']);
      expect(await match(cond('name', 'text', 'ppl'))).toEqual(['r1', 'r2']);
      expect(await match({ AND: [{ field: 'name', operator: 'starts_with', value: 'apple' }], case_sensitive: true })).toEqual(['r2']);
      expect(await match(cond('doc.tags', 'contains', 'x'))).toEqual(['r1', 'r5']);
      expect(await match(cond('doc.tags', 'contains', ['x', 'y']))).toEqual(['r1']);
      expect(await match(cond('doc.s', 'contains', 'reil'))).toEqual(['r5']);
      expect(thrown(() => compileFilters(cond('name', 'contains', 5), FIELDS, new SqlParams())).status).toBe(400);
    });

    it('regex, case-insensitive unless asked', async () => {
      expect(await match(cond('name', 'regex', '^a.*e$'))).toEqual(['r1', 'r2']);
      expect(await match({ ...cond('name', 'regex', '^a.*e$'), case_sensitive: true })).toEqual(['r2']);
      expect(await match({ name: { $regex: 'an{2}' } })).toEqual([]);
      expect(await match({ name: { $regex: '(an){2}' } })).toEqual(['r3']);
      await expect(match({ name: { $regex: '([' } })).rejects.toMatchObject({ code: '2201B' });
    });

    it('exists and is_null', async () => {
      expect(await match(cond('doc.nested', 'exists', true))).toEqual(['r1', 'r5']);
      expect(await match(cond('doc.nested', 'exists', false))).toEqual(['r2', 'r3', 'r4']);
      expect(await match({ 'doc.z': { $exists: true } })).toEqual(['r2']);
      expect(await match(cond('doc.z', 'is_null', true))).toEqual(ALL);
      expect(await match(cond('flag', 'is_null'))).toEqual(['r3']);
      expect(await match(cond('flag', 'is_null', false))).toEqual(['r1', 'r2', 'r4', 'r5']);
      expect(thrown(() => compileFilters(cond('flag', 'exists', 'yes'), FIELDS, new SqlParams())).status).toBe(400);
    });

    it('AND / OR / NOT nest, and shorthand keys beside them are ANDed', async () => {
      expect(await match({ OR: [{ name: 'banana' }, { AND: [{ flag: true }, { n: { $gt: 0 } }] }] })).toEqual(['r1', 'r3']);
      // NOT: none of the conditions may hold.
      expect(await match({ NOT: [{ flag: true }, { n: null }] })).toEqual(['r2', 'r3', 'r5']);
      expect(await match({ flag: false, AND: [{ field: 'n', operator: 'lt', value: 0 }] })).toEqual(['r5']);
      expect(await match({ OR: [{ id: 'r1' }, { id: 'r2' }], NOT: [{ name: 'apple' }] })).toEqual(['r2']);
      expect(await match({ AND: [{ OR: [{ NOT: [{ id: 'r1' }] }] }, { n: { $lt: 5 } }] })).toEqual(['r3', 'r5']);
    });

    it('keeps values as parameters: nothing a client sends becomes SQL', async () => {
      expect(await match({ name: "x' OR '1'='1" })).toEqual([]);
      expect(await match({ 'doc.s': "O'Reilly" })).toEqual(['r5']);
      expect(await match(cond('name', 'regex', "'; DROP TABLE filter_rows; --"))).toEqual([]);
      const fieldErr = thrown(() => compileFilters({ 'name; DROP TABLE filter_rows': 1 }, FIELDS, new SqlParams()));
      expect(fieldErr.status).toBe(422);
      expect(fieldErr.message).toContain('name; DROP TABLE');
      expect(thrown(() => compileFilters({ "doc.a'b": 1 }, FIELDS, new SqlParams())).status).toBe(422);
      expect(thrown(() => compileFilters({ 'doc.a.b.c.d.e.f.g.h.i': 1 }, FIELDS, new SqlParams())).status).toBe(422);
      expect(await match({})).toEqual(ALL);
    });

    it('refuses malformed filters with 400/422 naming what is wrong', async () => {
      const unknown = thrown(() => compileFilters({ colour: 'red' }, FIELDS, new SqlParams()));
      expect(unknown.status).toBe(422);
      expect(unknown.message).toContain('colour');
      // Names of Object.prototype members are unknown fields too, not a way into SQL.
      for (const name of ['constructor', 'toString', '__proto__', 'constructor.name', 'hasOwnProperty']) {
        expect(thrown(() => compileFilters({ [name]: 'x' }, FIELDS, new SqlParams())).status).toBe(422);
        expect(thrown(() => compileSort({ field: name, direction: 'asc' }, FIELDS, 'id', 'id')).status).toBe(422);
      }
      expect(thrown(() => compileFilters(cond('n', 'near', 1), FIELDS, new SqlParams())).status).toBe(422);
      expect(thrown(() => compileFilters({ n: { $near: 1 } }, FIELDS, new SqlParams())).status).toBe(400);
      expect(thrown(() => compileFilters([{ n: 1 }], FIELDS, new SqlParams())).status).toBe(400);
      expect(thrown(() => compileFilters({ AND: { n: 1 } }, FIELDS, new SqlParams())).status).toBe(400);
      expect(thrown(() => compileFilters({ name: { nested: 'object' } }, FIELDS, new SqlParams())).status).toBe(400);
      const many = { OR: Array.from({ length: 101 }, (_, i) => ({ n: i })) };
      expect(thrown(() => compileFilters(many, FIELDS, new SqlParams())).message).toContain('100');
      let deep: Record<string, unknown> = { n: 1 };
      for (let i = 0; i < 10; i++) deep = { AND: [deep] };
      expect(thrown(() => compileFilters(deep, FIELDS, new SqlParams())).message).toContain('deeper');
    });

    it('numbers parameters after the ones already collected', async () => {
      const p = new SqlParams(['r5']);
      const where = compileFilters({ n: { $lt: 0 } }, FIELDS, p);
      const rows = await db.query<{ id: string }>(`SELECT id FROM filter_rows WHERE id = $1 AND ${where}`, p.values);
      expect(rows.map((r) => r.id)).toEqual(['r5']);
      expect(p.values).toHaveLength(2);
    });

    it('compileSort orders by columns and JSON paths with NULLs last and a unique tiebreaker', async () => {
      const sorted = async (sort: { field: string; direction?: 'asc' | 'desc' } | null) => {
        const order = compileSort(sort, FIELDS, 'id DESC', 'id ASC');
        return (await db.query<{ id: string }>(`SELECT id FROM filter_rows ORDER BY ${order}`)).map((r) => r.id);
      };
      expect(await sorted(null)).toEqual(['r5', 'r4', 'r3', 'r2', 'r1']);
      expect(await sorted({ field: 'n', direction: 'desc' })).toEqual(['r2', 'r3', 'r1', 'r5', 'r4']);
      expect(await sorted({ field: 'n' })).toEqual(['r5', 'r1', 'r3', 'r2', 'r4']);
      expect(await sorted({ field: 'ts', direction: 'asc' })).toEqual(['r5', 'r1', 'r2', 'r4', 'r3']);
      // jsonb order puts strings before numbers; rows without the key come last.
      expect(await sorted({ field: 'doc.a' })).toEqual(['r3', 'r5', 'r1', 'r2', 'r4']);
      expect(thrown(() => compileSort({ field: 'colour' }, FIELDS, 'id', 'id')).status).toBe(422);
    });
  });
}
