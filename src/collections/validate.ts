import type { z } from 'zod';
import { type BucketSchema, type BucketSchemaField, FIELD_NAME, type FieldType } from '../buckets/bucket-schema.js';
import { ApiError, show, type ValidationIssue, validationFailed } from '../errors/registry.js';
import type { Extractor, ExtractorRegistry } from '../extractors/extractor.js';
import type { FeatureExtractorConfigInput, FieldPassthrough, InputMapping } from './schema.js';
import { setField } from '../util/set-field.js';

type Properties = BucketSchema['properties'];

/** Where one extractor input comes from: a source field path, or a fixed value. */
export type InputBinding = { path: string } | { literal: unknown };

const FE = ['body', 'feature_extractor'];

/** The extractor a collection config names, by `${name}_${version}`; 422 listing the available ones. */
export function lookupExtractor(registry: ExtractorRegistry, config: Pick<FeatureExtractorConfigInput, 'feature_extractor_name' | 'version'>): Extractor {
  const id = `${config.feature_extractor_name}_${config.version}`;
  const extractor = registry.get(id);
  if (!extractor) {
    const available = [...registry.keys()].sort().join(', ') || 'none';
    throw new ApiError('validation', `feature extractor ${show(id)} is not available on this server; available: ${available}`, {
      validation_errors: [
        {
          type: 'unknown_extractor',
          location: [...FE, 'feature_extractor_name'],
          message: `feature extractor ${show(id)} (feature_extractor_name ${show(config.feature_extractor_name)}, version ${show(config.version)}) is not available; available: ${available}`,
        },
      ],
    });
  }
  return extractor;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** Validates and defaults `parameters` with the extractor's own schema; 422 naming each field and value. */
export function validateParameters(extractor: Extractor, parameters: Record<string, unknown> | null | undefined): unknown {
  const input = parameters ?? {};
  const parsed = (extractor.parameters as z.ZodType).safeParse(input);
  if (parsed.success) return parsed.data;
  throw validationFailed(
    parsed.error.issues.map((issue) => ({
      type: issue.code,
      location: [...FE, 'parameters', ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))],
      message: `${issue.message} (got ${show(valueAt(input, issue.path))}) for ${extractor.id}`,
    })),
  );
}

/** The schema field a dot path names (`info.title` walks into object properties), or undefined. */
export function fieldAt(properties: Properties, path: string): BucketSchemaField | undefined {
  let props: Properties | null | undefined = properties;
  let field: BucketSchemaField | undefined;
  for (const segment of path.split('.')) {
    if (!props || !Object.hasOwn(props, segment)) return undefined;
    field = props[segment];
    props = field?.properties;
  }
  return field;
}

/**
 * Types one can hand to the other. Text blobs reach extractors as their text, so `text` and `string` meet;
 * numbers meet numbers. Anything else must match exactly.
 */
const FAMILY: Partial<Record<FieldType, string>> = {
  string: 'text',
  text: 'text',
  number: 'number',
  integer: 'number',
  float: 'number',
  date: 'date',
  datetime: 'date',
};
function compatible(source: FieldType, wanted: FieldType): boolean {
  return source === wanted || (FAMILY[source] !== undefined && FAMILY[source] === FAMILY[wanted]);
}

const fieldList = (properties: Properties) => Object.keys(properties).join(', ') || 'none';

/**
 * Resolves `input_mappings` (object or `InputMapping[]` form) against the collection's input schema and the
 * extractor's inputs. Returns the complete bindings the engine uses, or `null` when the extractor declares no
 * inputs and nothing was mapped: then it gets every source field by name (DESIGN-NOTES §9).
 *
 * Rules: mapped keys must be inputs the extractor declares (unless it declares none); payload paths must exist
 * in the input schema with a compatible type; a declared input left unmapped is bound to the source field of
 * the same name when there is one; a declared input with `required: true` left unbound is refused.
 */
export function resolveInputBindings(
  extractor: Extractor,
  inputSchema: Properties,
  mappings: Record<string, string> | InputMapping[] | null | undefined,
): Record<string, InputBinding> | null {
  const declared = extractor.inputSchema;
  const declaresInputs = Object.keys(declared).length > 0;
  const issues: ValidationIssue[] = [];
  const bindings: Record<string, InputBinding> = {};
  const loc = [...FE, 'input_mappings'];

  const entries: { key: string; mapping: InputMapping; location: (string | number)[] }[] = Array.isArray(mappings)
    ? mappings.map((m, i) => ({ key: m.input_key, mapping: m, location: [...loc, i] }))
    : Object.entries(mappings ?? {}).map(([key, path]) => ({ key, mapping: { input_key: key, path }, location: [...loc, key] }));

  for (const { key, mapping, location } of entries) {
    if (Object.hasOwn(bindings, key)) {
      issues.push({ type: 'duplicate', location, message: `input ${show(key)} is mapped more than once` });
      continue;
    }
    const wanted = declaresInputs ? (Object.hasOwn(declared, key) ? declared[key] : undefined) : undefined;
    if (declaresInputs && !wanted) {
      issues.push({
        type: 'unknown_input',
        location,
        message: `${extractor.id} has no input ${show(key)}; its inputs: ${fieldList(declared)}`,
      });
      continue;
    }
    const sourceType = mapping.source_type ?? 'payload';
    if (sourceType === 'literal') {
      if (mapping.override === undefined) {
        issues.push({ type: 'missing', location, message: `input ${show(key)} has source_type "literal" but no override value` });
      } else {
        bindings[key] = { literal: mapping.override };
      }
      continue;
    }
    if (sourceType === 'vector') {
      issues.push({ type: 'unsupported', location, message: `input ${show(key)}: source_type "vector" is not supported by Sluice; use "payload" or "literal"` });
      continue;
    }
    const path = mapping.path;
    if (!path) {
      issues.push({ type: 'missing', location, message: `input ${show(key)} has no path` });
      continue;
    }
    const field = fieldAt(inputSchema, path);
    if (!field) {
      issues.push({
        type: 'unknown_field',
        location,
        message: `input ${show(key)} maps source path ${show(path)}, which is not in the collection's input schema (fields: ${fieldList(inputSchema)})`,
      });
      continue;
    }
    if (wanted && !compatible(field.type, wanted.type)) {
      issues.push({
        type: 'incompatible_type',
        location,
        message: `input ${show(key)} of ${extractor.id} takes ${wanted.type}, but source path ${show(path)} is ${field.type}`,
      });
      continue;
    }
    bindings[key] = { path };
  }

  for (const [name, def] of Object.entries(declared)) {
    if (Object.hasOwn(bindings, name) || entries.some((e) => e.key === name)) continue;
    const same = Object.hasOwn(inputSchema, name) ? inputSchema[name] : undefined;
    if (same && compatible(same.type, def.type)) {
      bindings[name] = { path: name };
    } else if (def.required === true) {
      const candidates = Object.entries(inputSchema)
        .filter(([, f]) => compatible(f.type, def.type))
        // Fields of exactly the wanted type are the likelier intent: suggest them first.
        .sort(([a, fa], [b, fb]) => Number(fb.type === def.type) - Number(fa.type === def.type) || a.localeCompare(b))
        .map(([n]) => n);
      issues.push({
        type: 'missing',
        location: loc,
        message:
          `required input ${show(name)} (${def.type}) of ${extractor.id} is not mapped and the source has no ${def.type} field named ${show(name)}; ` +
          `map it in input_mappings, e.g. {${JSON.stringify(name)}: ${JSON.stringify(candidates[0] ?? '<source field>')}}` +
          (candidates.length > 0 ? ` (compatible source fields: ${candidates.join(', ')})` : ''),
      });
    }
  }
  if (issues.length > 0) throw validationFailed(issues);
  if (!declaresInputs && entries.length === 0) return null;
  return bindings;
}

/** The field a passthrough default value would have, when its source field does not exist. */
function typeOfValue(value: unknown): BucketSchemaField {
  if (typeof value === 'boolean') return { type: 'boolean' };
  if (typeof value === 'number') return { type: Number.isInteger(value) ? 'integer' : 'float' };
  if (Array.isArray(value)) return { type: 'array' };
  if (value !== null && typeof value === 'object') return { type: 'object' };
  return { type: 'string' };
}

/**
 * Extractors whose documents are their input fields unchanged. Their `outputSchema()` cannot say which
 * fields those are (it depends on the source), so the collection computes them from its input bindings.
 * The Extractor contract has no flag for this yet; see the report to the lead.
 */
const COPIES_INPUT: ReadonlySet<string> = new Set(['passthrough_extractor_v1']);

/** The fields an extractor receives: every source field by name (null bindings), else the bound ones. */
function inputFields(inputSchema: Properties, bindings: Record<string, InputBinding> | null): Properties {
  if (bindings === null) return { ...inputSchema };
  const out: Properties = {};
  for (const [name, binding] of Object.entries(bindings)) {
    const field = 'path' in binding ? fieldAt(inputSchema, binding.path) : typeOfValue(binding.literal);
    if (field) setField(out, name, field);
  }
  return out;
}

/**
 * The output schema: source fields kept (all of them with `include_all_source_fields`, else those of
 * `field_passthrough`), then the extractor's own fields. Refuses required passthrough paths that do not
 * exist, target names that are not field names, and targets that collide with each other or with an
 * extractor output field (the document could hold only one of them).
 */
export function buildOutputSchema(
  extractor: Extractor,
  params: unknown,
  inputSchema: Properties,
  bindings: Record<string, InputBinding> | null,
  passthrough: readonly FieldPassthrough[],
  includeAll: boolean,
): BucketSchema {
  const issues: ValidationIssue[] = [];
  const produced = COPIES_INPUT.has(extractor.id) ? inputFields(inputSchema, bindings) : extractor.outputSchema(params);
  const out: Properties = {};
  const set = (name: string, field: BucketSchemaField) =>
    setField(out, name, field);
  if (includeAll) for (const [name, field] of Object.entries(inputSchema)) if (!Object.hasOwn(produced, name)) set(name, field);
  const targets = new Set<string>();
  passthrough.forEach((p, i) => {
    const location = [...FE, 'field_passthrough', i];
    const target = p.target_path ?? p.source_path.split('.').at(-1)!;
    const field = fieldAt(inputSchema, p.source_path);
    if (!field && p.required) {
      issues.push({
        type: 'unknown_field',
        location: [...location, 'source_path'],
        message: `required passthrough source_path ${show(p.source_path)} is not in the collection's input schema (fields: ${fieldList(inputSchema)})`,
      });
      return;
    }
    if (!FIELD_NAME.test(target)) {
      issues.push({
        type: 'invalid_name',
        location: [...location, 'target_path'],
        message: `passthrough target ${show(target)} is not a field name (letters, digits and _, starting with a letter or _)`,
      });
      return;
    }
    if (targets.has(target)) {
      issues.push({ type: 'duplicate', location: [...location, 'target_path'], message: `passthrough target ${show(target)} is used twice` });
      return;
    }
    if (Object.hasOwn(produced, target)) {
      issues.push({
        type: 'conflict',
        location: [...location, 'target_path'],
        message: `passthrough target ${show(target)} collides with the ${extractor.id} output field of that name; set another target_path`,
      });
      return;
    }
    targets.add(target);
    // A missing optional source with no default never appears in documents: it has no place in the schema.
    if (field) set(target, field);
    else if (p.default !== undefined && p.default !== null) set(target, typeOfValue(p.default));
  });
  if (issues.length > 0) throw validationFailed(issues);
  for (const [name, field] of Object.entries(produced)) set(name, field);
  return { properties: out };
}

/**
 * Checks a client-given `input_schema` against the source's: it may narrow the source (fewer fields) but
 * not invent fields or change their types, since documents would never match it.
 */
export function checkGivenInputSchema(given: BucketSchema, inferred: Properties): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const [name, field] of Object.entries(given.properties)) {
    const source = Object.hasOwn(inferred, name) ? inferred[name] : undefined;
    if (!source) {
      issues.push({
        type: 'unknown_field',
        location: ['body', 'input_schema', 'properties', name],
        message: `input_schema field ${show(name)} is not in the source schema (fields: ${fieldList(inferred)})`,
      });
    } else if (source.type !== field.type) {
      issues.push({
        type: 'incompatible_type',
        location: ['body', 'input_schema', 'properties', name, 'type'],
        message: `input_schema field ${show(name)} has type ${field.type}, but the source has ${source.type}`,
      });
    }
  }
  return issues;
}

/**
 * Merges the schemas of several sources. A field two sources both carry must have one type; otherwise no
 * extractor could rely on it.
 */
export function mergeSchemas(sources: { id: string; properties: Properties }[], location: (string | number)[]): Properties {
  const merged: Properties = {};
  const owner = new Map<string, string>();
  const issues: ValidationIssue[] = [];
  for (const { id, properties } of sources) {
    for (const [name, field] of Object.entries(properties)) {
      const existing = Object.hasOwn(merged, name) ? merged[name] : undefined;
      if (!existing) {
        setField(merged, name, field);
        owner.set(name, id);
      } else if (existing.type !== field.type) {
        issues.push({
          type: 'incompatible_sources',
          location,
          message: `field ${show(name)} is ${existing.type} in ${owner.get(name)} but ${field.type} in ${id}: sources must agree on shared fields`,
        });
      }
    }
  }
  if (issues.length > 0) throw validationFailed(issues);
  return merged;
}
