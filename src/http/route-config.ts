import type { AuthContext } from '../auth/authenticate.js';
import type { Permission } from '../auth/permissions.js';
import type { NamespaceRef } from '../namespaces/service.js';

/**
 * What a route declares about access. Every `/v1` route must say which permission it needs (or that it is
 * public); a route that forgets is refused when the app is built, so no endpoint is open by accident.
 */
export interface SluiceRouteConfig {
  permission?: Permission | 'public';
  /** Resolve `X-Namespace` (or `?namespace=`) into `request.namespace`; 400 if missing, 404 if unknown. */
  namespaced?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig extends SluiceRouteConfig {}
  interface FastifyRequest {
    /** The caller; set on every non-public route. */
    auth: AuthContext;
    /** The namespace of a namespaced route. */
    namespace: NamespaceRef;
  }
}
