/**
 * sha256 of large files and buffers without holding the event loop: files are read in 1 MiB reads through
 * libuv's thread pool, buffers in memory are hashed in 8 MiB slices (a few milliseconds each) with a turn of
 * the event loop between them, so timers, sockets and progress callbacks keep running during a checkpoint
 * save or load, a data set fingerprint or an encoder's hash.
 */
import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { MorecError } from '../errors';

/** Bytes hashed (or checked) between two turns of the event loop. */
export const SLICE_BYTES = 8 << 20;
const READ_BYTES = 1 << 20;

const read = promisify(fs.read);
const open = promisify(fs.open);
const close = promisify(fs.close);

/** Resolves after the event loop has run its pending timers and I/O callbacks once. */
export const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** sha256 (hex) of bytes in memory, hashed in slices with a turn of the event loop between them. */
export async function sha256Of(bytes: Uint8Array): Promise<string> {
  const h = createHash('sha256');
  for (let at = 0; at < bytes.length; at += SLICE_BYTES) {
    if (at > 0) await yieldToLoop();
    h.update(bytes.subarray(at, Math.min(bytes.length, at + SLICE_BYTES)));
  }
  return h.digest('hex');
}

/**
 * Feeds the file open as `fd`, from its current position to its end, into `h`; returns the bytes read.
 * Read errors are thrown as they come (the caller names the file).
 */
export async function hashFd(h: Hash, fd: number): Promise<number> {
  const buf = Buffer.allocUnsafe(READ_BYTES);
  let bytes = 0;
  for (;;) {
    const { bytesRead: n } = await read(fd, buf, 0, buf.length, null);
    if (n === 0) return bytes;
    h.update(buf.subarray(0, n));
    bytes += n;
  }
}

/** sha256 of a file, read in chunks without blocking the event loop for long (a large model takes a while). */
export async function hashFile(file: string): Promise<{ sha256: string; bytes: number }> {
  const cannot = (e: unknown) => {
    const code = (e as NodeJS.ErrnoException).code;
    return new MorecError(code === 'ENOENT' ? 'ENOENT' : 'EIO', `${file}: cannot be read (${code ?? (e as Error).message})`, { cause: e });
  };
  let fd: number;
  try {
    fd = await open(file, 'r');
  } catch (e) {
    throw cannot(e);
  }
  const h = createHash('sha256');
  try {
    const bytes = await hashFd(h, fd);
    return { sha256: h.digest('hex'), bytes };
  } catch (e) {
    throw cannot(e);
  } finally {
    await close(fd);
  }
}
