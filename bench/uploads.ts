import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createLocalBlobStore } from '../src/blobs/local-blob-store.js';
import { buildApp } from '../src/http/app.js';
import { createOrganization } from '../src/organizations/service.js';
import type { BenchTarget } from './index.js';

const MiB = 1024 * 1024;

/** PUTs a stream over a real socket; resolves with the status and body. */
function put(url: string, body: Readable, length: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', headers: { 'content-type': 'text/plain', 'content-length': String(length) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    pipeline(body, req).catch(reject);
  });
}

/**
 * One large upload through the upload URL over a real socket (client and server in this process):
 * throughput of the PUT, time to confirm (which creates the object), and how far RSS rises above where it
 * was before the upload. A server that buffered the body would grow by about the file size; streaming
 * keeps growth to a few buffers. `SLUICE_BENCH_UPLOAD_MB` sets the size (default 200).
 */
export async function benchUploads({ db }: BenchTarget): Promise<void> {
  const sizeMiB = Number(process.env.SLUICE_BENCH_UPLOAD_MB ?? 200);
  const total = sizeMiB * MiB;
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-uploads-'));
  const app = await buildApp({ db, blobs: createLocalBlobStore(blobDir), limits: { uploadMaxBytes: total } });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const { adminKey } = await createOrganization(db, `bench-up-${Date.now()}`, 'bench@sluice.local');
    const headers = { authorization: `Bearer ${adminKey}`, 'x-namespace': 'bench_uploads', host: new URL(base).host };
    const call = async (url: string, payload: unknown) => {
      const res = await app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });
      if (res.statusCode !== 200) throw new Error(`POST ${url}: HTTP ${res.statusCode} ${res.body}`);
      return res.json();
    };
    await call('/v1/namespaces', {
      namespace_name: 'bench_uploads',
      feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }],
    });
    await call('/v1/buckets', { bucket_name: 'bench', bucket_schema: { properties: { transcript: { type: 'text' } } } });
    const upload = await call('/v1/buckets/bench/uploads', {
      filename: 'transcript.txt',
      content_type: 'text/plain',
      file_size_bytes: total,
    });

    // One 1 MiB chunk sent again and again: the client itself holds nothing more, so RSS growth is the server's.
    const chunk = Buffer.alloc(MiB);
    const line = Buffer.from('a line of a large streamed upload\n');
    for (let o = 0; o < MiB; o += line.length) line.copy(chunk, o, 0, Math.min(line.length, MiB - o));
    const hash = createHash('sha256');
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < sizeMiB; i++) {
          hash.update(chunk);
          yield chunk;
        }
      })(),
    );

    global.gc?.();
    const before = process.memoryUsage.rss();
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 20);
    const started = performance.now();
    let res: { status: number; body: string };
    try {
      res = await put(upload.presigned_url, body, total);
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - started) / 1000;
    peak = Math.max(peak, process.memoryUsage.rss());
    if (res.status !== 200) throw new Error(`PUT: HTTP ${res.status} ${res.body}`);
    const sha256 = hash.digest('hex');
    if (JSON.parse(res.body).sha256 !== sha256) throw new Error('stored SHA-256 differs from the sent one');

    const t = performance.now();
    const confirmed = await call(`/v1/buckets/bench/uploads/${upload.upload_id}/confirm`, { file_size_bytes: total });
    const confirmMs = performance.now() - t;
    if (confirmed.status !== 'COMPLETED' || !confirmed.object_id) throw new Error(`confirm: ${JSON.stringify(confirmed)}`);

    console.log(
      `upload ${sizeMiB} MiB over HTTP: ${(sizeMiB / seconds).toFixed(0)} MiB/s (${seconds.toFixed(2)} s), ` +
        `RSS ${(before / MiB).toFixed(0)} → peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - before) / MiB).toFixed(0)} MiB), ` +
        `confirm + object ${confirmMs.toFixed(0)} ms`,
    );
  } finally {
    await app.close();
    fs.rmSync(blobDir, { recursive: true, force: true });
  }
}
