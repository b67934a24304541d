/**
 * Two-stage feature extraction: an ONNX encoder (text or image) run over every item once, in worker threads,
 * into an on-disk feature cache that the core memory-maps as an ItemStore of features.
 *
 * Cache folder (`features-<key>/`, key = sha256 of the encoder file's sha256, the inputs' fingerprint (data set,
 * tokens or image store, normalization), the pooling, the output and the dtype):
 *   features.f32 | features.f16   (numItems + 1) x dim little-endian values, row 0 = padding (zeros)
 *   index.json                     what made it, its shape, and how long it took (written last: its presence
 *                                  with complete: true is what makes the cache valid)
 *   done.bits                      while extracting: magic, key, then one bit per item already written
 *   .lock                          while extracting
 * An interrupted extraction (abort, crash, kill -9) resumes from done.bits: rows are written in place with
 * positional writes and the bits are saved only after the rows they cover are fsync'd.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { MorecError, MorecErrorCode } from '../errors';
import { hashFile } from '../io/hash';
import { syncFolder, writeAtomic } from '../io/safetensors';
import { lockFolder } from '../io/lock';
import { EncoderIo, ValueInfo, WorkerReply, WorkerRequest, WorkerSetup, WorkerStart } from './protocol';
import { float32ToFloat16 } from './half';

export const FEATURE_CACHE_FORMAT = 'morec-feature-cache';
export const FEATURE_CACHE_VERSION = 1;
const PROGRESS_MAGIC = Buffer.from('MRFEATD1');
const FLUSH_MS = 2000;

/** What the encoder reads: titles as tokens, or images from a prepared image store. */
export type FeatureInputs =
  | { kind: 'text'; numItems: number; maxTokens: number; tokens: Int32Array; lengths: Int32Array; fingerprint: string }
  | { kind: 'image'; numItems: number; file: string; height: number; width: number; mean: number[]; std: number[]; fingerprint: string };

export interface ExtractOptions {
  /** Text: 'cls' ([CLS], row 0 of the last hidden state; default) or 'mean' (masked mean). Image: the pooled output. */
  pooling?: 'cls' | 'mean' | 'pooled';
  /** The output to read (default: 'last_hidden_state' / 'pooler_output' if present, else the first output). */
  output?: string;
  /** Stored as 'float32' (default) or 'float16' (half the disk and memory; values rounded to 11 significant bits). */
  dtype?: 'float32' | 'float16';
  /** Worker threads, each with its own session (default 1). */
  workers?: number;
  /** Intra-op threads per worker (default: the cores divided among the workers). */
  threads?: number;
  /** Items per ONNX run (default 64 titles / 32 images). */
  batchSize?: number;
  /** ONNX Runtime execution provider: 'cpu' (default) or 'cuda' (needs onnxruntime-node's CUDA libraries). */
  provider?: 'cpu' | 'cuda';
  /** The data set's fingerprint, part of the cache key. */
  dataFingerprint?: string;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface FeatureCache {
  dir: string;
  file: string;
  key: string;
  numItems: number;
  dim: number;
  dtype: 'float32' | 'float16';
  kind: 'text' | 'image';
  pooling: 'cls' | 'mean' | 'pooled';
  output: string;
  encoder: { file: string; sha256: string; bytes: number };
  /** 'hit' (reused), 'extracted', or 'resumed (k of n items were done)'. */
  status: string;
  seconds: number;
  itemsPerSecond: number;
  workers: number;
}

interface IndexJson extends Omit<FeatureCache, 'dir' | 'file' | 'status'> {
  format: string;
  version: number;
  complete: true;
  dataFingerprint?: string;
  inputs: string;
  created: string;
}

/** An ONNX file's declared inputs and outputs (read in a worker thread: loading a large model takes a while). */
export async function probeOnnx(file: string): Promise<EncoderIo> {
  const pool = new WorkerPool();
  try {
    return await pool.start({ file: path.resolve(file), threads: 1, provider: 'cpu' }, 1);
  } finally {
    await pool.close();
  }
}

function checkOptions(o: ExtractOptions): void {
  const int = (v: unknown, name: string, min: number, max: number) => {
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max))
      throw new MorecError('EINVAL', `Expected an integer in ${min}..${max} for ${name} but received ${JSON.stringify(v)}`);
  };
  int(o.workers, 'workers', 1, 64);
  int(o.threads, 'threads', 1, 1024);
  int(o.batchSize, 'batchSize', 1, 1 << 16);
  if (o.pooling !== undefined && o.pooling !== 'cls' && o.pooling !== 'mean') throw new MorecError('EINVAL', `Expected 'cls' or 'mean' for pooling but received ${JSON.stringify(o.pooling)}`);
  if (o.dtype !== undefined && o.dtype !== 'float32' && o.dtype !== 'float16') throw new MorecError('EINVAL', `Expected 'float32' or 'float16' for dtype but received ${JSON.stringify(o.dtype)}`);
  if (o.provider !== undefined && o.provider !== 'cpu' && o.provider !== 'cuda') throw new MorecError('EINVAL', `Expected 'cpu' or 'cuda' for provider but received ${JSON.stringify(o.provider)}`);
}

/** How to feed a model and what to read from it, from its declared inputs and outputs; EMISMATCH naming the file otherwise. */
export function planIo(file: string, io: EncoderIo, inputs: FeatureInputs, o: ExtractOptions): Omit<WorkerSetup, keyof WorkerStart> {
  const names = (l: ValueInfo[]) => l.map((v) => `${v.name} (${v.type} [${v.shape.join(', ')}])`).join(', ');
  const mismatch = (why: string) => new MorecError('EMISMATCH', `${file}: ${why}; the model has inputs ${names(io.inputs)} and outputs ${names(io.outputs)}`);
  const inputTypes: Record<string, string> = {};
  for (const v of io.inputs) inputTypes[v.name] = v.type;
  const outName = o.output ?? (io.outputs.find((v) => v.name === (inputs.kind === 'text' ? 'last_hidden_state' : 'pooler_output')) ?? io.outputs[0])?.name;
  const out = io.outputs.find((v) => v.name === outName);
  if (!out) throw mismatch(`no output '${outName}'`);
  if (out.type !== 'float32') throw mismatch(`output '${out.name}' is ${out.type}, expected float32`);
  if (inputs.kind === 'text') {
    const ids = io.inputs.find((v) => v.name === 'input_ids');
    const mask = io.inputs.find((v) => v.name === 'attention_mask');
    const types = io.inputs.find((v) => v.name === 'token_type_ids');
    if (!ids || !mask) throw mismatch("a text encoder needs inputs 'input_ids' and 'attention_mask' (Hugging Face's names)");
    const other = io.inputs.filter((v) => v !== ids && v !== mask && v !== types);
    if (other.length) throw mismatch(`unknown inputs ${other.map((v) => `'${v.name}'`).join(', ')} (a text encoder reads input_ids, attention_mask and optionally token_type_ids)`);
    for (const v of [ids, mask, types]) {
      if (!v) continue;
      if (v.type !== 'int64' && v.type !== 'int32') throw mismatch(`input '${v.name}' is ${v.type}, expected int64 or int32`);
      if (v.shape.length !== 2) throw mismatch(`input '${v.name}' has ${v.shape.length} dimensions, expected 2 [batch, sequence]`);
      if (typeof v.shape[1] === 'number' && v.shape[1] < inputs.maxTokens) throw mismatch(`input '${v.name}' takes ${v.shape[1]} tokens but titles have up to ${inputs.maxTokens}`);
    }
    if (out.shape.length !== 3) throw mismatch(`output '${out.name}' has ${out.shape.length} dimensions; expected the last hidden state [batch, sequence, hidden]`);
    return { output: out.name, pooling: o.pooling ?? 'cls', inputTypes, text: { ids: ids.name, mask: mask.name, types: types?.name } };
  }
  if (io.inputs.length !== 1) throw mismatch('an image encoder needs exactly one input (pixel_values [batch, 3, height, width])');
  const px = io.inputs[0];
  if (px.type !== 'float32') throw mismatch(`input '${px.name}' is ${px.type}, expected float32 pixels`);
  if (px.shape.length !== 4) throw mismatch(`input '${px.name}' has ${px.shape.length} dimensions, expected 4 [batch, 3, height, width]`);
  const [, c, h, w] = px.shape;
  if ((typeof c === 'number' && c !== 3) || (typeof h === 'number' && h !== inputs.height) || (typeof w === 'number' && w !== inputs.width))
    throw mismatch(`input '${px.name}' takes [batch, ${c}, ${h}, ${w}] but the image store has 3 x ${inputs.height} x ${inputs.width} pixels (prepare it at the model's size)`);
  if (out.shape.length !== 2 && out.shape.length !== 4) throw mismatch(`output '${out.name}' has ${out.shape.length} dimensions; expected [batch, features] or [batch, features, h, w]`);
  return {
    output: out.name,
    pooling: 'pooled',
    inputTypes,
    imageInput: px.name,
    image: { file: inputs.file, height: inputs.height, width: inputs.width, mean: inputs.mean, std: inputs.std },
  };
}

function workerFile(): string {
  return path.join(__dirname, 'onnx_worker.js');
}

/** A pool of ONNX Runtime workers answering requests in order of submission per worker. */
class WorkerPool {
  private workers: Worker[] = [];
  private pending = new Map<number, { resolve: (f: Float32Array) => void; reject: (e: Error) => void }>();
  private failure?: MorecError;

  async start(start: WorkerStart, count: number): Promise<EncoderIo> {
    const ios = await Promise.all(
      Array.from({ length: count }, () => {
        const w = new Worker(workerFile(), { workerData: start });
        this.workers.push(w);
        return new Promise<EncoderIo>((resolve, reject) => {
          w.once('message', (m: WorkerReply) => (m.type === 'ready' ? resolve(m.io) : reject(new MorecError(m.type === 'error' ? (m.code as MorecErrorCode) : 'EIO', m.type === 'error' ? m.message : 'unexpected reply'))));
          w.once('error', (e) => reject(new MorecError('EIO', `feature extraction worker failed: ${e.message}`, { cause: e })));
        });
      }),
    );
    for (const w of this.workers) {
      w.on('message', (m: WorkerReply) => {
        if (m.type === 'ready') return;
        const p = m.id === undefined ? undefined : this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id!);
        if (m.type === 'done') p.resolve(m.features);
        else p.reject(new MorecError(m.code as MorecErrorCode, m.message));
      });
      w.on('error', (e) => this.fail(new MorecError('EIO', `feature extraction worker failed: ${e.message}`, { cause: e })));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new MorecError('EIO', `feature extraction worker exited with code ${code}`));
      });
    }
    return ios[0];
  }

  private fail(e: MorecError): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  setup(s: WorkerSetup): void {
    for (const w of this.workers) w.postMessage({ type: 'setup', setup: s } satisfies WorkerRequest);
  }

  run(worker: number, req: WorkerRequest & { id: number }, transfer: ArrayBuffer[]): Promise<Float32Array> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      this.workers[worker].postMessage(req, transfer);
    });
  }

  /**
   * Terminates the workers once no request is in flight. Terminating a worker while ONNX Runtime's run is
   * pending in it can abort the whole process (onnxruntime-node throws a C++ Napi::Error into the dying
   * environment: "terminate called after throwing an instance of 'Napi::Error'"), so an aborted extraction
   * first lets the batches already sent finish (at most one per worker; bounded by drainMs).
   */
  async close(drainMs = 60_000): Promise<void> {
    const until = Date.now() + drainMs;
    while (this.pending.size > 0 && !this.failure && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}

function readProgress(file: string, key: string, n: number, log: (l: string) => void): Uint8Array | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  const bits = (n + 1 + 7) >> 3;
  if (buf.length !== 8 + 32 + 4 + bits || !buf.subarray(0, 8).equals(PROGRESS_MAGIC) || buf.subarray(8, 40).toString('hex') !== key || buf.readUInt32LE(40) !== n) {
    log(`feature cache: ${file}: left by another extraction or damaged; starting over`);
    return undefined;
  }
  return new Uint8Array(buf.subarray(44));
}

function writeProgress(file: string, key: string, n: number, done: Uint8Array): void {
  const head = Buffer.alloc(44);
  PROGRESS_MAGIC.copy(head, 0);
  Buffer.from(key, 'hex').copy(head, 8);
  head.writeUInt32LE(n, 40);
  writeAtomic(file, [head, done]);
}

const isDone = (bits: Uint8Array, i: number) => (bits[i >> 3] & (1 << (i & 7))) !== 0;

/** The cache's key and folder for these inputs, encoder and options (without extracting). */
export function featureCacheKey(encoderSha256: string, inputs: FeatureInputs, o: ExtractOptions & { output: string; pooling: string }): string {
  return createHash('sha256')
    .update(JSON.stringify([FEATURE_CACHE_VERSION, encoderSha256, inputs.fingerprint, o.dataFingerprint ?? null, o.pooling, o.output, o.dtype ?? 'float32']))
    .digest('hex');
}

/** A finished cache folder, or undefined when it is absent, incomplete or damaged. */
export function openFeatureCache(dir: string): FeatureCache | undefined {
  let ix: IndexJson;
  try {
    ix = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  } catch {
    return undefined;
  }
  if (ix.format !== FEATURE_CACHE_FORMAT || ix.version !== FEATURE_CACHE_VERSION || ix.complete !== true) return undefined;
  const file = path.join(dir, ix.dtype === 'float16' ? 'features.f16' : 'features.f32');
  const want = (ix.numItems + 1) * ix.dim * (ix.dtype === 'float16' ? 2 : 4);
  try {
    if (fs.statSync(file).size !== want) return undefined;
  } catch {
    return undefined;
  }
  return { dir, file, key: ix.key, numItems: ix.numItems, dim: ix.dim, dtype: ix.dtype, kind: ix.kind, pooling: ix.pooling, output: ix.output, encoder: ix.encoder, status: 'hit', seconds: ix.seconds, itemsPerSecond: ix.itemsPerSecond, workers: ix.workers };
}

/** Finished feature caches under `root` (a data set's cache folder), newest first. */
export function listFeatureCaches(root: string): FeatureCache[] {
  let names: string[];
  try {
    names = fs.readdirSync(root).filter((n) => n.startsWith('features-'));
  } catch {
    return [];
  }
  const out: FeatureCache[] = [];
  for (const n of names) {
    const c = openFeatureCache(path.join(root, n));
    if (c) out.push(c);
  }
  return out.sort((a, b) => fs.statSync(path.join(b.dir, 'index.json')).mtimeMs - fs.statSync(path.join(a.dir, 'index.json')).mtimeMs);
}

/**
 * Runs the ONNX `encoderFile` over every item of `inputs` into a feature cache under `root`, or reuses the
 * finished cache of the same key. Resumes an interrupted extraction of the same key.
 */
export async function extractFeatures(encoderFile: string, inputs: FeatureInputs, root: string, options: ExtractOptions = {}): Promise<FeatureCache> {
  checkOptions(options);
  if (typeof encoderFile !== 'string' || !encoderFile) throw new MorecError('EINVAL', `Expected an ONNX file path for the encoder but received ${JSON.stringify(encoderFile)}`);
  const log = options.log ?? (() => {});
  const t0 = Date.now();
  const encoder = { file: path.resolve(encoderFile), ...(await hashFile(encoderFile)) };
  const workers = options.workers ?? 1;
  const cores = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  const threads = options.threads ?? Math.max(1, Math.floor(cores / workers));
  const pool = new WorkerPool();
  const aborted = () => new MorecError('EABORT', 'feature extraction aborted; run it again to resume');
  if (options.signal?.aborted) throw aborted();
  let release: (() => void) | undefined;
  let fd: number | undefined;
  try {
    const io = await pool.start({ file: encoder.file, threads, provider: options.provider ?? 'cpu' }, workers);
    const plan = planIo(encoderFile, io, inputs, options);
    const dtype = options.dtype ?? 'float32';
    const key = featureCacheKey(encoder.sha256, inputs, { ...options, output: plan.output, pooling: plan.pooling });
    const dir = path.join(root, `features-${key.slice(0, 16)}`);
    const hit = openFeatureCache(dir);
    if (hit && hit.key === key) return hit;
    fs.mkdirSync(dir, { recursive: true });
    release = lockFolder(dir, 'feature extraction');
    const N = inputs.numItems;
    const progressFile = path.join(dir, 'done.bits');
    const file = path.join(dir, dtype === 'float16' ? 'features.f16' : 'features.f32');
    let done = readProgress(progressFile, key, N, log);
    const width = dtype === 'float16' ? 2 : 4;
    let dim = 0;
    if (done) {
      // The dimension is in the file size.
      const size = fs.existsSync(file) ? fs.statSync(file).size : 0;
      dim = size / ((N + 1) * width);
      if (!Number.isInteger(dim) || dim < 1) done = undefined;
    }
    done ??= new Uint8Array((N + 1 + 7) >> 3);
    done[0] |= 1;
    let already = 0;
    for (let i = 1; i <= N; i++) if (isDone(done, i)) already++;
    if (already) log(`feature cache: resuming ${dir}: ${already} of ${N} items were extracted`);
    pool.setup({ ...plan, file: encoder.file, threads, provider: options.provider ?? 'cpu' });
    fs.rmSync(path.join(dir, 'index.json'), { force: true });
    fd = fs.openSync(file, already ? 'r+' : 'w+');
    // Batches of pending items; titles sorted by length so a batch pads little.
    const pending: number[] = [];
    for (let i = 1; i <= N; i++) if (!isDone(done, i)) pending.push(i);
    if (inputs.kind === 'text') pending.sort((a, b) => inputs.lengths[a] - inputs.lengths[b] || a - b);
    const B = options.batchSize ?? (inputs.kind === 'text' ? 64 : 32);
    const batches: Int32Array[] = [];
    for (let s = 0; s < pending.length; s += B) batches.push(Int32Array.from(pending.slice(s, s + B)));
    let next = 0, id = 0, finished = already, lastFlush = Date.now();
    const write = (items: Int32Array, f: Float32Array) => {
      const d = f.length / items.length;
      if (!dim) {
        dim = d;
        fs.ftruncateSync(fd!, (N + 1) * dim * width);
      } else if (d !== dim) {
        throw new MorecError('EMISMATCH', `${encoderFile}: gave ${d} features per item after ${dim} (the output's last dimension must be fixed)`);
      }
      for (let k = 0; k < f.length; k++) if (!Number.isFinite(f[k])) throw new MorecError('EFORMAT', `${encoderFile}: gave a non-finite feature for item ${items[Math.floor(k / dim)]}`);
      // Consecutive item runs are written with one positional write each.
      const rowBytes = dim * width;
      const bytes = dtype === 'float16' ? float32ToFloat16(f) : new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
      let r = 0;
      while (r < items.length) {
        let e = r + 1;
        while (e < items.length && items[e] === items[e - 1] + 1) e++;
        fs.writeSync(fd!, bytes, r * rowBytes, (e - r) * rowBytes, items[r] * rowBytes);
        r = e;
      }
      for (const i of items) done![i >> 3] |= 1 << (i & 7);
    };
    const flush = () => {
      fs.fsyncSync(fd!);
      writeProgress(progressFile, key, N, done!);
      lastFlush = Date.now();
    };
    const lane = async (w: number) => {
      while (next < batches.length) {
        if (options.signal?.aborted) throw aborted();
        const items = batches[next++];
        let req: WorkerRequest & { id: number };
        let transfer: ArrayBuffer[] = [];
        if (inputs.kind === 'text') {
          let T = 1;
          for (const i of items) T = Math.max(T, inputs.lengths[i]);
          const ids = new Int32Array(items.length * T);
          const lengths = new Int32Array(items.length);
          for (let r = 0; r < items.length; r++) {
            const i = items[r];
            lengths[r] = inputs.lengths[i];
            ids.set(inputs.tokens.subarray(i * inputs.maxTokens, i * inputs.maxTokens + T), r * T);
          }
          req = { type: 'text', id: id++, n: items.length, T, ids, lengths };
          transfer = [ids.buffer, lengths.buffer];
        } else {
          req = { type: 'image', id: id++, items };
        }
        const f = await pool.run(w, req, transfer);
        if (stopped) return; // another lane failed or was aborted: the file is being closed, nothing more is written
        write(items, f);
        finished += items.length;
        options.onProgress?.(finished, N);
        if (Date.now() - lastFlush > FLUSH_MS) flush();
      }
    };
    let stopped = false;
    try {
      // Two batches in flight per worker: the next one is queued while the main thread stores the last.
      await Promise.all(Array.from({ length: 2 * workers }, (_, l) => lane(l % workers)));
    } finally {
      stopped = true; // batches still in flight (the pool lets them finish before closing) are not written
      if (dim) flush(); // what was written stays usable by the next run
    }
    if (!dim) {
      // Every item was already done: the dimension comes from the file.
      dim = fs.fstatSync(fd).size / ((N + 1) * width);
    }
    fs.closeSync(fd);
    fd = undefined;
    const seconds = (Date.now() - t0) / 1000;
    const index: IndexJson = {
      format: FEATURE_CACHE_FORMAT,
      version: FEATURE_CACHE_VERSION,
      complete: true,
      key,
      numItems: N,
      dim,
      dtype,
      kind: inputs.kind,
      pooling: plan.pooling,
      output: plan.output,
      encoder,
      dataFingerprint: options.dataFingerprint,
      inputs: inputs.fingerprint,
      seconds,
      itemsPerSecond: (N - already) / Math.max(seconds, 1e-9),
      workers,
      created: new Date().toISOString(),
    };
    writeAtomic(path.join(dir, 'index.json'), [Buffer.from(JSON.stringify(index, null, 2) + '\n')]);
    fs.rmSync(progressFile, { force: true });
    syncFolder(dir);
    return { ...index, dir, file, status: already ? `resumed (${already} of ${N} items were done)` : 'extracted' };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
    release?.();
    await pool.close();
  }
}
