import { parseArgs } from 'node:util';
import { ensureUser, insertApiKey } from '../api-keys/service.js';
import { PERMISSIONS, type Permission } from '../auth/permissions.js';
import { ConfigError, loadConfig } from '../config/config.js';
import { DataDirLockedError } from '../db/data-dir-lock.js';
import { migrate } from '../db/migrate.js';
import { openDb } from '../db/open-db.js';
import { createWorker } from '../engine/create-worker.js';
import { ApiError } from '../errors/registry.js';
import {
  ADMIN_EMAIL,
  createOrganization,
  ensureDefaultOrganization,
  findOrganization,
} from '../organizations/service.js';
import { createServer } from '../server/create-server.js';
import { SLUICE_VERSION } from '../version.js';

const USAGE = `sluice ${SLUICE_VERSION}: self-hosted ingestion engine speaking the Mixpeek v1 API

Usage:
  sluice serve   [--port N] [--host H] [--data-dir DIR] [--database-url URL] [--workers N]
                 API and in-process workers (embedded PGlite unless DATABASE_URL is set)
  sluice worker  [--database-url URL] [--workers N]
                 workers only; needs PostgreSQL (DATABASE_URL)
  sluice migrate [--data-dir DIR] [--database-url URL]
                 apply database migrations and exit
  sluice keys create [--org NAME] [--email EMAIL] [--name NAME] [--permissions read,write,delete,admin]
                 create an API key and print it (once)
  sluice org create NAME [--email EMAIL]
                 create an organization and print its first admin key (once)

Every flag mirrors an environment variable (PORT, HOST, SLUICE_DATA_DIR, DATABASE_URL, SLUICE_WORKERS);
see README.md for the full list.`;

const FLAG_ENV: Record<string, string> = {
  port: 'PORT',
  host: 'HOST',
  'data-dir': 'SLUICE_DATA_DIR',
  'database-url': 'DATABASE_URL',
  workers: 'SLUICE_WORKERS',
};

/** Exit codes: 0 done, 1 runtime failure, 2 bad usage or configuration. */
class UsageError extends Error {}

function configFrom(values: Record<string, unknown>) {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [flag, name] of Object.entries(FLAG_ENV)) {
    const v = values[flag];
    if (typeof v === 'string') env[name] = v;
  }
  return loadConfig(env);
}

function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`sluice: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`sluice: ${signal} received, shutting down gracefully\n`);
    stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`sluice: error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

function parsePermissions(raw: string): Permission[] {
  const list = raw.split(',').map((p) => p.trim()).filter(Boolean);
  const bad = list.filter((p) => !(PERMISSIONS as readonly string[]).includes(p));
  if (bad.length > 0 || list.length === 0) {
    throw new UsageError(`--permissions must list some of ${PERMISSIONS.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return list as Permission[];
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      'database-url': { type: 'string' },
      workers: { type: 'string' },
    },
  });
  const config = configFrom(values);
  const server = await createServer({ config });
  onSignals(() => server.close());
  const where = config.databaseUrl ? 'PostgreSQL' : `embedded PGlite in ${config.dataDir}`;
  process.stdout.write(`sluice ${SLUICE_VERSION} listening on ${server.url} (${where}, ${config.workers} workers)\n`);
  process.stdout.write(`  API docs: ${server.url}/docs   OpenAPI: ${server.url}/openapi.json\n`);
  if (server.bootstrap.createdAdminKey) {
    process.stdout.write(
      `\n  Admin API key (shown once; also saved to ${server.bootstrap.adminKeyFile}):\n    ${server.bootstrap.createdAdminKey}\n\n`,
    );
  }
}

async function worker(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { 'database-url': { type: 'string' }, workers: { type: 'string' } },
  });
  const config = configFrom(values);
  if (!config.databaseUrl) {
    throw new UsageError(
      'sluice worker needs DATABASE_URL (PostgreSQL): the embedded database belongs to one process, where `sluice serve` runs the workers',
    );
  }
  const db = await openDb(config, 'sluice-worker');
  await migrate(db);
  const loop = await createWorker({
    db,
    config,
    concurrency: Math.max(1, config.workers),
    onError: (err) => process.stderr.write(`sluice worker: round failed: ${(err as Error).message}\n`),
  });
  onSignals(async () => {
    await loop.stop();
    await db.close();
  });
  process.stdout.write(`sluice worker ${SLUICE_VERSION} running (${Math.max(1, config.workers)} concurrent units)\n`);
}

async function migrateCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { 'data-dir': { type: 'string' }, 'database-url': { type: 'string' } } });
  const db = await openDb(configFrom(values), 'sluice-migrate');
  try {
    const applied = await migrate(db);
    process.stdout.write(applied.length ? `applied migrations ${applied.join(', ')}\n` : 'database is up to date\n');
  } finally {
    await db.close();
  }
}

async function keysCreate(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      org: { type: 'string' },
      email: { type: 'string' },
      name: { type: 'string' },
      permissions: { type: 'string' },
      'data-dir': { type: 'string' },
      'database-url': { type: 'string' },
    },
  });
  const permissions = parsePermissions(values.permissions ?? 'admin');
  const name = values.name ?? `cli-${new Date().toISOString().replace(/[^0-9]/g, '').slice(0, 14)}`;
  const email = values.email ?? ADMIN_EMAIL;
  const db = await openDb(configFrom(values), 'sluice-cli');
  try {
    await migrate(db);
    const key = await db.transaction(async (tx) => {
      const org = values.org ? await findOrganization(tx, values.org) : await ensureDefaultOrganization(tx);
      if (!org) throw new UsageError(`organization ${JSON.stringify(values.org)} does not exist (create it with: sluice org create NAME)`);
      const user = await ensureUser(tx, org.id, email);
      return insertApiKey(tx, { organizationId: org.id, userId: user.id, name, permissions, createdBy: 'cli' });
    });
    process.stderr.write(`created API key ${JSON.stringify(name)} for ${email} with [${permissions.join(', ')}] (shown once):\n`);
    process.stdout.write(`${key.key}\n`);
  } finally {
    await db.close();
  }
}

async function orgCreate(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { email: { type: 'string' }, 'data-dir': { type: 'string' }, 'database-url': { type: 'string' } },
  });
  const name = positionals[0];
  if (!name || positionals.length > 1 || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(name)) {
    throw new UsageError(`sluice org create takes one NAME of letters, digits, _ . - (got ${JSON.stringify(positionals.join(' '))})`);
  }
  const email = values.email ?? `admin@${name.toLowerCase()}.local`;
  const db = await openDb(configFrom(values), 'sluice-cli');
  try {
    await migrate(db);
    const { organization, adminKey } = await createOrganization(db, name, email);
    process.stderr.write(`created organization ${organization.name} (${organization.id}); admin key for ${email} (shown once):\n`);
    process.stdout.write(`${adminKey}\n`);
  } finally {
    await db.close();
  }
}

/** Runs the `sluice` command line. */
export async function main(argv: string[]): Promise<void> {
  const [command, sub, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(`${USAGE}\n`);
    } else if (command === '--version' || command === 'version') {
      process.stdout.write(`${SLUICE_VERSION}\n`);
    } else if (command === 'serve') {
      await serve(argv.slice(1));
    } else if (command === 'worker') {
      await worker(argv.slice(1));
    } else if (command === 'migrate') {
      await migrateCommand(argv.slice(1));
    } else if (command === 'keys' && sub === 'create') {
      await keysCreate(rest);
    } else if (command === 'org' && sub === 'create') {
      await orgCreate(rest);
    } else {
      throw new UsageError(`unknown command ${JSON.stringify(argv.join(' '))}; run sluice --help`);
    }
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    // parseArgs rejects unknown flags, missing flag values and stray positionals: bad usage, like ours.
    const badUsage =
      err instanceof UsageError || err instanceof ConfigError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_'));
    const known =
      badUsage ||
      err instanceof DataDirLockedError ||
      err instanceof ApiError ||
      code === 'EADDRINUSE' ||
      /cannot connect to PostgreSQL/.test((err as Error).message);
    process.stderr.write(`sluice: ${(err as Error).message}\n`);
    if (!known) process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(badUsage ? 2 : 1);
  }
}
