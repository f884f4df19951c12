/** Mixpeek's four API-key permissions; the hierarchy is admin > delete > write > read. */
export const PERMISSIONS = ['read', 'write', 'delete', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

const RANK: Record<Permission, number> = { read: 1, write: 2, delete: 3, admin: 4 };

/** Whether a key holding `granted` may do something that needs `required`. */
export function allows(granted: readonly string[], required: Permission): boolean {
  return granted.some((p) => p in RANK && RANK[p as Permission] >= RANK[required]);
}
