import { setField } from '../util/set-field.js';

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);


/**
 * Mixpeek's `select` for list answers: keeps only the selected fields of `item` (plus `always`, so an item
 * stays identifiable). A dotted path (`metadata.title`) keeps that part of a nested object; a path into
 * something that is not an object keeps the whole value. Names that match nothing are ignored, as Mixpeek
 * ignores them.
 */
export function selectFields(item: Record<string, unknown>, select: readonly string[], always: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const whole = new Set<string>();
  // Shorter paths first: once `metadata` is kept whole, `metadata.title` has nothing to add.
  const paths = [...always, ...select].sort((a, b) => a.split('.').length - b.split('.').length);
  for (const path of paths) {
    const parts = path.split('.');
    if (parts.some((_, i) => whole.has(parts.slice(0, i + 1).join('.')))) continue;
    // Find the value first: a path that leads nowhere must not leave empty containers behind.
    let value: unknown = item;
    let depth = 0;
    while (depth < parts.length) {
      if (!isPlainObject(value) || !Object.hasOwn(value, parts[depth]!)) break;
      value = value[parts[depth]!];
      depth++;
      if (!isPlainObject(value)) break;
    }
    const reached = depth === parts.length || (depth > 0 && !isPlainObject(value));
    if (!reached) continue;
    let to = out;
    for (const part of parts.slice(0, depth - 1)) {
      if (!Object.hasOwn(to, part)) setField(to, part, {});
      to = to[part] as Record<string, unknown>;
    }
    setField(to, parts[depth - 1]!, value);
    whole.add(parts.slice(0, depth).join('.'));
  }
  return out;
}
