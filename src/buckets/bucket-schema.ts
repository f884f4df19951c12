import { z } from 'zod';
import { BLOB_TYPES, type BlobType } from '../blobs/sniff-mime.js';
import { show, type ValidationIssue } from '../errors/registry.js';
import { setField } from '../util/set-field.js';

export const FIELD_TYPES = [
  'string',
  'number',
  'integer',
  'float',
  'boolean',
  'object',
  'array',
  'date',
  'datetime',
  'text',
  'image',
  'audio',
  'video',
  'pdf',
  'excel',
] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

/** Mixpeek's `BucketSchemaField`: recursive through `items` and `properties`. */
export interface BucketSchemaField {
  type: FieldType;
  default?: unknown;
  items?: BucketSchemaField | null;
  properties?: Record<string, BucketSchemaField> | null;
  examples?: unknown[] | null;
  description?: string | null;
  enum?: unknown[] | null;
  required?: boolean | null;
}

export const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export const BucketSchemaField: z.ZodType<BucketSchemaField> = z.lazy(() =>
  z.object({
    type: z.enum(FIELD_TYPES),
    default: z.unknown().optional(),
    items: BucketSchemaField.nullish(),
    properties: z.record(z.string().regex(FIELD_NAME, 'field names are letters, digits and _'), BucketSchemaField).nullish(),
    examples: z.array(z.unknown()).nullish(),
    description: z.string().max(2000).nullish(),
    enum: z.array(z.unknown()).min(1).nullish(),
    required: z.boolean().nullish(),
  }),
);

/** Mixpeek's `BucketSchema`: the fields objects of a bucket carry, blobs and metadata alike. */
export const BucketSchema = z.object({
  properties: z
    .record(z.string().regex(FIELD_NAME, 'field names are letters, digits and _, starting with a letter or _'), BucketSchemaField)
    .refine((p) => Object.keys(p).length <= 500, 'a bucket schema holds at most 500 fields'),
});
export type BucketSchema = z.infer<typeof BucketSchema>;

/** Whether a field type holds a blob (sent in `blobs[]`) rather than a metadata value. */
export function isBlobType(type: FieldType): type is BlobType {
  return (BLOB_TYPES as readonly string[]).includes(type);
}

const SCALAR_TYPES: ReadonlySet<FieldType> = new Set(['string', 'number', 'integer', 'float', 'boolean', 'date', 'datetime']);

/** Checks a unique-key configuration against the schema; returns issues (empty when fine). */
export function checkUniqueKey(schema: BucketSchema, fields: readonly string[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  fields.forEach((field, i) => {
    const def = schema.properties[field];
    if (!def) {
      issues.push({
        type: 'unknown_field',
        location: ['body', 'unique_key', 'fields', i],
        message: `unique key field ${show(field)} is not in bucket_schema.properties`,
      });
    } else if (!SCALAR_TYPES.has(def.type)) {
      issues.push({
        type: 'invalid_unique_key',
        location: ['body', 'unique_key', 'fields', i],
        message: `unique key field ${show(field)} has type ${def.type}; use a string, number, integer, float, boolean, date or datetime field`,
      });
    }
  });
  if (new Set(fields).size !== fields.length) {
    issues.push({ type: 'duplicate', location: ['body', 'unique_key', 'fields'], message: `unique key fields repeat: ${show(fields)}` });
  }
  return issues;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const DATETIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;

function validDate(text: string): boolean {
  if (!DATE.test(text)) return false;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(text);
}

function checkValue(def: BucketSchemaField, value: unknown, location: (string | number)[], issues: ValidationIssue[]): unknown {
  const fail = (type: string, message: string) => {
    issues.push({ type, location, message: `${message} (got ${show(value)})` });
    return value;
  };
  if (def.enum && !def.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    return fail('enum', `must be one of ${show(def.enum)}`);
  }
  switch (def.type) {
    case 'string':
      return typeof value === 'string' ? value : fail('invalid_type', 'must be a string');
    case 'number':
    case 'float':
      return typeof value === 'number' && Number.isFinite(value) ? value : fail('invalid_type', 'must be a number');
    case 'integer':
      return Number.isSafeInteger(value) ? value : fail('invalid_type', 'must be an integer');
    case 'boolean':
      return typeof value === 'boolean' ? value : fail('invalid_type', 'must be true or false');
    case 'date':
      return typeof value === 'string' && validDate(value) ? value : fail('invalid_type', 'must be a date YYYY-MM-DD');
    case 'datetime':
      return typeof value === 'string' && DATETIME.test(value) && !Number.isNaN(Date.parse(value))
        ? value
        : fail('invalid_type', 'must be an ISO 8601 date-time');
    case 'array': {
      if (!Array.isArray(value)) return fail('invalid_type', 'must be an array');
      const items = def.items;
      return items ? value.map((v, i) => checkValue(items, v, [...location, i], issues)) : value;
    }
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return fail('invalid_type', 'must be an object');
      return def.properties ? checkFields(def.properties, value as Record<string, unknown>, location, issues, false) : value;
    }
    default:
      return fail('blob_field', `is a ${def.type} field: send it as a blob in blobs[] with property ${show(location.at(-1))}`);
  }
}

function checkFields(
  properties: Record<string, BucketSchemaField>,
  values: Record<string, unknown>,
  location: (string | number)[],
  issues: ValidationIssue[],
  strict: boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const set = (name: string, value: unknown) => setField(out, name, value);
  for (const [name, value] of Object.entries(values)) {
    const def = Object.hasOwn(properties, name) ? properties[name] : undefined;
    if (!def) {
      if (strict) {
        issues.push({
          type: 'unknown_field',
          location: [...location, name],
          message: `field ${show(name)} is not in the bucket schema (fields: ${Object.keys(properties).join(', ') || 'none'})`,
        });
      } else {
        set(name, value);
      }
      continue;
    }
    if (value === null && !def.required) {
      set(name, null);
      continue;
    }
    set(name, checkValue(def, value, [...location, name], issues));
  }
  for (const [name, def] of Object.entries(properties)) {
    if (Object.hasOwn(values, name) || isBlobType(def.type)) continue;
    if (def.default !== undefined) set(name, def.default);
    else if (def.required) {
      issues.push({ type: 'missing', location: [...location, name], message: `required field ${show(name)} is missing` });
    }
  }
  return out;
}

/**
 * Validates object metadata against the bucket schema's metadata (non-blob) fields: types, enums, required
 * fields, nested objects and arrays; fields the schema does not know are refused so that typos surface.
 * Returns the metadata with defaults applied, and every problem found (not just the first).
 */
export function validateMetadata(
  schema: BucketSchema,
  metadata: Record<string, unknown>,
  location: (string | number)[] = ['body', 'metadata'],
): { value: Record<string, unknown>; issues: ValidationIssue[] } {
  const issues: ValidationIssue[] = [];
  const value = checkFields(schema.properties, metadata, location, issues, true);
  return { value, issues };
}

/** The blob properties of a schema: property name → blob type. */
export function blobProperties(schema: BucketSchema): Map<string, { type: BlobType; required: boolean }> {
  const out = new Map<string, { type: BlobType; required: boolean }>();
  for (const [name, def] of Object.entries(schema.properties)) {
    if (isBlobType(def.type)) out.set(name, { type: def.type, required: def.required === true });
  }
  return out;
}

/**
 * The canonical text of an object's unique-key values, compared by a unique index. Returns an issue when
 * a key field has no value, since such an object could never be found again by its key.
 */
export function uniqueKeyValue(
  fields: readonly string[],
  metadata: Record<string, unknown>,
): { value: string; issues: ValidationIssue[] } {
  const issues: ValidationIssue[] = [];
  const keyValue = (f: string) => (Object.hasOwn(metadata, f) ? metadata[f] : undefined);
  for (const f of fields) {
    const v = keyValue(f);
    if (v === undefined || v === null || v === '') {
      issues.push({ type: 'missing', location: ['body', 'metadata', f], message: `unique key field ${show(f)} needs a non-empty value` });
    } else if (typeof v === 'string' && v.length > 255) {
      // Mixpeek: unique key values are "255 characters or less per string field value".
      issues.push({
        type: 'too_long',
        location: ['body', 'metadata', f],
        message: `unique key field ${show(f)} is longer than 255 characters (got ${show(v)})`,
      });
    }
  }
  return { value: JSON.stringify(fields.map((f) => keyValue(f) ?? null)), issues };
}
