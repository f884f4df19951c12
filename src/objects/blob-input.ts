import { createHash } from 'node:crypto';
import type { BlobStore } from '../blobs/blob-store.js';
import { BlobTooLargeError } from '../blobs/blob-store.js';
import { type BlobType, blobTypeAccepts, sniffMime } from '../blobs/sniff-mime.js';
import { ApiError, show, type ValidationIssue } from '../errors/registry.js';
import { randomBase36 } from '../ids/new-id.js';
import type { BlobRow } from './object-rows.js';

/** A blob as a client sends it (`CreateBlobRequest`), after the route's schema or from another service. */
export interface CreateBlobBody {
  property: string;
  type: string;
  data?: unknown;
  upload_id?: string | null;
  metadata?: Record<string, unknown> | null;
  key_prefix?: string | null;
}

/**
 * A blob ready to be stored: validated against its schema property, its bytes decoded (inline data) or its
 * reference resolved. `bytes` are written to the blob store before the database rows; `upload_id` is
 * resolved inside the transaction that writes the rows.
 */
export interface PreparedBlob extends Omit<BlobRow, 'object_id' | 'bucket_id' | 'position' | 'type'> {
  type: BlobType;
  /** Inline bytes still to be written to `storage_key`. */
  bytes?: Buffer;
  /** An upload whose bytes this blob references, resolved in the write transaction. */
  upload_id?: string;
}

/** Keys a blob's `properties` carry for the blob itself; its metadata may not use them. */
export const RESERVED_BLOB_KEYS = ['text', 'url', 'storage_key'] as const;

/** New blob ids: `blob_` + 16 base36 characters, like the other public ids. */
export const newBlobId = (): string => `blob_${randomBase36(16)}`;

/** The longest URL Mixpeek accepts in `data` (its `maxLength`). */
const MAX_URL_LENGTH = 2083;
/** `scheme://…` with no whitespace: a URL attempt, whatever the scheme. */
const URL_LIKE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/\S+$/;
const BASE64_BODY = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** 413 naming the blob and the limit: inline data past `inlineBlobMaxBytes`. */
export function inlineTooLarge(location: (string | number)[], property: string, limit: number, size?: number): ApiError {
  const got = size === undefined ? '' : ` (${size} bytes)`;
  return new ApiError(
    'payload_too_large',
    `blob ${show(property)} at ${location.join('.')}: inline data${got} is larger than the limit of ${limit} bytes; ` +
      'send larger files through an upload (POST /v1/buckets/{bucket}/uploads)',
    { property, limit_bytes: limit, location },
  );
}

/** Checks base64 (standard or URL-safe alphabet, whitespace ignored) and estimates its decoded size. */
function checkBase64(text: string): { estimate: number; malformed: boolean } {
  const clean = text.replace(/\s+/g, '');
  const padded = clean.endsWith('=');
  const estimate = Math.floor((clean.length * 3) / 4) - (clean.endsWith('==') ? 2 : padded ? 1 : 0);
  // Node's decoder silently skips characters it does not know; garbage must be refused, not half-decoded.
  const malformed = !BASE64_BODY.test(clean) || clean.length % 4 === 1 || (padded && clean.length % 4 !== 0);
  return { estimate, malformed };
}

/** Percent-decodes a non-base64 data URI payload into bytes; `undefined` on a stray `%`. */
function percentDecode(text: string): Buffer | undefined {
  const parts: Buffer[] = [];
  for (const piece of text.split(/(%[0-9A-Fa-f]{2})/)) {
    if (/^%[0-9A-Fa-f]{2}$/.test(piece)) parts.push(Buffer.from([Number.parseInt(piece.slice(1), 16)]));
    else if (piece.includes('%')) return undefined;
    else parts.push(Buffer.from(piece, 'utf8'));
  }
  return Buffer.concat(parts);
}

function filenameFromUrl(url: URL): string | null {
  const last = url.pathname.split('/').filter(Boolean).at(-1);
  if (!last) return null;
  try {
    return decodeURIComponent(last).slice(0, 255) || null;
  } catch {
    return last.slice(0, 255);
  }
}

/** The MIME type to record: the sniffed one, unless the declared one is a more specific kind of the same text. */
function recordedMime(detected: string | undefined, declared: string | undefined): string | null {
  const clean = declared?.split(';')[0]?.trim().toLowerCase() || undefined;
  if (detected === 'text/plain' && clean?.startsWith('text/')) return clean;
  return detected ?? clean ?? null;
}

/** What parsing one blob produced: the blob, or problems found with it. */
export interface ParsedBlob {
  blob?: PreparedBlob;
  issues: ValidationIssue[];
}

/**
 * Validates one `CreateBlobRequest` against its schema property and turns its `data` into a
 * {@link PreparedBlob}. Accepted forms: text (type `text`), an `http(s)` URL (string or `{url}`), a
 * `data:` URI and `{base64, mime_type?, filename?}` (decoded, capped at `limit` bytes, sniffed), or an
 * `upload_id`. Problems are returned as issues (422); oversize inline data throws 413 at once.
 */
export function parseBlob(
  input: CreateBlobBody,
  schemaType: BlobType | undefined,
  limit: number,
  location: (string | number)[],
): ParsedBlob {
  const issues: ValidationIssue[] = [];
  const issue = (type: string, where: (string | number)[], message: string) => {
    issues.push({ type, location: [...location, ...where], message });
  };
  const property = input.property;
  const type = String(input.type).toLowerCase();
  if (schemaType === undefined) {
    issue('unknown_property', ['property'], `blob property ${show(property)} is not a blob field of the bucket schema`);
  } else if (type !== schemaType) {
    issue(
      'type_mismatch',
      ['type'],
      `blob ${show(property)} is declared as ${schemaType} in the bucket schema, but the request says ${show(input.type)}`,
    );
  }
  const metadata = input.metadata ?? {};
  for (const key of RESERVED_BLOB_KEYS) {
    if (Object.hasOwn(metadata, key)) {
      issue('reserved_key', ['metadata', key], `blob metadata must not use ${show(key)}: the blob's properties use that key`);
    }
  }
  const hasData = input.data !== undefined && input.data !== null;
  const uploadId = input.upload_id ?? undefined;
  if (hasData && uploadId) issue('conflict', ['upload_id'], `blob ${show(property)}: send either data or upload_id, not both`);
  if (!hasData && !uploadId) issue('missing', ['data'], `blob ${show(property)}: send data or upload_id`);
  if (issues.length > 0 || schemaType === undefined) return { issues };

  const blob: PreparedBlob = {
    id: newBlobId(),
    property,
    type: schemaType,
    key_prefix: input.key_prefix ?? null,
    metadata,
    source: 'stored',
    text_value: null,
    storage_key: null,
    url: null,
    filename: null,
    mime_type: null,
    size_bytes: null,
    sha256: null,
  };
  if (uploadId) return { blob: { ...blob, upload_id: uploadId }, issues };

  const data = input.data;
  const asUrl = (text: string, where: (string | number)[]): ParsedBlob => {
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      url = undefined;
    }
    if (!url) {
      issue('invalid_url', where, `blob ${show(property)}: ${show(text)} is not a valid URL`);
      return { issues };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      issue(
        'unsupported_url',
        where,
        `blob ${show(property)}: URL scheme ${show(url.protocol)} of ${show(text)} is not supported; ` +
          'use an http(s) URL, a data: URI, {base64, mime_type, filename} or an upload',
      );
      return { issues };
    }
    if (text.length > MAX_URL_LENGTH) {
      issue('too_long', where, `blob ${show(property)}: URL is longer than ${MAX_URL_LENGTH} characters`);
      return { issues };
    }
    return { blob: { ...blob, source: 'url', url: url.href, filename: filenameFromUrl(url) }, issues };
  };
  const asBytes = (
    encoded: string,
    base64: boolean,
    declaredMime: string | undefined,
    filename: string | null,
    where: (string | number)[],
  ): ParsedBlob => {
    let bytes: Buffer | undefined;
    if (base64) {
      const check = checkBase64(encoded);
      if (check.estimate > limit) throw inlineTooLarge(location, property, limit, check.estimate);
      if (check.malformed) {
        issue('invalid_base64', where, `blob ${show(property)}: data is not valid base64 (got ${show(encoded)})`);
        return { issues };
      }
      bytes = Buffer.from(encoded.replace(/\s+/g, ''), 'base64');
    } else {
      if (encoded.length > limit * 3) throw inlineTooLarge(location, property, limit);
      bytes = percentDecode(encoded);
      if (!bytes) {
        issue('invalid_data_uri', where, `blob ${show(property)}: data URI has a malformed %-escape (got ${show(encoded)})`);
        return { issues };
      }
    }
    if (bytes.byteLength > limit) throw inlineTooLarge(location, property, limit, bytes.byteLength);
    if (bytes.byteLength === 0) {
      issue('empty', where, `blob ${show(property)}: data is empty`);
      return { issues };
    }
    const detected = sniffMime(bytes.subarray(0, 4096));
    if (!blobTypeAccepts(schemaType, detected)) {
      issue(
        'content_mismatch',
        where,
        `blob ${show(property)} is a ${schemaType} field, but its bytes are ${detected ?? 'of an unrecognised type'}` +
          (declaredMime ? ` (declared ${show(declaredMime)})` : ''),
      );
      return { issues };
    }
    return {
      blob: {
        ...blob,
        source: 'stored',
        bytes,
        filename,
        mime_type: recordedMime(detected, declaredMime),
        size_bytes: bytes.byteLength,
      },
      issues,
    };
  };

  if (typeof data === 'string') {
    if (data.startsWith('data:')) {
      const comma = data.indexOf(',');
      if (comma < 0) {
        issue('invalid_data_uri', ['data'], `blob ${show(property)}: data URI has no comma (got ${show(data)})`);
        return { issues };
      }
      const params = data.slice(5, comma).split(';').map((p) => p.trim());
      const base64 = params.slice(1).some((p) => p.toLowerCase() === 'base64');
      const name = params.find((p) => p.toLowerCase().startsWith('name='))?.slice(5);
      return asBytes(data.slice(comma + 1), base64, params[0] || undefined, name ? decodeURIComponentSafe(name) : null, ['data']);
    }
    if (URL_LIKE.test(data)) return asUrl(data, ['data']);
    if (schemaType === 'text') {
      const size = Buffer.byteLength(data, 'utf8');
      if (size > limit) throw inlineTooLarge(location, property, limit, size);
      return {
        blob: {
          ...blob,
          source: 'text',
          text_value: data,
          mime_type: 'text/plain',
          size_bytes: size,
          sha256: createHash('sha256').update(data, 'utf8').digest('hex'),
        },
        issues,
      };
    }
    issue(
      'invalid_data',
      ['data'],
      `blob ${show(property)} is a ${schemaType} field: data must be an http(s) URL, a data: URI, {base64, mime_type, filename} or {url} (got ${show(data)})`,
    );
    return { issues };
  }
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    const obj = data as Record<string, unknown>;
    if (typeof obj.base64 === 'string') {
      const mime = typeof obj.mime_type === 'string' ? obj.mime_type : undefined;
      const filename = typeof obj.filename === 'string' && obj.filename !== '' ? obj.filename.slice(0, 255) : null;
      return asBytes(obj.base64, true, mime, filename, ['data', 'base64']);
    }
    if (typeof obj.url === 'string') return asUrl(obj.url, ['data', 'url']);
  }
  issue(
    'invalid_data',
    ['data'],
    `blob ${show(property)}: data must be ${schemaType === 'text' ? 'text, ' : ''}an http(s) URL, a data: URI, ` +
      `{base64, mime_type, filename} or {url} (got ${show(data)})`,
  );
  return { issues };
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Deletes blob files, never throwing: used on paths that are already failing or already committed. */
export async function deleteQuietly(store: BlobStore, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await store.delete(keys).catch(() => {});
}

/** Whether a storage key holds an upload's bytes, which the upload owns (objects only reference them). */
export const isUploadKey = (key: string): boolean => key.includes('/uploads/');

/**
 * Writes the inline bytes of `blobs` under `prefix/<blob id>`, a few at a time, and records key, size and
 * sha256 on each blob. All or nothing: when one write fails, the ones already written are deleted.
 */
export async function writeBlobFiles(store: BlobStore, prefix: string, blobs: PreparedBlob[], limit: number): Promise<string[]> {
  const pending = blobs.filter((b) => b.bytes !== undefined);
  const written: string[] = [];
  try {
    for (let i = 0; i < pending.length; i += 8) {
      // allSettled, not all: a failure must not leave sibling writes finishing after the cleanup ran.
      const results = await Promise.allSettled(
        pending.slice(i, i + 8).map(async (blob) => {
          const key = `${prefix}/${blob.id}`;
          const stored = await store.put(key, blob.bytes!, { maxBytes: limit });
          written.push(key);
          blob.storage_key = key;
          blob.size_bytes = stored.sizeBytes;
          blob.sha256 = stored.sha256;
          blob.bytes = undefined;
        }),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
  } catch (err) {
    await deleteQuietly(store, written);
    if (err instanceof BlobTooLargeError) {
      throw new ApiError('payload_too_large', `inline blob is larger than the limit of ${err.limitBytes} bytes`, {
        limit_bytes: err.limitBytes,
      });
    }
    throw err;
  }
  return written;
}
