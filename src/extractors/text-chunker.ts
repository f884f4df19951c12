/**
 * Splitting text into chunks for `text_extractor`. Pure and deterministic: the same text and options give the
 * same chunks, which the engine relies on for deterministic document ids (`chunk_index`).
 */

export const SPLIT_STRATEGIES = ['characters', 'words', 'sentences', 'paragraphs', 'none'] as const;
export type SplitStrategy = (typeof SPLIT_STRATEGIES)[number];

export interface ChunkOptions {
  splitBy: SplitStrategy;
  /** Units per chunk (code points, words, sentences or paragraphs). Ignored for `none`. */
  chunkSize: number;
  /** Units shared by consecutive chunks; must be smaller than `chunkSize`. */
  chunkOverlap: number;
}

export interface TextChunk {
  text: string;
  chunk_index: number;
  /** UTF-16 offset (a JavaScript string index) of the chunk's first character in the input. */
  start: number;
  /** UTF-16 offset just past the chunk's last character: `input.slice(start, end) === text`. */
  end: number;
}

/**
 * `Intl.Segmenter` slows down sharply on long strings (100 kB in one call: seconds; 1 MB: out of memory,
 * DESIGN-NOTES §10), so it only ever sees windows of at most this many UTF-16 units.
 */
export const SEGMENT_WINDOW = 10_000;

/** Unit spans as two parallel arrays: one object per unit would cost ~50 MB for a 1 MB text split by characters. */
interface Spans {
  starts: number[];
  ends: number[];
}

/**
 * Splits `text` into chunks of `chunkSize` units, consecutive chunks sharing `chunkOverlap` units. A chunk's
 * text is the input from its first unit's start to its last unit's end, so it keeps the original spacing and
 * punctuation between units; whitespace around sentences and paragraphs is not part of any unit. Text with
 * no units (empty, or only whitespace for word/sentence/paragraph splitting) gives no chunks.
 */
export function chunkText(text: string, options: ChunkOptions): TextChunk[] {
  const { splitBy, chunkSize, chunkOverlap } = options;
  if (splitBy === 'none') {
    return text.length === 0 ? [] : [{ text, chunk_index: 0, start: 0, end: text.length }];
  }
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new RangeError(`chunk size must be a positive integer (got ${chunkSize})`);
  if (!Number.isSafeInteger(chunkOverlap) || chunkOverlap < 0 || chunkOverlap >= chunkSize) {
    throw new RangeError(`chunk overlap must be an integer from 0 to chunk size - 1 (got ${chunkOverlap} with chunk size ${chunkSize})`);
  }
  const spans = unitSpans(text, splitBy);
  const n = spans.starts.length;
  const chunks: TextChunk[] = [];
  const step = chunkSize - chunkOverlap;
  for (let first = 0; first < n; first += step) {
    const last = Math.min(first + chunkSize, n) - 1;
    const start = spans.starts[first]!;
    const end = spans.ends[last]!;
    chunks.push({ text: text.slice(start, end), chunk_index: chunks.length, start, end });
    // The chunk reaching the last unit is the final one; another step would only repeat overlap.
    if (last === n - 1) break;
  }
  return chunks;
}

function unitSpans(text: string, splitBy: Exclude<SplitStrategy, 'none'>): Spans {
  switch (splitBy) {
    case 'characters':
      return codePointSpans(text);
    case 'paragraphs':
      return paragraphSpans(text);
    case 'words':
      return segmentSpans(text, 'word');
    case 'sentences':
      return segmentSpans(text, 'sentence');
  }
}

/** Characters are code points, so a surrogate pair (emoji, rare CJK) is never cut in half. */
function codePointSpans(text: string): Spans {
  const starts: number[] = [];
  const ends: number[] = [];
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const next = i + (cp > 0xffff ? 2 : 1);
    starts.push(i);
    ends.push(next);
    i = next;
  }
  return { starts, ends };
}

/** Paragraphs are separated by a blank line (a line holding only spaces or tabs counts as blank). */
function paragraphSpans(text: string): Spans {
  const starts: number[] = [];
  const ends: number[] = [];
  const separator = /\r?\n[ \t]*\r?\n/g;
  let from = 0;
  const push = (s: number, e: number) => {
    const trimmed = trimSpan(text, s, e);
    if (trimmed) {
      starts.push(trimmed[0]);
      ends.push(trimmed[1]);
    }
  };
  for (let m = separator.exec(text); m !== null; m = separator.exec(text)) {
    push(from, m.index);
    from = m.index + m[0].length;
  }
  push(from, text.length);
  return { starts, ends };
}

const WHITESPACE = /\s/;

/** The span without leading/trailing whitespace, or null when nothing is left. */
function trimSpan(text: string, start: number, end: number): [number, number] | null {
  let s = start;
  let e = end;
  while (s < e && WHITESPACE.test(text[s]!)) s++;
  while (e > s && WHITESPACE.test(text[e - 1]!)) e--;
  return s < e ? [s, e] : null;
}

// One segmenter per granularity: constructing them is not free. A fixed locale keeps output independent of
// the machine's default locale; ICU still applies its dictionaries for CJK and Thai word breaks.
const segmenters = {
  word: new Intl.Segmenter('en', { granularity: 'word' }),
  sentence: new Intl.Segmenter('en', { granularity: 'sentence' }),
};

/**
 * Words (word-like segments only: no spaces or punctuation) or sentences (trimmed, skipping blank ones),
 * found by `Intl.Segmenter` over windows of ≤ `SEGMENT_WINDOW` units. A window ends at whitespace, and its last
 * segment is not trusted (it may continue past the window): the next window starts where that segment started.
 */
function segmentSpans(text: string, granularity: 'word' | 'sentence'): Spans {
  const segmenter = segmenters[granularity];
  const starts: number[] = [];
  const ends: number[] = [];
  const accept = (start: number, end: number, wordLike: boolean | undefined) => {
    if (granularity === 'word') {
      if (wordLike) {
        starts.push(start);
        ends.push(end);
      }
      return;
    }
    const trimmed = trimSpan(text, start, end);
    if (trimmed) {
      starts.push(trimmed[0]);
      ends.push(trimmed[1]);
    }
  };
  let pos = 0;
  // Each round moves `pos` forward (see below), so the loop ends; the bound guards against a logic slip.
  for (let rounds = 0; pos < text.length && rounds <= text.length; rounds++) {
    const windowEnd = windowBoundary(text, pos);
    const isLast = windowEnd >= text.length;
    const segments = Array.from(segmenter.segment(text.slice(pos, windowEnd)));
    const keep = isLast || segments.length < 2 ? segments.length : segments.length - 1;
    for (let k = 0; k < keep; k++) {
      const seg = segments[k]!;
      accept(pos + seg.index, pos + seg.index + seg.segment.length, seg.isWordLike);
    }
    // A window holding a single segment (a 10 kB "word" without spaces) is taken as it is: there is no
    // earlier boundary to restart from, and `pos` must advance.
    pos = keep < segments.length ? pos + segments[keep]!.index : windowEnd;
  }
  return { starts, ends };
}

/** Where the window starting at `pos` ends: at most `SEGMENT_WINDOW` units on, pulled back to whitespace. */
function windowBoundary(text: string, pos: number): number {
  const hardEnd = pos + SEGMENT_WINDOW;
  if (hardEnd >= text.length) return text.length;
  // Search back over the second half only, so every window still covers at least half the limit.
  for (let i = hardEnd; i > pos + SEGMENT_WINDOW / 2; i--) {
    if (WHITESPACE.test(text[i - 1]!)) return i;
  }
  // No whitespace (e.g. CJK prose): cut anywhere except inside a surrogate pair.
  const code = text.charCodeAt(hardEnd - 1);
  return code >= 0xd800 && code <= 0xdbff ? hardEnd - 1 : hardEnd;
}
