-- Batches, their tiers, units of work and the documents they write.
--
-- Lock order, kept by every statement that touches more than one of these tables (engine and API alike):
-- units → batch_tiers → batches. Keeping one order means two transactions can wait on each other's rows
-- only in one direction, so they cannot deadlock.

CREATE TABLE batches (
  id                         text PRIMARY KEY,             -- btch_…
  organization_id            text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  namespace_id               text NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
  bucket_id                  text NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
  status                     text NOT NULL DEFAULT 'DRAFT'
                             CHECK (status IN ('DRAFT', 'PENDING', 'IN_PROGRESS', 'COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED', 'CANCELED')),
  type                       text NOT NULL DEFAULT 'BUCKET',
  metadata                   jsonb NOT NULL DEFAULT '{}',
  object_count               integer NOT NULL DEFAULT 0,
  dag_tiers                  jsonb,                         -- [[col_…]] per tier, fixed at submission
  collection_ids             text[],
  task_id                    text,
  include_processing_history boolean NOT NULL DEFAULT true,
  error                      text,
  submitted_at               timestamptz,
  started_at                 timestamptz,
  completed_at               timestamptz,
  created_at                 timestamptz NOT NULL DEFAULT now(),
  updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_bucket_created ON batches (bucket_id, created_at DESC, id);
CREATE INDEX batches_task ON batches (task_id) WHERE task_id IS NOT NULL;

-- The objects of a batch, one row each: a batch of a million objects is a million small rows, not one
-- array that every status change would rewrite.
CREATE TABLE batch_objects (
  batch_id   text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
  object_id  text NOT NULL,
  position   integer NOT NULL,
  PRIMARY KEY (batch_id, object_id)
);

-- One row per tier of a submitted batch. Counts are not kept here: they are read from units when asked,
-- so no hot row is written by every completing unit.
CREATE TABLE batch_tiers (
  batch_id              text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
  tier_num              integer NOT NULL,
  collection_ids        text[] NOT NULL,
  source_type           text NOT NULL CHECK (source_type IN ('bucket', 'collection')),
  source_collection_ids text[],
  status                text NOT NULL DEFAULT 'PENDING',
  started_at            timestamptz,
  completed_at          timestamptz,
  PRIMARY KEY (batch_id, tier_num)
);

-- A unit of work: one collection applied to one source item (an object for tier 0, a document after).
CREATE TABLE units (
  id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  batch_id               text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
  collection_id          text NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
  tier_num               integer NOT NULL,
  source_type            text NOT NULL CHECK (source_type IN ('object', 'document')),
  source_id              text NOT NULL,                  -- obj_… or doc_…
  root_object_id         text NOT NULL,
  status                 text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'running', 'completed', 'failed', 'canceled')),
  attempts               integer NOT NULL DEFAULT 0,      -- attempts in the current run (reset by a retry)
  rate_limited_attempts  integer NOT NULL DEFAULT 0,      -- of which rate-limited: they do not use up the budget
  retry_count            integer NOT NULL DEFAULT 0,      -- operator retries (POST …/retry)
  last_retry_at          timestamptz,
  next_attempt_at        timestamptz NOT NULL DEFAULT now(),
  lease_owner            text,
  lease_expires_at       timestamptz,
  last_error             jsonb,
  error_history          jsonb NOT NULL DEFAULT '[]',     -- the last few errors, newest last
  documents_written      integer NOT NULL DEFAULT 0,
  started_at             timestamptz,
  completed_at           timestamptz,
  updated_at             timestamptz NOT NULL DEFAULT now(),
  UNIQUE (batch_id, collection_id, source_id)
);
-- Claim: the oldest due pending units.
CREATE INDEX units_claim ON units (next_attempt_at, id) WHERE status = 'pending';
-- Lease recovery: running units whose lease ran out.
CREATE INDEX units_lease ON units (lease_expires_at) WHERE status = 'running';
-- "Is anything left in tiers ≤ t?": settling tiers and batches looks here, never at finished units.
CREATE INDEX units_active ON units (batch_id, tier_num) WHERE status IN ('pending', 'running');
-- Failed units by batch: retry and failed-documents cost grows with failures, not with batch size.
CREATE INDEX units_failed ON units (batch_id, tier_num, id) WHERE status = 'failed';

-- Documents: outputs of a collection's extractor. Ids are deterministic (collection, source, position), so
-- re-running a unit replaces its documents instead of adding more.
CREATE TABLE documents (
  id               text PRIMARY KEY,                     -- doc_…
  organization_id  text NOT NULL,
  namespace_id     text NOT NULL,
  collection_id    text NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
  source_type      text NOT NULL CHECK (source_type IN ('object', 'document')),
  source_id        text NOT NULL,
  position         integer NOT NULL,
  root_object_id   text,
  root_bucket_id   text,
  batch_id         text,                                 -- the batch that last wrote it
  fields           jsonb NOT NULL,                       -- user-visible fields (extractor output + passthrough)
  vectors          jsonb,                                -- vector fields, kept apart so lists without return_vectors skip them
  lineage          jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_source ON documents (collection_id, source_id);
CREATE INDEX documents_collection_created ON documents (collection_id, created_at, id);
CREATE INDEX documents_root_object ON documents (root_object_id);

CREATE INDEX tasks_org_type_created ON tasks (organization_id, task_type, created_at DESC);
