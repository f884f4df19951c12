import fs from 'node:fs';
import path from 'node:path';
import { ensureUser, insertApiKey } from '../api-keys/service.js';
import { hashApiKey } from '../auth/api-key-secret.js';
import type { Db, Queryable } from '../db/db.js';
import { alreadyExists } from '../errors/registry.js';
import { newId } from '../ids/new-id.js';

/** The organization single-tenant deployments use, and where bootstrap keys go. */
export const DEFAULT_ORGANIZATION = 'default';
/** The user that owns bootstrap keys. */
export const ADMIN_EMAIL = 'admin@sluice.local';
/** Advisory-lock key that serialises bootstrap across processes starting together. */
const BOOTSTRAP_LOCK_KEY = 0x51_1c_e0_02;

export interface OrganizationRecord {
  id: string;
  name: string;
  is_default: boolean;
}

/** Returns the default organization, creating it on first use (race-safe). */
export async function ensureDefaultOrganization(q: Queryable): Promise<OrganizationRecord> {
  await q.query(
    `INSERT INTO organizations (id, name, is_default) VALUES ($1, $2, true) ON CONFLICT DO NOTHING`,
    [newId('org'), DEFAULT_ORGANIZATION],
  );
  const rows = await q.query<OrganizationRecord>('SELECT id, name, is_default FROM organizations WHERE is_default');
  return rows[0]!;
}

/** Finds an organization by name or id. */
export async function findOrganization(q: Queryable, identifier: string): Promise<OrganizationRecord | undefined> {
  const rows = await q.query<OrganizationRecord>(
    'SELECT id, name, is_default FROM organizations WHERE id = $1 OR name = $1',
    [identifier],
  );
  return rows[0];
}

/**
 * Creates an organization with its first admin user and admin key (`admin-key`, protected), all in one
 * transaction. Returns the key's plaintext, which is never stored.
 */
export async function createOrganization(
  db: Db,
  name: string,
  adminEmail: string,
): Promise<{ organization: OrganizationRecord; adminKey: string }> {
  return db.transaction(async (tx) => {
    const rows = await tx.query<OrganizationRecord>(
      `INSERT INTO organizations (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id, name, is_default`,
      [newId('org'), name],
    );
    const organization = rows[0];
    if (!organization) throw alreadyExists('organization', 'name', name);
    const user = await ensureUser(tx, organization.id, adminEmail);
    const key = await insertApiKey(tx, {
      organizationId: organization.id,
      userId: user.id,
      name: 'admin-key',
      description: 'First admin key of the organization',
      permissions: ['admin'],
      protected: true,
    });
    return { organization, adminKey: key.key };
  });
}

/** What bootstrap did, for the start-up log. */
export interface BootstrapResult {
  organizationId: string;
  /** Set when this start created the first admin key: print it once. */
  createdAdminKey?: string;
  /** Where the created key was written. */
  adminKeyFile?: string;
  /** Whether SLUICE_BOOTSTRAP_API_KEY was (re)registered. */
  bootstrapKeyEnsured: boolean;
}

/**
 * DESIGN-NOTES §2. With `SLUICE_BOOTSTRAP_API_KEY`, that key exists as an active admin key of the default
 * organization afterwards (idempotent). Otherwise, when the deployment has no key at all, one admin key
 * is created, returned for printing and written to `<dataDir>/admin-api-key` (mode 0600). Processes
 * starting together serialise on an advisory lock, so exactly one of them creates the first key.
 */
export async function bootstrap(db: Db, options: { bootstrapApiKey?: string; dataDir: string }): Promise<BootstrapResult> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK_KEY]);
    const org = await ensureDefaultOrganization(tx);
    if (options.bootstrapApiKey) {
      const hash = hashApiKey(options.bootstrapApiKey);
      const existing = await tx.query<{ organization_id: string }>(
        'SELECT organization_id FROM api_keys WHERE key_hash = $1',
        [hash],
      );
      if (existing[0]) {
        // The operator's environment is the source of truth for this key: it stays an active admin key.
        await tx.query(
          `UPDATE api_keys SET status = 'active', permissions = '{admin}', revoked_at = NULL, revoked_by = NULL,
                  expires_at = NULL WHERE key_hash = $1`,
          [hash],
        );
      } else {
        const user = await ensureUser(tx, org.id, ADMIN_EMAIL);
        // The name must be free among the user's live keys; an older bootstrap key (a changed env value) is retired.
        await tx.query(
          `UPDATE api_keys SET status = 'revoked', revoked_at = now(), revoked_by = 'bootstrap'
            WHERE user_id = $1 AND name = 'bootstrap-key' AND status <> 'revoked'`,
          [user.id],
        );
        await insertApiKey(tx, {
          organizationId: org.id,
          userId: user.id,
          name: 'bootstrap-key',
          description: 'From SLUICE_BOOTSTRAP_API_KEY',
          permissions: ['admin'],
          protected: true,
          plaintext: options.bootstrapApiKey,
        });
      }
      return { organizationId: org.id, bootstrapKeyEnsured: true };
    }
    const any = await tx.query('SELECT 1 FROM api_keys LIMIT 1');
    if (any.length > 0) return { organizationId: org.id, bootstrapKeyEnsured: false };
    const user = await ensureUser(tx, org.id, ADMIN_EMAIL);
    const key = await insertApiKey(tx, {
      organizationId: org.id,
      userId: user.id,
      name: 'admin-key',
      description: 'Created on first start',
      permissions: ['admin'],
      protected: true,
    });
    fs.mkdirSync(options.dataDir, { recursive: true });
    const adminKeyFile = path.join(options.dataDir, 'admin-api-key');
    // Written to a new 0600 file and renamed into place: writing into an existing file would leave the
    // secret readable under that file's old mode until a chmod, and would follow a symlink planted there.
    const tmp = `${adminKeyFile}.${process.pid}.tmp`;
    fs.rmSync(tmp, { force: true });
    try {
      fs.writeFileSync(tmp, `${key.key}\n`, { mode: 0o600, flag: 'wx' });
      fs.renameSync(tmp, adminKeyFile);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    return { organizationId: org.id, createdAdminKey: key.key, adminKeyFile, bootstrapKeyEnsured: false };
  });
}
