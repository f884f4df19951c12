/** A row as the database returns it: column name → value (timestamps as `Date`, int8 as `number`). */
export type Row = Record<string, unknown>;

/** Something that runs one SQL statement. Both a `Db` and a transaction handle are `Queryable`. */
export interface Queryable {
  /** Runs one statement with `$1…` parameters and returns its rows. */
  query<R = Row>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

/**
 * Sluice's storage handle. It owns its connections; nothing outside `src/db/` sees a driver type.
 * Both implementations speak the same PostgreSQL dialect (PGlite is PostgreSQL compiled to WASM).
 */
export interface Db extends Queryable {
  /** `pglite` (embedded, one process) or `postgres` (shared by many processes). */
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Subscribes to `NOTIFY channel`. Notifications are wake-up hints only: callers must still poll,
   * since a notification sent while a listener reconnects is lost.
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  /** Closes every connection (and, for PGlite, releases the data-dir lock). Idempotent. */
  close(): Promise<void>;
}
