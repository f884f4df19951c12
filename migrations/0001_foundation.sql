-- Foundation: organizations, their users and API keys, and namespaces.
-- Every row carries organization_id; a request never reads rows of another organization.

CREATE TABLE organizations (
  id          text PRIMARY KEY,                       -- org_…
  name        text NOT NULL UNIQUE,
  is_default  boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one default organization: the one SLUICE_BOOTSTRAP_API_KEY and `sluice keys create` use.
CREATE UNIQUE INDEX organizations_single_default ON organizations (is_default) WHERE is_default;

CREATE TABLE users (
  id               text PRIMARY KEY,                  -- usr_…
  organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  email            text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (organization_id, email)
);

CREATE TABLE api_keys (
  id                   text PRIMARY KEY,              -- key_…
  organization_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  user_id              text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name                 text NOT NULL,
  description          text NOT NULL DEFAULT '',
  key_hash             text NOT NULL UNIQUE,           -- sha256 of the plaintext, hex
  key_prefix           text NOT NULL,                  -- first 10 characters of the plaintext
  permissions          text[] NOT NULL,
  scopes               jsonb NOT NULL DEFAULT '[]',
  rate_limit_override  integer,
  status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'expired')),
  protected            boolean NOT NULL DEFAULT false, -- admin-key / bootstrap-key: not editable over HTTP
  expires_at           timestamptz,
  last_used_at         timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  created_by           text,
  revoked_at           timestamptz,
  revoked_by           text
);
-- A name identifies a key of a user in the URL; revoked keys keep their row (audit) but free the name.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (user_id, name) WHERE status <> 'revoked';

CREATE TABLE namespaces (
  id                   text PRIMARY KEY,              -- ns_…
  organization_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  name                 text NOT NULL,
  namespace_type       text NOT NULL DEFAULT 'standard',
  description          text,
  feature_extractors   jsonb NOT NULL DEFAULT '[]',
  payload_indexes      jsonb,
  auto_create_indexes  boolean NOT NULL DEFAULT false,
  infrastructure       jsonb,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  UNIQUE (organization_id, name)
);
