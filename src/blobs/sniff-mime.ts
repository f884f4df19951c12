/**
 * Content sniffing from the first bytes of a blob. Clients' declared MIME types are often wrong or
 * generic (`application/octet-stream`); the bytes decide what a blob really is, and whether it fits the
 * schema property it claims (an `image` property must hold an image).
 */
export function sniffMime(head: Buffer): string | undefined {
  const at = (offset: number, bytes: number[]) => bytes.every((b, i) => head[offset + i] === b);
  const ascii = (offset: number, text: string) => head.toString('latin1', offset, offset + text.length) === text;
  if (at(0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'image/png';
  if (at(0, [0xff, 0xd8, 0xff])) return 'image/jpeg';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'image/gif';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'image/webp';
  if (ascii(0, 'BM') && head.length > 14) return 'image/bmp';
  if (at(0, [0x49, 0x49, 0x2a, 0x00]) || at(0, [0x4d, 0x4d, 0x00, 0x2a])) return 'image/tiff';
  if (ascii(4, 'ftyp')) {
    const brand = head.toString('latin1', 8, 12);
    if (['avif', 'avis'].includes(brand)) return 'image/avif';
    if (['heic', 'heix', 'mif1', 'msf1'].includes(brand)) return 'image/heic';
    if (brand.startsWith('M4A') || brand === 'M4B ') return 'audio/mp4';
    if (brand === 'qt  ') return 'video/quicktime';
    return 'video/mp4';
  }
  if (at(0, [0x1a, 0x45, 0xdf, 0xa3])) return head.includes('webm') ? 'video/webm' : 'video/x-matroska';
  if (ascii(0, 'RIFF') && ascii(8, 'AVI ')) return 'video/x-msvideo';
  if (ascii(0, 'RIFF') && ascii(8, 'WAVE')) return 'audio/wav';
  if (ascii(0, 'OggS')) return 'audio/ogg';
  if (ascii(0, 'fLaC')) return 'audio/flac';
  if (ascii(0, 'ID3') || (head[0] === 0xff && ((head[1] ?? 0) & 0xe0) === 0xe0 && ((head[1] ?? 0) & 0x06) !== 0)) {
    return 'audio/mpeg';
  }
  if (ascii(0, '%PDF-')) return 'application/pdf';
  if (at(0, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return 'application/vnd.ms-excel';
  if (ascii(0, 'PK\x03\x04')) {
    // Office Open XML files are zips whose first entry names reveal the kind.
    const text = head.toString('latin1');
    if (text.includes('xl/')) return 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
    if (text.includes('word/')) return 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
    if (text.includes('ppt/')) return 'application/vnd.openxmlformats-officedocument.presentationml.presentation';
    return 'application/zip';
  }
  if (looksLikeText(head)) {
    const start = head.toString('utf8', 0, Math.min(head.length, 512)).trimStart().toLowerCase();
    if (start.startsWith('<svg') || (start.startsWith('<?xml') && start.includes('<svg'))) return 'image/svg+xml';
    if (start.startsWith('{') || start.startsWith('[')) return 'application/json';
    return 'text/plain';
  }
  return undefined;
}

function looksLikeText(head: Buffer): boolean {
  if (head.length === 0) return true;
  if (head.includes(0)) return false;
  // A multi-byte UTF-8 sequence may be cut at the end of the head: judge all but the last 3 bytes.
  const sample = head.length > 3 ? head.subarray(0, head.length - 3) : head;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(sample);
    return true;
  } catch {
    return false;
  }
}

/** The schema field types that hold blobs, and which sniffed MIME types each accepts. */
export const BLOB_TYPES = ['text', 'image', 'audio', 'video', 'pdf', 'excel'] as const;
export type BlobType = (typeof BLOB_TYPES)[number];

const EXCEL = new Set([
  'application/vnd.ms-excel',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'text/csv',
  'text/plain', // CSV sniffs as text
]);

/** Whether bytes sniffed as `mime` may be stored under a property of blob type `type`. */
export function blobTypeAccepts(type: BlobType, mime: string | undefined): boolean {
  if (mime === undefined) return false;
  switch (type) {
    case 'text':
      return mime.startsWith('text/') || mime === 'application/json';
    case 'image':
      return mime.startsWith('image/');
    case 'audio':
      return mime.startsWith('audio/') || mime === 'video/webm' || mime === 'video/mp4';
    case 'video':
      return mime.startsWith('video/');
    case 'pdf':
      return mime === 'application/pdf';
    case 'excel':
      return EXCEL.has(mime);
  }
}

/** The blob type a declared MIME type suggests (uploads without `blob_type`). */
export function blobTypeForMime(mime: string): BlobType | undefined {
  const m = mime.toLowerCase().split(';')[0]!.trim();
  if (m.startsWith('image/')) return 'image';
  if (m.startsWith('video/')) return 'video';
  if (m.startsWith('audio/')) return 'audio';
  if (m === 'application/pdf') return 'pdf';
  if (EXCEL.has(m) && m !== 'text/plain') return 'excel';
  if (m.startsWith('text/') || m === 'application/json') return 'text';
  return undefined;
}
