import type { BucketRow } from '../buckets/service.js';
import { collectionGraph } from '../collections/service.js';
import { deriveTiers } from '../collections/tiers.js';
import type { Db } from '../db/db.js';
import { badRequest, show } from '../errors/registry.js';
import { type BatchScope, createBatch, submitBatch } from './service.js';

/**
 * `auto_process=true` on object creation needs something to run: refused (400, before any object is
 * written) when no enabled collection reads the bucket.
 */
export async function checkAutoProcess(db: Db, scope: BatchScope, bucket: Pick<BucketRow, 'id' | 'name'>): Promise<void> {
  const tiers = deriveTiers(await collectionGraph(db, scope, { enabledOnly: true }), bucket.id);
  if (tiers.length === 0) {
    throw badRequest(
      `auto_process=true: no enabled collection reads bucket ${show(bucket.name)} (${bucket.id}), so there is nothing to process; create a collection with this bucket as its source first`,
      { parameter: 'auto_process', bucket_id: bucket.id },
    );
  }
}

/** What {@link autoProcess} did: the batch and task it made, or why it could not (the objects stay). */
export type AutoProcessOutcome = { batchId: string; taskId: string } | { error: string };

/**
 * Creates a batch of the objects just written and submits it, as Mixpeek's `auto_process` does. The objects
 * are already committed, so a failure here is reported, not thrown: answering an error for a request whose
 * objects exist would invite the client to send them again.
 */
export async function autoProcess(db: Db, scope: BatchScope, bucket: Pick<BucketRow, 'id'>, objectIds: string[]): Promise<AutoProcessOutcome | undefined> {
  if (objectIds.length === 0) return undefined;
  try {
    const batch = await createBatch(db, scope, bucket.id, { object_ids: objectIds }, { skipValidation: true });
    const task = await submitBatch(db, scope, bucket.id, batch.batch_id!, { include_processing_history: true });
    return { batchId: batch.batch_id!, taskId: task.task_id };
  } catch (err) {
    return { error: (err as Error).message };
  }
}
