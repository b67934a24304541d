/**
 * The safetensors format (8-byte little-endian header length, JSON header, raw little-endian data), read
 * and written in TypeScript. Writes are atomic: a temp file in the same folder, fsync, then rename.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from '../errors';
import { SLICE_BYTES } from './hash';

export type TensorData = Float32Array | Int32Array | BigInt64Array | Float64Array;

export interface Tensor {
  dtype: 'F32' | 'I32' | 'I64' | 'F64';
  shape: number[];
  data: TensorData;
}

const BYTES = { F32: 4, I32: 4, I64: 8, F64: 8 } as const;

function dtypeOf(data: TensorData): Tensor['dtype'] {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof BigInt64Array) return 'I64';
  return 'F64';
}

export function readSafetensors(file: string): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  return parseSafetensors(fs.readFileSync(file), file);
}

/**
 * Parses a safetensors file already in memory; `file` names it in errors. Each tensor gets its own copy of
 * its data, unless options.views: then a tensor whose data is aligned in `buf` (all of them in files this
 * module writes) is a view into `buf` -- no copy and no second allocation of a large file, for readers that
 * hand the values on at once (a checkpoint load), not for keeping (the views hold all of `buf`).
 */
export function parseSafetensors(buf: Buffer, file: string, options: { views?: boolean } = {}): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const bad = (why: string) => new MorecError('EFORMAT', `${file}: not a valid safetensors file (${why})`);
  if (buf.length < 8) throw bad('shorter than its 8-byte header length');
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen > buf.length - 8) throw bad(`header length ${headerLen} exceeds the file size`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  } catch (e) {
    throw bad(`header is not JSON: ${(e as Error).message}`);
  }
  const dataStart = 8 + headerLen;
  const tensors: Record<string, Tensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (typeof e !== 'object' || e === null || !Array.isArray(e.shape) || !e.shape.every((x) => Number.isInteger(x) && x >= 0) || !Array.isArray(e.data_offsets))
      throw bad(`tensor '${name}' has no valid shape and data_offsets`);
    if (!(e.dtype in BYTES)) throw bad(`tensor '${name}' has unsupported dtype ${e.dtype}`);
    const dtype = e.dtype as Tensor['dtype'];
    const [b, end] = e.data_offsets;
    const count = e.shape.reduce((a, x) => a * x, 1);
    if (end - b !== count * BYTES[dtype] || dataStart + end > buf.length)
      throw bad(`tensor '${name}' has data_offsets [${b}, ${end}] inconsistent with shape [${e.shape}]`);
    // A copy, unless views were asked for and the data is aligned to its element size (as a typed array needs).
    let ab: ArrayBufferLike = buf.buffer;
    let at = buf.byteOffset + dataStart + b;
    if (!options.views || at % BYTES[dtype] !== 0) {
      const bytes = new Uint8Array(end - b);
      bytes.set(buf.subarray(dataStart + b, dataStart + end));
      ab = bytes.buffer;
      at = 0;
    }
    const data =
      dtype === 'F32' ? new Float32Array(ab, at, count) : dtype === 'I32' ? new Int32Array(ab, at, count) : dtype === 'I64' ? new BigInt64Array(ab, at, count) : new Float64Array(ab, at, count);
    tensors[name] = { dtype, shape: e.shape, data };
  }
  return { tensors, metadata };
}

/**
 * A safetensors file as the chunks to write: the 8-byte header length, the JSON header (padded so the data
 * starts 8-byte aligned), then each tensor's bytes -- views of the tensors' own memory, nothing copied.
 * Tensor order follows the object's key order.
 */
export function encodeSafetensors(tensors: Record<string, { shape: number[]; data: TensorData }>, metadata: Record<string, string> = {}): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const parts: Uint8Array[] = [];
  if (typeof tensors !== 'object' || tensors === null) throw new MorecError('EINVAL', `Expected an object of named tensors for tensors but received ${tensors}`);
  for (const [name, t] of Object.entries(tensors)) {
    if (typeof t !== 'object' || t === null || !Array.isArray(t.shape) || !t.shape.every((x) => Number.isInteger(x) && x >= 0) || !ArrayBuffer.isView(t.data))
      throw new MorecError('EINVAL', `Expected tensor '${name}' as { shape: non-negative integers, data: a typed array }`);
    const count = t.shape.reduce((a, x) => a * x, 1);
    if (count !== t.data.length)
      throw new MorecError('EINVAL', `tensor '${name}' has ${t.data.length} values but shape [${t.shape}] needs ${count}`);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: dtypeOf(t.data), shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [len, Buffer.from(json, 'utf8'), ...parts];
}

/** Writes `file` atomically (see writeAtomic); large files that must not hold the event loop: writeAtomicAsync(file, encodeSafetensors(...)). */
export function writeSafetensors(file: string, tensors: Record<string, { shape: number[]; data: TensorData }>, metadata: Record<string, string> = {}): WrittenFile {
  return writeAtomic(file, encodeSafetensors(tensors, metadata));
}

export interface WrittenFile {
  bytes: number;
  sha256: string;
}

/** Temp files of writeAtomic are named `<file>.tmp-<pid>-<time>`. */
export const TEMP_MARK = '.tmp-';

/**
 * Writes chunks to a temp file beside `file`, fsyncs it, renames it over `file` and fsyncs the folder, so
 * `file` is either its old content or the new one, never a mix. Returns the size and sha256 written.
 * A failed write (ENOSPC, EACCES, ...) removes the temp file and throws a MorecError EIO naming `file`.
 * Synchronous, for small files (JSON, reports) written from synchronous code; writeAtomicAsync is the same
 * write for large ones.
 */
export function writeAtomic(file: string, chunks: Uint8Array[]): WrittenFile {
  const tmp = tempName(file);
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  let fd: number | undefined;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fd = fs.openSync(tmp, 'w');
    for (const c of chunks) {
      let written = 0;
      while (written < c.length) written += fs.writeSync(fd, c, written, c.length - written);
      hash.update(c);
      bytes += c.length;
    }
    injectFault();
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw writeError(e, file);
  }
  syncFolder(path.dirname(file));
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * writeAtomic through fs.promises, for files of many megabytes (checkpoints): the writes and fsyncs run in
 * libuv's thread pool and the data is written in 8 MiB slices, each hashed while it is being written, so the
 * event loop is never held for more than one slice's hash (a few milliseconds). Same guarantees and errors.
 */
export async function writeAtomicAsync(file: string, chunks: Uint8Array[]): Promise<WrittenFile> {
  const tmp = tempName(file);
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  let handle: fs.promises.FileHandle | undefined;
  try {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    handle = await fs.promises.open(tmp, 'w');
    for (const c of chunks) {
      for (let at = 0; at < c.length; at += SLICE_BYTES) {
        const slice = c.subarray(at, Math.min(c.length, at + SLICE_BYTES));
        const writing = writeAll(handle, slice);
        hash.update(slice); // the thread pool writes the slice meanwhile; both only read it
        await writing;
      }
      bytes += c.length;
    }
    injectFault();
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.promises.rename(tmp, file);
  } catch (e) {
    if (handle !== undefined) await handle.close().catch(() => {});
    await fs.promises.rm(tmp, { force: true });
    throw writeError(e, file);
  }
  await syncFolderAsync(path.dirname(file));
  return { bytes, sha256: hash.digest('hex') };
}

async function writeAll(handle: fs.promises.FileHandle, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += (await handle.write(bytes, written, bytes.length - written)).bytesWritten;
}

function tempName(file: string): string {
  return `${file}${TEMP_MARK}${process.pid}-${Date.now()}`;
}

function writeError(e: unknown, file: string): MorecError {
  if (e instanceof MorecError) return e;
  const err = e as NodeJS.ErrnoException;
  return new MorecError('EIO', `${file}: cannot write (${err.code ?? err.message}); the previous content is unchanged`, { cause: e });
}

/**
 * Fault injection for the crash tests: MOREC_FAULT_WRITE="enospc:N" makes the N-th atomic write of this
 * process (1-based) fail with ENOSPC before its rename; "kill:N" kills the process with SIGKILL there.
 */
let writes = 0;
function injectFault(): void {
  const spec = process.env.MOREC_FAULT_WRITE;
  if (!spec) return;
  writes++;
  const [kind, n] = spec.split(':');
  if (Number(n) !== writes) return;
  if (kind === 'kill') process.kill(process.pid, 'SIGKILL');
  if (kind === 'enospc') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
}

/** fsyncs a folder so a rename in it survives a crash (best effort: some file systems refuse). */
export function syncFolder(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // not supported here; the rename itself is still atomic
  }
}

/** syncFolder through fs.promises. */
export async function syncFolderAsync(dir: string): Promise<void> {
  try {
    const handle = await fs.promises.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // not supported here; the rename itself is still atomic
  }
}
