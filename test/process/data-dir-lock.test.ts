import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DataDirLockedError, lockDataDir } from '../../src/db/data-dir-lock.js';
import { BACKENDS } from '../helpers/test-db.js';
import {
  api,
  freePort,
  killAll,
  namespaceBody,
  type ProcessDatabase,
  processDatabase,
  ROOT,
  randomBootstrapKey,
  runSluice,
  startServer,
  tempDir,
} from './sluice-process.js';

/** A pid that ran a moment ago and no longer does. */
function deadPid(): number {
  const result = spawnSync(process.execPath, ['-e', '']);
  return result.pid!;
}

// A child that takes the lock when it reads `go` on stdin, reports the outcome, and holds the lock until
// stdin closes: all children are released together so that they really race.
const RACER = `
import { lockDataDir } from ${JSON.stringify(new URL(`file://${path.join(ROOT, 'dist', 'db', 'data-dir-lock.js')}`).href)};
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  input += d;
  if (!input.includes('go')) return;
  input = '';
  try { lockDataDir(process.argv[1]); process.stdout.write('locked\\n'); }
  catch (err) { process.stdout.write(err.name + '\\n'); }
});
process.stdin.on('end', () => process.exit(0));
process.stdout.write('ready\\n');
`;

/** Starts `n` racers on `dir`, releases them at once, and returns what each reported. */
async function race(dir: string, n: number): Promise<string[]> {
  const kids = Array.from({ length: n }, () =>
    spawn(process.execPath, ['--input-type=module', '-e', RACER, dir], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  try {
    const outputs = kids.map(() => '');
    kids.forEach((kid, i) => {
      kid.stdout.on('data', (d: Buffer) => {
        outputs[i] += d.toString();
      });
    });
    const said = async (i: number, pattern: RegExp) => {
      const deadline = Date.now() + 20_000;
      while (!pattern.test(outputs[i]!)) {
        if (Date.now() > deadline) throw new Error(`racer ${i} said only ${JSON.stringify(outputs[i])}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await Promise.all(kids.map((_, i) => said(i, /ready/)));
    for (const kid of kids) kid.stdin.write('go\n');
    await Promise.all(kids.map((_, i) => said(i, /ready\n\w+\n/)));
    return outputs.map((o) => o.replace('ready\n', '').trim());
  } finally {
    for (const kid of kids) kid.kill('SIGKILL');
  }
}

for (const backend of BACKENDS) {
  // Several cold PGlite starts per test: slow when the whole suite shares two cores, still bounded.
  describe(`data directory lock (${backend.name})`, { timeout: 180_000 }, () => {
    const dirs: string[] = [];
    const databases: ProcessDatabase[] = [];
    const newDir = (prefix: string) => {
      const dir = tempDir(prefix);
      dirs.push(dir);
      return dir;
    };
    afterEach(killAll);
    afterAll(async () => {
      await killAll();
      for (const db of databases) await db.drop();
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    });

    if (backend.name === 'pglite') {
      it('refuses a second server on a locked data dir, and takes over the lock of a killed one', async () => {
        const dataDir = newDir('lock');
        const key = randomBootstrapKey();
        const first = await startServer(dataDir, { SLUICE_BOOTSTRAP_API_KEY: key });
        const firstPid = first.proc.child.pid!;
        const created = await api(first.baseUrl, 'POST', '/v1/namespaces', { key, body: namespaceBody('kept') });
        expect(created.status).toBe(200);

        const port = await freePort();
        const second = await runSluice(['serve'], {
          PORT: String(port),
          SLUICE_DATA_DIR: dataDir,
          SLUICE_BOOTSTRAP_API_KEY: key,
        });
        expect(second.code).not.toBe(0);
        expect(second.code).not.toBeNull();
        expect(second.stderr).toContain(dataDir);
        expect(second.stderr).toContain(`process ${firstPid}`);
        // One clear line, not a stack trace.
        expect(second.stderr.trim().split('\n')).toHaveLength(1);
        // The refused process neither stole nor removed the lock, and the first server is unharmed.
        expect(fs.readFileSync(path.join(dataDir, 'sluice.lock'), 'utf8').split('\n')[0]).toBe(String(firstPid));
        expect((await api(first.baseUrl, 'GET', '/v1/namespaces/kept', { key })).status).toBe(200);

        // Offline CLI commands open the same database, so they are refused the same way.
        const cli = await runSluice(['keys', 'create'], { SLUICE_DATA_DIR: dataDir });
        expect(cli.code).toBe(1);
        expect(cli.stderr).toContain(dataDir);
        expect(cli.stderr).toContain(`process ${firstPid}`);

        // SIGKILL leaves the lock file behind: a stale lock, owned by a pid that no longer runs.
        expect(await first.proc.stop('SIGKILL')).toMatchObject({ signal: 'SIGKILL' });
        expect(fs.existsSync(path.join(dataDir, 'sluice.lock'))).toBe(true);

        const third = await startServer(dataDir, { SLUICE_BOOTSTRAP_API_KEY: key });
        expect(fs.readFileSync(path.join(dataDir, 'sluice.lock'), 'utf8').split('\n')[0]).toBe(String(third.proc.child.pid));
        const kept = await api(third.baseUrl, 'GET', '/v1/namespaces/kept', { key });
        expect(kept.status).toBe(200);
        expect((kept.body as { namespace_id: string }).namespace_id).toBe((created.body as { namespace_id: string }).namespace_id);
        expect(await third.proc.stop()).toEqual({ code: 0, signal: null });
        expect(fs.existsSync(path.join(dataDir, 'sluice.lock'))).toBe(false);
      });

      it('releases the lock when start-up fails after taking it (port in use)', async () => {
        const dataDir = newDir('port-busy');
        const blocker = net.createServer();
        await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
        const { port } = blocker.address() as net.AddressInfo;
        try {
          const res = await runSluice(['serve'], { PORT: String(port), SLUICE_DATA_DIR: dataDir });
          expect(res.code).toBe(1);
          expect(res.stderr).toMatch(/EADDRINUSE/);
          expect(res.stderr).toContain(String(port));
        } finally {
          await new Promise((resolve) => blocker.close(resolve));
        }
        expect(fs.existsSync(path.join(dataDir, 'sluice.lock'))).toBe(false);
        // Nothing is left half-held: a server starts on the same directory at once.
        const ok = await startServer(dataDir);
        expect(await ok.proc.stop()).toEqual({ code: 0, signal: null });
      });

      describe('lockDataDir', () => {
        it('refuses a second lock on the same directory, naming it and the owner pid', () => {
          const dir = newDir('unit');
          const release = lockDataDir(dir);
          try {
            let thrown: unknown;
            try {
              lockDataDir(dir);
            } catch (err) {
              thrown = err;
            }
            expect(thrown).toBeInstanceOf(DataDirLockedError);
            expect((thrown as Error).message).toContain(dir);
            expect((thrown as Error).message).toContain(`process ${process.pid}`);
          } finally {
            release();
          }
          expect(fs.existsSync(path.join(dir, 'sluice.lock'))).toBe(false);
          // Released: it can be taken again, and releasing twice is harmless.
          const again = lockDataDir(dir);
          again();
          again();
          expect(fs.existsSync(path.join(dir, 'sluice.lock'))).toBe(false);
        });

        it('creates the directory and leaves no temporary files behind', () => {
          const dir = path.join(newDir('unit'), 'nested', 'data');
          const release = lockDataDir(dir);
          expect(fs.readdirSync(dir)).toEqual(['sluice.lock']);
          expect(fs.readFileSync(path.join(dir, 'sluice.lock'), 'utf8')).toBe(`${process.pid}\n${os.hostname()}\n`);
          release();
          expect(fs.readdirSync(dir)).toEqual([]);
        });

        it('takes over a lock whose owner is dead, or whose content is unreadable', () => {
          const dir = newDir('unit');
          const lockFile = path.join(dir, 'sluice.lock');
          for (const stale of [`${deadPid()}\n${os.hostname()}\n`, '', 'garbage']) {
            fs.writeFileSync(lockFile, stale);
            const release = lockDataDir(dir);
            expect(fs.readFileSync(lockFile, 'utf8')).toBe(`${process.pid}\n${os.hostname()}\n`);
            release();
            expect(fs.existsSync(lockFile)).toBe(false);
          }
          expect(fs.readdirSync(dir)).toEqual([]);
        });

        it('lets exactly one of several processes racing for a lock win, stale lock or none', async () => {
          // Repeated because a race shows only sometimes: before the takeover re-checked what it had moved
          // aside, about half of these rounds ended with two owners of one data directory.
          for (let round = 0; round < 8; round++) {
            const dir = newDir('race');
            if (round % 2 === 0) fs.writeFileSync(path.join(dir, 'sluice.lock'), `${deadPid()}\n${os.hostname()}\n`);
            const outcomes = await race(dir, 5);
            expect(outcomes.filter((o) => o === 'locked'), outcomes.join(',')).toHaveLength(1);
            expect(outcomes.filter((o) => o !== 'locked').every((o) => o === 'DataDirLockedError')).toBe(true);
            expect(fs.readdirSync(dir)).toEqual(['sluice.lock']);
          }
        });

        it('refuses a lock held from another host, since that pid cannot be checked from here', () => {
          const dir = newDir('unit');
          fs.writeFileSync(path.join(dir, 'sluice.lock'), `${deadPid()}\nsome-other-host\n`);
          expect(() => lockDataDir(dir)).toThrow(/in use by process \d+ on some-other-host/);
          expect(fs.readFileSync(path.join(dir, 'sluice.lock'), 'utf8')).toContain('some-other-host');
        });

        it('does not delete a lock that is no longer its own when released', () => {
          const dir = newDir('unit');
          const lockFile = path.join(dir, 'sluice.lock');
          const release = lockDataDir(dir);
          // Someone removed our lock and another owner took it: our release must leave theirs alone.
          fs.writeFileSync(lockFile, `1\n${os.hostname()}\n`);
          release();
          expect(fs.readFileSync(lockFile, 'utf8')).toBe(`1\n${os.hostname()}\n`);
        });
      });
    } else {
      it('lets several servers share one data dir, since PostgreSQL holds the data', async () => {
        const dataDir = newDir('shared');
        const database = await processDatabase('postgres');
        databases.push(database);
        const key = randomBootstrapKey();
        const env = { SLUICE_BOOTSTRAP_API_KEY: key, ...database.env };
        const [a, b] = await Promise.all([startServer(dataDir, env), startServer(dataDir, env)]);
        expect(fs.existsSync(path.join(dataDir, 'sluice.lock'))).toBe(false);
        const created = await api(a.baseUrl, 'POST', '/v1/namespaces', { key, body: namespaceBody('shared') });
        expect(created.status).toBe(200);
        const seen = await api(b.baseUrl, 'GET', '/v1/namespaces/shared', { key });
        expect(seen.status).toBe(200);
        expect((seen.body as { namespace_id: string }).namespace_id).toBe((created.body as { namespace_id: string }).namespace_id);
        expect(await a.proc.stop()).toEqual({ code: 0, signal: null });
        expect(await b.proc.stop()).toEqual({ code: 0, signal: null });
      });
    }
  });
}
