import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBase36 } from '../../src/ids/new-id.js';
import { createScratchDatabase } from '../helpers/test-db.js';

/** The repository root: children run `bin/sluice.js` from here, on the dist/ that global setup built. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin', 'sluice.js');

/** A child's exit. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned `sluice` command. */
export interface SluiceProcess {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves when the process has exited (and been reaped). */
  exited: Promise<Exit>;
  /** Sends `signal` and waits (bounded) for the exit; SIGKILL if it does not come. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

const running = new Set<SluiceProcess>();

/**
 * The child's environment: the parent's, minus everything Sluice reads, so that a developer's own
 * DATABASE_URL or SLUICE_* settings can never leak into a test; then `env`.
 */
function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('SLUICE_') || k === 'DATABASE_URL' || k === 'PORT' || k === 'HOST') continue;
    out[k] = v;
  }
  out.SLUICE_LOG_LEVEL = 'warn';
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** Starts `node bin/sluice.js …args`. Every process started here is killed by {@link killAll}. */
export function startSluice(args: string[], env: Record<string, string | undefined> = {}): SluiceProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<Exit>((resolve) => {
    // 'close' rather than 'exit': it also waits for stdout/stderr to be drained.
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const proc: SluiceProcess = {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  running.add(proc);
  exited.then(() => running.delete(proc));
  return proc;
}

/** Runs a command to completion (bounded) and returns its exit and output. */
export async function runSluice(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 60_000,
): Promise<Exit & { stdout: string; stderr: string }> {
  const proc = startSluice(args, env);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  try {
    const exit = await proc.exited;
    return { ...exit, stdout: proc.stdout, stderr: proc.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Kills every child still running (afterEach/afterAll): a failed test must never leave a server behind. */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGKILL', 5_000)));
}

/**
 * A port that was free a moment ago. PORT=0 would be free for sure, but then the port must be parsed from
 * the child's output; a port found by listening on 0 and closing is free unless something grabs it first.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Polls `GET /v1/health` until it answers 200. Fails early, with the child's output, if the process
 * exits; fails after `timeoutMs` otherwise.
 */
export async function waitForHealth(proc: SluiceProcess, baseUrl: string, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exit: Exit | undefined;
  proc.exited.then((e) => {
    exit = e;
  });
  while (Date.now() < deadline) {
    if (exit) {
      throw new Error(`sluice exited (${exit.code ?? exit.signal}) before it was healthy:\n${proc.stdout}\n${proc.stderr}`);
    }
    try {
      const res = await fetch(`${baseUrl}/v1/health`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sluice was not healthy within ${timeoutMs} ms:\n${proc.stdout}\n${proc.stderr}`);
}

/** Waits (bounded) until the child's stdout matches; fails early, with its output, if it exits. */
export async function waitForOutput(proc: SluiceProcess, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(proc.stdout)) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`sluice exited before printing ${pattern}:\n${proc.stdout}\n${proc.stderr}`);
    }
    if (Date.now() > deadline) throw new Error(`sluice did not print ${pattern} within ${timeoutMs} ms:\n${proc.stdout}\n${proc.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A fresh temporary directory (the caller removes it). */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sluice-${prefix}-`));
}

/** What a backend means for a child process: the env that selects it, and how to throw it away. */
export interface ProcessDatabase {
  /** `{DATABASE_URL}` on PostgreSQL, `{}` on PGlite (the data dir holds the database). */
  env: Record<string, string>;
  /** The connection string on PostgreSQL. */
  url: string | undefined;
  drop(): Promise<void>;
}

/**
 * A database for child processes. PGlite: nothing (the child opens `<data dir>/pgdata`). PostgreSQL: a
 * fresh copy of the migrated template, or an empty database when `empty`.
 */
export async function processDatabase(backend: 'pglite' | 'postgres', opts: { empty?: boolean } = {}): Promise<ProcessDatabase> {
  if (backend === 'pglite') return { env: {}, url: undefined, async drop() {} };
  const scratch = await createScratchDatabase('sluice_p', opts);
  return { env: { DATABASE_URL: scratch.url }, url: scratch.url, drop: scratch.drop };
}

/** A bootstrap key in the format SLUICE_BOOTSTRAP_API_KEY accepts. */
export function randomBootstrapKey(): string {
  return `sk_test_${randomBase36(32)}`;
}

/** `fetch` with the key as a bearer token and a JSON body, answering status and parsed body. */
export async function api(
  baseUrl: string,
  method: string,
  url: string,
  opts: { key?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${baseUrl}${url}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: keep the text for the assertion message.
  }
  return { status: res.status, body, headers: res.headers };
}

/** A valid namespace creation body. */
export function namespaceBody(name: string): Record<string, unknown> {
  return { namespace_name: name, feature_extractors: [{ feature_extractor_name: 'text_extractor', version: 'v1' }] };
}

/** Starts `sluice serve` on a free port and waits until it is healthy. */
export async function startServer(
  dataDir: string,
  env: Record<string, string | undefined> = {},
): Promise<{ proc: SluiceProcess; baseUrl: string }> {
  const port = await freePort();
  const proc = startSluice(['serve'], {
    PORT: String(port),
    HOST: '127.0.0.1',
    SLUICE_DATA_DIR: dataDir,
    SLUICE_WORKERS: '1',
    ...env,
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitForHealth(proc, baseUrl);
  return { proc, baseUrl };
}
