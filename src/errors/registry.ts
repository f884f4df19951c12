/**
 * The one registry of error kinds Sluice answers with. Every error body is the Mixpeek envelope
 * `{success: false, status, error: {type, message, details}}` (DESIGN-NOTES §3).
 */
export const ERROR_KINDS = {
  bad_request: { type: 'BadRequestError', status: 400, message: 'Bad request' },
  unauthorized: { type: 'UnauthorizedError', status: 401, message: 'Authentication required' },
  forbidden: { type: 'ForbiddenError', status: 403, message: 'Permission denied' },
  not_found: { type: 'NotFoundError', status: 404, message: 'Not found' },
  method_not_allowed: { type: 'MethodNotAllowedError', status: 405, message: 'Method not allowed' },
  already_exists: { type: 'AlreadyExistsError', status: 409, message: 'Already exists' },
  payload_too_large: { type: 'PayloadTooLargeError', status: 413, message: 'Payload too large' },
  unsupported_media_type: { type: 'UnsupportedMediaTypeError', status: 415, message: 'Unsupported media type' },
  validation: { type: 'ValidationError', status: 422, message: 'Validation failed' },
  too_many_requests: { type: 'TooManyRequestsError', status: 429, message: 'Too many requests' },
  internal: { type: 'InternalServerError', status: 500, message: 'Internal server error' },
  unavailable: { type: 'ServiceUnavailableError', status: 503, message: 'Service unavailable' },
} as const satisfies Record<string, { type: string; status: number; message: string }>;

export type ErrorKind = keyof typeof ERROR_KINDS;

/** One entry of `details.validation_errors`. */
export interface ValidationIssue {
  type: string;
  location: (string | number)[];
  message: string;
}

/** An error that maps straight onto the envelope. Services throw these; the one error handler renders them. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly kind: ErrorKind;
  readonly status: number;
  readonly type: string;
  readonly details: Record<string, unknown> | null;
  /** Extra response headers, e.g. `Retry-After`. */
  readonly headers: Record<string, string>;

  constructor(
    kind: ErrorKind,
    message?: string,
    details: Record<string, unknown> | null = null,
    headers: Record<string, string> = {},
  ) {
    const def = ERROR_KINDS[kind];
    super(message ?? def.message);
    this.kind = kind;
    this.status = def.status;
    this.type = def.type;
    this.details = details;
    this.headers = headers;
  }
}

/** The envelope body for an error. */
export function envelope(err: ApiError): {
  success: false;
  status: number;
  error: { type: string; message: string; details: Record<string, unknown> | null };
} {
  return { success: false, status: err.status, error: { type: err.type, message: err.message, details: err.details } };
}

/** Short, bounded rendering of an offending value for error messages. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

export const notFound = (resource: string, id: string): ApiError =>
  new ApiError('not_found', `${resource} ${show(id)} not found`, { resource, id });

export const alreadyExists = (resource: string, field: string, value: string): ApiError =>
  new ApiError('already_exists', `${resource} with ${field} ${show(value)} already exists`, { resource, [field]: value });

export const badRequest = (message: string, details: Record<string, unknown> | null = null): ApiError =>
  new ApiError('bad_request', message, details);

export const validationFailed = (issues: ValidationIssue[]): ApiError =>
  new ApiError(
    'validation',
    issues.map((i) => `${i.location.join('.')}: ${i.message}`).join('; ') || ERROR_KINDS.validation.message,
    { validation_errors: issues },
  );
