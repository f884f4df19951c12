import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { InjectOptions } from 'fastify';
import { createLocalBlobStore } from '../src/blobs/local-blob-store.js';
import { buildApp } from '../src/http/app.js';
import { createOrganization } from '../src/organizations/service.js';
import type { BenchTarget } from './index.js';

/**
 * Authenticated API requests through the whole Fastify stack (`inject`, no sockets): the per-request
 * floor that auth (one indexed key lookup) and namespace resolution add to every endpoint.
 */
export async function benchRequests({ db }: BenchTarget): Promise<void> {
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-blobs-'));
  const app = await buildApp({ db, blobs: createLocalBlobStore(blobDir) });
  try {
    const { adminKey } = await createOrganization(db, `bench-${Date.now()}`, 'bench@sluice.local');
    const headers = { authorization: `Bearer ${adminKey}` };
    await app.inject({
      method: 'POST',
      url: '/v1/namespaces',
      headers,
      payload: { namespace_name: 'bench', feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] },
    });
    const measure = async (label: string, make: () => InjectOptions, n: number, concurrency: number) => {
      for (let i = 0; i < 50; i++) await app.inject(make()); // warm-up
      const t = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < n) {
            next++;
            const res = await app.inject(make());
            if (res.statusCode !== 200) throw new Error(`${label}: HTTP ${res.statusCode} ${res.body}`);
          }
        }),
      );
      const seconds = (performance.now() - t) / 1000;
      console.log(`${label}: ${(n / seconds).toFixed(0)} req/s (${n} requests, ${concurrency} concurrent)`);
    };
    await measure('GET /v1/health (no auth)', () => ({ method: 'GET', url: '/v1/health' }), 2000, 8);
    await measure('GET /v1/namespaces/bench (auth + read)', () => ({ method: 'GET', url: '/v1/namespaces/bench', headers }), 2000, 8);
    await measure(
      'POST /v1/namespaces/list (auth + list)',
      () => ({ method: 'POST', url: '/v1/namespaces/list', headers: { ...headers, 'content-type': 'application/json' } }),
      2000,
      8,
    );
  } finally {
    await app.close();
    fs.rmSync(blobDir, { recursive: true, force: true });
  }
}
