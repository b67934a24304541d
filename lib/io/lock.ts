/**
 * One writer per folder: `<dir>/.lock` holds "<host> <pid>". A lock whose process is gone (same host) or that
 * is over an hour old (another host) is taken over; a live one is EBUSY. Used by the image store and the
 * feature cache.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MorecError } from '../errors';

export const LOCK_FILE = '.lock';
const STALE_LOCK_MS = 60 * 60 * 1000;

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `dir`'s lock for `what` (named in the EBUSY message); returns its release. */
export function lockFolder(dir: string, what: string): () => void {
  const lock = path.join(dir, LOCK_FILE);
  const me = `${os.hostname()} ${process.pid}`;
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(lock, me, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        const err = e as NodeJS.ErrnoException;
        throw new MorecError(err.code === 'ENOENT' ? 'ENOENT' : 'EIO', `${lock}: cannot create the lock file (${err.code ?? err.message})`, { cause: e });
      }
    }
    let owner = '';
    let age = 0;
    try {
      owner = fs.readFileSync(lock, 'utf8').trim();
      age = Date.now() - fs.statSync(lock).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    const [host, pidText] = owner.split(' ');
    const pid = Number(pidText);
    const alive = host === os.hostname() ? Number.isInteger(pid) && pidAlive(pid) : age < STALE_LOCK_MS;
    if (alive)
      throw new MorecError('EBUSY', `${dir}: another ${what} is running (${host === os.hostname() ? `process ${pid}` : `host ${host}, process ${pidText}`}; ${lock}); wait for it or stop it`);
    fs.rmSync(lock, { force: true }); // stale: its process is gone
  }
  return () => {
    try {
      if (fs.readFileSync(lock, 'utf8').trim() === me) fs.rmSync(lock, { force: true });
    } catch {
      // already gone
    }
  };
}
