import { describe, expect, it } from 'vitest';
import { deriveTiers, type TierNode } from '../../src/collections/tiers.js';

const fromBuckets = (id: string, ...buckets: string[]): TierNode => ({ id, source_bucket_ids: buckets, source_collection_ids: [] });
const fromCollections = (id: string, ...sources: string[]): TierNode => ({ id, source_bucket_ids: [], source_collection_ids: sources });

describe('deriveTiers', () => {
  it('puts a chain one tier per step', () => {
    const cols = [fromCollections('c3', 'c2'), fromCollections('c2', 'c1'), fromBuckets('c1', 'b1')];
    expect(deriveTiers(cols, 'b1')).toEqual([['c1'], ['c2'], ['c3']]);
  });

  it('puts a diamond join one tier after its deepest source', () => {
    // b1 → a; a → x; x → y; (a, y) → join: join sits after y, not after a.
    const cols = [
      fromBuckets('a', 'b1'),
      fromCollections('x', 'a'),
      fromCollections('y', 'x'),
      fromCollections('join', 'a', 'y'),
      fromCollections('side', 'a'),
    ];
    expect(deriveTiers(cols, 'b1')).toEqual([['a'], ['side', 'x'], ['y'], ['join']]);
  });

  it('keeps only what the batch bucket reaches, across several buckets', () => {
    const cols = [
      fromBuckets('both', 'b1', 'b2'),
      fromBuckets('only2', 'b2'),
      fromCollections('after2', 'only2'),
      fromCollections('mixed', 'only2', 'both'),
      fromBuckets('only1', 'b1'),
    ];
    expect(deriveTiers(cols, 'b1')).toEqual([['both', 'only1'], ['mixed']]);
    expect(deriveTiers(cols, 'b2')).toEqual([['both', 'only2'], ['after2', 'mixed']]);
    expect(deriveTiers(cols, 'b3')).toEqual([]);
  });

  it('ignores sources that are missing from the list (disabled or deleted)', () => {
    const cols = [fromBuckets('a', 'b1'), fromCollections('orphan', 'gone'), fromCollections('half', 'gone', 'a')];
    expect(deriveTiers(cols, 'b1')).toEqual([['a'], ['half']]);
  });

  it('leaves out members of a cycle instead of looping', () => {
    const cols = [fromBuckets('a', 'b1'), fromCollections('p', 'q'), fromCollections('q', 'p'), fromCollections('r', 'a')];
    expect(deriveTiers(cols, 'b1')).toEqual([['a'], ['r']]);
  });

  it('does not depend on input order', () => {
    const cols = [fromBuckets('a', 'b1'), fromCollections('b', 'a'), fromCollections('c', 'b', 'a'), fromBuckets('d', 'b1')];
    const expected = [['a', 'd'], ['b'], ['c']];
    expect(deriveTiers(cols, 'b1')).toEqual(expected);
    expect(deriveTiers([...cols].reverse(), 'b1')).toEqual(expected);
  });
});
