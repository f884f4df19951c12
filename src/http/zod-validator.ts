import type { FastifySchemaCompiler } from 'fastify';
import type { z } from 'zod';
import { show, type ValidationIssue, validationFailed } from '../errors/registry.js';

const PART_NAMES: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' };

/**
 * Validates request parts with their zod schemas. Unlike the type provider's stock compiler it reports
 * the offending input, so a 422 names both the field and the value that was sent (DESIGN-NOTES §3).
 */
export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  const part = PART_NAMES[httpPart ?? 'body'] ?? String(httpPart);
  return (data: unknown) => {
    const result = schema.safeParse(data, { reportInput: true });
    if (result.success) return { value: result.data };
    const issues: ValidationIssue[] = result.error.issues.map((issue) => {
      const location = [part, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
      const input = (issue as { input?: unknown }).input;
      const got = input === undefined ? (issue.code === 'invalid_type' ? ' (missing)' : '') : ` (got ${show(input)})`;
      return { type: issue.code, location, message: `${issue.message}${got}` };
    });
    return { error: validationFailed(issues) };
  };
};
