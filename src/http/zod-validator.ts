import type { FastifySchemaCompiler } from 'fastify';
import type { z } from 'zod';
import { show, type ValidationIssue, validationFailed } from '../errors/registry.js';

const PART_NAMES: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' };

/** A lone UTF-16 surrogate: under the `u` flag only an unpaired one matches as a code point. */
const LONE_SURROGATE = /\p{Cs}/u;

/** A step of a location, linked to its parent so that a deep walk never copies whole paths. */
interface Step {
  key: string | number;
  parent: Step | undefined;
}

const locationOf = (step: Step | undefined): (string | number)[] => {
  const keys: (string | number)[] = [];
  for (let s = step; s; s = s.parent) keys.push(s.key);
  return keys.reverse();
};

/** Deepest nesting of arrays and objects a request may send; free-form fields (params, filters) stay far below. */
export const MAX_DEPTH = 64;

/**
 * The location of the first value nested deeper than {@link MAX_DEPTH}, or undefined. `JSON.parse` accepts
 * any depth, but recursive code after it (zod, `JSON.stringify`, PostgreSQL's jsonb) overflows its stack,
 * which would be a 500; so depth is checked first, without recursion.
 */
function tooDeep(value: unknown, part: string): Step | undefined {
  const stack: [unknown, Step, number][] = [[value, { key: part, parent: undefined }, 0]];
  while (stack.length > 0) {
    const [item, step, depth] = stack.pop()!;
    if (item === null || typeof item !== 'object') continue;
    if (depth >= MAX_DEPTH) return step;
    if (Array.isArray(item)) for (const [i, v] of item.entries()) stack.push([v, { key: i, parent: step }, depth + 1]);
    else for (const [key, v] of Object.entries(item)) stack.push([v, { key, parent: step }, depth + 1]);
  }
  return undefined;
}

/** More issues than anyone reads; a body of a million bad items must not answer a million issues. */
const MAX_ISSUES = 50;

/**
 * PostgreSQL cannot store NUL in `text` or `jsonb`, rejects lone surrogates in `jsonb` and silently turns
 * them into U+FFFD in `text`. Either would be a 500 or quiet data loss, so such strings (and object keys)
 * are refused up front, with their location. Iterative: a body may nest deeper than the call stack.
 */
function unstorableStrings(value: unknown, part: string): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const stack: [unknown, Step][] = [[value, { key: part, parent: undefined }]];
  const check = (text: string, step: Step, what: string) => {
    const nul = text.includes('\u0000');
    if (!nul && !LONE_SURROGATE.test(text)) return;
    const reason = nul ? 'a NUL character (\\u0000)' : 'an unpaired UTF-16 surrogate';
    issues.push({ type: 'invalid_string', location: locationOf(step), message: `${what} must not contain ${reason} (got ${show(text)})` });
  };
  while (stack.length > 0 && issues.length < 20) {
    const [item, step] = stack.pop()!;
    if (typeof item === 'string') check(item, step, 'text');
    else if (Array.isArray(item)) for (const [i, v] of item.entries()) stack.push([v, { key: i, parent: step }]);
    else if (item !== null && typeof item === 'object') {
      for (const [key, v] of Object.entries(item)) {
        const child = { key, parent: step };
        check(key, child, 'a key');
        stack.push([v, child]);
      }
    }
  }
  return issues;
}

/** The value at `path` inside `root`, if every step exists. */
function valueAt(root: unknown, path: readonly PropertyKey[]): { found: boolean; value?: unknown } {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return { found: false };
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return { found: true, value };
}

/**
 * Validates request parts with their zod schemas. Unlike the type provider's stock compiler it reports
 * the offending input, so a 422 names both the field and the value that was sent (DESIGN-NOTES §3).
 */
export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  const part = PART_NAMES[httpPart ?? 'body'] ?? String(httpPart);
  return (data: unknown) => {
    // Fastify hands a request without a body to the validator as `null`. Mixpeek's list bodies are
    // optional (SDKs may POST nothing at all), so an absent body must reach the schema as `undefined`
    // for its `.default(...)` to apply; a required body still fails, as "missing".
    const input = part === 'body' && data === null ? undefined : data;
    const deep = tooDeep(input, part);
    if (deep) {
      return {
        error: validationFailed([
          { type: 'too_deep', location: locationOf(deep), message: `nested deeper than ${MAX_DEPTH} levels` },
        ]),
      };
    }
    const result = schema.safeParse(input, { reportInput: true });
    if (result.success) {
      // Checked on the parsed value: unknown fields that the schema drops are never stored, so never refused.
      const unstorable = unstorableStrings(result.data, part);
      return unstorable.length > 0 ? { error: validationFailed(unstorable) } : { value: result.data };
    }
    const all = result.error.issues;
    const issues: ValidationIssue[] = all.slice(0, MAX_ISSUES).map((issue) => {
      const location = [part, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
      // Prefer the value as sent: zod reports a coerced query value (`?limit=abc` becomes NaN, shown as null).
      const sent = valueAt(input, issue.path);
      const value = sent.found ? sent.value : (issue as { input?: unknown }).input;
      const got = value === undefined ? (issue.code === 'invalid_type' ? ' (missing)' : '') : ` (got ${show(value)})`;
      return { type: issue.code, location, message: `${issue.message}${got}` };
    });
    if (all.length > MAX_ISSUES) {
      issues.push({ type: 'too_many_issues', location: [part], message: `and ${all.length - MAX_ISSUES} more issues` });
    }
    return { error: validationFailed(issues) };
  };
};
