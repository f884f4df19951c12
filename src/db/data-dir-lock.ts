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
  for (let attempt = 0; attempt < 5; attempt++) {
    if (createLock(lockPath, mine)) {
      let released = false;
      return () => {
        if (released) return;
        released = true;
        if (readOrUndefined(lockPath) === mine) fs.rmSync(lockPath, { force: true });
      };
    }
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
    // Stale lock from a process that died without releasing it. Move it aside under a name only this
    // process uses, then check that what moved is the stale lock: another process may have taken the
    // stale lock over and created its own between our read and our rename.
    const aside = `${lockPath}.stale-${process.pid}`;
    try {
      fs.renameSync(lockPath, aside);
    } catch {
      continue; // Someone else moved it first; read the lock again.
    }
    if (readOrUndefined(aside) !== owner) {
      // We moved a live owner's fresh lock: put it back (unless yet another lock appeared meanwhile).
      try {
        fs.linkSync(aside, lockPath);
      } catch {
        // A third process holds the lock now; the loop reads it.
      }
    }
    fs.rmSync(aside, { force: true });
  }
  throw new DataDirLockedError(`could not take the lock on data directory ${dataDir}`);
}
