import { z } from 'zod';
import { badRequest, show } from '../errors/registry.js';

/** Query parameters every Mixpeek list endpoint takes. */
export const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(10000).default(0),
  cursor: z.string().max(200).nullish(),
  include_total: z
    .enum(['true', 'false', '1', '0'])
    .transform((v) => v === 'true' || v === '1')
    .default(false),
});
export type ListQuery = z.infer<typeof ListQuery>;

/**
 * The list query for endpoints whose Mixpeek request body also carries `limit`/`offset` (buckets, uploads):
 * no defaults here, so an absent query value falls back to the body's.
 */
export const BodyPagedListQuery = ListQuery.extend({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  offset: z.coerce.number().int().min(0).max(10000).optional(),
});

/** Mixpeek's `SortOption`: one field (checked by each list's filter fields) and a direction. */
export const SortOption = z.object({
  field: z.string().min(1).max(300),
  direction: z.enum(['asc', 'desc']).default('asc'),
});

/** Mixpeek's `PaginationResponse`. */
export const PaginationResponse = z.object({
  total: z.number().int().nullable(),
  page: z.number().int().nullable(),
  page_size: z.number().int().nullable(),
  total_pages: z.number().int().nullable(),
  next_page: z.string().nullable(),
  previous_page: z.string().nullable(),
  next_cursor: z.string().nullable(),
});
export type PaginationResponse = z.infer<typeof PaginationResponse>;

/**
 * The offset a list starts at. Cursors are opaque to clients but are only an encoded offset here: lists
 * are ordered by a stable key, and an offset cursor stays valid across processes without server state.
 */
export function startOffset(query: ListQuery): number {
  if (!query.cursor) return query.offset;
  const decoded = /^o:(\d{1,9})$/.exec(Buffer.from(query.cursor, 'base64url').toString('utf8'));
  if (!decoded) throw badRequest(`cursor ${show(query.cursor)} is not a cursor this server issued`);
  return Number(decoded[1]);
}

const cursorFor = (offset: number): string => Buffer.from(`o:${offset}`, 'utf8').toString('base64url');

/** Builds the pagination block for a page of `count` rows out of `total` (or `null` when not counted). */
export function paginate(offset: number, limit: number, count: number, total: number | null): PaginationResponse {
  const hasMore = total === null ? count === limit : offset + count < total;
  return {
    total,
    page: Math.floor(offset / limit) + 1,
    page_size: limit,
    total_pages: total === null ? null : Math.max(1, Math.ceil(total / limit)),
    next_page: hasMore ? String(Math.floor(offset / limit) + 2) : null,
    previous_page: offset > 0 ? String(Math.max(1, Math.floor(offset / limit))) : null,
    next_cursor: hasMore ? cursorFor(offset + count) : null,
  };
}
