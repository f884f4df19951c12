import { z } from 'zod';
import { PERMISSIONS } from '../auth/permissions.js';

const Permission = z.enum(PERMISSIONS);
const KeyStatus = z.enum(['active', 'revoked', 'expired']);

const ResourceScope = z.object({
  resource_type: z.enum([
    'organization',
    'user',
    'api_key',
    'namespace',
    'collection',
    'bucket',
    'retriever',
    'cluster',
    'taxonomy',
    'storage_connection',
    'alert',
  ]),
  resource_id: z.string().min(1).max(100),
  operations: z.array(z.string()).nullish(),
});

// A key born expired could never authenticate: refuse the request instead of storing a dead key.
const FutureDateTime = z.iso
  .datetime({ offset: true })
  .refine((v) => Date.parse(v) > Date.now(), 'must be in the future');

export const ApiKeyCreateRequest = z.object({
  name: z.string().min(1).max(100),
  description: z.string().max(500).nullish(),
  // Least privilege: a key created without permissions can read, nothing more.
  permissions: z.array(Permission).min(1).default(['read']),
  scopes: z.array(ResourceScope).nullish(),
  rate_limit_override: z.number().int().min(1).nullish(),
  expires_at: FutureDateTime.nullish(),
});

export const ApiKeyUpdateRequest = z.object({
  name: z.string().min(1).max(100).nullish(),
  description: z.string().max(500).nullish(),
  permissions: z.array(Permission).min(1).nullish(),
  scopes: z.array(ResourceScope).nullish(),
  rate_limit_override: z.number().int().min(1).nullish(),
  expires_at: FutureDateTime.nullish(),
  status: KeyStatus.nullish(),
});

export const ApiKeyModel = z.object({
  key_id: z.string(),
  key_hash: z.string(),
  key_prefix: z.string().nullable(),
  key_type: z.enum(['standard', 'marketplace_subscription', 'retriever']),
  subscription_id: z.string().nullable(),
  internal_id: z.string(),
  organization_id: z.string().nullable(),
  user_id: z.string(),
  name: z.string(),
  description: z.string(),
  permissions: z.array(Permission),
  scopes: z.array(z.unknown()),
  rate_limit_override: z.number().int().nullable(),
  status: KeyStatus,
  expires_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
  created_at: z.string(),
  created_by: z.string().nullable(),
  revoked_at: z.string().nullable(),
  revoked_by: z.string().nullable(),
  allowed_origins: z.array(z.string()).nullable(),
});

/** Creation and rotation answer with the plaintext `key`: the only time it is ever shown. */
export const ApiKeyCreateResponse = ApiKeyModel.extend({ key: z.string() });

export const ListApiKeysResponse = z.object({
  results: z.array(ApiKeyModel),
  total_count: z.number().int(),
});

export const UserParams = z.object({ user_email: z.string().min(3).max(320).regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address') });
export const KeyParams = UserParams.extend({ key_name: z.string().min(1).max(100) });
export const ListApiKeysQuery = z.object({
  include_revoked: z
    .enum(['true', 'false', '1', '0'])
    .transform((v) => v === 'true' || v === '1')
    .default(false),
});

export const GenericSuccessResponse = z.object({ success: z.boolean(), message: z.string() });
