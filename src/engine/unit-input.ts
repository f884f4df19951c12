import { PermanentError } from '../extractors/errors.js';
import type { CollectionPlan } from './pipeline-cache.js';
import { setField } from '../util/set-field.js';


/** Source fields after the collection's input bindings (null bindings: every field by name). */
export function bindInput(plan: CollectionPlan, fields: Record<string, unknown>): Record<string, unknown> {
  if (plan.input_bindings === null) return { ...fields };
  const input: Record<string, unknown> = {};
  for (const [name, binding] of Object.entries(plan.input_bindings)) {
    const value = 'literal' in binding ? binding.literal : valueAt(fields, binding.path);
    if (value !== undefined) setField(input, name, value);
  }
  return input;
}

function valueAt(fields: Record<string, unknown>, path: string): unknown {
  let v: unknown = fields;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** Source fields a document keeps: all of them (`include_all_source_fields`), then `field_passthrough`. */
export function passthroughFields(plan: CollectionPlan, fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = plan.include_all_source_fields ? { ...fields } : {};
  for (const p of plan.field_passthrough) {
    const target = p.target_path ?? p.source_path.split('.').at(-1)!;
    const value = valueAt(fields, p.source_path) ?? p.default;
    if (value === undefined || value === null) {
      if (p.required) {
        throw new PermanentError(`required passthrough field ${JSON.stringify(p.source_path)} is missing from the source`, {
          code: 'missing_field',
          category: 'validation',
        });
      }
      continue;
    }
    setField(out, target, value);
  }
  return out;
}
