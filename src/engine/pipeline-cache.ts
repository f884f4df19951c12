import type { BucketSchema } from '../buckets/bucket-schema.js';
import type { InputBinding } from '../collections/validate.js';
import type { FieldPassthrough } from '../collections/schema.js';
import type { Queryable } from '../db/db.js';
import { vectorFieldNames } from '../documents/document-shape.js';

/** What the engine needs of a collection to run its units. */
export interface CollectionPlan {
  id: string;
  organization_id: string;
  namespace_id: string;
  extractor_id: string;
  parameters: unknown;
  input_bindings: Record<string, InputBinding> | null;
  field_passthrough: FieldPassthrough[];
  include_all_source_fields: boolean;
  vector_fields: string[];
}

/** What the engine needs of a submitted batch: which collections each collection feeds, and at which tier. */
export interface BatchPlan {
  id: string;
  bucket_id: string;
  /** collection id → the collections of this batch that read its documents, with their tier. */
  downstream: Map<string, { collection_id: string; tier_num: number }[]>;
}

interface CollectionRowForPlan {
  id: string;
  organization_id: string;
  namespace_id: string;
  feature_extractor: {
    feature_extractor_id: string;
    parameters: unknown;
    field_passthrough?: FieldPassthrough[];
    include_all_source_fields?: boolean;
  };
  input_bindings: Record<string, InputBinding> | null;
  output_schema: BucketSchema;
  source_collection_ids: string[];
}

const MAX_ENTRIES = 10_000;

/**
 * Per-process cache of collection and batch plans. Safe to cache without expiry: what it holds is fixed once
 * written (a collection's source and extractor cannot change, a batch's DAG is fixed at submission); a
 * collection deleted meanwhile simply has no units left to run. Loads are one query for many ids.
 */
export class PipelineCache {
  private readonly collections = new Map<string, CollectionPlan>();
  private readonly collectionSources = new Map<string, string[]>();
  private readonly batches = new Map<string, BatchPlan>();

  /** Plans of `ids`, loading the missing ones in one query. Unknown ids (deleted collections) are absent. */
  async collectionPlans(q: Queryable, ids: Iterable<string>): Promise<Map<string, CollectionPlan>> {
    const wanted = [...new Set(ids)];
    const missing = wanted.filter((id) => !this.collections.has(id));
    if (missing.length > 0) {
      if (this.collections.size > MAX_ENTRIES) this.collections.clear();
      const rows = await q.query<CollectionRowForPlan>(
        `SELECT id, organization_id, namespace_id, feature_extractor, input_bindings, output_schema, source_collection_ids
           FROM collections WHERE id = ANY($1::text[])`,
        [missing],
      );
      for (const r of rows) {
        this.collectionSources.set(r.id, r.source_collection_ids);
        this.collections.set(r.id, {
          id: r.id,
          organization_id: r.organization_id,
          namespace_id: r.namespace_id,
          extractor_id: r.feature_extractor.feature_extractor_id,
          parameters: r.feature_extractor.parameters ?? {},
          input_bindings: r.input_bindings,
          field_passthrough: r.feature_extractor.field_passthrough ?? [],
          include_all_source_fields: r.feature_extractor.include_all_source_fields ?? false,
          vector_fields: vectorFieldNames(r.output_schema),
        });
      }
    }
    const out = new Map<string, CollectionPlan>();
    for (const id of wanted) {
      const plan = this.collections.get(id);
      if (plan) out.set(id, plan);
    }
    return out;
  }

  /** Plans of `ids` (submitted batches), loading the missing ones together with their collections. */
  async batchPlans(q: Queryable, ids: Iterable<string>): Promise<Map<string, BatchPlan>> {
    const wanted = [...new Set(ids)];
    const missing = wanted.filter((id) => !this.batches.has(id));
    if (missing.length > 0) {
      if (this.batches.size > MAX_ENTRIES) this.batches.clear();
      const rows = await q.query<{ id: string; bucket_id: string; dag_tiers: string[][] | null }>(
        'SELECT id, bucket_id, dag_tiers FROM batches WHERE id = ANY($1::text[])',
        [missing],
      );
      await this.collectionPlans(q, rows.flatMap((r) => (r.dag_tiers ?? []).flat()));
      for (const r of rows) {
        const tiers = r.dag_tiers ?? [];
        const downstream = new Map<string, { collection_id: string; tier_num: number }[]>();
        tiers.forEach((collectionIds, tier_num) => {
          for (const collection_id of collectionIds) {
            for (const source of this.collectionSources.get(collection_id) ?? []) {
              const list = downstream.get(source) ?? [];
              list.push({ collection_id, tier_num });
              downstream.set(source, list);
            }
          }
        });
        this.batches.set(r.id, { id: r.id, bucket_id: r.bucket_id, downstream });
      }
    }
    const out = new Map<string, BatchPlan>();
    for (const id of wanted) {
      const plan = this.batches.get(id);
      if (plan) out.set(id, plan);
    }
    return out;
  }
}
