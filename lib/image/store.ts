/**
 * The image store: every item's picture decoded once into one flat file the native core memory-maps.
 *
 * Layout of `dir`:
 * - `pixels.u8`: (numItems + 1) rows of 3 x height x width uint8, channel planes R, G, B (CHW); row 0 is the
 *   padding item (zeros), row i is item i. Created at full size, rows written in place with positional writes
 *   (memory stays flat whatever the number of items).
 * - `index.json`: format, version, shape, resize rule, the fingerprint of the inputs, per-item status, counts,
 *   `complete: true`. Written last (temp file, fsync, rename): a folder without it is never a finished store.
 * - `report.tsv`: one line per item without a usable image (item, path, reason, outcome), when there are any.
 * - `done.bits` (while preparing only): which rows are written, saved atomically every few hundred images
 *   after the pixel file is synced, so an interrupted preparation (abort, crash, kill -9) resumes.
 *
 * The fingerprint covers the path list, each file's size and mtime (stat only, nothing is read), the size,
 * the resize rule and the policy: a finished store with the same fingerprint is reused without decoding; any
 * change rebuilds it from scratch.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, invalid, MorecError } from '../errors';
import { cleanStaleTemps, tempSuffix } from '../data/temps';
import { syncFolder } from '../io/safetensors';
import { lockFolder } from '../io/lock';
import { decodeImage, DECODE_TEXT, RESIZE_RULE_TEXT, RESIZE_RULES, ResizeRule } from './decode';

export type MissingImagePolicy = 'error' | 'blank' | 'drop';
export const MISSING_IMAGE_POLICIES: readonly MissingImagePolicy[] = ['error', 'blank', 'drop'];

export interface ImageStoreOptions {
  /** pixels per side (default 224) */
  size?: number;
  /**
   * Items whose image is missing (no file, or no path) or corrupt (sharp cannot decode it):
   * 'error' (default): stop with ENOENT / EFORMAT naming the item and the path;
   * 'blank': a mid-grey (128) image, counted, warned and listed in report.tsv;
   * 'drop': the item's status says dropped (its row stays zero): the caller removes it from the data set,
   *   as the paper's LMDB builder skipped the files it could not open.
   */
  policy?: MissingImagePolicy;
  /** 'pil-bilinear' (default: Pillow's pixels exactly) or 'sharp-linear' (faster, close): see lib/image/decode.ts */
  resize?: ResizeRule;
  /** images decoded at once (default: os.availableParallelism()) */
  concurrency?: number;
  /** after every image: (items done, including resumed ones, numItems) */
  onProgress?: (done: number, total: number) => void;
  /** stops between images with MorecError EABORT; the rows written stay and the next call resumes */
  signal?: AbortSignal;
  /** warnings (default: console.warn) */
  log?: (line: string) => void;
}

/**
 * Per-item status codes (`ImageStore.status[i]`, and the digits of index.json's `status`): the reason and the
 * policy's outcome. Row 0 is PADDING.
 */
export const IMAGE_STATUS = {
  PADDING: 0,
  OK: 1,
  MISSING_BLANK: 2,
  CORRUPT_BLANK: 3,
  NO_IMAGE_BLANK: 4,
  MISSING_DROPPED: 5,
  CORRUPT_DROPPED: 6,
  NO_IMAGE_DROPPED: 7,
} as const;
export type ImageStatusCode = (typeof IMAGE_STATUS)[keyof typeof IMAGE_STATUS];
/** not yet written (only inside a preparation; never in a finished store) */
const PENDING = 255;

export type ImageStatusReason = 'padding' | 'ok' | 'missing' | 'corrupt' | 'no-image';
export type ImageStatusOutcome = 'kept' | 'blank' | 'dropped';

/** What a status code means: `{ reason: 'corrupt', outcome: 'blank' }`. */
export function describeImageStatus(code: number): { reason: ImageStatusReason; outcome: ImageStatusOutcome } {
  switch (code) {
    case IMAGE_STATUS.PADDING: return { reason: 'padding', outcome: 'kept' };
    case IMAGE_STATUS.OK: return { reason: 'ok', outcome: 'kept' };
    case IMAGE_STATUS.MISSING_BLANK: return { reason: 'missing', outcome: 'blank' };
    case IMAGE_STATUS.CORRUPT_BLANK: return { reason: 'corrupt', outcome: 'blank' };
    case IMAGE_STATUS.NO_IMAGE_BLANK: return { reason: 'no-image', outcome: 'blank' };
    case IMAGE_STATUS.MISSING_DROPPED: return { reason: 'missing', outcome: 'dropped' };
    case IMAGE_STATUS.CORRUPT_DROPPED: return { reason: 'corrupt', outcome: 'dropped' };
    case IMAGE_STATUS.NO_IMAGE_DROPPED: return { reason: 'no-image', outcome: 'dropped' };
    default: throw new MorecError('EINVAL', `Expected an image status code (0-7) but received ${describe(code)}`);
  }
}

function statusOf(reason: 'missing' | 'corrupt' | 'no-image', policy: 'blank' | 'drop'): ImageStatusCode {
  const blank = policy === 'blank';
  if (reason === 'missing') return blank ? IMAGE_STATUS.MISSING_BLANK : IMAGE_STATUS.MISSING_DROPPED;
  if (reason === 'corrupt') return blank ? IMAGE_STATUS.CORRUPT_BLANK : IMAGE_STATUS.CORRUPT_DROPPED;
  return blank ? IMAGE_STATUS.NO_IMAGE_BLANK : IMAGE_STATUS.NO_IMAGE_DROPPED;
}

export interface ImageStoreReport {
  /** items with a decoded image */
  ok: number;
  /** items whose file does not exist */
  missing: number;
  /** items whose file exists but does not decode (or is not a regular file) */
  corrupt: number;
  /** items without a path (null, undefined or '') */
  noImage: number;
  /** missing + corrupt + noImage under policy 'blank' */
  blanked: number;
  /** missing + corrupt + noImage under policy 'drop' */
  dropped: number;
  /** report.tsv (absolute) when some item had no usable image */
  reportFile?: string;
  /** items an interrupted earlier preparation had already written */
  resumed: number;
  /** a finished store with the same fingerprint was used as it is (nothing decoded) */
  reused: boolean;
}

/** What the native core memory-maps. */
export interface ImageStore {
  dir: string;
  /** absolute path of the pixel file */
  file: string;
  numItems: number;
  height: number;
  width: number;
  /** 3 * height * width: row i starts at byte i * rowBytes */
  rowBytes: number;
  /** IMAGE_STATUS code per item, numItems + 1 entries (entry 0: PADDING) */
  status: Uint8Array;
  resize: ResizeRule;
  policy: MissingImagePolicy;
  fingerprint: string;
  report: ImageStoreReport;
}

export const IMAGE_STORE_FORMAT = 'morec-image-store';
export const IMAGE_STORE_VERSION = 1;
export const PIXEL_FILE = 'pixels.u8';
export const INDEX_FILE = 'index.json';
export const REPORT_FILE = 'report.tsv';
export const PROGRESS_FILE = 'done.bits';
const GREY = 128;
const MAX_SIZE = 4096;
const OPTION_NAMES = ['size', 'policy', 'resize', 'concurrency', 'onProgress', 'signal', 'log'];
/** done.bits is saved after this many new rows (and at least FLUSH_MIN_MS apart), or after FLUSH_MAX_MS */
const FLUSH_ROWS = 256;
const FLUSH_MIN_MS = 500;
const FLUSH_MAX_MS = 5000;
/** individual warnings before the rest are only counted */
const MAX_WARNINGS = 10;

interface IndexJson {
  format: string;
  version: number;
  complete: boolean;
  numItems: number;
  height: number;
  width: number;
  channels: number;
  layout: string;
  dtype: string;
  rowBytes: number;
  pixelFile: string;
  pixelBytes: number;
  paddingRow: number;
  resize: { rule: ResizeRule; description: string };
  decode: string;
  sharp: string;
  policy: MissingImagePolicy;
  fingerprint: string;
  counts: { ok: number; missing: number; corrupt: number; noImage: number; blanked: number; dropped: number };
  statusCodes: Record<string, string>;
  /** one digit (IMAGE_STATUS code) per row, row 0 first */
  status: string;
  reportFile?: string;
  created: string;
}

// ---------------------------------------------------------------------------------------------------------
// Options

interface Resolved {
  size: number;
  policy: MissingImagePolicy;
  resize: ResizeRule;
  concurrency: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  log: (line: string) => void;
}

function resolveOptions(options: ImageStoreOptions | undefined): Resolved {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalid('an options object', 'options', options);
  for (const k of Object.keys(options))
    if (!OPTION_NAMES.includes(k)) throw new MorecError('EINVAL', `Unknown option '${k}' for prepareImageStore (known: ${OPTION_NAMES.join(', ')})`);
  const o = options;
  const size = o.size ?? 224;
  if (!Number.isInteger(size) || size < 1 || size > MAX_SIZE) throw invalid(`a positive integer up to ${MAX_SIZE}`, 'size', o.size);
  const policy = o.policy ?? 'error';
  if (!MISSING_IMAGE_POLICIES.includes(policy)) throw invalid(`one of ${MISSING_IMAGE_POLICIES.map((p) => `'${p}'`).join(', ')}`, 'policy', o.policy);
  const resize = o.resize ?? 'pil-bilinear';
  if (!RESIZE_RULES.includes(resize)) throw invalid(`one of ${RESIZE_RULES.map((p) => `'${p}'`).join(', ')}`, 'resize', o.resize);
  const concurrency = o.concurrency ?? os.availableParallelism();
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) throw invalid('a positive integer up to 1024', 'concurrency', o.concurrency);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw invalid('a function', 'onProgress', o.onProgress);
  if (o.log !== undefined && typeof o.log !== 'function') throw invalid('a function', 'log', o.log);
  if (o.signal !== undefined && (o.signal === null || typeof o.signal !== 'object' || typeof o.signal.aborted !== 'boolean'))
    throw invalid('an AbortSignal', 'signal', o.signal);
  return { size, policy, resize, concurrency, onProgress: o.onProgress, signal: o.signal, log: o.log ?? ((line) => console.warn(line)) };
}

function checkPaths(paths: unknown): asserts paths is (string | null | undefined)[] {
  if (!Array.isArray(paths)) throw invalid('an array of image paths', 'paths', paths);
  for (let i = 0; i < paths.length; i++) {
    const p = paths[i];
    if (p !== null && p !== undefined && typeof p !== 'string') throw invalid('a path string, null or undefined', `paths[${i}] (item ${i + 1})`, p);
  }
}

function checkDir(dir: unknown): asserts dir is string {
  if (typeof dir !== 'string' || dir.length === 0) throw invalid('a folder path', 'dir', dir);
}

// ---------------------------------------------------------------------------------------------------------
// Files

/** Writes `data` to a temp file beside `file`, fsyncs it, renames it over `file`, fsyncs the folder. */
function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const tmp = file + tempSuffix();
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let written = 0;
    while (written < buf.length) written += fs.writeSync(fd, buf, written, buf.length - written);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw ioError(e, file, 'cannot write');
  }
  syncFolder(path.dirname(file));
}


function ioError(e: unknown, file: string, what: string): MorecError {
  if (e instanceof MorecError) return e;
  const err = e as NodeJS.ErrnoException;
  return new MorecError(err.code === 'ENOENT' ? 'ENOENT' : 'EIO', `${file}: ${what} (${err.code ?? err.message})`, { cause: e });
}

function removeFile(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch (e) {
    throw ioError(e, file, 'cannot remove');
  }
}

// done.bits: magic, the fingerprint, numItems, the written rows as a bitset, then the items whose status is
// not OK (u32 item, u8 code) -- rare, so the file stays numItems / 8 bytes.
const PROGRESS_MAGIC = Buffer.from('MRIMGDN1');

function encodeProgress(fingerprint: string, status: Uint8Array): Buffer {
  const n = status.length - 1;
  const fp = Buffer.from(fingerprint, 'hex');
  const bits = Buffer.alloc((n + 1 + 7) >> 3);
  const exceptions: number[] = [];
  for (let i = 1; i <= n; i++) {
    const s = status[i];
    if (s === PENDING) continue;
    bits[i >> 3] |= 1 << (i & 7);
    if (s !== IMAGE_STATUS.OK) exceptions.push(i);
  }
  const out = Buffer.alloc(8 + 32 + 4 + 4 + bits.length + exceptions.length * 5);
  let o = PROGRESS_MAGIC.copy(out, 0);
  o += fp.copy(out, o);
  out.writeUInt32LE(n, o);
  out.writeUInt32LE(exceptions.length, o + 4);
  o += 8;
  o += bits.copy(out, o);
  for (const i of exceptions) {
    out.writeUInt32LE(i, o);
    out[o + 4] = status[i];
    o += 5;
  }
  return out;
}

/** The statuses an interrupted preparation saved, or undefined when absent, damaged or for other inputs. */
function readProgress(file: string, fingerprint: string, n: number, log: (line: string) => void): Uint8Array | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  const bitsLength = (n + 1 + 7) >> 3;
  const fail = (why: string) => {
    log(`image store: ${file}: ${why}; starting the preparation over`);
    return undefined;
  };
  if (buf.length < 48 || !buf.subarray(0, 8).equals(PROGRESS_MAGIC)) return fail('not a progress file');
  if (buf.subarray(8, 40).toString('hex') !== fingerprint || buf.readUInt32LE(40) !== n)
    return fail('left by an interrupted preparation of other inputs (paths, files, size, resize rule or policy changed)');
  const exceptions = buf.readUInt32LE(44);
  if (buf.length !== 48 + bitsLength + exceptions * 5) return fail('truncated');
  const status = new Uint8Array(n + 1).fill(PENDING);
  status[0] = IMAGE_STATUS.PADDING;
  for (let i = 1; i <= n; i++) if (buf[48 + (i >> 3)] & (1 << (i & 7))) status[i] = IMAGE_STATUS.OK;
  for (let e = 0, o = 48 + bitsLength; e < exceptions; e++, o += 5) {
    const i = buf.readUInt32LE(o), s = buf[o + 4];
    if (i < 1 || i > n || status[i] === PENDING || s < IMAGE_STATUS.MISSING_BLANK || s > IMAGE_STATUS.NO_IMAGE_DROPPED) return fail('damaged');
    status[i] = s;
  }
  return status;
}

// ---------------------------------------------------------------------------------------------------------
// Inputs

const FILE = 0, MISSING = 1, NO_PATH = 2, NOT_A_FILE = 3;

interface Inputs {
  fingerprint: string;
  /** per item (1-based): FILE, MISSING, NO_PATH or NOT_A_FILE */
  kinds: Uint8Array;
}

function absPath(p: string | null | undefined): string | undefined {
  return p === null || p === undefined || p === '' ? undefined : path.resolve(p);
}

/** Stats every path (nothing is read) and hashes paths, sizes, mtimes and the settings. */
async function scanInputs(paths: (string | null | undefined)[], o: Resolved, aborted: () => MorecError): Promise<Inputs> {
  const n = paths.length;
  const hash = crypto.createHash('sha256');
  hash.update(JSON.stringify({ format: IMAGE_STORE_FORMAT, version: IMAGE_STORE_VERSION, numItems: n, size: o.size, resize: o.resize, policy: o.policy }));
  const kinds = new Uint8Array(n + 1);
  for (let i = 1; i <= n; i++) {
    if (i % 8192 === 0) {
      await new Promise((r) => setImmediate(r)); // a million stats take seconds: let the loop breathe
      if (o.signal?.aborted) throw aborted();
    }
    const p = absPath(paths[i - 1]);
    if (p === undefined) {
      kinds[i] = NO_PATH;
      hash.update('\0\n');
      continue;
    }
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR')
        throw new MorecError('EIO', `item ${i}: cannot stat its image ${p} (${code ?? (e as Error).message})`, { cause: e });
    }
    if (st === undefined) kinds[i] = MISSING;
    else if (!st.isFile()) kinds[i] = NOT_A_FILE;
    hash.update(`${p}\0${st ? `${st.size}\0${st.mtimeMs}` : 'missing'}\n`);
  }
  return { fingerprint: hash.digest('hex'), kinds };
}

// ---------------------------------------------------------------------------------------------------------
// Prepare

/**
 * Decodes every item's image into `dir` (see the file's header for the layout) and returns the store.
 * `paths[i - 1]` is item i's image file; null, undefined or '' means the item has no image (the policy
 * decides, as for a missing file). Reuses a finished store of the same inputs, resumes an interrupted one.
 */
export async function prepareImageStore(paths: (string | null | undefined)[], dir: string, options?: ImageStoreOptions): Promise<ImageStore> {
  checkPaths(paths);
  checkDir(dir);
  const o = resolveOptions(options);
  paths = paths.slice(); // the list the fingerprint describes, whatever the caller does with its array meanwhile
  const abortError = (done: number, total: number) =>
    new MorecError('EABORT', `image store ${dir}: stopped by the AbortSignal after ${done} of ${total} images; the rows written are kept and the next call with the same inputs resumes`, { cause: o.signal?.reason });
  if (o.signal?.aborted) throw abortError(0, paths.length);

  dir = path.resolve(dir);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw ioError(e, dir, 'cannot create the image store folder');
  }
  cleanStaleTemps(dir);
  const release = lockFolder(dir, 'preparation of this image store');
  try {
    return await prepareLocked(paths, dir, o, abortError);
  } finally {
    release();
  }
}

async function prepareLocked(
  paths: (string | null | undefined)[],
  dir: string,
  o: Resolved,
  abortError: (done: number, total: number) => MorecError,
): Promise<ImageStore> {
  const n = paths.length;
  const size = o.size;
  const rowBytes = 3 * size * size;
  const file = path.join(dir, PIXEL_FILE);
  const indexFile = path.join(dir, INDEX_FILE);
  const progressFile = path.join(dir, PROGRESS_FILE);
  const reportFile = path.join(dir, REPORT_FILE);
  const { fingerprint, kinds } = await scanInputs(paths, o, () => abortError(0, n));

  // A finished store of the same inputs: use it as it is.
  if (fs.existsSync(indexFile)) {
    let previous: ImageStore | undefined;
    let why: string;
    try {
      previous = openImageStore(dir);
      why = describeChange(previous, n, o);
    } catch (e) {
      why = `it cannot be opened (${(e as Error).message})`;
    }
    if (previous && previous.fingerprint === fingerprint) {
      removeFile(progressFile);
      previous.report.reused = true;
      o.onProgress?.(n, n);
      return previous;
    }
    o.log(`image store ${dir}: rebuilding from scratch: ${why}`);
    // The index goes first: a crash while the pixels are rewritten must not leave a "complete" store.
    removeFile(indexFile);
    syncFolder(dir);
  }

  // An interrupted preparation of the same inputs: continue it.
  let status = readProgress(progressFile, fingerprint, n, o.log);
  const expectedBytes = (n + 1) * rowBytes;
  if (status !== undefined) {
    let actual = -1;
    try {
      actual = fs.statSync(file).size;
    } catch {
      // missing: start over
    }
    if (actual !== expectedBytes) {
      o.log(`image store ${dir}: ${file} is not the size its progress file expects; starting the preparation over`);
      status = undefined;
    }
  }
  let fh: fs.promises.FileHandle;
  try {
    if (status === undefined) {
      removeFile(progressFile);
      status = new Uint8Array(n + 1).fill(PENDING);
      status[0] = IMAGE_STATUS.PADDING;
      fh = await fs.promises.open(file, 'w+'); // truncates: every row starts as zeros
      await fh.truncate(expectedBytes);
    } else {
      fh = await fs.promises.open(file, 'r+');
    }
  } catch (e) {
    throw ioError(e, file, 'cannot create the pixel file');
  }

  let resumed = 0;
  for (let i = 1; i <= n; i++) if (status[i] !== PENDING) resumed++;
  let done = resumed;
  const messages = new Map<number, string>(); // item -> why it has no usable image (this run)
  let warned = 0;
  let lastFlush = Date.now(), rowsSinceFlush = 0;
  let flushing: Promise<void> = Promise.resolve();
  let failure: unknown;
  let aborted = false;

  const flush = (): Promise<void> => {
    // Rows whose status is set were written before the datasync starts, so the saved bits never get ahead.
    const snapshot = status!.slice();
    rowsSinceFlush = 0;
    lastFlush = Date.now();
    flushing = flushing.then(async () => {
      try {
        await fh.datasync();
      } catch (e) {
        throw ioError(e, file, 'cannot sync');
      }
      writeFileAtomic(progressFile, encodeProgress(fingerprint, snapshot));
    });
    return flushing;
  };

  const blankRow = new Uint8Array(rowBytes).fill(GREY);
  const zeroRow = new Uint8Array(rowBytes);

  /** The row and status of an item without a usable image, or the policy 'error''s exception. */
  const unusable = (item: number, p: string | undefined, reason: 'missing' | 'corrupt' | 'no-image', detail: string): { row: Uint8Array; code: ImageStatusCode } => {
    if (o.policy === 'error') {
      if (reason === 'no-image')
        throw new MorecError('ENOENT', `item ${item} has no image path (paths[${item - 1}] is ${describe(paths[item - 1])}); pass policy 'blank' or 'drop' to accept items without images`);
      if (reason === 'missing')
        throw new MorecError('ENOENT', `item ${item}: image file ${p} does not exist (${detail}); pass policy 'blank' or 'drop' to accept missing images`);
      throw new MorecError('EFORMAT', `item ${item}: image file ${p} cannot be decoded (${detail}); pass policy 'blank' or 'drop' to accept damaged images`);
    }
    messages.set(item, `${reason}: ${detail}`);
    if (warned++ < MAX_WARNINGS)
      o.log(`image store: item ${item} (${p ?? 'no path'}): ${reason === 'no-image' ? 'no image path' : `${reason}, ${detail}`}; ${o.policy === 'blank' ? 'blank grey image' : 'dropped'}`);
    else if (warned === MAX_WARNINGS + 1) o.log(`image store: more items without a usable image; the summary and ${reportFile} list them all`);
    return { row: o.policy === 'blank' ? blankRow : zeroRow, code: statusOf(reason, o.policy) };
  };

  const processItem = async (item: number, rowBuf: Uint8Array): Promise<void> => {
    const p = absPath(paths[item - 1]);
    const kind = kinds[item];
    let r: { row: Uint8Array; code: ImageStatusCode };
    if (kind === NO_PATH) r = unusable(item, p, 'no-image', 'no path');
    else if (kind === MISSING) r = unusable(item, p, 'missing', 'no such file');
    else if (kind === NOT_A_FILE) r = unusable(item, p, 'corrupt', 'not a regular file');
    else {
      try {
        r = { row: await decodeImage(p!, size, o.resize, rowBuf), code: IMAGE_STATUS.OK };
      } catch (e) {
        const gone = !fs.existsSync(p!);
        r = unusable(item, p, gone ? 'missing' : 'corrupt', gone ? 'removed while preparing' : oneLine((e as Error).message));
      }
    }
    try {
      let written = 0;
      while (written < rowBytes) written += (await fh.write(r.row, written, rowBytes - written, item * rowBytes + written)).bytesWritten;
    } catch (e) {
      throw ioError(e, file, `cannot write row ${item}`);
    }
    status![item] = r.code; // only now: the row is written
    done++;
    rowsSinceFlush++;
    o.onProgress?.(done, n);
    const since = Date.now() - lastFlush;
    if ((rowsSinceFlush >= FLUSH_ROWS && since >= FLUSH_MIN_MS) || since >= FLUSH_MAX_MS) void flush().catch(() => {}); // a failure surfaces at the final await
  };

  let next = 1;
  const worker = async (): Promise<void> => {
    const rowBuf = new Uint8Array(rowBytes);
    for (;;) {
      if (failure !== undefined) return;
      if (o.signal?.aborted) {
        aborted = true;
        return;
      }
      while (next <= n && status![next] !== PENDING) next++;
      if (next > n) return;
      const item = next++;
      try {
        await processItem(item, rowBuf);
      } catch (e) {
        if (failure === undefined) failure = e;
        return;
      }
    }
  };

  if (resumed > 0) {
    try {
      o.onProgress?.(done, n);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }
  await Promise.all(Array.from({ length: Math.min(o.concurrency, Math.max(1, n - resumed)) }, worker));

  if (failure !== undefined || aborted) {
    // Keep what was written: save the progress, then report why it stopped.
    if (rowsSinceFlush > 0) await flush().catch(() => {});
    else await flushing.catch(() => {});
    await fh.close().catch(() => {});
    throw failure ?? abortError(done, n);
  }
  try {
    await flushing;
    try {
      await fh.datasync();
    } catch (e) {
      throw ioError(e, file, 'cannot sync');
    }
  } finally {
    await fh.close().catch(() => {});
  }

  // Counts, report.tsv, then the index (last).
  const counts = { ok: 0, missing: 0, corrupt: 0, noImage: 0, blanked: 0, dropped: 0 };
  const lines: string[] = [];
  for (let i = 1; i <= n; i++) {
    const s = status[i];
    if (s === IMAGE_STATUS.OK) {
      counts.ok++;
      continue;
    }
    const { reason, outcome } = describeImageStatus(s);
    if (reason === 'missing') counts.missing++;
    else if (reason === 'corrupt') counts.corrupt++;
    else counts.noImage++;
    if (outcome === 'blank') counts.blanked++;
    else counts.dropped++;
    let why = messages.get(i);
    if (why === undefined) why = await reasonAgain(i, reason, paths[i - 1], size, o.resize); // written by an earlier, interrupted run
    lines.push(`${i}\t${tsv(absPath(paths[i - 1]) ?? '')}\t${tsv(why)}\t${outcome}`);
  }
  const bad = counts.missing + counts.corrupt + counts.noImage;
  if (bad > 0) writeFileAtomic(reportFile, `item\tpath\treason\toutcome\n${lines.join('\n')}\n`);
  else removeFile(reportFile);

  const index: IndexJson = {
    format: IMAGE_STORE_FORMAT,
    version: IMAGE_STORE_VERSION,
    complete: true,
    numItems: n,
    height: size,
    width: size,
    channels: 3,
    layout: 'CHW',
    dtype: 'uint8',
    rowBytes,
    pixelFile: PIXEL_FILE,
    pixelBytes: expectedBytes,
    paddingRow: 0,
    resize: { rule: o.resize, description: RESIZE_RULE_TEXT[o.resize] },
    decode: DECODE_TEXT,
    sharp: `sharp ${sharpVersion()}`,
    policy: o.policy,
    fingerprint,
    counts,
    statusCodes: Object.fromEntries(Object.entries(IMAGE_STATUS).map(([k, v]) => [String(v), k.toLowerCase().replace(/_/g, ' ')])),
    status: Array.from(status, (s) => String(s)).join(''),
    ...(bad > 0 ? { reportFile: REPORT_FILE } : {}),
    created: new Date().toISOString(),
  };
  writeFileAtomic(indexFile, JSON.stringify(index, null, 1) + '\n');
  removeFile(progressFile);
  if (bad > 0) {
    const parts = [counts.missing && `${counts.missing} missing`, counts.corrupt && `${counts.corrupt} corrupt`, counts.noImage && `${counts.noImage} without a path`].filter(Boolean);
    o.log(
      `image store: ${bad} of ${n} items had no usable image (${parts.join(', ')}): ${o.policy === 'blank' ? 'blank grey images' : 'dropped (remove them from the data set)'}; listed in ${reportFile}`,
    );
  }
  return {
    dir,
    file,
    numItems: n,
    height: size,
    width: size,
    rowBytes,
    status,
    resize: o.resize,
    policy: o.policy,
    fingerprint,
    report: { ...counts, ...(bad > 0 ? { reportFile } : {}), resumed, reused: false },
  };
}

/** Why a finished store does not fit these inputs, in words. */
function describeChange(previous: ImageStore, n: number, o: Resolved): string {
  const changes: string[] = [];
  if (previous.numItems !== n) changes.push(`${previous.numItems} -> ${n} items`);
  if (previous.height !== o.size) changes.push(`size ${previous.height} -> ${o.size}`);
  if (previous.resize !== o.resize) changes.push(`resize '${previous.resize}' -> '${o.resize}'`);
  if (previous.policy !== o.policy) changes.push(`policy '${previous.policy}' -> '${o.policy}'`);
  if (changes.length === 0) changes.push('image paths or files changed (size or modification time)');
  return `the inputs changed (${changes.join(', ')})`;
}

/** The reason text of an item an earlier run found unusable (its message was not kept): decode it again. */
async function reasonAgain(item: number, reason: ImageStatusReason, p: string | null | undefined, size: number, rule: ResizeRule): Promise<string> {
  if (reason === 'no-image') return 'no-image: no path';
  if (reason === 'missing') return 'missing: no such file';
  const abs = absPath(p)!;
  try {
    if (!fs.statSync(abs).isFile()) return 'corrupt: not a regular file';
    await decodeImage(abs, size, rule);
    return 'corrupt: failed to decode in an earlier run';
  } catch (e) {
    return `corrupt: ${oneLine((e as Error).message)}`;
  }
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function tsv(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

function sharpVersion(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const v = require('sharp').versions as { sharp?: string; vips?: string };
    return `${v.sharp ?? '?'} (libvips ${v.vips ?? '?'})`;
  } catch {
    return '?';
  }
}

// ---------------------------------------------------------------------------------------------------------
// Open

/**
 * Opens a finished store: checks index.json (format, version, shape, statuses, counts) and the pixel file's
 * size. Throws ENOENT when there is no index (an interrupted preparation says so), EFORMAT naming the file for
 * anything malformed. `report.reused` is true (nothing is decoded).
 */
export function openImageStore(dir: string): ImageStore {
  checkDir(dir);
  dir = path.resolve(dir);
  const indexFile = path.join(dir, INDEX_FILE);
  let text: string;
  try {
    text = fs.readFileSync(indexFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      const unfinished = fs.existsSync(path.join(dir, PROGRESS_FILE));
      throw new MorecError(
        'ENOENT',
        unfinished
          ? `${indexFile} does not exist: the image store's preparation was interrupted; call prepareImageStore with the same inputs to finish it`
          : `${indexFile} does not exist: ${dir} holds no image store (prepareImageStore writes one)`,
        { cause: e },
      );
    }
    throw ioError(e, indexFile, 'cannot read');
  }
  const bad = (what: string) => new MorecError('EFORMAT', `${indexFile}: ${what}`);
  let j: IndexJson;
  try {
    j = JSON.parse(text) as IndexJson;
  } catch (e) {
    throw new MorecError('EFORMAT', `${indexFile}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (j === null || typeof j !== 'object') throw bad(`expected a JSON object but found ${describe(j)}`);
  if (j.format !== IMAGE_STORE_FORMAT) throw bad(`expected format '${IMAGE_STORE_FORMAT}' but found ${describe(j.format)}`);
  if (j.version !== IMAGE_STORE_VERSION) throw bad(`expected version ${IMAGE_STORE_VERSION} but found ${describe(j.version)} (prepare the store again)`);
  if (j.complete !== true) throw bad('the store is not complete (its preparation did not finish)');
  const posInt = (v: unknown, name: string, min = 1) => {
    if (!Number.isInteger(v) || (v as number) < min) throw bad(`expected ${min === 0 ? 'a non-negative' : 'a positive'} integer for ${name} but found ${describe(v)}`);
    return v as number;
  };
  const n = posInt(j.numItems, 'numItems', 0);
  const height = posInt(j.height, 'height');
  const width = posInt(j.width, 'width');
  if (j.channels !== 3) throw bad(`expected 3 channels but found ${describe(j.channels)}`);
  if (j.layout !== 'CHW') throw bad(`expected layout 'CHW' but found ${describe(j.layout)}`);
  if (j.dtype !== 'uint8') throw bad(`expected dtype 'uint8' but found ${describe(j.dtype)}`);
  const rowBytes = 3 * height * width;
  if (j.rowBytes !== rowBytes) throw bad(`expected rowBytes ${rowBytes} (3 x ${height} x ${width}) but found ${describe(j.rowBytes)}`);
  if (j.pixelFile !== PIXEL_FILE) throw bad(`expected pixelFile '${PIXEL_FILE}' but found ${describe(j.pixelFile)}`);
  if (!RESIZE_RULES.includes(j.resize?.rule)) throw bad(`unknown resize rule ${describe(j.resize?.rule)}`);
  if (!MISSING_IMAGE_POLICIES.includes(j.policy)) throw bad(`unknown policy ${describe(j.policy)}`);
  if (typeof j.fingerprint !== 'string' || !/^[0-9a-f]{64}$/.test(j.fingerprint)) throw bad(`expected a sha256 fingerprint but found ${describe(j.fingerprint)}`);
  if (typeof j.status !== 'string' || j.status.length !== n + 1 || !/^0[1-7]*$/.test(j.status))
    throw bad(`expected status to be ${n + 1} digits (0 for the padding row, then 1-7 per item) but found ${describe(typeof j.status === 'string' ? `${j.status.length} characters` : j.status)}`);
  const status = new Uint8Array(n + 1);
  const counts = { ok: 0, missing: 0, corrupt: 0, noImage: 0, blanked: 0, dropped: 0 };
  for (let i = 0; i <= n; i++) {
    const s = j.status.charCodeAt(i) - 48;
    status[i] = s;
    if (i === 0) continue;
    const { reason, outcome } = describeImageStatus(s);
    if (reason === 'ok') counts.ok++;
    else if (reason === 'missing') counts.missing++;
    else if (reason === 'corrupt') counts.corrupt++;
    else counts.noImage++;
    if (outcome === 'blank') counts.blanked++;
    else if (outcome === 'dropped') counts.dropped++;
  }
  for (const k of Object.keys(counts) as (keyof typeof counts)[])
    if (j.counts?.[k] !== counts[k]) throw bad(`counts.${k} is ${describe(j.counts?.[k])} but the statuses count ${counts[k]}`);
  const file = path.join(dir, PIXEL_FILE);
  let actual: number;
  try {
    actual = fs.statSync(file).size;
  } catch (e) {
    throw new MorecError('ENOENT', `${file} does not exist, but ${indexFile} describes it: prepare the image store again`, { cause: e });
  }
  const expected = (n + 1) * rowBytes;
  if (actual !== expected || j.pixelBytes !== expected)
    throw new MorecError('EFORMAT', `${file}: expected ${expected} bytes ((${n} items + 1) x 3 x ${height} x ${width}) but found ${actual}: prepare the image store again`);
  const bad2 = counts.missing + counts.corrupt + counts.noImage;
  const reportFile = path.join(dir, REPORT_FILE);
  return {
    dir,
    file,
    numItems: n,
    height,
    width,
    rowBytes,
    status,
    resize: j.resize.rule,
    policy: j.policy,
    fingerprint: j.fingerprint,
    report: { ...counts, ...(bad2 > 0 && fs.existsSync(reportFile) ? { reportFile } : {}), resumed: 0, reused: true },
  };
}

/** Items the 'drop' policy dropped (ascending): the caller removes them from the data set. */
export function droppedItems(store: ImageStore): number[] {
  const out: number[] = [];
  for (let i = 1; i <= store.numItems; i++) if (describeImageStatus(store.status[i]).outcome === 'dropped') out.push(i);
  return out;
}

/**
 * One line for load summaries, e.g. "images: 10,000 items 224x224 pil-bilinear (ok 9,990; 4 missing, 6 corrupt -> 10 blank grey),
 * 1.5 GB in /data/images, reused; see /data/images/report.tsv".
 */
export function formatImageStoreReport(s: ImageStore): string {
  const r = s.report;
  const f = (x: number) => x.toLocaleString('en-US');
  const bad = [r.missing && `${f(r.missing)} missing`, r.corrupt && `${f(r.corrupt)} corrupt`, r.noImage && `${f(r.noImage)} without image`].filter(Boolean);
  const outcome = bad.length === 0 ? '' : `; ${bad.join(', ')} -> ${[r.blanked && `${f(r.blanked)} blank grey`, r.dropped && `${f(r.dropped)} dropped`].filter(Boolean).join(', ')}`;
  const mb = ((s.numItems + 1) * s.rowBytes) / 1e6;
  const how = r.reused ? 'reused' : r.resumed > 0 ? `resumed after ${f(r.resumed)}` : 'built';
  return (
    `images: ${f(s.numItems)} items ${s.width}x${s.height} ${s.resize} (ok ${f(r.ok)}${outcome}), ${mb >= 1000 ? `${(mb / 1000).toFixed(1)} GB` : `${mb.toFixed(1)} MB`} in ${s.dir}, ${how}` +
    (r.reportFile ? `; see ${r.reportFile}` : '')
  );
}
