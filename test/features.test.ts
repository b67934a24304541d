/**
 * Two-stage MoRec: ONNX feature extraction in worker threads (against the references the fixture scripts
 * recorded, and against morec's own libtorch encoders for the same weights), the feature cache (hit, miss,
 * invalidation, resume after an abort), the event loop staying free, clear errors for bad models, the feature
 * item store, and the adapter and fusion towers lowering the loss.
 *
 * Fixtures: test/fixtures/onnx/*.onnx, exported by test/fixtures/onnx/make_onnx_fixtures.py from the text and
 * image fixtures' weights (torch.onnx.export, Debian's python3-torch).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ItemStore, Model, ModelConfig, Sequences, encoderConfigFromHf, extractFeatures, FeatureInputs, prepareFeatureTower, trainRun } from '../lib';
import { prepareOptionsOf } from '../lib/run';
import { readSafetensors } from '../lib/io/safetensors';
import { toHalf } from '../lib/features/half';
import { prepareDataset } from '../lib/data/dataset';
import { chainWorld, isMorec, rng } from './helpers';

const ROOT = path.join(__dirname, '..', '..', 'test', 'fixtures');
const ONNX = path.join(ROOT, 'onnx');
const inputsJson = JSON.parse(fs.readFileSync(path.join(ROOT, 'text', 'inputs.json'), 'utf8'));
const imageIndex = JSON.parse(fs.readFileSync(path.join(ROOT, 'image', 'resnet-fixtures.json'), 'utf8'));

function tmp(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `morec-${name}-`));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The fixture's five token rows as feature-extraction inputs (item i = row i - 1). */
function textInputs(kind: 'bert' | 'roberta', fingerprint = 'fixture'): FeatureInputs & { kind: 'text' } {
  const n = inputsJson.batch as number, T = inputsJson.seq_len as number;
  const tokens = new Int32Array((n + 1) * T), lengths = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    tokens.set(inputsJson[kind].input_ids[i], (i + 1) * T);
    lengths[i + 1] = inputsJson.lengths[i];
  }
  return { kind: 'text', numItems: n, maxTokens: T, tokens, lengths, fingerprint };
}

/** A feature cache's matrix as float32 rows 1..n (row 0 checked to be zero). */
function readCache(file: string, n: number, dim: number): Float32Array {
  const b = fs.readFileSync(file);
  const all = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  assert.equal(all.length, (n + 1) * dim);
  assert.ok(all.subarray(0, dim).every((v) => v === 0), 'row 0 (padding) is zero');
  return all.slice(dim);
}

/** The resnet-basic fixture's reference images as an image store pixel file (row 0 = padding). */
function pixelFile(dir: string): { file: string; n: number; size: number; ref: ReturnType<typeof readSafetensors>['tensors'] } {
  const ref = readSafetensors(path.join(ROOT, 'image', 'resnet-basic-reference.safetensors')).tensors;
  const n = imageIndex.models['resnet-basic'].n as number, size = imageIndex.imageSize as number;
  const bytes = new Uint8Array((n + 1) * 3 * size * size);
  bytes.set(Uint8Array.from(ref.pixels.data as Int32Array), 3 * size * size);
  const file = path.join(dir, 'pixels.u8');
  fs.writeFileSync(file, bytes);
  return { file, n, size, ref };
}

const imageInputs = (file: string, n: number, size: number): FeatureInputs => ({ kind: 'image', numItems: n, file, height: size, width: size, mean: imageIndex.mean, std: imageIndex.std, fingerprint: 'resnet-fixture' });

test('text extraction equals the reference the fixture script recorded ([CLS] and mean, BERT and RoBERTa, 1 and 2 workers)', async () => {
  const dir = tmp('fx-text');
  for (const [kind, file] of [['bert', 'tiny-bert.onnx'], ['roberta', 'tiny-roberta.onnx'], ['bert', 'tiny-bert-types.onnx']] as const) {
    const ref = JSON.parse(fs.readFileSync(path.join(ROOT, 'text', 'reference', `${kind}.json`), 'utf8'));
    for (const pooling of ['cls', 'mean'] as const)
      for (const workers of [1, 2]) {
        const c = await extractFeatures(path.join(ONNX, file), textInputs(kind), path.join(dir, `${file}-${workers}`), { pooling, workers, batchSize: 2 });
        assert.equal(c.status, 'extracted');
        assert.equal(c.dim, 32);
        const got = readCache(c.file, 5, 32);
        const diff = maxAbsDiff(got, ref[pooling]);
        assert.ok(diff < 1e-5, `${file} ${pooling} ${workers} workers: max abs diff ${diff}`);
      }
  }
});

test('image extraction equals torchvision’s features (pooled output, and a [batch, F, 1, 1] map pooled by morec)', async () => {
  const dir = tmp('fx-image');
  const { file, n, size, ref } = pixelFile(dir);
  for (const model of ['resnet-basic.onnx', 'resnet-basic-map.onnx']) {
    const c = await extractFeatures(path.join(ONNX, model), imageInputs(file, n, size), path.join(dir, model), { batchSize: 2, workers: 2 });
    assert.equal(c.pooling, 'pooled');
    const got = readCache(c.file, n, c.dim);
    const diff = maxAbsDiff(got, ref.eval_features.data as Float32Array);
    assert.ok(diff < 1e-5, `${model}: max abs diff ${diff}`);
  }
});

test('one encoder, two engines: ONNX Runtime features equal the libtorch encoder’s for the same weights (within 1e-4)', async () => {
  const dir = tmp('fx-engines');
  // Text: the tiny-bert fixture's weights in morec's BERT, pooled as the tower pools, vs its ONNX export run by ONNX Runtime.
  const cfg = encoderConfigFromHf(JSON.parse(fs.readFileSync(path.join(ROOT, 'text', 'tiny-bert', 'config.json'), 'utf8')), 'config.json');
  const inputs = textInputs('bert');
  const items = new ItemStore({ numItems: 5, maxTokens: inputs.maxTokens, tokens: inputs.tokens, lengths: inputs.lengths });
  const ids = Int32Array.from([1, 2, 3, 4, 5]);
  for (const pooling of ['cls', 'mean'] as const) {
    const model = Model.create({ backbone: 'sasrec', numItems: 5, d: 8, heads: 2, maxLen: 4, itemTower: 'text', text: { ...cfg, pooling } as ModelConfig['text'] }, { items });
    model.loadEncoderWeights(path.join(ROOT, 'text', 'tiny-bert', 'model.safetensors'));
    const torchSide = model.encoderFeatures(ids).data;
    const c = await extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), inputs, path.join(dir, `text-${pooling}`), { pooling });
    const diff = maxAbsDiff(readCache(c.file, 5, 32), torchSide);
    assert.ok(diff < 1e-4, `text ${pooling}: ${diff}`);
  }
  // Image: the resnet-basic fixture's weights in morec's ResNet vs the torch.onnx export.
  const { file, n, size, ref } = pixelFile(dir);
  const m = imageIndex.models['resnet-basic'];
  const bytes = new Uint8Array(fs.readFileSync(file));
  const model = Model.create(
    { backbone: 'sasrec', numItems: n, d: 8, heads: 2, maxLen: 4, itemTower: 'image', image: { arch: 'resnet', block: m.block, depths: m.depths, width: m.width, imageSize: size, mean: imageIndex.mean, std: imageIndex.std } as ModelConfig['image'] },
    { items: ItemStore.fromPixels({ numItems: n, height: size, width: size, pixels: bytes }) },
  );
  model.loadEncoderWeights(path.join(ROOT, 'image', 'resnet-basic.safetensors'));
  const torchSide = model.encoderFeatures(Int32Array.from({ length: n }, (_, i) => i + 1)).data;
  assert.ok(maxAbsDiff(torchSide, ref.eval_features.data as Float32Array) < 1e-4);
  const c = await extractFeatures(path.join(ONNX, 'resnet-basic.onnx'), imageInputs(file, n, size), path.join(dir, 'image'), {});
  const diff = maxAbsDiff(readCache(c.file, n, c.dim), torchSide);
  assert.ok(diff < 1e-4, `image: ${diff}`);
});

test('a preset encoder exported for two-stage is the initial encoder of an E2E run with the same seed', async () => {
  const cacheDir = tmp('fx-preset');
  const data = await prepareDataset('synthetic', { cacheDir, synthetic: { seed: 7, scale: 0.25 } });
  const ts = await prepareFeatureTower(data, { encoder: 'bert-tiny', pooling: 'mean', seed: 11 });
  assert.match(ts.label, /^bert-tiny\(scratch, TS adapter 0\)$/);
  assert.equal(ts.cache.dim, 128);
  const { prepareTextTower } = await import('../lib/text/text_tower');
  const e2e = prepareTextTower(data, { encoder: 'bert-tiny', pooling: 'mean' });
  const model = Model.create({ backbone: 'sasrec', numItems: e2e.items.numItems, itemTower: 'text', text: e2e.text as ModelConfig['text'], seed: 11 }, { items: e2e.items });
  const n = e2e.items.numItems;
  const torchSide = model.encoderFeatures(Int32Array.from({ length: n }, (_, i) => i + 1)).data;
  const diff = maxAbsDiff(readCache(ts.cache.file, n, 128), torchSide);
  assert.ok(diff < 1e-4, `${diff}`);
  // Another seed is another encoder (the seed is part of what the export is keyed by).
  const other = await prepareFeatureTower(data, { encoder: 'bert-tiny', pooling: 'mean', seed: 12 });
  assert.notEqual(other.onnx, ts.onnx);
  assert.ok(maxAbsDiff(readCache(other.cache.file, n, 128), torchSide) > 1e-2);
});

test('feature cache: reused on a hit; a new key for another encoder file, pooling or dtype; float16 rounds as IEEE half', async () => {
  const dir = tmp('fx-cache');
  const enc = path.join(dir, 'enc.onnx');
  fs.copyFileSync(path.join(ONNX, 'tiny-bert.onnx'), enc);
  const a = await extractFeatures(enc, textInputs('bert'), dir, { pooling: 'cls' });
  assert.equal(a.status, 'extracted');
  const b = await extractFeatures(enc, textInputs('bert'), dir, { pooling: 'cls' });
  assert.equal(b.status, 'hit');
  assert.equal(b.dir, a.dir);
  const mean = await extractFeatures(enc, textInputs('bert'), dir, { pooling: 'mean' });
  assert.notEqual(mean.dir, a.dir);
  const inputsChanged = await extractFeatures(enc, textInputs('bert', 'other tokens'), dir, { pooling: 'cls' });
  assert.notEqual(inputsChanged.dir, a.dir);
  // Same path, other bytes (the encoder was replaced): a miss, not a stale hit.
  fs.copyFileSync(path.join(ONNX, 'tiny-roberta.onnx'), enc);
  const replaced = await extractFeatures(enc, textInputs('bert'), dir, { pooling: 'cls' });
  assert.equal(replaced.status, 'extracted');
  assert.notEqual(replaced.dir, a.dir);
  fs.copyFileSync(path.join(ONNX, 'tiny-bert.onnx'), enc);
  const half = await extractFeatures(enc, textInputs('bert'), dir, { pooling: 'cls', dtype: 'float16' });
  assert.notEqual(half.dir, a.dir);
  assert.equal(half.file.endsWith('.f16'), true);
  const f32 = readCache(a.file, 5, 32);
  const raw = fs.readFileSync(half.file);
  const u16 = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2).slice(32);
  for (let i = 0; i < f32.length; i++) assert.equal(u16[i], toHalf(f32[i]), `element ${i}`);
  // toHalf against known encodings: 1, -2, 65504 (max), 6.1e-5 (min normal), 1e-7 (subnormal), overflow, ties to even.
  assert.deepEqual([1, -2, 65504, 2 ** -14, 2 ** -24, 1e6, 1 + 2 ** -11, 1 + 3 * 2 ** -11].map(toHalf), [0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x7c00, 0x3c00, 0x3c02]);
  // A float16 cache loads into a model (widened once) and gives the same item table as the float32 values rounded.
  const store16 = ItemStore.fromFeatureFile({ numItems: 5, dim: 32, file: half.file, dtype: 'float16' });
  const store32 = ItemStore.fromFeatureFile({ numItems: 5, dim: 32, file: a.file, dtype: 'float32' });
  const mk = (items: ItemStore) => Model.create({ backbone: 'sasrec', numItems: 5, d: 8, heads: 2, maxLen: 4, itemTower: 'features', features: { dim: 32 } as ModelConfig['features'], seed: 1 }, { items });
  const t16 = await mk(store16).itemVectors(), t32 = await mk(store32).itemVectors();
  const d = maxAbsDiff(t16, t32);
  assert.ok(d > 0 && d < 1e-2, `float16 vs float32 item tables differ by ${d}`);
});

test('feature cache: an aborted extraction resumes where it stopped and ends byte-identical to an uninterrupted one', async () => {
  const dir = tmp('fx-resume');
  // 400 items: the fixture rows repeated, so batches of 8 make 50 batches to interrupt between.
  const base = textInputs('bert');
  const N = 400, T = base.maxTokens;
  const tokens = new Int32Array((N + 1) * T), lengths = new Int32Array(N + 1);
  for (let i = 1; i <= N; i++) {
    const src = 1 + ((i - 1) % 5);
    tokens.set(base.tokens.subarray(src * T, src * T + T), i * T);
    lengths[i] = base.lengths[src];
  }
  const inputs: FeatureInputs = { kind: 'text', numItems: N, maxTokens: T, tokens, lengths, fingerprint: 'resume' };
  const clean = await extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), inputs, path.join(dir, 'clean'), { batchSize: 8 });
  const ac = new AbortController();
  let seen = 0;
  await assert.rejects(
    extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), inputs, path.join(dir, 'cut'), {
      batchSize: 8,
      signal: ac.signal,
      onProgress: (done) => {
        seen = done;
        if (done >= 160) ac.abort();
      },
    }),
    isMorec('EABORT', /aborted; run it again to resume/),
  );
  assert.ok(seen >= 160 && seen < N);
  const [cutDir] = fs.readdirSync(path.join(dir, 'cut'));
  assert.equal(fs.existsSync(path.join(dir, 'cut', cutDir, 'done.bits')), true, 'progress kept');
  assert.equal(fs.existsSync(path.join(dir, 'cut', cutDir, 'index.json')), false, 'not marked complete');
  const logs: string[] = [];
  const resumed = await extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), inputs, path.join(dir, 'cut'), { batchSize: 8, log: (l) => logs.push(l) });
  assert.match(resumed.status, /^resumed \((\d+) of 400 items were done\)$/);
  const doneBefore = Number(/resumed \((\d+)/.exec(resumed.status)![1]);
  assert.ok(doneBefore >= 160, `${doneBefore}`);
  assert.ok(logs.some((l) => /resuming .*: \d+ of 400 items were extracted/.test(l)));
  assert.deepEqual(fs.readFileSync(resumed.file), fs.readFileSync(clean.file));
  assert.equal(fs.existsSync(path.join(resumed.dir, 'done.bits')), false);
  // A damaged progress file is not trusted: the extraction starts over (and says so).
  const again = path.join(dir, 'again');
  await assert.rejects(extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), inputs, again, { batchSize: 8, signal: AbortSignal.abort() }), isMorec('EABORT', /aborted/));
  const ac2 = new AbortController();
  await assert.rejects(extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), inputs, again, { batchSize: 8, signal: ac2.signal, onProgress: (d) => d >= 80 && ac2.abort() }), isMorec('EABORT', /aborted/));
  const [againDir] = fs.readdirSync(again);
  fs.writeFileSync(path.join(again, againDir, 'done.bits'), 'garbage');
  const logs2: string[] = [];
  const fresh = await extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), inputs, again, { batchSize: 8, log: (l) => logs2.push(l) });
  assert.equal(fresh.status, 'extracted');
  assert.ok(logs2.some((l) => /left by another extraction or damaged; starting over/.test(l)));
  assert.deepEqual(fs.readFileSync(fresh.file), fs.readFileSync(clean.file));
});

test('extraction runs in worker threads: a 10 ms timer on the main thread keeps firing while ONNX Runtime works', async () => {
  const dir = tmp('fx-timer');
  // Big batches so one ONNX run is long; the same run on the main thread blocks the timer for that long.
  const base = textInputs('bert');
  const N = 3000, T = base.maxTokens;
  const tokens = new Int32Array((N + 1) * T), lengths = new Int32Array(N + 1);
  const r = rng(5);
  for (let i = 1; i <= N; i++) {
    lengths[i] = T;
    for (let t = 0; t < T; t++) tokens[i * T + t] = 1 + Math.floor(r() * 100);
  }
  const inputs: FeatureInputs = { kind: 'text', numItems: N, maxTokens: T, tokens, lengths, fingerprint: 'timer' };
  // Reference: one batch of 1000 titles run synchronously on this thread (how long the loop would be blocked).
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const session = await ort.InferenceSession.create(path.join(ONNX, 'tiny-bert.onnx'), { intraOpNumThreads: 1 });
  const B = 1000;
  const ids = new BigInt64Array(B * T).fill(5n), mask = new BigInt64Array(B * T).fill(1n);
  const t0 = performance.now();
  await session.run({ input_ids: new ort.Tensor('int64', ids, [B, T]), attention_mask: new ort.Tensor('int64', mask, [B, T]) });
  const oneBatchMs = performance.now() - t0;
  await session.release();
  let last = performance.now(), maxGap = 0, ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, 10);
  const s0 = performance.now();
  const c = await extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), inputs, dir, { batchSize: B, threads: 1 });
  const total = performance.now() - s0;
  clearInterval(timer);
  assert.equal(c.numItems, N);
  // The main thread only posts batches and writes rows: its longest stall is far shorter than one ONNX run.
  assert.ok(oneBatchMs > 40, `one batch took ${oneBatchMs.toFixed(1)} ms (too fast to tell a blocked loop from a free one)`);
  assert.ok(maxGap < oneBatchMs / 2, `the timer stalled ${maxGap.toFixed(1)} ms; one ONNX run takes ${oneBatchMs.toFixed(1)} ms`);
  assert.ok(ticks >= total / 10 / 3, `${ticks} ticks in ${total.toFixed(0)} ms`);
});

test('bad encoders: a corrupt file, wrong input names, wrong shapes and a missing output are refused naming the file', async () => {
  const dir = tmp('fx-bad');
  const corrupt = path.join(dir, 'corrupt.onnx');
  fs.writeFileSync(corrupt, Buffer.from('this is not a protobuf'));
  await assert.rejects(extractFeatures(corrupt, textInputs('bert'), dir), isMorec('EFORMAT', /corrupt\.onnx: not a model ONNX Runtime can load/));
  const truncated = path.join(dir, 'truncated.onnx');
  fs.writeFileSync(truncated, fs.readFileSync(path.join(ONNX, 'tiny-bert.onnx')).subarray(0, 5000));
  await assert.rejects(extractFeatures(truncated, textInputs('bert'), dir), isMorec('EFORMAT', /truncated\.onnx: not a model/));
  await assert.rejects(extractFeatures(path.join(dir, 'absent.onnx'), textInputs('bert'), dir), isMorec('ENOENT', /absent\.onnx: cannot be read/));
  const { file, n, size } = pixelFile(dir);
  // An image model given titles, a text model given images.
  await assert.rejects(extractFeatures(path.join(ONNX, 'resnet-basic.onnx'), textInputs('bert'), dir), isMorec('EMISMATCH', /resnet-basic\.onnx: a text encoder needs inputs 'input_ids' and 'attention_mask'.*pixel_values \(float32 \[batch, 3, 32, 32\]\)/));
  await assert.rejects(extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), imageInputs(file, n, size), dir), isMorec('EMISMATCH', /tiny-bert\.onnx: an image encoder needs exactly one input/));
  // Images of another size than the graph's fixed input.
  const small = path.join(dir, 'small.u8');
  fs.writeFileSync(small, Buffer.alloc((n + 1) * 3 * 16 * 16));
  await assert.rejects(extractFeatures(path.join(ONNX, 'resnet-basic.onnx'), { ...(imageInputs(small, n, 16) as FeatureInputs & { kind: 'image' }), height: 16, width: 16 }, dir), isMorec('EMISMATCH', /takes \[batch, 3, 32, 32\] but the image store has 3 x 16 x 16 pixels/));
  await assert.rejects(extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), textInputs('bert'), dir, { output: 'pooler_output' }), isMorec('EMISMATCH', /no output 'pooler_output'.*outputs last_hidden_state/));
  await assert.rejects(extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), textInputs('bert'), dir, { workers: 0 }), isMorec('EINVAL', /workers/));
  await assert.rejects(extractFeatures(path.join(ONNX, 'tiny-bert.onnx'), textInputs('bert'), dir, { pooling: 'max' as 'cls' }), isMorec('EINVAL', /'cls' or 'mean' for pooling/));
});

test('feature item stores: bad arrays, truncated files and non-finite features are refused', () => {
  assert.throws(() => ItemStore.fromFeatures({ numItems: 3, dim: 4, features: new Float32Array(10) }), isMorec('EINVAL', /\(numItems \+ 1\) x dim = 16 values but received 10/));
  const dir = tmp('fx-store');
  const file = path.join(dir, 'f.f32');
  fs.writeFileSync(file, Buffer.alloc(60));
  assert.throws(() => ItemStore.fromFeatureFile({ numItems: 3, dim: 4, file, dtype: 'float32' }), isMorec('EFORMAT', /f\.f32: holds 60 bytes but 3 items of 4 float32 features .* need 64 \(truncated or from another data set\)/));
  const ok = ItemStore.fromFeatureFile({ numItems: 3, dim: 4, file: (fs.writeFileSync(file, Buffer.alloc(32)), file), dtype: 'float16' });
  assert.equal(ok.kind, 'features');
  assert.equal(ok.dim, 4);
  const f = new Float32Array(16).fill(0.5);
  f[9] = NaN;
  const bad = ItemStore.fromFeatures({ numItems: 3, dim: 4, features: f });
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 3, d: 4, heads: 1, maxLen: 4, itemTower: 'features', features: { dim: 4 } as ModelConfig['features'] }, { items: bad }), isMorec('EFORMAT', /item 2 has non-finite features \(1 items in all\)/));
  const good = ItemStore.fromFeatures({ numItems: 3, dim: 4, features: new Float32Array(16).fill(0.5) });
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 3, d: 4, heads: 1, maxLen: 4, itemTower: 'features', features: { dim: 5 } as ModelConfig['features'] }, { items: good }), isMorec('EINVAL', /4 dimensions but features\.dim is 5/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 3, d: 4, heads: 1, maxLen: 4, itemTower: 'features', features: { dim: 4 } as ModelConfig['features'] }), isMorec('EINVAL', /adapts each item's cached features/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 3, d: 4, heads: 1, maxLen: 4, itemTower: 'id', fusion: 'add' }), isMorec('EINVAL', /fusion joins an ID embedding with a modality vector/));
});

/** Features that tell the chain world's items apart: a seeded random vector per item plus its position. */
function chainFeatures(n: number, dim: number, seed: number): ItemStore {
  const r = rng(seed);
  const f = new Float32Array((n + 1) * dim);
  for (let i = 1; i <= n; i++) {
    for (let k = 0; k < dim; k++) f[i * dim + k] = r() * 2 - 1;
    f[i * dim] = Math.sin(i / 3);
    f[i * dim + 1] = Math.cos(i / 3);
  }
  return ItemStore.fromFeatures({ numItems: n, dim, features: f });
}

test('two-stage adapters (depth 0 and 8) and ID+modality fusion (add, cat) lower the loss for SASRec and DSSM', async () => {
  const N = 40;
  const seqs = chainWorld(300, N, 3);
  const items = chainFeatures(N, 24, 9);
  const cases: [string, Partial<ModelConfig>][] = [
    ['sasrec ts0', { backbone: 'sasrec', features: { dim: 24, adapterDepth: 0 } as ModelConfig['features'] }],
    // Eight [Dropout, Linear, GELU] layers start with item vectors near zero (GELU halves small inputs at each
    // layer, as in the study's MLP_Layers): the loss leaves 2 ln 2 slowly, so this case gets width and epochs.
    ['sasrec ts8', { backbone: 'sasrec', d: 32, features: { dim: 24, adapterDepth: 8 } as ModelConfig['features'] }],
    ['sasrec add', { backbone: 'sasrec', features: { dim: 24 } as ModelConfig['features'], fusion: 'add' }],
    ['sasrec cat+2', { backbone: 'sasrec', features: { dim: 24 } as ModelConfig['features'], fusion: 'cat', fusionDepth: 2 }],
    ['dssm ts2', { backbone: 'dssm', numUsers: seqs.users, features: { dim: 24, adapterDepth: 2 } as ModelConfig['features'] }],
    ['dssm cat', { backbone: 'dssm', numUsers: seqs.users, features: { dim: 24 } as ModelConfig['features'], fusion: 'cat' }],
  ];
  for (const [name, cfg] of cases) {
    const model = Model.create({ numItems: N, d: 16, heads: 2, maxLen: 10, itemTower: 'features', seed: 5, threads: 2, ...cfg } as ModelConfig, { items });
    const epochs = name === 'sasrec ts8' ? 12 : 6;
    const names = Object.keys(model.parameters());
    if (cfg.fusion) assert.ok(names.includes('item_tower.id_embedding.weight') && names.includes('item_tower.modality.projection.weight'), names.join(' '));
    if (cfg.fusion === 'cat') assert.ok(names.includes('item_tower.join.weight'));
    const depth = (cfg.features as { adapterDepth?: number }).adapterDepth ?? 0;
    assert.equal(names.filter((k) => /adapter\.\d+\.weight$/.test(k)).length, depth, `${name}: adapter layers`);
    const losses: number[] = [];
    for (let e = 0; e < epochs; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 64, lr: 3e-3 })).loss);
    const drop = name === 'sasrec ts8' ? 0.97 : 0.9;
    assert.ok(losses[epochs - 1] < losses[0] * drop, `${name}: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  }
});

test('fusion around an end-to-end text tower: the encoder keeps its learning rate, import and features', async () => {
  const inputs = textInputs('bert');
  const cfg = encoderConfigFromHf(JSON.parse(fs.readFileSync(path.join(ROOT, 'text', 'tiny-bert', 'config.json'), 'utf8')), 'config.json');
  const items = new ItemStore({ numItems: 5, maxTokens: inputs.maxTokens, tokens: inputs.tokens, lengths: inputs.lengths });
  const plain = Model.create({ backbone: 'sasrec', numItems: 5, d: 8, heads: 2, maxLen: 4, itemTower: 'text', text: cfg as ModelConfig['text'] }, { items });
  const fused = Model.create({ backbone: 'sasrec', numItems: 5, d: 8, heads: 2, maxLen: 4, itemTower: 'text', text: cfg as ModelConfig['text'], fusion: 'add' }, { items });
  for (const m of [plain, fused]) m.loadEncoderWeights(path.join(ROOT, 'text', 'tiny-bert', 'model.safetensors'));
  const ids = Int32Array.from([1, 2, 3, 4, 5]);
  assert.deepEqual(fused.encoderFeatures(ids).data, plain.encoderFeatures(ids).data);
  assert.ok(Object.keys(fused.parameters()).some((k) => k.startsWith('item_tower.modality.encoder.')));
  // Four of the five items per user, so a negative can always be drawn.
  const seqs = Sequences.fromArrays([[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 1], [4, 5, 1, 2], [5, 1, 2, 3], [1, 3, 5, 2], [2, 4, 1, 3]], 5);
  const before = await fused.itemVectors();
  await fused.trainEpoch(seqs, { epoch: 0, batchSize: 16, lr: 1e-2, encoderLr: 1e-2 });
  assert.ok(maxAbsDiff(await fused.itemVectors(), before) > 1e-4, 'the fused tower trains');
  assert.ok(maxAbsDiff(fused.encoderFeatures(ids).data, plain.encoderFeatures(ids).data) > 1e-5, 'the encoder inside trains too');
});

test('a text run’s trained encoder as the frozen encoder of a two-stage run: the features are that checkpoint’s', async () => {
  const dir = tmp('fx-run');
  const cfg = {
    dataset: 'synthetic', maxLen: 10, minSeqLen: 5, seed: 4, scale: 0.05,
    model: { backbone: 'sasrec' as const, itemTower: 'text' as const, d: 16, heads: 2 },
    train: { batchSize: 64, lr: 3e-3, encoderLr: 3e-3, weightDecay: 0.1, epochs: 2, patience: 2, gradAccum: 1 },
    text: { encoder: 'bert-tiny', pooling: 'mean' as const },
    threads: 2,
  };
  const e2e = await trainRun(path.join(dir, 'e2e'), cfg, { mode: 'new' });
  const lines: string[] = [];
  const ts = await trainRun(path.join(dir, 'ts'), { ...cfg, model: { ...cfg.model, itemTower: 'features' as const, fusion: 'cat' as const }, text: undefined, features: { encoder: e2e.runDir, adapterDepth: 2 } }, { mode: 'new', log: (l) => lines.push(l) });
  assert.equal(ts.results.itemTower, 'bert-tiny(E2E-trained, TS adapter 2) + ID (cat)');
  assert.ok(lines.some((l) => /two-stage text encoder: the encoder trained by run .*e2e \(its best checkpoint\), frozen/.test(l)), lines.join('\n'));
  // The cached features are the E2E checkpoint's encoder output (mean pooling, as that run's tower).
  const data = await prepareDataset('synthetic', prepareOptionsOf(cfg));
  const prepared = await prepareFeatureTower(data, { encoder: e2e.runDir });
  assert.equal(prepared.cache.status, 'hit');
  assert.equal(prepared.cache.pooling, 'mean');
  const { prepareTextTower } = await import('../lib/text/text_tower');
  const t = prepareTextTower(data, cfg.text);
  const { model } = await Model.load(path.join(e2e.runDir, 'checkpoint'), {}, { items: t.items, inference: true });
  const n = t.items.numItems;
  const diff = maxAbsDiff(readCache(prepared.cache.file, n, prepared.cache.dim), model.encoderFeatures(Int32Array.from({ length: n }, (_, i) => i + 1)).data);
  assert.ok(diff < 1e-4, `${diff}`);
  // Another data set is refused: a run's encoder is frozen for the data it was trained on.
  const other = await prepareDataset('synthetic', prepareOptionsOf({ ...cfg, seed: 5 }));
  await assert.rejects(prepareFeatureTower(other, { encoder: e2e.runDir }), isMorec('EMISMATCH', /the run was trained on data with fingerprint/));
  fs.rmSync(dir, { recursive: true, force: true });
});
