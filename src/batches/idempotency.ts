import { createHash } from 'node:crypto';
import type { Queryable } from '../db/db.js';
import { ApiError, show } from '../errors/registry.js';

/** Where an `Idempotency-Key` applies: keys are unique per organization and scope (e.g. `retry:btch_…`). */
export interface IdempotencyScope {
  organizationId: string;
  scope: string;
  key: string;
}

/** How long a stored answer is kept for its key (as Stripe and most APIs with idempotency keys do). */
export const IDEMPOTENCY_KEY_TTL = '24 hours';

/** sha256 of a request, normalized by the caller (defaults applied, fixed key order). */
export const requestHash = (request: unknown): string => createHash('sha256').update(JSON.stringify(request), 'utf8').digest('hex');

/**
 * Claims an `Idempotency-Key` inside the caller's transaction (call it before any other write). Answers the
 * stored response when the key was used before for the same request, `undefined` when this request is the
 * first (then store its answer with {@link storeIdempotentResponse} in the same transaction). The same key
 * with another request is a 409 naming the key.
 *
 * A concurrent request with the same key waits on the claim's row (the primary key) until the first
 * transaction ends: after a commit it reads the stored answer; after a rollback it claims the key itself.
 */
export async function claimIdempotencyKey<T>(q: Queryable, id: IdempotencyScope, hash: string): Promise<T | undefined> {
  // A key older than IDEMPOTENCY_KEY_TTL is forgotten: reusing it is a new request (the upsert takes it over).
  const claimed = await q.query(
    `INSERT INTO idempotency_keys (organization_id, scope, key, request_hash) VALUES ($1, $2, $3, $4)
     ON CONFLICT (organization_id, scope, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, response = NULL, created_at = now()
      WHERE idempotency_keys.created_at < now() - interval '${IDEMPOTENCY_KEY_TTL}'
     RETURNING 1`,
    [id.organizationId, id.scope, id.key, hash],
  );
  if (claimed.length > 0) return undefined;
  const [stored] = await q.query<{ request_hash: string; response: T | null }>(
    'SELECT request_hash, response FROM idempotency_keys WHERE organization_id = $1 AND scope = $2 AND key = $3',
    [id.organizationId, id.scope, id.key],
  );
  if (stored?.request_hash !== hash || stored.response === null) {
    throw new ApiError('already_exists', `Idempotency-Key ${show(id.key)} was already used with a different request`, {
      idempotency_key: id.key,
    });
  }
  return stored.response;
}

/** Stores the answer of the request that claimed the key (same transaction as its work). */
export async function storeIdempotentResponse(q: Queryable, id: IdempotencyScope, response: unknown): Promise<void> {
  await q.query('UPDATE idempotency_keys SET response = $4::jsonb WHERE organization_id = $1 AND scope = $2 AND key = $3', [
    id.organizationId,
    id.scope,
    id.key,
    JSON.stringify(response),
  ]);
}
