/**
 * Sets `target[key]` as an own, ordinary data property. Field names come from users (metadata, schemas,
 * extractor output): plain assignment of `__proto__` would replace the object's prototype instead of storing
 * a field, and reads of `constructor` would meet Object.prototype. Every place that copies user-named fields
 * into an object uses this.
 */
export function setField(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
