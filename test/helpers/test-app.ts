import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { BackoffPolicy } from '../../src/engine/backoff.js';
import type { ExtractorRegistry } from '../../src/extractors/extractor.js';
import type { BlobStore } from '../../src/blobs/blob-store.js';
import { createLocalBlobStore } from '../../src/blobs/local-blob-store.js';
import { insertApiKey, ensureUser } from '../../src/api-keys/service.js';
import type { Permission } from '../../src/auth/permissions.js';
import type { Db } from '../../src/db/db.js';
import { type AppLimits, buildApp } from '../../src/http/app.js';
import { createOrganization } from '../../src/organizations/service.js';
import type { Backend } from './test-db.js';

/** A blob store in a fresh temporary directory; `remove()` deletes the directory. */
export function tempBlobStore(): { blobs: BlobStore; dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-blobs-'));
  return { blobs: createLocalBlobStore(dir), dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** An app on a fresh database with one organization and its admin key. */
export interface TestContext {
  db: Db;
  blobs: BlobStore;
  /** The directory behind `blobs`. */
  blobDir: string;
  app: FastifyInstance;
  orgId: string;
  adminKey: string;
  /** Creates another key in the same organization. */
  key(permissions: Permission[], name?: string): Promise<string>;
  /** `app.inject` with `Authorization: Bearer <key>` (the admin key unless given). */
  call(options: InjectOptions & { key?: string | null }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

let counter = 0;

/** Builds a {@link TestContext}; pass `bodyLimitBytes` to test 413. */
export async function createTestContext(
  backend: Backend,
  opts: { bodyLimitBytes?: number; limits?: Partial<AppLimits>; extractors?: ExtractorRegistry; backoff?: BackoffPolicy } = {},
): Promise<TestContext> {
  const db = await backend.open();
  const store = tempBlobStore();
  const app = await buildApp({
    db,
    blobs: store.blobs,
    bodyLimitBytes: opts.bodyLimitBytes,
    limits: opts.limits,
    extractors: opts.extractors,
    backoff: opts.backoff,
  });
  const { organization, adminKey } = await createOrganization(db, `org-${++counter}-${Date.now()}`, 'admin@test.local');
  return {
    db,
    blobs: store.blobs,
    blobDir: store.dir,
    app,
    orgId: organization.id,
    adminKey,
    async key(permissions, name) {
      return db.transaction(async (tx) => {
        const user = await ensureUser(tx, organization.id, 'member@test.local');
        const created = await insertApiKey(tx, {
          organizationId: organization.id,
          userId: user.id,
          name: name ?? `k-${permissions.join('-')}-${++counter}`,
          permissions,
        });
        return created.key;
      });
    },
    call({ key, headers, ...rest }) {
      const auth = key === null ? {} : { authorization: `Bearer ${key ?? adminKey}` };
      return app.inject({ ...rest, headers: { ...auth, ...headers } });
    },
    async close() {
      await app.close();
      await db.close();
      store.remove();
    },
  };
}

/** Asserts the Mixpeek error envelope and returns its `error`. */
export function expectEnvelope(
  res: LightMyRequestResponse,
  status: number,
  type: string,
): { type: string; message: string; details: Record<string, unknown> | null } {
  const body = res.json() as { success: boolean; status: number; error: { type: string; message: string; details: Record<string, unknown> | null } };
  if (res.statusCode !== status || body.success !== false || body.status !== status || body.error?.type !== type) {
    throw new Error(`expected ${status} ${type} envelope, got ${res.statusCode}: ${res.body}`);
  }
  return body.error;
}

/** One entry of an envelope's `details.validation_errors`. */
export interface ValidationIssueShape {
  type: string;
  location: (string | number)[];
  message: string;
}

/** The `details.validation_errors` of a 422 envelope's `error` (throws when there are none). */
export function validationIssues(error: { details: Record<string, unknown> | null }): ValidationIssueShape[] {
  const list = error.details?.validation_errors;
  if (!Array.isArray(list)) throw new Error(`no validation_errors in ${JSON.stringify(error)}`);
  return list as ValidationIssueShape[];
}
