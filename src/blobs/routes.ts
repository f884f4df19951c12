import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BlobMissingError } from './blob-store.js';
import { ApiError, notFound, show } from '../errors/registry.js';
import type { AppDeps } from '../http/app.js';
import { BlobUrlSigner } from './blob-urls.js';

const Params = z.object({ blob_id: z.string().min(1).max(200) });
const Query = z.object({
  expires: z.coerce.number().int().min(0).max(1e11),
  signature: z.string().min(1).max(200),
});

/**
 * `GET /v1/blobs/{blob_id}/content`: the bytes of a stored blob, for extractor endpoints that are handed its
 * URL. Authenticated by the URL's signature alone (BlobUrlSigner); streamed, never buffered.
 */
export function blobRoutes(app: FastifyInstance, deps: Pick<AppDeps, 'db' | 'blobs'>): void {
  const signer = new BlobUrlSigner(deps.db);
  app.withTypeProvider<ZodTypeProvider>().get('/v1/blobs/:blob_id/content', {
    config: { permission: 'public' },
    schema: {
      tags: ['Blobs'],
      summary: 'Blob content (signed URL)',
      description: 'The bytes of a stored blob. Sluice hands these URLs to extractors; they expire after an hour.',
      security: [],
      params: Params,
      querystring: Query,
    },
    handler: async (req, reply) => {
      const { blob_id: blobId } = req.params;
      const verdict = await signer.verify(blobId, req.query.expires, req.query.signature);
      if (verdict !== 'ok') {
        throw new ApiError('forbidden', verdict === 'expired' ? `the URL of blob ${show(blobId)} has expired` : `the signature of blob ${show(blobId)} is not valid`);
      }
      const [blob] = await deps.db.query<{ storage_key: string | null; mime_type: string | null; size_bytes: number | null }>(
        "SELECT storage_key, mime_type, size_bytes FROM blobs WHERE id = $1 AND source = 'stored'",
        [blobId],
      );
      if (!blob?.storage_key) throw notFound('blob', blobId);
      try {
        const stream = await deps.blobs.get(blob.storage_key);
        reply.header('content-type', blob.mime_type ?? 'application/octet-stream');
        if (blob.size_bytes !== null) reply.header('content-length', String(blob.size_bytes));
        return reply.send(stream);
      } catch (err) {
        if (err instanceof BlobMissingError) throw notFound('blob', blobId);
        throw err;
      }
    },
  });
}
