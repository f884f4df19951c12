import { describe, expect, it } from 'vitest';
import { chunkText, SEGMENT_WINDOW, type TextChunk } from '../../../src/extractors/text-chunker.js';

/** Every chunk's offsets must point at its text in the input, and indexes must count from 0. */
function expectConsistent(input: string, chunks: TextChunk[]): void {
  chunks.forEach((c, i) => {
    expect(c.chunk_index).toBe(i);
    expect(input.slice(c.start, c.end)).toBe(c.text);
  });
}

describe('chunkText', () => {
  it('none: the whole text as one chunk, whatever the size', () => {
    const text = '  Hello there. General Kenobi!  ';
    const chunks = chunkText(text, { splitBy: 'none', chunkSize: 2, chunkOverlap: 0 });
    expect(chunks).toEqual([{ text, chunk_index: 0, start: 0, end: text.length }]);
    expect(chunkText('', { splitBy: 'none', chunkSize: 2, chunkOverlap: 0 })).toEqual([]);
  });

  it('characters: fixed-size chunks, the last one shorter', () => {
    const text = 'abcdefghij';
    const chunks = chunkText(text, { splitBy: 'characters', chunkSize: 4, chunkOverlap: 0 });
    expect(chunks.map((c) => c.text)).toEqual(['abcd', 'efgh', 'ij']);
    expect(chunks.map((c) => [c.start, c.end])).toEqual([
      [0, 4],
      [4, 8],
      [8, 10],
    ]);
    expectConsistent(text, chunks);
  });

  it('characters with overlap: consecutive chunks share exactly the overlap, no trailing overlap-only chunk', () => {
    const text = 'abcdefghij';
    const chunks = chunkText(text, { splitBy: 'characters', chunkSize: 4, chunkOverlap: 2 });
    expect(chunks.map((c) => c.text)).toEqual(['abcd', 'cdef', 'efgh', 'ghij']);
    expectConsistent(text, chunks);
  });

  it('characters are code points: emoji and astral CJK are never cut in half', () => {
    const text = '😀𠀀a😀b';
    const chunks = chunkText(text, { splitBy: 'characters', chunkSize: 2, chunkOverlap: 0 });
    expect(chunks.map((c) => c.text)).toEqual(['😀𠀀', 'a😀', 'b']);
    expectConsistent(text, chunks);
  });

  it('words: counts word-like segments, keeps the original text between them', () => {
    const text = 'The quick, brown fox — jumps over the lazy dog.';
    const chunks = chunkText(text, { splitBy: 'words', chunkSize: 3, chunkOverlap: 1 });
    expect(chunks.map((c) => c.text)).toEqual(['The quick, brown', 'brown fox — jumps', 'jumps over the', 'the lazy dog']);
    expectConsistent(text, chunks);
  });

  it('words in CJK text: ICU dictionary word breaks, not one giant token', () => {
    const text = '我们今天去北京大学看书';
    const chunks = chunkText(text, { splitBy: 'words', chunkSize: 1, chunkOverlap: 0 });
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.map((c) => c.text).join('')).toBe(text);
    expectConsistent(text, chunks);
  });

  it('sentences: trimmed sentences grouped by chunk_size with overlap', () => {
    const text = 'One is here. Two is there!  Three? Four.\nFive.';
    const chunks = chunkText(text, { splitBy: 'sentences', chunkSize: 2, chunkOverlap: 1 });
    expect(chunks.map((c) => c.text)).toEqual(['One is here. Two is there!', 'Two is there!  Three?', 'Three? Four.', 'Four.\nFive.']);
    expectConsistent(text, chunks);
  });

  it('sentences in Japanese and Chinese', () => {
    const text = '今日は晴れです。明日は雨でしょう。我们走吧！好的。';
    const chunks = chunkText(text, { splitBy: 'sentences', chunkSize: 1, chunkOverlap: 0 });
    expect(chunks.map((c) => c.text)).toEqual(['今日は晴れです。', '明日は雨でしょう。', '我们走吧！', '好的。']);
    expectConsistent(text, chunks);
  });

  it('paragraphs: split on blank lines (also whitespace-only and CRLF ones), trimmed, empty ones skipped', () => {
    const text = '\n\nFirst para\nstill first.\n\nSecond.\n   \nThird.\r\n\r\n\n\n\nFourth.\n';
    const chunks = chunkText(text, { splitBy: 'paragraphs', chunkSize: 1, chunkOverlap: 0 });
    expect(chunks.map((c) => c.text)).toEqual(['First para\nstill first.', 'Second.', 'Third.', 'Fourth.']);
    expectConsistent(text, chunks);
    const pairs = chunkText(text, { splitBy: 'paragraphs', chunkSize: 2, chunkOverlap: 0 });
    expect(pairs.map((c) => c.text)).toEqual(['First para\nstill first.\n\nSecond.', 'Third.\r\n\r\n\n\n\nFourth.']);
  });

  it('whitespace-only text has no words, sentences or paragraphs', () => {
    for (const splitBy of ['words', 'sentences', 'paragraphs'] as const) {
      expect(chunkText(' \n\t ', { splitBy, chunkSize: 3, chunkOverlap: 0 })).toEqual([]);
    }
  });

  it('rejects an overlap that is not smaller than the chunk size', () => {
    expect(() => chunkText('abc', { splitBy: 'characters', chunkSize: 2, chunkOverlap: 2 })).toThrow(/overlap/);
    expect(() => chunkText('abc', { splitBy: 'words', chunkSize: 0, chunkOverlap: 0 })).toThrow(/chunk size/);
  });

  it('is deterministic', () => {
    const text = 'Alpha beta. Gamma delta epsilon. Zeta!';
    const a = chunkText(text, { splitBy: 'words', chunkSize: 2, chunkOverlap: 1 });
    const b = chunkText(text, { splitBy: 'words', chunkSize: 2, chunkOverlap: 1 });
    expect(a).toEqual(b);
  });

  it('windowed segmentation gives the same words and sentences as one pass over a text just past one window', () => {
    // Long enough to need several windows, short enough for a single Intl.Segmenter pass to be the reference.
    const sentence = 'Dr. Smith met 3 friends at 10 a.m. near the café; they talked for hours! Did it rain? ';
    const text = sentence.repeat(Math.ceil((SEGMENT_WINDOW * 3) / sentence.length));
    const words = chunkText(text, { splitBy: 'words', chunkSize: 1, chunkOverlap: 0 }).map((c) => [c.start, c.end]);
    const refWords = Array.from(new Intl.Segmenter('en', { granularity: 'word' }).segment(text))
      .filter((s) => s.isWordLike)
      .map((s) => [s.index, s.index + s.segment.length]);
    expect(words).toEqual(refWords);
    const sentences = chunkText(text, { splitBy: 'sentences', chunkSize: 1, chunkOverlap: 0 }).map((c) => c.text);
    const refSentences = Array.from(new Intl.Segmenter('en', { granularity: 'sentence' }).segment(text))
      .map((s) => s.segment.trim())
      .filter((s) => s !== '');
    expect(sentences).toEqual(refSentences);
  });

  it('a window without whitespace (long CJK run, a giant token) still advances and keeps every character', () => {
    const text = `${'漢字かな'.repeat(6000)} ${'x'.repeat(SEGMENT_WINDOW * 2)} end`;
    const words = chunkText(text, { splitBy: 'words', chunkSize: 50, chunkOverlap: 0 });
    expectConsistent(text, words);
    expect(words.at(-1)!.text.endsWith('end')).toBe(true);
    const sentences = chunkText(text, { splitBy: 'sentences', chunkSize: 1, chunkOverlap: 0 });
    expect(sentences.map((c) => c.text).join('').replace(/\s/g, '')).toBe(text.replace(/\s/g, ''));
  });

  it('a 1 MB input completes for every split strategy', () => {
    const paragraph = 'Sluice moves documents through tiers. Each unit is claimed, processed and completed!\n\n';
    const text = paragraph.repeat(Math.ceil(1_048_576 / paragraph.length));
    expect(text.length).toBeGreaterThanOrEqual(1_048_576);
    for (const splitBy of ['characters', 'words', 'sentences', 'paragraphs', 'none'] as const) {
      const chunks = chunkText(text, { splitBy, chunkSize: 500, chunkOverlap: 50 });
      expect(chunks.length).toBeGreaterThan(0);
      // Characters and none reach the very end; sentences and paragraphs drop trailing whitespace; words
      // also drop the final "!".
      const expectedEnd = { characters: text.length, none: text.length, sentences: text.trimEnd().length, paragraphs: text.trimEnd().length, words: text.trimEnd().length - 1 }[splitBy];
      expect(chunks.at(-1)!.end).toBe(expectedEnd);
    }
  }, 120_000);
});
