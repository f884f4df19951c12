import type { Readable } from 'node:stream';

/** What a completed write measured. */
export interface StoredBlob {
  sizeBytes: number;
  /** Hex SHA-256 of the bytes. */
  sha256: string;
  /** The first bytes (up to 4 KiB), for content sniffing. */
  head: Buffer;
}

/**
 * Where blob bytes live. Keys are `/`-separated paths of `[A-Za-z0-9_.-]` segments, laid out as
 * `<org>/<namespace>/<bucket>/…` so that deleting a bucket or namespace is one prefix delete.
 * Implementations own their storage; callers never see paths or handles.
 */
export interface BlobStore {
  /**
   * Streams `source` into `key`, hashing as it goes. Memory stays flat whatever the size. A write that
   * fails (too large, source error) leaves nothing behind, and a completed one replaces `key` atomically.
   * Throws {@link BlobTooLargeError} past `maxBytes`.
   */
  put(key: string, source: AsyncIterable<Uint8Array> | Uint8Array, options?: { maxBytes?: number }): Promise<StoredBlob>;
  /** A stream of the bytes; throws {@link BlobMissingError} when there are none. */
  get(key: string): Promise<Readable>;
  /** Size of a stored blob, or `undefined`. */
  stat(key: string): Promise<{ sizeBytes: number } | undefined>;
  /** Moves a blob to another key (same store), replacing what was there. */
  move(from: string, to: string): Promise<void>;
  /** Deletes blobs; keys that do not exist are ignored. */
  delete(keys: readonly string[]): Promise<void>;
  /** Deletes every blob whose key starts with `prefix/`. */
  deletePrefix(prefix: string): Promise<void>;
}

/** A write went past its size limit. */
export class BlobTooLargeError extends Error {
  override name = 'BlobTooLargeError';
  constructor(readonly limitBytes: number) {
    super(`blob is larger than the limit of ${limitBytes} bytes`);
  }
}

/** A blob that should exist does not. */
export class BlobMissingError extends Error {
  override name = 'BlobMissingError';
  constructor(readonly key: string) {
    super(`blob ${key} is missing from the blob store`);
  }
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;

/** Throws unless `key` is a safe relative path of plain segments (no `..`, no absolute paths). */
export function assertBlobKey(key: string): void {
  const parts = key.split('/');
  if (parts.length === 0 || parts.length > 16 || !parts.every((p) => SEGMENT.test(p))) {
    throw new Error(`invalid blob key ${JSON.stringify(key)}`);
  }
}
