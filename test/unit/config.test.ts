import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';

// loadConfig is pure (an env object in, a config out) and touches no database, so this file has no
// per-backend loop: running it once per backend would test the same thing twice.

/** The ConfigError loadConfig throws for `env`, checked to be one line. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).not.toContain('\n');
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment (DESIGN-NOTES §8, README)', () => {
    expect(loadConfig({})).toEqual({
      port: 8080,
      host: '127.0.0.1',
      dataDir: path.resolve('./data'),
      databaseUrl: undefined,
      bootstrapApiKey: undefined,
      workers: 4,
      autoAttempts: 3,
      backoffBaseMs: 1000,
      backoffCapMs: 60_000,
      leaseMs: 60_000,
      allowPrivateUrls: false,
      embeddingsUrl: undefined,
      embeddingsModel: undefined,
      embeddingsApiKey: undefined,
      bodyLimitBytes: 16 * 1024 * 1024,
      inlineBlobMaxBytes: 8 * 1024 * 1024,
      uploadMaxBytes: 5 * 1024 * 1024 * 1024,
      publicUrl: undefined,
      logLevel: 'info',
    });
  });

  it('treats empty and blank values as unset', () => {
    const config = loadConfig({ PORT: '', HOST: '  ', DATABASE_URL: '', SLUICE_WORKERS: ' ', SLUICE_BOOTSTRAP_API_KEY: '' });
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.workers).toBe(4);
    expect(config.bootstrapApiKey).toBeUndefined();
  });

  it('reads every variable it documents', () => {
    const config = loadConfig({
      PORT: ' 9090 ',
      HOST: '0.0.0.0',
      SLUICE_DATA_DIR: 'some/dir',
      DATABASE_URL: 'postgresql://u:p@db.internal:5433/sluice',
      SLUICE_BOOTSTRAP_API_KEY: 'sk_live_0123456789abcdef',
      SLUICE_WORKERS: '0',
      SLUICE_AUTO_ATTEMPTS: '5',
      SLUICE_BACKOFF_BASE_MS: '250',
      SLUICE_BACKOFF_CAP_MS: '250',
      SLUICE_LEASE_MS: '5000',
      SLUICE_ALLOW_PRIVATE_URLS: 'TRUE',
      SLUICE_EMBEDDINGS_URL: 'http://127.0.0.1:11434/v1',
      SLUICE_EMBEDDINGS_MODEL: 'nomic-embed-text',
      SLUICE_EMBEDDINGS_API_KEY: 'secret',
      SLUICE_BODY_LIMIT_BYTES: '2048',
      SLUICE_INLINE_BLOB_MAX_BYTES: '1000',
      SLUICE_UPLOAD_MAX_BYTES: '5000',
      SLUICE_PUBLIC_URL: 'https://sluice.example.test/',
      SLUICE_LOG_LEVEL: 'silent',
    });
    expect(config).toEqual({
      port: 9090,
      host: '0.0.0.0',
      dataDir: path.resolve('some/dir'),
      databaseUrl: 'postgresql://u:p@db.internal:5433/sluice',
      bootstrapApiKey: 'sk_live_0123456789abcdef',
      workers: 0,
      autoAttempts: 5,
      backoffBaseMs: 250,
      backoffCapMs: 250,
      leaseMs: 5000,
      allowPrivateUrls: true,
      embeddingsUrl: 'http://127.0.0.1:11434/v1',
      embeddingsModel: 'nomic-embed-text',
      embeddingsApiKey: 'secret',
      bodyLimitBytes: 2048,
      inlineBlobMaxBytes: 1000,
      uploadMaxBytes: 5000,
      publicUrl: 'https://sluice.example.test',
      logLevel: 'silent',
    });
  });

  it.each([
    ['1', true],
    ['yes', true],
    ['on', true],
    ['0', false],
    ['false', false],
    ['Off', false],
  ])('SLUICE_ALLOW_PRIVATE_URLS=%s reads as %s', (raw, expected) => {
    expect(loadConfig({ SLUICE_ALLOW_PRIVATE_URLS: raw }).allowPrivateUrls).toBe(expected);
  });

  it('accepts the edges of each range', () => {
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535);
    expect(loadConfig({ SLUICE_WORKERS: '256' }).workers).toBe(256);
    expect(loadConfig({ DATABASE_URL: 'postgres://localhost/x' }).databaseUrl).toBe('postgres://localhost/x');
  });

  describe('refuses invalid values with one line naming the variable and the value', () => {
    it.each([
      ['PORT', 'abc'],
      ['PORT', '80.5'],
      ['PORT', '70000'],
      ['PORT', '-1'],
      ['SLUICE_WORKERS', 'many'],
      ['SLUICE_WORKERS', '-3'],
      ['SLUICE_WORKERS', '1000'],
      ['SLUICE_AUTO_ATTEMPTS', '0'],
      ['SLUICE_BACKOFF_BASE_MS', '1e3'],
      ['SLUICE_LEASE_MS', '500'],
      ['SLUICE_BODY_LIMIT_BYTES', '12'],
      ['SLUICE_ALLOW_PRIVATE_URLS', 'maybe'],
      ['SLUICE_LOG_LEVEL', 'verbose'],
      ['SLUICE_EMBEDDINGS_URL', 'ftp://models.example/v1'],
    ])('%s=%s', (name, value) => {
      const err = configError({ [name]: value });
      expect(err.message).toContain(name);
      expect(err.message).toContain(value);
    });

    it('DATABASE_URL with a scheme other than postgres', () => {
      const err = configError({ DATABASE_URL: 'mysql://db.example/sluice' });
      expect(err.message).toContain('DATABASE_URL');
      expect(err.message).toContain('mysql:');
      expect(err.message).toContain('db.example/sluice');
    });

    it('DATABASE_URL never shows its password', () => {
      const wrongScheme = configError({ DATABASE_URL: 'mysql://admin:hunter2@db.example/sluice' });
      expect(wrongScheme.message).toContain('admin:***@db.example');
      expect(wrongScheme.message).not.toContain('hunter2');
      const unparseable = configError({ DATABASE_URL: 'postgres://admin:hunter2@db example/sluice' });
      expect(unparseable.message).toContain('DATABASE_URL');
      expect(unparseable.message).toContain('admin:***@db example');
      expect(unparseable.message).not.toContain('hunter2');
    });

    it('DATABASE_URL that is not a URL at all', () => {
      const err = configError({ DATABASE_URL: 'localhost:5432' });
      expect(err.message).toMatch(/DATABASE_URL/);
      expect(err.message).toContain('localhost:5432');
    });

    it('SLUICE_BACKOFF_CAP_MS below SLUICE_BACKOFF_BASE_MS, naming both values', () => {
      const err = configError({ SLUICE_BACKOFF_BASE_MS: '5000', SLUICE_BACKOFF_CAP_MS: '4000' });
      expect(err.message).toContain('SLUICE_BACKOFF_CAP_MS');
      expect(err.message).toContain('4000');
      expect(err.message).toContain('SLUICE_BACKOFF_BASE_MS');
      expect(err.message).toContain('5000');
      // The cap alone below the default base is refused too.
      expect(configError({ SLUICE_BACKOFF_CAP_MS: '999' }).message).toContain('999');
    });

    it.each([
      ['no sk_ prefix', 'live_0123456789abcdefghij'],
      ['too short', 'sk_short'],
      ['a character outside the alphabet', 'sk_live_0123456789abc-def'],
      ['surrounded by quotes', '"sk_live_0123456789abcdef"'],
    ])('SLUICE_BOOTSTRAP_API_KEY with %s, showing only its start and length', (_case, value) => {
      const err = configError({ SLUICE_BOOTSTRAP_API_KEY: value });
      expect(err.message).toContain('SLUICE_BOOTSTRAP_API_KEY');
      expect(err.message).toContain(`(${value.length} characters)`);
      expect(err.message).toContain(JSON.stringify(value.slice(0, 6)).slice(0, -1));
      // A secret, even a malformed one, must not land in logs whole.
      if (value.length > 8) expect(err.message).not.toContain(value);
    });
  });
});
