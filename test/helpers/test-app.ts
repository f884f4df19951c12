import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { insertApiKey, ensureUser } from '../../src/api-keys/service.js';
import type { Permission } from '../../src/auth/permissions.js';
import type { Db } from '../../src/db/db.js';
import { buildApp } from '../../src/http/app.js';
import { createOrganization } from '../../src/organizations/service.js';
import type { Backend } from './test-db.js';

/** An app on a fresh database with one organization and its admin key. */
export interface TestContext {
  db: Db;
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
export async function createTestContext(backend: Backend, opts: { bodyLimitBytes?: number } = {}): Promise<TestContext> {
  const db = await backend.open();
  const app = await buildApp({ db, bodyLimitBytes: opts.bodyLimitBytes });
  const { organization, adminKey } = await createOrganization(db, `org-${++counter}-${Date.now()}`, 'admin@test.local');
  return {
    db,
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
