import { badRequest, show, validationFailed } from '../errors/registry.js';

/** How one filterable field maps to SQL. `json` columns accept dot paths below them (`metadata.a.b`). */
export interface FilterField {
  sql: string;
  kind: 'text' | 'number' | 'timestamp' | 'boolean' | 'json';
}

/** The fields a list endpoint lets clients filter and sort on. */
export type FilterFields = Record<string, FilterField>;

const OPERATORS = [
  'eq',
  'ne',
  'gt',
  'lt',
  'gte',
  'lte',
  'in',
  'nin',
  'contains',
  'starts_with',
  'ends_with',
  'regex',
  'exists',
  'is_null',
  'text',
] as const;
type Operator = (typeof OPERATORS)[number];

const MONGO: Record<string, Operator> = {
  $eq: 'eq',
  $ne: 'ne',
  $gt: 'gt',
  $gte: 'gte',
  $lt: 'lt',
  $lte: 'lte',
  $in: 'in',
  $nin: 'nin',
  $regex: 'regex',
  $exists: 'exists',
};

const MAX_CONDITIONS = 100;
const PATH_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;

/** Collects `$n` parameters while a WHERE clause is built. */
export class SqlParams {
  readonly values: unknown[];
  constructor(initial: unknown[] = []) {
    this.values = [...initial];
  }
  /** Adds a value and returns its placeholder. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

interface Resolved {
  /** SQL of the value as jsonb (json fields) or as its column. */
  sql: string;
  /** SQL of the value as text. */
  text: string;
  kind: FilterField['kind'];
}

function resolveField(fields: FilterFields, name: string, location: (string | number)[]): Resolved {
  // Field definitions only: `constructor`, `toString` or `__proto__` reach Object.prototype members, which
  // must be unknown fields, not SQL. (Shape, not hasOwn: field sets may be proxies answering any name.)
  const own = (key: string): FilterField | undefined => {
    const f: unknown = fields[key];
    return f !== null && typeof f === 'object' && typeof (f as FilterField).sql === 'string' ? (f as FilterField) : undefined;
  };
  const direct = own(name);
  if (direct) {
    return direct.kind === 'json'
      ? { sql: direct.sql, text: `(${direct.sql} #>> '{}')`, kind: 'json' }
      : { sql: direct.sql, text: `(${direct.sql})::text`, kind: direct.kind };
  }
  const dot = name.indexOf('.');
  const base = dot > 0 ? own(name.slice(0, dot)) : undefined;
  if (base?.kind === 'json') {
    const path = name.slice(dot + 1).split('.');
    if (path.length <= 8 && path.every((p) => PATH_SEGMENT.test(p))) {
      const literal = `'{${path.join(',')}}'`;
      return { sql: `(${base.sql} #> ${literal})`, text: `(${base.sql} #>> ${literal})`, kind: 'json' };
    }
  }
  const known = Object.entries(fields).map(([k, f]) => (f.kind === 'json' ? `${k}.<path>` : k));
  throw validationFailed([
    { type: 'unknown_field', location, message: `cannot filter or sort on ${show(name)}; use ${known.join(', ')}` },
  ]);
}

function likeEscape(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function condition(
  fields: FilterFields,
  field: string,
  operator: Operator,
  value: unknown,
  caseSensitive: boolean,
  p: SqlParams,
  location: (string | number)[],
): string {
  const f = resolveField(fields, field, [...location, 'field']);
  const bad = (why: string) => badRequest(`filter ${show({ field, operator, value })}: ${why}`);
  const like = caseSensitive ? 'LIKE' : 'ILIKE';
  const isJson = f.kind === 'json';
  const scalar = (v: unknown) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
  switch (operator) {
    case 'eq':
    case 'ne': {
      const neg = operator === 'ne';
      if (value === null) {
        // A JSON null is as absent as a missing key.
        const isNull = isJson ? `(${f.sql} IS NULL OR jsonb_typeof(${f.sql}) = 'null')` : `${f.sql} IS NULL`;
        return neg ? `NOT ${isNull}` : isNull;
      }
      if (!scalar(value)) throw bad('eq/ne compare with a string, number, boolean or null');
      if (f.kind === 'timestamp') {
        // Instants compare as instants: '2024-01-01T00:00:00Z' never equals the column's text form.
        if (typeof value !== 'string') throw bad('a timestamp compares with an ISO 8601 string');
        return `${neg ? 'NOT ' : ''}coalesce(${f.sql} = ${p.add(value)}::timestamptz, false)`;
      }
      if (f.kind === 'number' && typeof value === 'number') {
        return `${neg ? 'NOT ' : ''}coalesce((${f.sql})::numeric = ${p.add(value)}::numeric, false)`;
      }
      if (typeof value === 'string' && !caseSensitive) {
        return `${neg ? 'NOT ' : ''}coalesce(lower(${f.text}) = lower(${p.add(value)}), false)`;
      }
      const cmp = isJson ? `${f.sql} = ${p.add(JSON.stringify(value))}::jsonb` : `${f.text} = ${p.add(String(value))}`;
      return `${neg ? 'NOT ' : ''}coalesce(${cmp}, false)`;
    }
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      const op = { gt: '>', gte: '>=', lt: '<', lte: '<=' }[operator];
      if (f.kind === 'timestamp') {
        if (typeof value !== 'string') throw bad('a timestamp compares with an ISO 8601 string');
        return `coalesce(${f.sql} ${op} ${p.add(value)}::timestamptz, false)`;
      }
      if (f.kind === 'number') {
        // Numbers compare as numbers, also when sent as text ("10" > "9").
        if (typeof value !== 'number' && !(typeof value === 'string' && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value))) {
          throw bad('a number field compares with a number');
        }
        return `coalesce((${f.sql})::numeric ${op} ${p.add(String(value))}::numeric, false)`;
      }
      if (typeof value === 'number') {
        if (!isJson) throw bad(`a ${f.kind} field does not compare with a number`);
        const num = `(CASE WHEN jsonb_typeof(${f.sql}) = 'number' THEN (${f.text})::numeric END)`;
        return `coalesce(${num} ${op} ${p.add(value)}::numeric, false)`;
      }
      if (typeof value === 'string') return `coalesce(${f.text} ${op} ${p.add(value)}, false)`;
      throw bad('range operators compare with a number or a string');
    }
    case 'in':
    case 'nin': {
      if (!Array.isArray(value) || value.length > 1000 || !value.every(scalar)) {
        throw bad('in/nin take an array of up to 1000 strings, numbers or booleans');
      }
      if (f.kind === 'timestamp') {
        if (!value.every((v) => typeof v === 'string')) throw bad('a timestamp compares with ISO 8601 strings');
        return `${operator === 'nin' ? 'NOT ' : ''}coalesce(${f.sql} = ANY(${p.add(value)}::timestamptz[]), false)`;
      }
      const texts = value.map((v) => (typeof v === 'string' && !caseSensitive ? v.toLowerCase() : String(v)));
      const lhs = caseSensitive ? f.text : `lower(${f.text})`;
      return `${operator === 'nin' ? 'NOT ' : ''}coalesce(${lhs} = ANY(${p.add(texts)}::text[]), false)`;
    }
    case 'contains': {
      if (isJson && !(typeof value === 'string')) {
        // Arrays (and objects) contain a value the jsonb way: `tags contains "x"`.
        return `coalesce(${f.sql} @> ${p.add(JSON.stringify(Array.isArray(value) ? value : [value]))}::jsonb, false)`;
      }
      if (typeof value !== 'string') throw bad('contains takes a string');
      const arrayHit = isJson ? ` OR coalesce(${f.sql} @> ${p.add(JSON.stringify([value]))}::jsonb, false)` : '';
      return `(coalesce(${f.text} ${like} ${p.add(`%${likeEscape(value)}%`)}, false)${arrayHit})`;
    }
    case 'starts_with':
    case 'ends_with':
    case 'text': {
      if (typeof value !== 'string') throw bad(`${operator} takes a string`);
      const pattern =
        operator === 'starts_with' ? `${likeEscape(value)}%` : operator === 'ends_with' ? `%${likeEscape(value)}` : `%${likeEscape(value)}%`;
      return `coalesce(${f.text} ${like} ${p.add(pattern)}, false)`;
    }
    case 'regex': {
      if (typeof value !== 'string' || value.length > 1000) throw bad('regex takes a pattern of at most 1000 characters');
      return `coalesce(${f.text} ${caseSensitive ? '~' : '~*'} ${p.add(value)}, false)`;
    }
    case 'exists': {
      const want = value === undefined || value === null ? true : value;
      if (typeof want !== 'boolean') throw bad('exists takes true or false');
      return `${f.sql} IS ${want ? 'NOT ' : ''}NULL`;
    }
    case 'is_null': {
      const want = value === undefined || value === null ? true : value;
      if (typeof want !== 'boolean') throw bad('is_null takes true or false');
      const isNull = isJson ? `(${f.sql} IS NULL OR jsonb_typeof(${f.sql}) = 'null')` : `${f.sql} IS NULL`;
      return want ? isNull : `NOT ${isNull}`;
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Compiles Mixpeek's filter forms into one parameterised SQL condition:
 * `LogicalOperator` (`{AND|OR|NOT: [FilterCondition | LogicalOperator]}`), `FilterCondition`
 * (`{field, operator, value}`), and the shorthand `{"field": value}` / `{"field": {"$op": value}}`.
 * Fields are checked against `fields`, values are always parameters: nothing the client sends becomes SQL.
 */
export function compileFilters(filters: unknown, fields: FilterFields, p: SqlParams, caseSensitiveDefault = false): string {
  let count = 0;
  const walk = (node: unknown, location: (string | number)[], depth: number, caseSensitive: boolean): string => {
    if (depth > 8) throw badRequest('filters nest deeper than 8 levels');
    if (!isPlainObject(node)) throw badRequest(`filter ${show(node)} at ${location.join('.')} is not an object`);
    const cs = typeof node.case_sensitive === 'boolean' ? node.case_sensitive : caseSensitive;
    const parts: string[] = [];
    if (typeof node.field === 'string' && 'value' in node || typeof node.field === 'string' && 'operator' in node) {
      if (++count > MAX_CONDITIONS) throw badRequest(`filters hold more than ${MAX_CONDITIONS} conditions`);
      const operator = (node.operator ?? 'eq') as Operator;
      if (!OPERATORS.includes(operator)) {
        throw validationFailed([
          { type: 'enum', location: [...location, 'operator'], message: `operator ${show(node.operator)} is not one of ${OPERATORS.join(', ')}` },
        ]);
      }
      return condition(fields, node.field, operator, node.value, cs, p, location);
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === 'case_sensitive') continue;
      if (key === 'AND' || key === 'OR' || key === 'NOT') {
        if (value === null || value === undefined) continue;
        if (!Array.isArray(value)) throw badRequest(`filter ${key} must be an array, got ${show(value)}`);
        const inner = value.map((v, i) => walk(v, [...location, key, i], depth + 1, cs));
        if (inner.length === 0) continue;
        if (key === 'AND') parts.push(`(${inner.join(' AND ')})`);
        else if (key === 'OR') parts.push(`(${inner.join(' OR ')})`);
        else parts.push(`NOT (${inner.join(' OR ')})`);
        continue;
      }
      if (++count > MAX_CONDITIONS) throw badRequest(`filters hold more than ${MAX_CONDITIONS} conditions`);
      if (isPlainObject(value) && Object.keys(value).length > 0 && Object.keys(value).every((k) => k.startsWith('$'))) {
        for (const [op, v] of Object.entries(value)) {
          const operator = MONGO[op];
          if (!operator) throw badRequest(`filter operator ${show(op)} on ${show(key)} is not supported; use ${Object.keys(MONGO).join(', ')}`);
          parts.push(condition(fields, key, operator, v, cs, p, [...location, key]));
        }
      } else {
        parts.push(condition(fields, key, Array.isArray(value) ? 'in' : 'eq', value, cs, p, [...location, key]));
      }
    }
    return parts.length ? parts.join(' AND ') : 'true';
  };
  if (filters === null || filters === undefined) return 'true';
  return walk(filters, ['body', 'filters'], 0, caseSensitiveDefault);
}

/** `ORDER BY` for a Mixpeek `SortOption` (`{field, direction}`), always ending on a unique tiebreaker. */
export function compileSort(
  sort: { field: string; direction?: 'asc' | 'desc' | null } | null | undefined,
  fields: FilterFields,
  fallback: string,
  tiebreaker: string,
): string {
  if (!sort) return `${fallback}, ${tiebreaker}`;
  const f = resolveField(fields, sort.field, ['body', 'sort', 'field']);
  const dir = sort.direction === 'desc' ? 'DESC' : 'ASC';
  return `${f.sql} ${dir} NULLS LAST, ${tiebreaker}`;
}
