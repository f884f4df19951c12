import { describe, expect, it } from 'vitest';
import { claimSize, WORK_AHEAD_MS } from '../../src/engine/claim-size.js';

describe('claimSize', () => {
  it('claims a little before any unit has run', () => {
    expect(claimSize(8, 500, undefined)).toBe(32);
    expect(claimSize(8, 10, undefined)).toBe(10);
  });

  it('fast extractors get the largest claims', () => {
    expect(claimSize(8, 500, 0.05)).toBe(500);
    expect(claimSize(8, 500, 0)).toBe(500);
  });

  it('slow extractors get about WORK_AHEAD_MS of work per slot, never less than one unit per slot', () => {
    expect(claimSize(4, 256, 1000)).toBe(4 * (WORK_AHEAD_MS / 1000));
    expect(claimSize(4, 256, 20)).toBe(256);
    expect(claimSize(4, 256, 60_000)).toBe(4);
    expect(claimSize(4, 2, 60_000)).toBe(2);
  });

  it('never answers less than one', () => {
    expect(claimSize(1, 1, 1e9)).toBe(1);
    expect(claimSize(0, 500, 1e9)).toBe(1);
  });
});
