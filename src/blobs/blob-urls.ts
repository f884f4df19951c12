import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Queryable } from '../db/db.js';

/** How long a signed blob URL handed to an extractor stays valid. */
export const BLOB_URL_TTL_MS = 60 * 60 * 1000;

const SECRET_NAME = 'blob_url_signing_key';

/**
 * Signs and checks URLs of stored blob bytes (`GET /v1/blobs/{blob_id}/content?expires=…&signature=…`), so an
 * extractor's endpoint (a webhook) can fetch an image or PDF without an API key. The key lives in the
 * database, made by whichever process needs it first, so every API and worker process agrees on it.
 */
export class BlobUrlSigner {
  private key: Promise<Buffer> | undefined;

  constructor(private readonly db: Queryable) {}

  private secret(): Promise<Buffer> {
    this.key ??= (async () => {
      await this.db.query('INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
        SECRET_NAME,
        randomBytes(32).toString('base64url'),
      ]);
      const [row] = await this.db.query<{ value: string }>('SELECT value FROM server_secrets WHERE name = $1', [SECRET_NAME]);
      return Buffer.from(row!.value, 'base64url');
    })().catch((err) => {
      this.key = undefined; // try again next time rather than remember a failure
      throw err;
    });
    return this.key;
  }

  private static mac(key: Buffer, blobId: string, expires: number): Buffer {
    return createHmac('sha256', key).update(`${blobId}\n${expires}`).digest();
  }

  /** A URL of the blob's bytes under `baseUrl`, valid for `ttlMs`. */
  async sign(baseUrl: string, blobId: string, ttlMs = BLOB_URL_TTL_MS, now = Date.now()): Promise<string> {
    const expires = Math.floor((now + ttlMs) / 1000);
    const signature = BlobUrlSigner.mac(await this.secret(), blobId, expires).toString('base64url');
    return `${baseUrl}/v1/blobs/${encodeURIComponent(blobId)}/content?expires=${expires}&signature=${signature}`;
  }

  /** Whether `signature` was made by {@link sign} for this blob and `expires` has not passed. */
  async verify(blobId: string, expires: number, signature: string, now = Date.now()): Promise<'ok' | 'expired' | 'invalid'> {
    const expected = BlobUrlSigner.mac(await this.secret(), blobId, expires);
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
    return expires * 1000 < now ? 'expired' : 'ok';
  }
}
