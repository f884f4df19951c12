/**
 * Mixpeek's `ErrorCategory`, as DESIGN-NOTES §5 uses it. `network` and `resource` are transient (retrying
 * may heal them); the rest are permanent (retrying the same input fails the same way).
 */
export type ErrorCategory = 'network' | 'resource' | 'validation' | 'authentication' | 'dependency' | 'runtime';

/** What an extractor failure carries besides its message. */
export interface ExtractorErrorDetails {
  /** Stable machine-readable reason, e.g. `timeout`, `rate_limited`, `invalid_input`. */
  code: string;
  category: ErrorCategory;
  /** HTTP status of the upstream answer, when there was one. */
  httpStatus?: number;
  /** How long the upstream asked us to wait (`Retry-After`), in ms. */
  retryAfterMs?: number;
}

abstract class ExtractorError extends Error {
  readonly code: string;
  readonly category: ErrorCategory;
  readonly httpStatus: number | undefined;
  readonly retryAfterMs: number | undefined;
  abstract readonly transient: boolean;
  constructor(message: string, details: ExtractorErrorDetails, options?: { cause?: unknown }) {
    super(message, options);
    this.code = details.code;
    this.category = details.category;
    this.httpStatus = details.httpStatus;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** A failure that may heal on its own: network faults, timeouts, rate limits, an overloaded upstream. */
export class TransientError extends ExtractorError {
  override name = 'TransientError';
  readonly transient = true;
  constructor(message: string, details: ExtractorErrorDetails & { category?: 'network' | 'resource' }, options?: { cause?: unknown }) {
    super(message, { ...details, category: details.category ?? 'network' }, options);
  }
}

/** A failure that retrying the same input will not heal: bad input, missing fields, auth, extractor bugs. */
export class PermanentError extends ExtractorError {
  override name = 'PermanentError';
  readonly transient = false;
  constructor(message: string, details: ExtractorErrorDetails, options?: { cause?: unknown }) {
    super(message, details, options);
  }
}

/** A classified failure record, as stored with a failed unit. */
export interface ClassifiedError {
  error_type: ErrorCategory;
  transient: boolean;
  code: string;
  message: string;
  http_status: number | null;
  retry_after_ms: number | null;
}

/** Classifies anything thrown: our two classes keep their class; any other value is a `runtime` bug, permanent. */
export function classifyError(err: unknown): ClassifiedError {
  if (err instanceof TransientError || err instanceof PermanentError) {
    return {
      error_type: err.category,
      transient: err.transient,
      code: err.code,
      message: err.message,
      http_status: err.httpStatus ?? null,
      retry_after_ms: err.retryAfterMs ?? null,
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { error_type: 'runtime', transient: false, code: 'extractor_error', message, http_status: null, retry_after_ms: null };
}
