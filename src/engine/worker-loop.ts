import type { Db } from '../db/db.js';

/** The channel on which Sluice announces new work. A hint only: workers poll as well. */
export const WAKE_CHANNEL = 'sluice_work';

/** Options for {@link startWorkerLoop}. */
export interface WorkerLoopOptions {
  db: Db;
  /** How many units may run at once in this process. */
  concurrency: number;
  /** Longest sleep between polls when no notification arrives (ms). */
  pollIntervalMs?: number;
  /**
   * Claims and runs available work, returning how many units it handled. The engine supplies this; a
   * worker with no handler has nothing to claim and only keeps its wake-up subscription.
   */
  runOnce?: (concurrency: number) => Promise<number>;
  /** Called first thing on stop, so a long round stops claiming and only finishes what it holds. */
  stopClaiming?: () => void;
  onError?: (err: unknown) => void;
}

/** A running worker loop. */
export interface WorkerLoop {
  /** Stops claiming, waits for the current round to finish. */
  stop(): Promise<void>;
  /** How many polling rounds have completed (diagnostics, tests). */
  readonly rounds: number;
}

/**
 * Starts the worker loop: run a round, and when it found nothing, sleep until a `NOTIFY` on
 * {@link WAKE_CHANNEL} or the poll interval, whichever comes first. Processes coordinate only through
 * the database, so any number of workers may run against one PostgreSQL.
 */
export async function startWorkerLoop(options: WorkerLoopOptions): Promise<WorkerLoop> {
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  let stopping = false;
  let rounds = 0;
  let wake: (() => void) | undefined;
  const unlisten = await options.db.listen(WAKE_CHANNEL, () => wake?.());

  const loop = (async () => {
    while (!stopping) {
      let handled = 0;
      try {
        handled = options.runOnce ? await options.runOnce(options.concurrency) : 0;
      } catch (err) {
        options.onError?.(err);
      }
      rounds++;
      if (handled > 0 || stopping) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollIntervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  })();

  return {
    get rounds() {
      return rounds;
    },
    async stop() {
      stopping = true;
      options.stopClaiming?.();
      wake?.();
      await loop;
      await unlisten();
    },
  };
}
