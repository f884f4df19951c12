/** How much work (in ms of extractor time) each running slot may hold claimed ahead. */
export const WORK_AHEAD_MS = 2000;

/**
 * How many units a worker should hold at once: about {@link WORK_AHEAD_MS} of work per running slot, between
 * `concurrency` and `max`. Fast extractors get large claims (fewer statements per unit); slow ones small
 * claims, so one worker neither hoards units that other workers could run nor holds leases on work it will
 * not start for minutes. Before any unit has run (`runMs` unknown) it claims a little: 4 per slot.
 */
export function claimSize(concurrency: number, max: number, runMs: number | undefined): number {
  const floor = Math.min(max, concurrency);
  if (runMs === undefined) return Math.max(1, Math.min(max, concurrency * 4));
  const perSlot = Math.max(1, Math.floor(WORK_AHEAD_MS / Math.max(runMs, 0.01)));
  return Math.max(1, floor, Math.min(max, concurrency * perSlot));
}
