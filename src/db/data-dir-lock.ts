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
 * Takes the exclusive lock on a data directory. Two PGlite instances on one directory silently lose
 * writes, so the second process must refuse to start instead. The lock is a file created with `O_EXCL`
 * holding the owner's pid; a lock left by a process that no longer runs (killed with SIGKILL) is taken over.
 * Returns the function that releases it.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const lockPath = path.join(dataDir, LOCK_FILE);
  const mine = `${process.pid}\n${os.hostname()}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(lockPath, mine, { flag: 'wx', mode: 0o600 });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          if (fs.readFileSync(lockPath, 'utf8') === mine) fs.unlinkSync(lockPath);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = '';
    try {
      owner = fs.readFileSync(lockPath, 'utf8');
    } catch {
      continue; // Released between our attempt and the read: try again.
    }
    const [pidText, host] = owner.split('\n');
    const pid = Number(pidText);
    const sameHost = host === os.hostname();
    if (Number.isInteger(pid) && pid > 0 && (!sameHost || alive(pid))) {
      throw new DataDirLockedError(
        `data directory ${dataDir} is in use by process ${pid}${sameHost ? '' : ` on ${host}`}: ` +
          'stop that process, or set SLUICE_DATA_DIR to another directory, or use DATABASE_URL to share a PostgreSQL database',
      );
    }
    // Stale lock from a process that died without releasing it. Rename first so that two processes
    // racing to take over cannot both succeed: only one rename of the same file wins.
    try {
      fs.renameSync(lockPath, `${lockPath}.stale-${process.pid}`);
      fs.unlinkSync(`${lockPath}.stale-${process.pid}`);
    } catch {
      // Another process took it over first; loop and read its lock.
    }
  }
  throw new DataDirLockedError(`could not take the lock on data directory ${dataDir}`);
}
