import { apiKeyPrefix, generateApiKey, hashApiKey } from '../auth/api-key-secret.js';
import type { Permission } from '../auth/permissions.js';
import type { Queryable } from '../db/db.js';
import { alreadyExists, ApiError, notFound, show } from '../errors/registry.js';
import { newId } from '../ids/new-id.js';

/** An API key row as the API shows it (never with its plaintext). */
export interface ApiKeyRecord {
  key_id: string;
  key_hash: string;
  key_prefix: string;
  key_type: 'standard';
  subscription_id: null;
  internal_id: string;
  organization_id: string;
  user_id: string;
  name: string;
  description: string;
  permissions: Permission[];
  scopes: unknown[];
  rate_limit_override: number | null;
  status: 'active' | 'revoked' | 'expired';
  expires_at: string | null;
  last_used_at: string | null;
  created_at: string;
  created_by: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  allowed_origins: null;
}

interface KeyRow {
  id: string;
  organization_id: string;
  user_id: string;
  name: string;
  description: string;
  key_hash: string;
  key_prefix: string;
  permissions: Permission[];
  scopes: unknown[];
  rate_limit_override: number | null;
  status: 'active' | 'revoked' | 'expired';
  protected: boolean;
  expires_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
  created_by: string | null;
  revoked_at: Date | null;
  revoked_by: string | null;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

function toRecord(row: KeyRow): ApiKeyRecord {
  // A key past its expiry is reported as expired even before anything rewrote its status.
  const expired = row.status === 'active' && row.expires_at !== null && row.expires_at.getTime() <= Date.now();
  return {
    key_id: row.id,
    key_hash: row.key_hash,
    key_prefix: row.key_prefix,
    key_type: 'standard',
    subscription_id: null,
    internal_id: row.organization_id,
    organization_id: row.organization_id,
    user_id: row.user_id,
    name: row.name,
    description: row.description,
    permissions: row.permissions,
    scopes: row.scopes,
    rate_limit_override: row.rate_limit_override,
    status: expired ? 'expired' : row.status,
    expires_at: iso(row.expires_at),
    last_used_at: iso(row.last_used_at),
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    revoked_at: iso(row.revoked_at),
    revoked_by: row.revoked_by,
    allowed_origins: null,
  };
}

/** What creating a key needs. */
export interface NewApiKey {
  organizationId: string;
  userId: string;
  name: string;
  description?: string | null;
  permissions: Permission[];
  scopes?: unknown[] | null;
  rateLimitOverride?: number | null;
  expiresAt?: string | null;
  createdBy?: string | null;
  /** Protected keys (`admin-key`, `bootstrap-key`) cannot be changed over HTTP. */
  protected?: boolean;
  /** Use this plaintext instead of generating one (the bootstrap key from the environment). */
  plaintext?: string;
}

/** Inserts a key; answers 409 if the user already has a live key of that name. */
export async function insertApiKey(q: Queryable, input: NewApiKey): Promise<ApiKeyRecord & { key: string }> {
  const plaintext = input.plaintext ?? generateApiKey();
  const rows = await q.query<KeyRow>(
    `INSERT INTO api_keys (id, organization_id, user_id, name, description, key_hash, key_prefix, permissions,
                           scopes, rate_limit_override, expires_at, created_by, protected)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT DO NOTHING
     RETURNING *`,
    [
      newId('key'),
      input.organizationId,
      input.userId,
      input.name,
      input.description ?? '',
      hashApiKey(plaintext),
      apiKeyPrefix(plaintext),
      [...new Set(input.permissions)],
      JSON.stringify(input.scopes ?? []),
      input.rateLimitOverride ?? null,
      input.expiresAt ?? null,
      input.createdBy ?? null,
      input.protected ?? false,
    ],
  );
  const row = rows[0];
  if (!row) throw alreadyExists('api key', 'name', input.name);
  return { ...toRecord(row), key: plaintext };
}

/** Emails name the same person in any letter case, so users are stored and looked up lower-cased. */
const normalEmail = (email: string): string => email.trim().toLowerCase();

/** Finds a user of an organization by email (any case), or `undefined`. */
export async function findUser(q: Queryable, organizationId: string, email: string): Promise<{ id: string } | undefined> {
  const rows = await q.query<{ id: string }>('SELECT id FROM users WHERE organization_id = $1 AND email = $2', [
    organizationId,
    normalEmail(email),
  ]);
  return rows[0];
}

/** Returns the user with this email in the organization, creating it on first use. */
export async function ensureUser(q: Queryable, organizationId: string, email: string): Promise<{ id: string }> {
  await q.query(
    `INSERT INTO users (id, organization_id, email) VALUES ($1, $2, $3)
     ON CONFLICT (organization_id, email) DO NOTHING`,
    [newId('usr'), organizationId, normalEmail(email)],
  );
  const user = await findUser(q, organizationId, email);
  if (!user) throw new Error(`user ${email} vanished right after it was created`);
  return user;
}

async function requireUser(q: Queryable, organizationId: string, email: string): Promise<{ id: string }> {
  const user = await findUser(q, organizationId, email);
  if (!user) throw notFound('user', email);
  return user;
}

/** Lists a user's keys, newest first; revoked keys only when asked. */
export async function listApiKeys(
  q: Queryable,
  organizationId: string,
  email: string,
  includeRevoked: boolean,
): Promise<ApiKeyRecord[]> {
  const user = await requireUser(q, organizationId, email);
  const rows = await q.query<KeyRow>(
    `SELECT * FROM api_keys WHERE user_id = $1 AND ($2 OR status <> 'revoked') ORDER BY created_at DESC, id`,
    [user.id, includeRevoked],
  );
  return rows.map(toRecord);
}

/**
 * The user's live key of that name, locked for the rest of the transaction: a concurrent PATCH, revoke or
 * rotate of the same key waits, then finds it revoked (404) instead of changing a row that was just replaced.
 */
async function liveKey(q: Queryable, organizationId: string, email: string, name: string): Promise<KeyRow> {
  const user = await requireUser(q, organizationId, email);
  const rows = await q.query<KeyRow>(
    `SELECT * FROM api_keys WHERE user_id = $1 AND name = $2 AND status <> 'revoked' FOR UPDATE`,
    [user.id, name],
  );
  const row = rows[0];
  if (!row) throw notFound('api key', name);
  if (row.protected) {
    throw new ApiError('forbidden', `api key ${show(name)} is protected and cannot be changed over the API`, {
      key_name: name,
    });
  }
  return row;
}

/** The fields PATCH may change. */
export interface ApiKeyPatch {
  name?: string | null;
  description?: string | null;
  permissions?: Permission[] | null;
  scopes?: unknown[] | null;
  rate_limit_override?: number | null;
  expires_at?: string | null;
  status?: 'active' | 'revoked' | 'expired' | null;
}

/** Applies a PATCH. `null`/absent fields stay as they are, as in Mixpeek. */
export async function updateApiKey(
  q: Queryable,
  organizationId: string,
  email: string,
  name: string,
  patch: ApiKeyPatch,
  actorKeyId: string,
): Promise<ApiKeyRecord> {
  const row = await liveKey(q, organizationId, email, name);
  if (patch.status === 'active' && row.status !== 'active') {
    throw new ApiError('bad_request', `api key ${show(name)} is ${row.status} and cannot be reactivated; create a new key`);
  }
  const rows = await q.query<KeyRow>(
    `UPDATE api_keys SET
       name = COALESCE($2, name),
       description = COALESCE($3, description),
       permissions = COALESCE($4, permissions),
       scopes = COALESCE($5::jsonb, scopes),
       rate_limit_override = COALESCE($6, rate_limit_override),
       expires_at = COALESCE($7, expires_at),
       status = COALESCE($8, status),
       revoked_at = CASE WHEN $8 = 'revoked' THEN now() ELSE revoked_at END,
       revoked_by = CASE WHEN $8 = 'revoked' THEN $9 ELSE revoked_by END
     WHERE id = $1
     RETURNING *`,
    [
      row.id,
      patch.name ?? null,
      patch.description ?? null,
      patch.permissions ? [...new Set(patch.permissions)] : null,
      patch.scopes ? JSON.stringify(patch.scopes) : null,
      patch.rate_limit_override ?? null,
      patch.expires_at ?? null,
      patch.status ?? null,
      actorKeyId,
    ],
  ).catch((err: { code?: string }) => {
    if (err.code === '23505') throw alreadyExists('api key', 'name', patch.name ?? name);
    throw err;
  });
  return toRecord(rows[0]!);
}

/** Revokes a key: it stops authenticating at once, in every process (each request reads the row). */
export async function revokeApiKey(
  q: Queryable,
  organizationId: string,
  email: string,
  name: string,
  actorKeyId: string,
): Promise<void> {
  const row = await liveKey(q, organizationId, email, name);
  await q.query(`UPDATE api_keys SET status = 'revoked', revoked_at = now(), revoked_by = $2 WHERE id = $1`, [
    row.id,
    actorKeyId,
  ]);
}

/** Replaces a key's secret: the old plaintext stops working, the same name and settings go on. */
export async function rotateApiKey(
  q: Queryable,
  organizationId: string,
  email: string,
  name: string,
  actorKeyId: string,
): Promise<ApiKeyRecord & { key: string }> {
  const row = await liveKey(q, organizationId, email, name);
  await q.query(`UPDATE api_keys SET status = 'revoked', revoked_at = now(), revoked_by = $2 WHERE id = $1`, [
    row.id,
    actorKeyId,
  ]);
  return insertApiKey(q, {
    organizationId,
    userId: row.user_id,
    name: row.name,
    description: row.description,
    permissions: row.permissions,
    scopes: row.scopes,
    rateLimitOverride: row.rate_limit_override,
    // An expiry already past would make the new secret dead on arrival: rotating renews such a key.
    expiresAt: row.expires_at && row.expires_at.getTime() > Date.now() ? iso(row.expires_at) : null,
    createdBy: actorKeyId,
  });
}
