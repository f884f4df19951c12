-- Operator retries (POST …/batches/{batch_id}/retry): the backoff in SQL, and stored answers for Idempotency-Key.

-- The delay (ms) before a unit's next attempt after `attempt` failures or retries: exponential with full
-- jitter, never below a server's Retry-After. The exact mirror of backoffDelayMs in src/engine/backoff.ts
-- (test/unit/backoff-sql.test.ts compares the two), so that a statement re-queuing thousands of units
-- computes each unit's delay in place instead of a round trip per unit. The random draw `r` ∈ [0, 1] is
-- passed in by the caller (`random()` per row), which keeps the function itself pure: IMMUTABLE, inlinable.
-- The exponent is capped at 62: beyond it base·2^(n−1) is past any cap for base ≥ cap/2^62 (every real
-- setting), and PostgreSQL, unlike JavaScript, raises an error on float overflow instead of giving Infinity.
CREATE FUNCTION sluice_backoff_ms(attempt integer, base_ms double precision, cap_ms double precision,
                                  retry_after_ms double precision, r double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT greatest(
           floor(least(greatest(r, 0), 1)
                 * least(cap_ms, base_ms * power(2::double precision, least(greatest(attempt, 1) - 1, 62)::double precision))),
           greatest(0, coalesce(retry_after_ms, 0)))
$$;

-- Answers of requests sent with an Idempotency-Key, per organization and scope (`retry:<batch_id>`): a
-- repeated key returns the stored answer and does nothing. The row is inserted first thing in the request's
-- transaction (a concurrent request with the same key waits on it, then reads the answer) and its response
-- written in the same transaction as the work, so there is never work without its answer: `response` is NULL
-- only inside that still-open transaction.
CREATE TABLE idempotency_keys (
  organization_id text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  scope           text NOT NULL,
  key             text NOT NULL,
  request_hash    text NOT NULL,                 -- sha256 of the normalized request: same key, other request → 409
  response        jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (organization_id, scope, key)
);
