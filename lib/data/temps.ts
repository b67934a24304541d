/**
 * Temp files and folders of the data cache are written as `<final name>.tmp-<host>-<pid>` and renamed into
 * place when complete. An interrupted build leaves one behind; the next prepare removes those whose process
 * is gone (same host) or that are older than an hour (any host: a cache folder may be shared).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const STALE_TEMP_MS = 60 * 60 * 1000;

export function tempSuffix(): string {
  return `.tmp-${os.hostname()}-${process.pid}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes stale temp entries (files or folders) directly under `root`; returns how many. */
export function cleanStaleTemps(root: string, now = Date.now()): number {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const n of names) {
    // `.tmp-<host>-<pid>`; the older `.tmp-<pid>` has no host and counts as this host's
    const m = /\.tmp-(?:(.+)-)?(\d{1,7})$/.exec(n); // pids have at most 7 digits: a cache entry (16 hex) never matches
    if (!m) continue;
    const host = m[1], pid = Number(m[2]);
    const ours = host === undefined || host === os.hostname();
    if (ours && pid === process.pid) continue;
    const full = path.join(root, n);
    let age: number;
    try {
      age = now - fs.lstatSync(full).mtimeMs;
    } catch {
      continue;
    }
    if (!(ours && !pidAlive(pid)) && age <= STALE_TEMP_MS) continue;
    try {
      fs.rmSync(full, { recursive: true, force: true });
      removed++;
    } catch {
      // another process may be removing it too
    }
  }
  return removed;
}
