import { createHash, randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A new plaintext key: `sk_live_` and 40 random base62 characters (~238 bits). Shown once, never stored. */
export function generateApiKey(): string {
  let out = '';
  while (out.length < 40) {
    for (const byte of randomBytes(64)) {
      if (byte < 248 && out.length < 40) out += BASE62[byte % 62];
    }
  }
  return `sk_live_${out}`;
}

/** SHA-256 of the plaintext, hex: what is stored and looked up. Keys are long and random, so no salt is needed. */
export function hashApiKey(plaintext: string): string {
  return createHash('sha256').update(plaintext, 'utf8').digest('hex');
}

/** The first 10 characters, kept so that lists can show which key is which. */
export function apiKeyPrefix(plaintext: string): string {
  return plaintext.slice(0, 10);
}
