/**
 * HTTP calls from extractors to upstream services (embedding endpoints, user webhooks), with every failure
 * classified as DESIGN-NOTES §5 says. This is the one place that maps HTTP statuses and network faults to
 * `TransientError` / `PermanentError`, so that all extractors classify alike.
 */
import { PermanentError, TransientError } from './errors.js';

/** Longest part of an upstream error body quoted in our messages. */
const BODY_EXCERPT = 300;

/**
 * Parses a `Retry-After` header: delay-seconds (`120`) or an HTTP date. Returns milliseconds from `now`
 * (never negative), or `undefined` when absent or unparsable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

function excerpt(body: string): string {
  const flat = body.replace(/\s+/g, ' ').trim();
  if (flat === '') return '';
  return `: ${flat.length > BODY_EXCERPT ? `${flat.slice(0, BODY_EXCERPT)}…` : flat}`;
}

/**
 * The error for a non-2xx answer. 429 → resource/rate_limited (Retry-After kept); 408 → network/timeout;
 * 5xx → resource/service_unavailable (transient: an overloaded or restarting upstream heals; the engine's
 * attempt budget bounds the rest); 401/403 → authentication/upstream_unauthorized; 413 →
 * validation/payload_too_large; other statuses (other 4xx, unfollowed 3xx) → validation/invalid_input.
 */
export function httpStatusError(what: string, status: number, headers: Headers, body: string): TransientError | PermanentError {
  const detail = `${what} answered HTTP ${status}${excerpt(body)}`;
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
    return new TransientError(detail, { code: 'rate_limited', category: 'resource', httpStatus: status, retryAfterMs });
  }
  if (status === 408) return new TransientError(detail, { code: 'timeout', category: 'network', httpStatus: status });
  if (status >= 500) {
    const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
    return new TransientError(detail, { code: 'service_unavailable', category: 'resource', httpStatus: status, retryAfterMs });
  }
  if (status === 401 || status === 403) {
    return new PermanentError(detail, { code: 'upstream_unauthorized', category: 'authentication', httpStatus: status });
  }
  if (status === 413) return new PermanentError(detail, { code: 'payload_too_large', category: 'validation', httpStatus: status });
  return new PermanentError(detail, { code: 'invalid_input', category: 'validation', httpStatus: status });
}

/** `code` of an error or of any error in its `cause` chain (undici wraps socket errors in `TypeError: fetch failed`). */
function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    if (current instanceof AggregateError) {
      for (const inner of current.errors) codes.push(...errorCodes(inner));
    }
    current = current.cause;
  }
  return codes;
}

/** The error for a request that got no HTTP answer (or whose answer broke off). */
export function networkError(what: string, err: unknown): TransientError | PermanentError {
  const codes = errorCodes(err);
  const message = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
  const has = (...wanted: string[]) => wanted.some((c) => codes.includes(c));
  if (has('ECONNREFUSED')) return new TransientError(`${what} refused the connection (${message})`, { code: 'connection_refused', category: 'network' }, { cause: err });
  if (has('ENOTFOUND', 'EAI_AGAIN')) return new TransientError(`${what}: host name not found (${message})`, { code: 'dns_failure', category: 'network' }, { cause: err });
  if (has('ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED') || /socket hang up|other side closed/i.test(message)) {
    return new TransientError(`${what} reset the connection (${message})`, { code: 'connection_reset', category: 'network' }, { cause: err });
  }
  if (has('ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT')) {
    return new TransientError(`${what} timed out (${message})`, { code: 'timeout', category: 'network' }, { cause: err });
  }
  // Anything else from the network stack (EHOSTUNREACH, TLS failures, …) is still about reaching the upstream.
  return new TransientError(`${what} could not be reached (${message})`, { code: 'network_error', category: 'network' }, { cause: err });
}

export interface PostJsonOptions {
  /** Names the upstream in messages, e.g. `embeddings endpoint http://…`. */
  what: string;
  headers?: Record<string, string>;
  timeoutMs: number;
  /** The unit's signal: aborting it stops the request. */
  signal?: AbortSignal;
  /** `manual` for user-supplied URLs: a redirect could lead past the private-address check. */
  redirect?: 'follow' | 'manual' | 'error';
  fetch?: typeof fetch;
}

/**
 * POSTs `body` as JSON and returns the status and parsed JSON of a 2xx answer (the status, so that an answer
 * of the wrong shape can be recorded with it). Throws, classified: a non-2xx status
 * ({@link httpStatusError}); no answer within `timeoutMs`, headers and body together → network/timeout;
 * network faults ({@link networkError}); a 2xx body that is not JSON → runtime/invalid_response; the
 * caller's signal aborted → network/aborted (transient: the unit was taken away, not broken).
 */
export async function postJson(url: string, body: unknown, options: PostJsonOptions): Promise<{ status: number; json: unknown }> {
  const { what, timeoutMs } = options;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const doFetch = options.fetch ?? fetch;
  let status: number;
  let headers: Headers;
  let text: string;
  try {
    const response = await doFetch(url, {
      method: 'POST',
      headers: { ...options.headers, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal,
      redirect: options.redirect ?? 'follow',
    });
    status = response.status;
    headers = response.headers;
    // Read within the same signal: a server that sends headers and then stalls is a timeout too.
    text = await response.text();
  } catch (err) {
    if (options.signal?.aborted) {
      throw new TransientError(`request to ${what} aborted: the unit was canceled or its lease lost`, { code: 'aborted', category: 'network' }, { cause: err });
    }
    if (timeout.aborted) {
      throw new TransientError(`${what} did not answer within ${timeoutMs} ms`, { code: 'timeout', category: 'network' }, { cause: err });
    }
    throw networkError(what, err);
  }
  if (status < 200 || status > 299) throw httpStatusError(what, status, headers, text);
  try {
    return { status, json: JSON.parse(text) };
  } catch (err) {
    throw invalidResponse(what, `its HTTP ${status} body is not JSON${excerpt(text)}`, status, err);
  }
}

/** A 2xx answer we cannot use: permanent, since the same request gets the same answer; an upstream bug. */
export function invalidResponse(what: string, problem: string, httpStatus?: number, cause?: unknown): PermanentError {
  return new PermanentError(`${what} sent an invalid response: ${problem}`, { code: 'invalid_response', category: 'runtime', httpStatus }, { cause });
}
