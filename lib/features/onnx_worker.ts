/**
 * The worker thread of feature extraction: one ONNX Runtime session, fed batches of items by the main thread
 * (lib/features/extract.ts), each answered with the pooled features. onnxruntime-node's run() is synchronous
 * native work on the calling thread; here it blocks only this worker, never the caller's event loop.
 *
 * Text batches arrive as token ids and lengths (right-padded to the batch's longest title); image batches as
 * item indices, whose pixel rows the worker reads from the image store file itself and normalizes.
 */
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { EncoderIo, WorkerReply, WorkerRequest, WorkerSetup, WorkerStart } from './protocol';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');

const start0 = workerData as WorkerStart;
let setup: WorkerSetup;
const port = parentPort!;
let session: import('onnxruntime-node').InferenceSession;
let pixelFd: number | undefined;

function reply(m: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(m, transfer);
}

async function start(): Promise<void> {
  try {
    session = await ort.InferenceSession.create(start0.file, {
      intraOpNumThreads: start0.threads,
      interOpNumThreads: 1,
      executionProviders: [start0.provider],
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    reply({ type: 'error', code: 'EFORMAT', message: `${start0.file}: not a model ONNX Runtime can load (${(e as Error).message})` });
    return;
  }
  const io: EncoderIo = {
    inputs: session.inputMetadata.map((m) => ({ name: m.name, type: m.isTensor ? m.type : 'non-tensor', shape: m.isTensor ? [...m.shape] : [] })),
    outputs: session.outputMetadata.map((m) => ({ name: m.name, type: m.isTensor ? m.type : 'non-tensor', shape: m.isTensor ? [...m.shape] : [] })),
  };
  reply({ type: 'ready', io });
}

// Token ids and mask values are small and non-negative: each int64 is its int32 in the low word (little-endian
// on every platform onnxruntime-node ships for) and zero in the high word, written without a BigInt per value.
function int64(a: Int32Array | Uint8Array, n: number): BigInt64Array {
  const out = new BigInt64Array(n);
  const words = new Int32Array(out.buffer);
  for (let i = 0; i < n; i++) words[2 * i] = a[i];
  return out;
}

async function runText(req: Extract<WorkerRequest, { type: 'text' }>): Promise<Float32Array> {
  const { n, T, ids, lengths } = req;
  const mask = new Uint8Array(n * T);
  for (let r = 0; r < n; r++) mask.fill(1, r * T, r * T + lengths[r]);
  const feeds: Record<string, import('onnxruntime-node').Tensor> = {};
  const typeOf = (name: string) => setup.inputTypes[name] ?? 'int64';
  const tensor = (name: string, data: Int32Array | Uint8Array) =>
    typeOf(name) === 'int32' ? new ort.Tensor('int32', Int32Array.from(data), [n, T]) : new ort.Tensor('int64', int64(data, n * T), [n, T]);
  feeds[setup.text!.ids] = tensor(setup.text!.ids, ids);
  feeds[setup.text!.mask] = tensor(setup.text!.mask, mask);
  if (setup.text!.types) feeds[setup.text!.types] = tensor(setup.text!.types, new Uint8Array(n * T));
  const out = (await session.run(feeds, [setup.output]))[setup.output];
  const dims = out.dims;
  if (dims.length !== 3 || dims[0] !== n || dims[1] !== T)
    throw Object.assign(new Error(`${setup.file}: output '${setup.output}' has shape [${dims.join(', ')}] for a batch of ${n} titles of ${T} tokens; expected [${n}, ${T}, hidden] (the last hidden state)`), { code: 'EMISMATCH' });
  const H = dims[2];
  const h = out.data as Float32Array;
  const f = new Float32Array(n * H);
  for (let r = 0; r < n; r++) {
    if (setup.pooling === 'cls') {
      f.set(h.subarray(r * T * H, r * T * H + H), r * H);
    } else {
      const len = lengths[r];
      for (let t = 0; t < len; t++) {
        const o = (r * T + t) * H;
        for (let k = 0; k < H; k++) f[r * H + k] += h[o + k];
      }
      for (let k = 0; k < H; k++) f[r * H + k] /= len;
    }
  }
  return f;
}

async function runImage(req: Extract<WorkerRequest, { type: 'image' }>): Promise<Float32Array> {
  const im = setup.image!;
  const n = req.items.length;
  const plane = im.height * im.width, rowBytes = 3 * plane;
  const raw = Buffer.allocUnsafe(rowBytes);
  const x = new Float32Array(n * rowBytes);
  const scale = im.std.map((s) => 1 / (255 * s)), shift = im.mean.map((m, c) => -m / im.std[c]);
  for (let r = 0; r < n; r++) {
    const item = req.items[r];
    let got = 0;
    while (got < rowBytes) {
      const k = fs.readSync(pixelFd!, raw, got, rowBytes - got, item * rowBytes + got);
      if (k === 0) throw Object.assign(new Error(`${im.file}: ends inside item ${item}'s pixels`), { code: 'EFORMAT' });
      got += k;
    }
    for (let c = 0; c < 3; c++) {
      const a = scale[c], b = shift[c], o = r * rowBytes + c * plane;
      for (let p = 0; p < plane; p++) x[o + p] = raw[c * plane + p] * a + b;
    }
  }
  const out = (await session.run({ [setup.imageInput!]: new ort.Tensor('float32', x, [n, 3, im.height, im.width]) }, [setup.output]))[setup.output];
  const dims = out.dims;
  if ((dims.length !== 2 && dims.length !== 4) || dims[0] !== n)
    throw Object.assign(new Error(`${setup.file}: output '${setup.output}' has shape [${dims.join(', ')}] for ${n} images; expected [${n}, features] or [${n}, features, h, w]`), { code: 'EMISMATCH' });
  const F = dims[1];
  const y = out.data as Float32Array;
  if (dims.length === 2) return y.slice(0, n * F);
  const s = dims[2] * dims[3];
  const f = new Float32Array(n * F);
  for (let i = 0; i < n * F; i++) {
    let sum = 0;
    for (let k = 0; k < s; k++) sum += y[i * s + k];
    f[i] = sum / s;
  }
  return f;
}

port.on('message', (req: WorkerRequest) => {
  if (req.type === 'setup') {
    setup = req.setup;
    if (setup.image) pixelFd = fs.openSync(setup.image.file, 'r');
    return;
  }
  const run = req.type === 'text' ? runText(req) : runImage(req);
  run.then(
    (features) => reply({ type: 'done', id: req.id, features }, [features.buffer as ArrayBuffer]),
    (e: Error & { code?: string }) => reply({ type: 'error', id: req.id, code: e.code ?? 'EMISMATCH', message: e.code ? e.message : `${setup.file}: ONNX Runtime refused the batch (${e.message})` }),
  );
});

void start();
