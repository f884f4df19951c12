-- Secrets every Sluice process shares, made once on first use (e.g. the key that signs blob URLs). Kept in
-- the database because processes coordinate only through it.
CREATE TABLE server_secrets (
  name        text PRIMARY KEY,
  value       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
