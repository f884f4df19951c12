-- Collections: one feature extractor applied to a source (buckets or other collections).

CREATE TABLE collections (
  id                    text PRIMARY KEY,              -- col_…
  organization_id       text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  namespace_id          text NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
  name                  text NOT NULL,
  description           text,
  source                jsonb NOT NULL,                -- SourceConfig as answered (ids, never names)
  source_type           text NOT NULL CHECK (source_type IN ('bucket', 'collection')),
  -- The source ids again as arrays, so "who reads from X" (tiers, delete refusal) is an indexed `= ANY` /
  -- `&&` query instead of a scan of jsonb. Exactly one of them is non-empty, per source_type.
  source_bucket_ids     text[] NOT NULL DEFAULT '{}',
  source_collection_ids text[] NOT NULL DEFAULT '{}',
  feature_extractor     jsonb NOT NULL,                -- FeatureExtractorConfig, parameters validated and defaulted
  -- extractor input name → {path} | {literal}: input_mappings resolved against input_schema, for the engine.
  input_bindings        jsonb NOT NULL DEFAULT '{}',
  input_schema          jsonb NOT NULL,
  output_schema         jsonb NOT NULL,
  source_bucket_schemas jsonb,                         -- bucket id → schema at creation, multi-bucket sources only
  enabled               boolean NOT NULL DEFAULT true,
  metadata              jsonb NOT NULL DEFAULT '{}',
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  UNIQUE (namespace_id, name)
);
CREATE INDEX collections_source_buckets ON collections USING gin (source_bucket_ids);
CREATE INDEX collections_source_collections ON collections USING gin (source_collection_ids);
