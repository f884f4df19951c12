import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { PermanentError } from './errors.js';
import type { Extractor, ExtractorInput } from './extractor.js';
import { invalidResponse, networkError, postJson } from './http-classify.js';

export const DEFAULT_WEBHOOK_TIMEOUT_MS = 30_000;

// Addresses a user-supplied URL must not reach unless SLUICE_ALLOW_PRIVATE_URLS is set: otherwise a
// collection could make the server probe its own network (SSRF).
const privateRanges = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  privateRanges.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  privateRanges.addSubnet(net, prefix, 'ipv6');
}

/** Whether an IP address is loopback, private, link-local, multicast or unspecified (IPv4-mapped IPv6 too). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return privateRanges.check(mapped[1]!, 'ipv4');
  const family = isIP(address);
  if (family === 4) return privateRanges.check(address, 'ipv4');
  if (family === 6) return privateRanges.check(address, 'ipv6');
  return false;
}

/** URL hostnames come bracketed for IPv6 (`[::1]`). */
function bareHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

/** Whether a hostname is private without resolving it: an address in a private range, or `localhost`. */
export function isPrivateHostname(hostname: string): boolean {
  const host = bareHost(hostname).toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || isPrivateAddress(host);
}

export function webhookParamsSchema(allowPrivateUrls: boolean) {
  return z.object({
    extractor_type: z.literal('webhook_extractor').default('webhook_extractor'),
    url: z
      .string()
      .check((ctx) => {
        let url: URL;
        try {
          url = new URL(ctx.value);
        } catch {
          ctx.issues.push({ code: 'custom', input: ctx.value, message: 'url must be an absolute http(s) URL' });
          return;
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:') {
          ctx.issues.push({ code: 'custom', input: ctx.value, message: `url must use http or https (got ${url.protocol})` });
        } else if (!allowPrivateUrls && isPrivateHostname(url.hostname)) {
          ctx.issues.push({
            code: 'custom',
            input: ctx.value,
            message: `url points to a private or loopback address (${url.hostname}); set SLUICE_ALLOW_PRIVATE_URLS=true to allow it`,
          });
        }
      }),
    headers: z.record(z.string(), z.string()).optional(),
    timeout_ms: z.int().min(1).max(600_000).default(DEFAULT_WEBHOOK_TIMEOUT_MS),
  });
}
export type WebhookExtractorParams = z.output<ReturnType<typeof webhookParamsSchema>>;

export interface WebhookExtractorOptions {
  allowPrivateUrls: boolean;
  fetch?: typeof fetch;
}

/**
 * `webhook_extractor` v1 (DESIGN-NOTES §9, our extension for custom models): POSTs each unit's input to the
 * user's URL and turns the `{"documents": [...]}` answer into documents. Failures are classified by
 * http-classify.ts.
 */
export function createWebhookExtractor(options: WebhookExtractorOptions): Extractor<WebhookExtractorParams> {
  const parameters = webhookParamsSchema(options.allowPrivateUrls);
  return {
    name: 'webhook_extractor',
    version: 'v1',
    id: 'webhook_extractor_v1',
    description:
      'Sends each source item to your HTTP endpoint (POST JSON {unit_id, batch_id, collection_id, tier_num, source, input}) and stores the documents it answers ({"documents": [...]}). Bring your own model.',
    parameters: parameters as z.ZodType<WebhookExtractorParams>,
    supportedInputTypes: ['text', 'string', 'number', 'integer', 'float', 'boolean', 'object', 'array', 'date', 'datetime', 'image', 'audio', 'video', 'pdf', 'excel'],
    // Empty: the webhook decides what it reads and what its documents carry.
    inputSchema: {},
    outputSchema: () => ({}),
    positionFields: [],
    async run(input: ExtractorInput<WebhookExtractorParams>) {
      const { params, context } = input;
      const what = `webhook ${params.url}`;
      if (!options.allowPrivateUrls) await refusePrivateResolution(what, params.url);
      const body = {
        unit_id: context.unitId,
        batch_id: context.batchId,
        collection_id: context.collectionId,
        tier_num: context.tierNum,
        source: context.source,
        input: input.input,
      };
      const { status, json } = await postJson(params.url, body, {
        what,
        headers: params.headers,
        timeoutMs: params.timeout_ms,
        signal: input.signal,
        // A redirect could lead to a private address after the check; a 3xx is reported instead.
        redirect: 'manual',
        fetch: options.fetch,
      });
      const documents = (json as { documents?: unknown } | null)?.documents;
      if (typeof json !== 'object' || json === null || Array.isArray(json) || !Array.isArray(documents)) {
        throw invalidResponse(what, 'expected a JSON object {"documents": [...]}', status);
      }
      return documents.map((doc: unknown, i) => {
        if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
          throw invalidResponse(what, `documents[${i}] is not a JSON object`, status);
        }
        if (Object.hasOwn(doc, '_internal')) throw invalidResponse(what, `documents[${i}] carries "_internal", which Sluice reserves`, status);
        return doc as Record<string, unknown>;
      });
    },
  };
}

/**
 * The parameter check only sees the hostname; a public name can resolve to a private address. Resolve it
 * and refuse if any address is private. (The connection resolves again, so a DNS answer that changes in
 * between is not caught; this stops the plain cases.)
 */
async function refusePrivateResolution(what: string, url: string): Promise<void> {
  const hostname = bareHost(new URL(url).hostname);
  if (isPrivateHostname(hostname)) {
    throw new PermanentError(`${what} points to a private or loopback address`, { code: 'invalid_input', category: 'validation' });
  }
  if (isIP(hostname)) return;
  let addresses: { address: string }[];
  try {
    addresses = await lookup(hostname, { all: true });
  } catch (err) {
    throw networkError(what, err);
  }
  const blocked = addresses.find((a) => isPrivateAddress(a.address));
  if (blocked) {
    throw new PermanentError(`${what} resolves to a private address (${blocked.address}); set SLUICE_ALLOW_PRIVATE_URLS=true to allow it`, {
      code: 'invalid_input',
      category: 'validation',
    });
  }
}
