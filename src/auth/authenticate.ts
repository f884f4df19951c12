import type { Db } from '../db/db.js';
import { ApiError, show } from '../errors/registry.js';
import { hashApiKey } from './api-key-secret.js';
import { allows, type Permission } from './permissions.js';

/** Who is calling: resolved from the API key on every request. */
export interface AuthContext {
  organizationId: string;
  userId: string;
  keyId: string;
  keyName: string;
  permissions: Permission[];
}

interface KeyLookupRow {
  id: string;
  organization_id: string;
  user_id: string;
  name: string;
  permissions: Permission[];
  status: string;
  expired: boolean;
  stale_use: boolean;
}

const unauthorized = (message: string) =>
  new ApiError('unauthorized', message, null, { 'WWW-Authenticate': 'Bearer realm="sluice"' });

/**
 * Reads the key from `Authorization: Bearer sk_…` (the scheme in any case; a bare `sk_…` is accepted too).
 * Another scheme (`Basic …`) is refused by name, so its credentials never reach the key lookup or a message.
 */
export function extractApiKey(header: string | undefined): string | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  const match = /^(\S+)(?:\s+(.*))?$/s.exec(value);
  const scheme = match?.[1] ?? '';
  const rest = match?.[2]?.trim();
  if (/^bearer$/i.test(scheme)) return rest ? rest : undefined;
  if (rest) throw unauthorized(`unsupported Authorization scheme ${show(scheme.slice(0, 20))}: send Authorization: Bearer sk_…`);
  return value;
}

/**
 * How an unrecognised key is named in a message: its first 10 characters (what `key_prefix` shows), and
 * nothing of a token so short that those 10 characters would be most or all of it.
 */
function describeToken(token: string): string {
  return token.length >= 20 ? `${token.slice(0, 10)}…` : `(a ${token.length}-character value, not shown)`;
}

/**
 * Resolves and checks the caller's key. One indexed read per request, so a revoked key stops working at
 * once in every process; `last_used_at` is written at most once a minute per key, off the request path.
 */
export async function authenticate(db: Db, header: string | undefined, required: Permission): Promise<AuthContext> {
  const token = extractApiKey(header);
  if (!token) throw unauthorized('missing API key: send Authorization: Bearer sk_…');
  const rows = await db.query<KeyLookupRow>(
    `SELECT id, organization_id, user_id, name, permissions, status,
            (expires_at IS NOT NULL AND expires_at <= now()) AS expired,
            (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS stale_use
       FROM api_keys WHERE key_hash = $1`,
    [hashApiKey(token)],
  );
  const key = rows[0];
  const shown = describeToken(token);
  if (!key) throw unauthorized(`invalid API key ${shown}`);
  if (key.status === 'revoked') throw unauthorized(`API key ${shown} (${key.name}) has been revoked`);
  if (key.status === 'expired' || key.expired) throw unauthorized(`API key ${shown} (${key.name}) has expired`);
  if (!allows(key.permissions, required)) {
    throw new ApiError(
      'forbidden',
      `API key ${key.name} has permissions [${key.permissions.join(', ')}] but this request needs ${required}`,
      { required_permission: required, key_permissions: key.permissions },
    );
  }
  if (key.stale_use) {
    db.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [key.id]).catch(() => {});
  }
  return {
    organizationId: key.organization_id,
    userId: key.user_id,
    keyId: key.id,
    keyName: key.name,
    permissions: key.permissions,
  };
}
