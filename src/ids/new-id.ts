import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** Random lowercase base36 text of `length` characters (rejection sampling keeps it unbiased). */
export function randomBase36(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 252 && out.length < length) out += ALPHABET[byte % 36];
    }
  }
  return out;
}

/** Public id prefixes, as Mixpeek uses them. */
export type IdPrefix = 'org' | 'usr' | 'key' | 'ns' | 'bkt' | 'obj' | 'btch' | 'col' | 'doc' | 'task' | 'upl';

/** A new random public id such as `ns_k3j9x0q2m4p8r1t5`. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBase36(16)}`;
}
