import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Raised when another live process owns the data directory. */
export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
}

const LOCK_FILE = 'sluice.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Creates the lock file with its full content in one step, or returns false when it exists. A file made
 * with `O_EXCL` and then written would be empty for a moment, and a process starting at that moment would
 * read no owner and take it for stale; linking a finished temporary file into place has no such moment.
 */
function createLock(lockPath: string, content: string): boolean {
  const tmp = `${lockPath}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  try {
    fs.linkSync(tmp, lockPath);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // Filesystems without hard links: fall back to O_EXCL and accept the short empty-file window.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    try {
      fs.writeFileSync(lockPath, content, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err2) {
      if ((err2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err2;
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function releaser(lockPath: string, mine: string): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (readOrUndefined(lockPath) === mine) fs.rmSync(lockPath, { force: true });
  };
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A takeover that has not finished in this long belongs to a process that died during it. */
const TAKEOVER_STALE_MS = 10_000;

/**
 * Replaces a stale lock, one process at a time. Moving or deleting a lock by its path races: between
 * reading "stale" and deleting, another process may already have put its own fresh lock there, and
 * deleting that would give the directory two owners. So replacing is serialised by a second exclusive
 * file (`sluice.lock.takeover`): its holder re-reads the lock, and deletes it only while it still holds
 * the stale content it judged. A plain create racing with the takeover is safe: whichever `link` lands
 * first owns the lock, the other reads a live owner.
 */
function takeOverStale(lockPath: string, staleContent: string, mine: string): 'taken' | 'retry' {
  const takeoverPath = `${lockPath}.takeover`;
  if (!createLock(takeoverPath, mine)) {
    try {
      if (Date.now() - fs.statSync(takeoverPath).mtimeMs > TAKEOVER_STALE_MS) fs.rmSync(takeoverPath, { force: true });
    } catch {
      // Finished meanwhile.
    }
    sleepSync(2 + Math.random() * 8);
    return 'retry';
  }
  try {
    if (readOrUndefined(lockPath) !== staleContent) return 'retry';
    fs.rmSync(lockPath, { force: true });
    return createLock(lockPath, mine) ? 'taken' : 'retry';
  } finally {
    if (readOrUndefined(takeoverPath) === mine) fs.rmSync(takeoverPath, { force: true });
  }
}

function readOrUndefined(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Takes the exclusive lock on a data directory. Two PGlite instances on one directory silently lose
 * writes, so the second process must refuse to start instead. The lock is a file holding the owner's pid
 * and host; a lock left by a process that no longer runs (killed with SIGKILL) is taken over.
 * Returns the function that releases it.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const lockPath = path.join(dataDir, LOCK_FILE);
  const mine = `${process.pid}\n${os.hostname()}\n`;
  for (let attempt = 0; attempt < 200; attempt++) {
    if (createLock(lockPath, mine)) return releaser(lockPath, mine);
    const owner = readOrUndefined(lockPath);
    if (owner === undefined) continue; // Released between our attempt and the read: try again.
    const [pidText, host] = owner.split('\n');
    const pid = Number(pidText);
    const sameHost = host === os.hostname();
    if (Number.isInteger(pid) && pid > 0 && (!sameHost || alive(pid))) {
      throw new DataDirLockedError(
        `data directory ${dataDir} is in use by process ${pid}${sameHost ? '' : ` on ${host}`}: ` +
          'stop that process, or set SLUICE_DATA_DIR to another directory, or use DATABASE_URL to share a PostgreSQL database',
      );
    }
    // Stale lock from a process that died without releasing it.
    const outcome = takeOverStale(lockPath, owner, mine);
    if (outcome === 'taken') return releaser(lockPath, mine);
  }
  throw new DataDirLockedError(`could not take the lock on data directory ${dataDir}`);
}
