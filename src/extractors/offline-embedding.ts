/**
 * The built-in embedding used when no `SLUICE_EMBEDDINGS_URL` is configured.
 *
 * It is LEXICAL, NOT SEMANTIC: a feature-hashing ("hashing trick") bag of words. Each lower-cased word and
 * each pair of adjacent words is hashed to one of {@link OFFLINE_EMBEDDING_DIMS} dimensions with a hashed
 * sign, and the vector is L2-normalised, so the cosine similarity of two vectors measures how many words and
 * word pairs the texts share. "car" and "automobile" are unrelated to it; texts in different languages are
 * unrelated; word order beyond pairs is ignored. It needs no model weights and no network (no npm package
 * ships embedding weights, DESIGN-NOTES §10), and it is deterministic across machines and versions of Node.
 * For semantic search, point `SLUICE_EMBEDDINGS_URL` at an OpenAI-compatible embeddings endpoint.
 */

export const OFFLINE_EMBEDDING_DIMS = 384;
/** Name reported for the offline embedding (in the catalogue and logs). */
export const OFFLINE_EMBEDDING_MODEL = 'sluice-lexical-hash-v1';

// Letters and digits form words; CJK ideographs and kana are taken one by one, since those scripts do not
// separate words with spaces and a whole sentence would otherwise be one token.
const TOKEN = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]|[\p{L}\p{M}\p{N}]+/gu;

/** Words of a text as the embedding sees them: NFKC-normalised, lower-cased. */
export function lexicalTokens(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().match(TOKEN) ?? [];
}

/** 32-bit FNV-1a over UTF-16 code units: simple, fast and the same everywhere. */
function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32): FNV's low bits are weak, and the index uses them.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

const BIGRAM_WEIGHT = 0.5;

/**
 * The lexical embedding of `text`: {@link OFFLINE_EMBEDDING_DIMS} numbers with L2 norm 1, or all zeros when
 * the text has no words. See the module comment: similarity here is shared vocabulary, not meaning.
 */
export function offlineEmbedding(text: string, dims: number = OFFLINE_EMBEDDING_DIMS): number[] {
  const vector = new Float64Array(dims);
  const tokens = lexicalTokens(text);
  const add = (feature: string, weight: number) => {
    const h = fnv1a(feature, 0);
    // The sign comes from an independent hash so that collisions cancel out on average instead of piling up.
    const sign = fnv1a(feature, 0x9e3779b9) & 1 ? 1 : -1;
    vector[h % dims]! += sign * weight;
  };
  for (let i = 0; i < tokens.length; i++) {
    add(`u:${tokens[i]}`, 1);
    if (i > 0) add(`b:${tokens[i - 1]} ${tokens[i]}`, BIGRAM_WEIGHT);
  }
  let norm = 0;
  for (const v of vector) norm += v * v;
  norm = Math.sqrt(norm);
  return Array.from(vector, (v) => (norm > 0 ? v / norm : 0));
}
