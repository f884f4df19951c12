import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { assertBlobKey, BlobMissingError, type BlobStore, type StoredBlob, BlobTooLargeError } from './blob-store.js';

const HEAD_BYTES = 4096;

/**
 * The default {@link BlobStore}: files under a directory (`<data dir>/blobs`). On a shared volume it
 * serves several machines, since every write lands by an atomic rename.
 */
export function createLocalBlobStore(root: string): BlobStore {
  const tmpDir = path.join(root, '.tmp');
  fs.mkdirSync(tmpDir, { recursive: true });
  const fileOf = (key: string) => {
    assertBlobKey(key);
    return path.join(root, ...key.split('/'));
  };

  return {
    async put(key, source, options = {}): Promise<StoredBlob> {
      const target = fileOf(key);
      const tmp = path.join(tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
      const hash = createHash('sha256');
      const limit = options.maxBytes ?? Number.POSITIVE_INFINITY;
      const headParts: Buffer[] = [];
      let headSize = 0;
      let size = 0;
      const handle = await fs.promises.open(tmp, 'wx', 0o600);
      try {
        const chunks: AsyncIterable<Uint8Array> | Uint8Array[] = source instanceof Uint8Array ? [source] : source;
        for await (const chunk of chunks) {
          size += chunk.byteLength;
          if (size > limit) throw new BlobTooLargeError(limit);
          hash.update(chunk);
          if (headSize < HEAD_BYTES) {
            const part = Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.byteLength, HEAD_BYTES - headSize));
            headParts.push(Buffer.from(part));
            headSize += part.byteLength;
          }
          let offset = 0;
          while (offset < chunk.byteLength) {
            const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
            offset += bytesWritten;
          }
        }
        await handle.sync();
        await handle.close();
        await fs.promises.mkdir(path.dirname(target), { recursive: true });
        await fs.promises.rename(tmp, target);
      } catch (err) {
        await handle.close().catch(() => {});
        await fs.promises.rm(tmp, { force: true });
        throw err;
      }
      return { sizeBytes: size, sha256: hash.digest('hex'), head: Buffer.concat(headParts) };
    },

    async get(key): Promise<Readable> {
      const file = fileOf(key);
      try {
        const handle = await fs.promises.open(file, 'r');
        return handle.createReadStream();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobMissingError(key);
        throw err;
      }
    },

    async stat(key) {
      try {
        const st = await fs.promises.stat(fileOf(key));
        return { sizeBytes: st.size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },

    async move(from, to) {
      const target = fileOf(to);
      await fs.promises.mkdir(path.dirname(target), { recursive: true });
      try {
        await fs.promises.rename(fileOf(from), target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobMissingError(from);
        throw err;
      }
    },

    async delete(keys) {
      await Promise.all(keys.map((k) => fs.promises.rm(fileOf(k), { force: true })));
    },

    async deletePrefix(prefix) {
      await fs.promises.rm(fileOf(prefix), { recursive: true, force: true });
    },
  };
}
