-- Buckets, their objects and blobs, uploads, and the task records that asynchronous answers point at.

CREATE TABLE buckets (
  id                text PRIMARY KEY,                  -- bkt_…
  organization_id   text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  namespace_id      text NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
  name              text NOT NULL,
  description       text,
  bucket_schema     jsonb NOT NULL,
  unique_key        jsonb,                             -- {fields: [...], default_policy}
  metadata          jsonb NOT NULL DEFAULT '{}',
  status            text NOT NULL DEFAULT 'ACTIVE',
  is_locked         boolean NOT NULL DEFAULT false,
  -- Kept in step with objects inside the same transactions that add or remove them, so GET never counts.
  object_count      integer NOT NULL DEFAULT 0,
  total_size_bytes  bigint NOT NULL DEFAULT 0,
  last_upload_at    timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (namespace_id, name)
);

CREATE TABLE objects (
  id                text PRIMARY KEY,                  -- obj_…
  organization_id   text NOT NULL,
  namespace_id      text NOT NULL,
  bucket_id         text NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
  key_prefix        text,
  metadata          jsonb NOT NULL DEFAULT '{}',
  -- Canonical JSON of the bucket's unique_key fields; NULL when the bucket has none.
  unique_key_value  text,
  status            text NOT NULL DEFAULT 'DRAFT',
  error             text,
  size_bytes        bigint NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX objects_unique_key ON objects (bucket_id, unique_key_value) WHERE unique_key_value IS NOT NULL;
-- Lists page through a bucket in (created_at, id) order.
CREATE INDEX objects_bucket_created ON objects (bucket_id, created_at, id);

CREATE TABLE blobs (
  id                text PRIMARY KEY,                  -- blob_…
  object_id         text NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
  bucket_id         text NOT NULL,
  organization_id   text NOT NULL,
  position          integer NOT NULL,                  -- order within the object
  property          text NOT NULL,
  type              text NOT NULL,                     -- the schema field type (text, image, …)
  key_prefix        text,
  source            text NOT NULL CHECK (source IN ('text', 'stored', 'url')),
  text_value        text,                              -- source = text: the text itself
  storage_key       text,                              -- source = stored: key in the BlobStore
  url               text,                              -- source = url: fetched when processed
  filename          text,
  mime_type         text,
  size_bytes        bigint,
  sha256            text,
  metadata          jsonb NOT NULL DEFAULT '{}',
  created_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (object_id, position)
);
CREATE INDEX blobs_bucket_sha ON blobs (bucket_id, sha256) WHERE sha256 IS NOT NULL;

CREATE TABLE uploads (
  id                        text PRIMARY KEY,          -- upl_…
  organization_id           text NOT NULL,
  namespace_id              text NOT NULL,
  bucket_id                 text NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
  filename                  text NOT NULL,
  content_type              text NOT NULL,
  file_size_bytes           bigint,                    -- expected, if the client said
  token_hash                text NOT NULL,             -- sha256 of the secret in the upload URL
  expires_at                timestamptz NOT NULL,
  status                    text NOT NULL DEFAULT 'PENDING',
  metadata                  jsonb NOT NULL DEFAULT '{}',
  create_object_on_confirm  boolean NOT NULL DEFAULT true,
  object_metadata           jsonb,
  blob_property             text,
  blob_type                 text,
  file_hash                 text,                      -- sha256 given by the client or measured
  skip_duplicates           boolean NOT NULL DEFAULT true,
  duplicate_of_upload_id    text,
  storage_key               text,                      -- where the received bytes are
  received_size_bytes       bigint,
  received_sha256           text,
  detected_mime_type        text,
  etag                      text,
  object_id                 text,
  error                     text,
  created_at                timestamptz NOT NULL DEFAULT now(),
  received_at               timestamptz,
  verified_at               timestamptz,
  completed_at              timestamptz
);
CREATE INDEX uploads_bucket_created ON uploads (bucket_id, created_at, id);
CREATE INDEX uploads_bucket_hash ON uploads (bucket_id, file_hash) WHERE file_hash IS NOT NULL;

CREATE TABLE tasks (
  id                text PRIMARY KEY,                  -- task_…
  organization_id   text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  namespace_id      text,
  task_type         text NOT NULL,
  status            text NOT NULL,
  inputs            jsonb,
  outputs           jsonb,
  additional_data   jsonb,
  error             text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_org_created ON tasks (organization_id, created_at DESC);
