import path from 'node:path';

/** Everything Sluice reads from its environment, validated once at start-up. */
export interface SluiceConfig {
  port: number;
  host: string;
  /** Directory for the embedded database, blobs and the first admin key. */
  dataDir: string;
  /** PostgreSQL connection string; `undefined` selects embedded PGlite in `dataDir`. */
  databaseUrl: string | undefined;
  /** When set, this key exists as an admin key of the default organization after start-up. */
  bootstrapApiKey: string | undefined;
  /** In-process worker concurrency; 0 runs the API only. */
  workers: number;
  autoAttempts: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** How long a worker's claim on a unit lasts without renewal; a dead worker's units return after it. */
  leaseMs: number;
  allowPrivateUrls: boolean;
  embeddingsUrl: string | undefined;
  embeddingsModel: string | undefined;
  embeddingsApiKey: string | undefined;
  /** Largest JSON request body accepted, in bytes (413 past it). */
  bodyLimitBytes: number;
  /** Largest blob sent inline in JSON (base64 or data URI), decoded bytes (413 past it). */
  inlineBlobMaxBytes: number;
  /** Largest file accepted through an upload URL (413 past it). */
  uploadMaxBytes: number;
  /** Base URL clients reach this server at, for upload URLs; `undefined` derives it from each request. */
  publicUrl: string | undefined;
  logLevel: string;
}

/** Thrown for invalid configuration; its message is one line naming the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^-?\d+$/.test(raw.trim())) {
    throw new ConfigError(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
  }
  const value = Number(raw);
  if (value < min || value > max) {
    throw new ConfigError(`${name} must be between ${min} and ${max}, got ${raw}`);
  }
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

function str(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
}

/** A URL as it may appear in a message: connection strings carry passwords, which must not reach logs. */
function withoutPassword(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    // Unparseable, so URL cannot find the password: mask whatever sits between `user:` and `@`.
    return raw.replace(/\/\/([^/:@]*):[^@/]*@/, '//$1:***@');
  }
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a valid URL: ${JSON.stringify(withoutPassword(raw))}`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      `${name} must use ${protocols.join(' or ')}, got ${JSON.stringify(parsed.protocol)} in ${JSON.stringify(withoutPassword(raw))}`,
    );
  }
  return raw;
}

/** Enough of a secret to recognise which value was read (a stray quote, a missing prefix), not enough to use it. */
function glimpse(secret: string): string {
  return `${JSON.stringify(secret.length > 6 ? `${secret.slice(0, 6)}…` : secret)} (${secret.length} characters)`;
}

/**
 * Reads the configuration from an environment (default `process.env`), flags already merged in by the CLI.
 * Throws {@link ConfigError} with one line naming the offending variable.
 */
export function loadConfig(env: Env = process.env): SluiceConfig {
  const bootstrapApiKey = str(env, 'SLUICE_BOOTSTRAP_API_KEY');
  if (bootstrapApiKey !== undefined && !/^sk_[A-Za-z0-9_]{16,200}$/.test(bootstrapApiKey)) {
    throw new ConfigError(
      `SLUICE_BOOTSTRAP_API_KEY must look like sk_… with 16 to 200 letters, digits or underscores after sk_, got ${glimpse(bootstrapApiKey)}`,
    );
  }
  const logLevel = str(env, 'SLUICE_LOG_LEVEL') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError(`SLUICE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got ${JSON.stringify(logLevel)}`);
  }
  const backoffBaseMs = int(env, 'SLUICE_BACKOFF_BASE_MS', 1000, 0, 3_600_000);
  const backoffCapMs = int(env, 'SLUICE_BACKOFF_CAP_MS', 60_000, 0, 86_400_000);
  if (backoffCapMs < backoffBaseMs) {
    throw new ConfigError(`SLUICE_BACKOFF_CAP_MS (${backoffCapMs}) must not be below SLUICE_BACKOFF_BASE_MS (${backoffBaseMs})`);
  }
  return {
    port: int(env, 'PORT', 8080, 0, 65535),
    host: str(env, 'HOST') ?? '127.0.0.1',
    dataDir: path.resolve(str(env, 'SLUICE_DATA_DIR') ?? './data'),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    bootstrapApiKey,
    workers: int(env, 'SLUICE_WORKERS', 4, 0, 256),
    autoAttempts: int(env, 'SLUICE_AUTO_ATTEMPTS', 3, 1, 100),
    backoffBaseMs,
    backoffCapMs,
    leaseMs: int(env, 'SLUICE_LEASE_MS', 60_000, 1000, 86_400_000),
    allowPrivateUrls: bool(env, 'SLUICE_ALLOW_PRIVATE_URLS', false),
    embeddingsUrl: url(env, 'SLUICE_EMBEDDINGS_URL', ['http:', 'https:']),
    embeddingsModel: str(env, 'SLUICE_EMBEDDINGS_MODEL'),
    embeddingsApiKey: str(env, 'SLUICE_EMBEDDINGS_API_KEY'),
    bodyLimitBytes: int(env, 'SLUICE_BODY_LIMIT_BYTES', 16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    inlineBlobMaxBytes: int(env, 'SLUICE_INLINE_BLOB_MAX_BYTES', 8 * 1024 * 1024, 1, 1024 * 1024 * 1024),
    uploadMaxBytes: int(env, 'SLUICE_UPLOAD_MAX_BYTES', 5 * 1024 * 1024 * 1024, 1, Number.MAX_SAFE_INTEGER),
    publicUrl: url(env, 'SLUICE_PUBLIC_URL', ['http:', 'https:'])?.replace(/\/+$/, ''),
    logLevel,
  };
}
