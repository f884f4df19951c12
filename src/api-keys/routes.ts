import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Db } from '../db/db.js';
import {
  ApiKeyCreateRequest,
  ApiKeyCreateResponse,
  ApiKeyModel,
  ApiKeyUpdateRequest,
  GenericSuccessResponse,
  KeyParams,
  ListApiKeysQuery,
  ListApiKeysResponse,
  UserParams,
} from './schema.js';
import { ensureUser, insertApiKey, listApiKeys, revokeApiKey, rotateApiKey, updateApiKey } from './service.js';

/**
 * `/v1/organizations/users/{user_email}/api-keys…`. Managing keys needs an `admin` key; every operation
 * stays inside the caller's organization, so another organization's users answer 404.
 */
export function apiKeyRoutes(app: FastifyInstance, db: Db): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['API Keys'];
  const base = '/v1/organizations/users/:user_email/api-keys';

  r.post(base, {
    config: { permission: 'admin' },
    schema: { tags, summary: 'Create API Key', params: UserParams, body: ApiKeyCreateRequest, response: { 200: ApiKeyCreateResponse } },
    handler: (req) =>
      db.transaction(async (tx) => {
        const user = await ensureUser(tx, req.auth.organizationId, req.params.user_email);
        return insertApiKey(tx, {
          organizationId: req.auth.organizationId,
          userId: user.id,
          name: req.body.name,
          description: req.body.description,
          permissions: req.body.permissions,
          scopes: req.body.scopes,
          rateLimitOverride: req.body.rate_limit_override,
          expiresAt: req.body.expires_at,
          createdBy: req.auth.keyId,
        });
      }),
  });

  r.get(base, {
    config: { permission: 'admin' },
    schema: { tags, summary: 'List API Keys', params: UserParams, querystring: ListApiKeysQuery, response: { 200: ListApiKeysResponse } },
    handler: async (req) => {
      const results = await listApiKeys(db, req.auth.organizationId, req.params.user_email, req.query.include_revoked);
      return { results, total_count: results.length };
    },
  });

  r.patch(`${base}/:key_name`, {
    config: { permission: 'admin' },
    schema: { tags, summary: 'Update API Key', params: KeyParams, body: ApiKeyUpdateRequest, response: { 200: ApiKeyModel } },
    handler: (req) =>
      db.transaction((tx) =>
        updateApiKey(tx, req.auth.organizationId, req.params.user_email, req.params.key_name, req.body, req.auth.keyId),
      ),
  });

  r.delete(`${base}/:key_name`, {
    config: { permission: 'admin' },
    schema: { tags, summary: 'Revoke API Key', params: KeyParams, response: { 200: GenericSuccessResponse } },
    handler: async (req) => {
      await db.transaction((tx) =>
        revokeApiKey(tx, req.auth.organizationId, req.params.user_email, req.params.key_name, req.auth.keyId),
      );
      return { success: true, message: `api key ${req.params.key_name} revoked` };
    },
  });

  r.post(`${base}/:key_name/rotate`, {
    config: { permission: 'admin' },
    schema: { tags, summary: 'Rotate API Key', params: KeyParams, response: { 200: ApiKeyCreateResponse } },
    handler: (req) =>
      db.transaction((tx) =>
        rotateApiKey(tx, req.auth.organizationId, req.params.user_email, req.params.key_name, req.auth.keyId),
      ),
  });
}
