import { documentId, type DocumentLineage, splitVectors } from '../documents/document-shape.js';
import type { ExtractedDocument } from '../extractors/extractor.js';
import type { ClaimedUnit } from './claim-units.js';
import type { DocumentWrite, DownstreamUnit } from './complete-units.js';
import type { BatchPlan, CollectionPlan } from './pipeline-cache.js';
import type { UnitSource } from './unit-sources.js';

/**
 * Turns an extractor's output for one unit into document rows — deterministic ids, lineage extended from the
 * source, vectors split off — and the downstream units that will read them (one per document and collection
 * of this batch reading this unit's collection).
 */
export function shapeDocuments(
  unit: ClaimedUnit,
  source: UnitSource,
  plan: CollectionPlan,
  batch: BatchPlan,
  extractorId: string,
  positionFields: readonly string[],
  kept: Record<string, unknown>,
  produced: ExtractedDocument[],
): { documents: DocumentWrite[]; downstream: DownstreamUnit[] } {
  const timestamp = new Date().toISOString();
  const documents: DocumentWrite[] = [];
  const downstream: DownstreamUnit[] = [];
  const next = batch.downstream.get(unit.collection_id) ?? [];
  produced.forEach((doc, index) => {
    const position = positionFields.length > 0 ? positionFields.map((f) => String(doc[f] ?? '')).join('\u0000') : index;
    const id = documentId(unit.collection_id, unit.source_id, position);
    const step = { collection_id: unit.collection_id, feature_extractor_id: extractorId, document_id: id, timestamp };
    const lineage: DocumentLineage = source.parent
      ? {
          root_object_id: source.parent.lineage.root_object_id,
          root_bucket_id: source.parent.lineage.root_bucket_id,
          source_type: 'collection',
          source_object_id: null,
          source_document_id: unit.source_id,
          source_collection_id: source.parent.collectionId,
          path: `${source.parent.lineage.path}/${unit.collection_id}`,
          chain: [...source.parent.lineage.chain, step],
        }
      : {
          root_object_id: unit.source_id,
          root_bucket_id: source.rootBucketId,
          source_type: 'bucket',
          source_object_id: unit.source_id,
          source_document_id: null,
          source_collection_id: null,
          path: `${source.rootBucketId}/${unit.collection_id}`,
          chain: [step],
        };
    const { fields, vectors } = splitVectors({ ...kept, ...doc }, plan.vector_fields);
    documents.push({
      unit_id: unit.id,
      id,
      organization_id: plan.organization_id,
      namespace_id: plan.namespace_id,
      collection_id: unit.collection_id,
      source_type: unit.source_type,
      source_id: unit.source_id,
      position: index,
      root_object_id: unit.root_object_id,
      root_bucket_id: source.rootBucketId,
      batch_id: unit.batch_id,
      fields,
      vectors,
      lineage,
    });
    for (const d of next) {
      downstream.push({
        parent_unit_id: unit.id,
        batch_id: unit.batch_id,
        collection_id: d.collection_id,
        tier_num: d.tier_num,
        source_id: id,
        root_object_id: unit.root_object_id,
      });
    }
  });
  return { documents, downstream };
}
