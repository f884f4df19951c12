import { hostname } from 'node:os';
import type { BlobStore } from '../blobs/blob-store.js';
import { BlobUrlSigner } from '../blobs/blob-urls.js';
import type { Db } from '../db/db.js';
import { type ClassifiedError, classifyError, PermanentError } from '../extractors/errors.js';
import type { ExtractorRegistry } from '../extractors/extractor.js';
import { randomBase36 } from '../ids/new-id.js';
import { type BackoffPolicy, backoffDelayMs } from './backoff.js';
import { claimSize } from './claim-size.js';
import { type ClaimedUnit, claimUnits } from './claim-units.js';
import { completeUnits, type DocumentWrite, type DownstreamUnit, deleteDerivedDocuments } from './complete-units.js';
import { type FailedAttempt, failUnits } from './fail-units.js';
import { cancelStrandedUnits, extendLeases, reapExpiredLeases } from './lease-statements.js';
import { type BatchPlan, type CollectionPlan, PipelineCache } from './pipeline-cache.js';
import { settleBatches } from './settle-batches.js';
import { shapeDocuments } from './shape-documents.js';
import { bindInput, passthroughFields } from './unit-input.js';
import { loadSources, type UnitSource } from './unit-sources.js';

/** The channel on which a canceled batch's id is announced, so workers stop its units at once. */
export const CANCEL_CHANNEL = 'sluice_cancel';

/**
 * A rate-limited unit does not use up its attempt budget (DESIGN-NOTES §5), but an upstream that answers
 * 429 forever must not keep it alive forever either: past this many rate-limited attempts it fails.
 */
export const MAX_RATE_LIMITED_ATTEMPTS = 50;

/**
 * Longest a unit waits for its next automatic attempt, whatever an upstream's `Retry-After` asks. Without a
 * ceiling an absurd value (`Retry-After: 99999999999999999999`, or one that parses to Infinity) would push
 * `next_attempt_at` out of PostgreSQL's range, and the failure could not be written at all.
 */
export const MAX_RETRY_DELAY_MS = 24 * 60 * 60 * 1000;

/**
 * A group of finished units is written as soon as it holds this many documents: documents travel as one
 * JSON parameter, and a few units that chunk long texts must not make it hundreds of megabytes.
 */
export const MAX_DOCUMENTS_PER_WRITE = 2000;

/** Options for {@link createEngine}. */
export interface EngineOptions {
  db: Db;
  blobs: BlobStore;
  extractors: ExtractorRegistry;
  /** Attempts per unit and run for transient failures (SLUICE_AUTO_ATTEMPTS). */
  autoAttempts: number;
  backoff: BackoffPolicy;
  /** Lease length (SLUICE_LEASE_MS); leases are renewed every third of it. */
  leaseMs: number;
  /** Most units claimed at once; defaults to 64 per unit of concurrency, at most 500. Claims are smaller
   * when extractors are slow (see claim-size.ts). */
  claimLimit?: number;
  /** Longest a finished unit waits to be written together with others (ms). */
  flushIntervalMs?: number;
  /**
   * Base URL of a Sluice API (SLUICE_PUBLIC_URL, or the server's own address): stored blobs then reach
   * extractors with a signed `url` of their bytes. Unset: their `url` is null.
   */
  publicUrl?: string;
  /** Identifies this worker in leases; unique per engine. */
  owner?: string;
  onError?: (err: unknown) => void;
}

/** The engine's run step, which {@link createWorker} runs in its loop. */
export interface Engine {
  /** Claims and runs available units with at most `concurrency` extractor calls at once; returns how many it claimed. */
  runOnce(concurrency: number): Promise<number>;
  /** Lease owner name of this engine. */
  readonly owner: string;
  /** From now on claims nothing more; units in flight finish and are written. */
  stopClaiming(): void;
  /** Stops renewing leases and unsubscribes. Call after the last `runOnce` has returned. */
  close(): Promise<void>;
}

type Outcome =
  | { kind: 'done'; unit: ClaimedUnit; documents: DocumentWrite[]; downstream: DownstreamUnit[] }
  | { kind: 'failed'; unit: ClaimedUnit; error: ClassifiedError; extractor: string | null }
  | { kind: 'dropped'; unit: ClaimedUnit };

interface InFlight {
  unit: ClaimedUnit;
  controller: AbortController;
}

const nowIso = () => new Date().toISOString();

/**
 * The engine: claims units in bulk, runs their extractors with bounded concurrency, and writes results in
 * bulk. Finished units are written in groups (every `flushIntervalMs` or when enough have finished), so a
 * slow unit never holds back the others' documents, and a round claims more as soon as half its units are
 * done. Leases are renewed while units run; a lost lease or a canceled batch aborts the unit's signal.
 */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const { db, extractors, autoAttempts, backoff, leaseMs } = options;
  const owner = options.owner ?? `${hostname()}:${process.pid}:${randomBase36(6)}`;
  const flushIntervalMs = options.flushIntervalMs ?? 25;
  const cache = new PipelineCache();
  const signer = new BlobUrlSigner(db);
  const { publicUrl } = options;
  const blobUrl = publicUrl ? (blobId: string) => signer.sign(publicUrl, blobId) : undefined;
  const inFlight = new Map<number, InFlight>();
  let lastReap = 0;
  let claiming = true;
  /** Moving average of one unit's run time (ms); unknown until a unit has run. */
  let runMs: number | undefined;


  const abortBatch = (batchId: string) => {
    for (const f of inFlight.values()) if (f.unit.batch_id === batchId) f.controller.abort(new Error(`batch ${batchId} was canceled`));
  };
  const unlisten = await db.listen(CANCEL_CHANNEL, (payload) => abortBatch(payload));

  const renewTimer = setInterval(
    () => {
      const ids = [...inFlight.keys()];
      if (ids.length === 0) return;
      extendLeases(db, owner, ids, leaseMs)
        .then((held) => {
          for (const id of ids) {
            const f = inFlight.get(id);
            if (f && !held.has(id)) f.controller.abort(new Error(`unit ${id} is no longer held by this worker`));
          }
        })
        .catch((err) => options.onError?.(err));
    },
    Math.max(200, Math.floor(leaseMs / 3)),
  );
  renewTimer.unref();

  async function reapIfDue(): Promise<void> {
    if (Date.now() - lastReap < Math.max(500, leaseMs / 4)) return;
    lastReap = Date.now();
    await cancelStrandedUnits(db);
    const reaped = await reapExpiredLeases(db, autoAttempts);
    const failedBatches = [...new Set(reaped.filter((r) => r.status === 'failed').map((r) => r.batch_id))];
    if (failedBatches.length > 0) await settleBatches(db, failedBatches);
  }

  /** Runs one unit's extractor and shapes its documents; never throws. */
  async function runUnit(
    unit: ClaimedUnit,
    source: UnitSource | PermanentError,
    plan: CollectionPlan | undefined,
    batch: BatchPlan | undefined,
    signal: AbortSignal,
  ): Promise<Outcome> {
    const extractor = plan ? extractors.get(plan.extractor_id) : undefined;
    try {
      if (!plan || !batch) return { kind: 'dropped', unit }; // collection or batch deleted meanwhile
      if (source instanceof PermanentError) throw source;
      // Batch object ids may be stored unchecked (`skip_validation`): only objects of the batch's own bucket
      // are ever read, so an id from elsewhere is as good as missing.
      if (unit.source_type === 'object' && source.rootBucketId !== batch.bucket_id) {
        throw new PermanentError(`source object ${unit.source_id} is not in bucket ${batch.bucket_id}`, {
          code: 'source_missing',
          category: 'dependency',
        });
      }
      if (!extractor) {
        throw new PermanentError(`feature extractor ${plan.extractor_id} is not available on this worker`, {
          code: 'extractor_not_found',
          category: 'dependency',
        });
      }
      const input = bindInput(plan, source.fields);
      const kept = passthroughFields(plan, source.fields);
      const produced = await extractor.run({
        params: plan.parameters,
        input,
        context: {
          unitId: String(unit.id),
          batchId: unit.batch_id,
          collectionId: unit.collection_id,
          tierNum: unit.tier_num,
          source: unit.source_type === 'object' ? { object_id: unit.source_id } : { document_id: unit.source_id },
        },
        signal,
      });
      if (signal.aborted) return { kind: 'dropped', unit };
      if (!Array.isArray(produced) || produced.some((d) => d === null || typeof d !== 'object' || Array.isArray(d))) {
        throw new PermanentError(`${extractor.id} returned something other than an array of documents`, {
          code: 'invalid_output',
          category: 'runtime',
        });
      }
      return { kind: 'done', unit, ...shapeDocuments(unit, source, plan, batch, extractor.id, extractor.positionFields, kept, produced) };
    } catch (err) {
      if (signal.aborted) return { kind: 'dropped', unit };
      return { kind: 'failed', unit, error: classifyError(err), extractor: extractor?.id ?? plan?.extractor_id ?? null };
    }
  }

  /** The engine's decision for a failed attempt: retry automatically after a backoff, or fail. */
  function decide(o: Extract<Outcome, { kind: 'failed' }>): FailedAttempt {
    const { unit, error } = o;
    const rateLimited = error.transient && error.code === 'rate_limited';
    // Rate-limited attempts are free: only the others count against the budget. `attempts` already
    // includes this attempt (the claim counted it); `rate_limited_attempts` does not yet.
    const counted = unit.attempts - unit.rate_limited_attempts;
    const budgetLeft = rateLimited ? unit.rate_limited_attempts + 1 < MAX_RATE_LIMITED_ATTEMPTS : counted < autoAttempts;
    const retry = error.transient && budgetLeft;
    // What is kept is what is honoured: a Retry-After past the ceiling is recorded as the ceiling.
    const retryAfterMs = error.retry_after_ms === null || Number.isNaN(error.retry_after_ms) ? null : Math.min(Math.max(0, error.retry_after_ms), MAX_RETRY_DELAY_MS);
    return {
      id: unit.id,
      status: retry ? 'pending' : 'failed',
      delay_ms: retry ? Math.min(backoffDelayMs(unit.attempts, backoff, { retryAfterMs }), MAX_RETRY_DELAY_MS) : 0,
      rate_limited: rateLimited,
      error: {
        ...error,
        retry_after_ms: retryAfterMs,
        tier_num: unit.tier_num,
        collection_id: unit.collection_id,
        extractor: o.extractor,
        attempt: unit.attempts,
        timestamp: nowIso(),
      },
    };
  }

  /** Writes finished units: completions in one statement, failures in one, then settles their batches. */
  async function flush(outcomes: Outcome[]): Promise<void> {
    const done = outcomes.filter((o): o is Extract<Outcome, { kind: 'done' }> => o.kind === 'done');
    const failed = outcomes.filter((o): o is Extract<Outcome, { kind: 'failed' }> => o.kind === 'failed');
    const touched = new Set<string>();
    if (done.length > 0) {
      // One transaction: documents that a re-run no longer produces take their descendants with them (rare),
      // and a crash in between must not leave those orphans behind for good.
      const result = await db.transaction(async (tx) => {
        const completed = await completeUnits(
          tx,
          owner,
          done.map((o) => ({ id: o.unit.id, documents_written: o.documents.length })),
          done.flatMap((o) => o.documents),
          done.flatMap((o) => o.downstream),
        );
        await deleteDerivedDocuments(tx, completed.stale);
        return completed;
      });
      for (const c of result.completed) touched.add(c.batch_id);
      if (result.queued > 0) moreWork = true;
    }
    if (failed.length > 0) {
      const rows = await failUnits(db, owner, failed.map(decide));
      for (const r of rows) if (r.status === 'failed') touched.add(r.batch_id);
    }
    if (touched.size > 0) await settleBatches(db, [...touched]);
  }

  let moreWork = true;

  async function runOnce(concurrency: number): Promise<number> {
    const maxClaim = Math.max(1, options.claimLimit ?? Math.min(500, concurrency * 64));
    let limit = claimSize(concurrency, maxClaim, runMs);
    await reapIfDue();
    let claimedTotal = 0;
    const finished: Outcome[] = [];
    const queue: (() => Promise<void>)[] = [];
    let running = 0;
    let wakeLoop: (() => void) | undefined;
    // A signal that arrives while the loop is busy is kept, so the loop does not then sleep through it.
    let signalled = false;
    const signalLoop = () => {
      const w = wakeLoop;
      wakeLoop = undefined;
      if (w) w();
      else signalled = true;
    };
    const pump = () => {
      while (running < concurrency && queue.length > 0) {
        const job = queue.shift()!;
        running++;
        void job().finally(() => {
          running--;
          pump();
        });
      }
    };
    moreWork = true;
    let firstFinishedAt = 0;
    let writing = 0;
    let finishedDocuments = 0;
    let writes: Promise<void> = Promise.resolve();

    const claimAndStart = async (want: number): Promise<number> => {
      const claimed = await claimUnits(db, owner, want, leaseMs);
      moreWork = claimed.length === want;
      if (claimed.length === 0) return 0;
      // Leases are renewed from the moment of the claim, even while sources load.
      const controllers = new Map(claimed.map((unit) => [unit.id, new AbortController()]));
      for (const unit of claimed) inFlight.set(unit.id, { unit, controller: controllers.get(unit.id)! });
      let loaded: [Map<string, UnitSource | PermanentError>, Map<string, CollectionPlan>, Map<string, BatchPlan>];
      try {
        loaded = await Promise.all([
          loadSources(db, options.blobs, claimed, blobUrl),
          cache.collectionPlans(db, claimed.map((u) => u.collection_id)),
          cache.batchPlans(db, claimed.map((u) => u.batch_id)),
        ]);
      } catch (err) {
        // Give the units up: their leases lapse and they run again later.
        for (const unit of claimed) inFlight.delete(unit.id);
        throw err;
      }
      const [sources, plans, batches] = loaded;
      for (const unit of claimed) {
        const controller = controllers.get(unit.id)!;
        queue.push(async () => {
          const started = performance.now();
          const outcome = controller.signal.aborted
            ? ({ kind: 'dropped', unit } as const)
            : await runUnit(unit, sources.get(unit.source_id)!, plans.get(unit.collection_id), batches.get(unit.batch_id), controller.signal);
          const ms = performance.now() - started;
          runMs = runMs === undefined ? ms : runMs * 0.9 + ms * 0.1;
          if (finished.length === 0) firstFinishedAt = Date.now();
          finished.push(outcome);
          if (outcome.kind === 'done') finishedDocuments += outcome.documents.length;
          signalLoop();
        });
      }
      pump();
      return claimed.length;
    };

    while (true) {
      // Units being written still hold leases (they stay in `inFlight`) but no longer take a running slot.
      const active = inFlight.size - writing;
      limit = claimSize(concurrency, maxClaim, runMs);
      if (claiming && moreWork && active <= limit / 2) {
        try {
          // A long round must still return dead workers' units now and then, not only between rounds.
          await reapIfDue();
          claimedTotal += await claimAndStart(limit - active);
        } catch (err) {
          // Units already in flight still finish and are written; the next round tries again.
          moreWork = false;
          options.onError?.(err);
        }
      }
      if (inFlight.size === 0) break;
      const due =
        finished.length > 0 &&
        (finished.length >= active ||
          finished.length >= limit / 2 ||
          finishedDocuments >= MAX_DOCUMENTS_PER_WRITE ||
          Date.now() - firstFinishedAt >= flushIntervalMs);
      if (due) {
        // Writes run one at a time but in the background: the next claim and the extractors overlap with
        // them (on PostgreSQL a second pooled connection; on PGlite they simply queue).
        const group = finished.splice(0, finished.length);
        finishedDocuments = 0;
        writing += group.length;
        writes = writes
          .then(() => flush(group))
          .catch((err) => {
            // Nothing of these units was written: they stay `running` until their leases run out, then run again.
            options.onError?.(err);
          })
          .finally(() => {
            for (const o of group) inFlight.delete(o.unit.id);
            writing -= group.length;
            signalLoop();
          });
        continue;
      }
      if (signalled) {
        signalled = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, finished.length > 0 ? flushIntervalMs : 1000);
        wakeLoop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeLoop = undefined;
    }
    return claimedTotal;
  }

  return {
    owner,
    runOnce,
    stopClaiming() {
      claiming = false;
    },
    async close() {
      claiming = false;
      clearInterval(renewTimer);
      await unlisten();
    },
  };
}
