/**
 * The Swin Transformer image encoder against torchvision itself: a reduced-width Swin (torchvision 0.14's own
 * SwinTransformer: patch 4, embed_dim 8, depths [2,2,2,2], heads [2,2,4,4], window 7) with every tensor
 * randomized, stored as safetensors, as a torch.save'd .pth and in Hugging Face SwinModel naming
 * (test/fixtures/image/make_swin_fixture.py). Images of 56x56 (feature maps 14, 7, 4 padded to 7, 2: padding,
 * the shift mask with several heads, the shift-0 rule, odd patch merging) and 64x64 (maps 16 and 8 padded and
 * shifted). Also wrapper prefixes, checkpoint errors, stochastic depth, finetuneTopStages, the frozen-stage
 * cache, gradient checkpointing and E2E training. With MOREC_FULL_IMAGE_REFERENCE=DIR (written by
 * `make_swin_fixture.py --full DIR`) also a real torchvision swin_t at 224x224.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ItemStore } from '../lib/item_store';
import { Model, ModelConfig } from '../lib';
import { readSafetensors, Tensor, writeSafetensors } from '../lib/io/safetensors';
import { chainWorld, isMorec, pixelStore, randomStore } from './helpers';

const FIX = path.join(__dirname, '..', '..', 'test', 'fixtures', 'image');
const REF = readSafetensors(path.join(FIX, 'swin-tiny-reference.safetensors'));
const META = {
  config: JSON.parse(REF.metadata.config),
  mean: JSON.parse(REF.metadata.mean) as number[],
  std: JSON.parse(REF.metadata.std) as number[],
  sizes: JSON.parse(REF.metadata.sizes) as Record<string, number>,
};
const SIZES = Object.keys(META.sizes).map(Number);
const ENC = 'item_tower.encoder.';
// features.0 (patch embedding): 4 tensors; per block 13 (norm1 2, qkv 2, proj 2, bias table 1, norm2 2, mlp 4);
// per merging 3; final norm 2.
const ENCODER_TENSORS = 4 + 8 * 13 + 3 * 3 + 2;

function swinConfig(size: number, extra: Record<string, unknown> = {}): ModelConfig['image'] {
  const c = META.config;
  return {
    arch: 'swin', depths: c.depths, width: c.embed_dim, heads: c.num_heads, windowSize: c.window_size, patchSize: c.patch_size,
    mlpRatio: c.mlp_ratio, layerNormEps: c.layer_norm_eps, imageSize: size, mean: META.mean, std: META.std, ...extra,
  } as ModelConfig['image'];
}

function fixtureModel(size: number, extra: Record<string, unknown> = {}) {
  const n = META.sizes[String(size)];
  const model = Model.create(
    { backbone: 'sasrec', numItems: n, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image: swinConfig(size, extra), threads: 2, seed: 3 },
    { items: pixelStore(REF.tensors[`pixels${size}`].data as Int32Array, n, size) },
  );
  return { model, items: Int32Array.from({ length: n }, (_, i) => i + 1), expected: REF.tensors[`features${size}`] };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

function tmp(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `morec-${name}-`));
}

for (const file of ['swin-tiny.safetensors', 'swin-tiny.pth', 'swin-tiny-hf.safetensors'])
  for (const size of SIZES)
    test(`${file} at ${size}x${size}: eval-mode features equal torchvision's to 1e-4`, (t) => {
      const { model, items, expected } = fixtureModel(size);
      const before = model.encoderFeatures(items);
      const report = model.loadEncoderWeights(path.join(FIX, file));
      assert.equal(report.loaded, ENCODER_TENSORS, 'every encoder tensor loaded');
      if (file.includes('-hf'))
        assert.ok(report.ignored.includes('encoder.layers.0.blocks.1.attention.self.relative_position_index'), `ignored ${report.ignored}`);
      else assert.ok(report.ignored.includes('head.weight') && report.ignored.includes('features.5.1.attn.relative_position_index'), `ignored ${report.ignored}`);
      const got = model.encoderFeatures(items);
      assert.deepEqual(got.shape, expected.shape);
      const diff = maxAbsDiff(got.data, expected.data as Float32Array);
      const diff64 = maxAbsDiff(got.data, REF.tensors[`features${size}_f64`].data as Float32Array);
      t.diagnostic(`max |features - torchvision| = ${diff}, max |features - float64 torchvision| = ${diff64}`);
      assert.ok(diff < 1e-4, `max |features - torchvision| = ${diff}`);
      // Not vacuous: the encoder's own random initialization is far from the reference.
      assert.ok(maxAbsDiff(before.data, expected.data as Float32Array) > 0.1);
    });

test('parameter names are torchvision state-dict keys; relative_position_index is not a tensor of the model', () => {
  const { model } = fixtureModel(56);
  const names = Object.keys(model.parameters()).filter((k) => k.startsWith(ENC)).map((k) => k.slice(ENC.length));
  assert.equal(names.length, ENCODER_TENSORS);
  const torchvision = Object.keys(readSafetensors(path.join(FIX, 'swin-tiny.safetensors')).tensors).filter((k) => !k.startsWith('head.') && !k.endsWith('relative_position_index'));
  assert.deepEqual([...names].sort(), [...torchvision].sort());
  for (const k of ['features.0.0.weight', 'features.0.2.bias', 'features.1.0.attn.qkv.weight', 'features.1.1.attn.relative_position_bias_table', 'features.2.reduction.weight', 'features.2.norm.weight', 'features.7.1.mlp.3.bias', 'norm.weight'])
    assert.ok(names.includes(k), k);
  assert.equal(model.parameters()[ENC + 'features.2.reduction.bias'], undefined, 'PatchMerging reduction has no bias');
});

test('wrapper prefixes (module., swin. with a classifier) load the same weights', () => {
  const tv = readSafetensors(path.join(FIX, 'swin-tiny.safetensors')).tensors;
  const hf = readSafetensors(path.join(FIX, 'swin-tiny-hf.safetensors')).tensors;
  const dir = tmp('swin');
  try {
    const cases: Array<[string, Record<string, Tensor>, string]> = [];
    const prefixed = (src: Record<string, Tensor>, prefix: string) => Object.fromEntries(Object.entries(src).map(([k, v]) => [prefix + k, v]));
    cases.push(['module.', prefixed(tv, 'module.'), 'module.head.weight']);
    // SwinForImageClassification: swin.* plus classifier.*
    cases.push(['swin.', { ...prefixed(hf, 'swin.'), 'classifier.weight': tv['head.weight'], 'classifier.bias': tv['head.bias'] }, 'classifier.weight']);
    for (const [name, tensors, ignored] of cases) {
      const file = path.join(dir, `prefixed.safetensors`);
      writeSafetensors(file, tensors);
      const { model, items, expected } = fixtureModel(56);
      const report = model.loadEncoderWeights(file);
      assert.equal(report.loaded, ENCODER_TENSORS, name);
      assert.ok(report.ignored.includes(ignored), `${name}: ignored ${report.ignored}`);
      assert.ok(maxAbsDiff(model.encoderFeatures(items).data, expected.data as Float32Array) < 1e-4, name);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('checkpoint errors: wrong shape, missing and unexpected tensors are named with the file; nothing is loaded', () => {
  const tv = readSafetensors(path.join(FIX, 'swin-tiny.safetensors')).tensors;
  const hf = readSafetensors(path.join(FIX, 'swin-tiny-hf.safetensors')).tensors;
  const dir = tmp('swin');
  try {
    const bad: Record<string, Tensor> = { ...tv };
    const w = tv['features.5.0.mlp.0.weight'];
    assert.deepEqual(w.shape, [128, 32]);
    bad['features.5.0.mlp.0.weight'] = { ...w, shape: [64, 32], data: (w.data as Float32Array).slice(0, 64 * 32) };
    delete bad['features.1.0.norm1.bias'];
    bad['features.9.weight'] = tv['norm.bias'];
    const file = path.join(dir, 'broken.safetensors');
    writeSafetensors(file, bad);
    const { model, items, expected } = fixtureModel(56);
    const before = model.encoderFeatures(items).data;
    assert.throws(
      () => model.loadEncoderWeights(file),
      (e: any) =>
        isMorec('EMISMATCH', /./)(e) &&
        e.message.includes(file) &&
        e.message.includes('features.5.0.mlp.0.weight is [64, 32], expected [128, 32]') &&
        e.message.includes('missing tensors: features.1.0.norm1.bias') &&
        e.message.includes('unexpected tensors: features.9.weight'),
    );
    assert.deepEqual(model.encoderFeatures(items).data, before, 'a refused checkpoint leaves the encoder as it was');
    // Hugging Face layout: a missing key projection leaves the joined qkv missing; a mis-shaped value makes
    // the joined tensor mis-shaped, named by its sources.
    const hfBad: Record<string, Tensor> = { ...hf };
    delete hfBad['encoder.layers.1.blocks.0.attention.self.key.weight'];
    const v = hf['encoder.layers.2.blocks.1.attention.self.value.bias'];
    hfBad['encoder.layers.2.blocks.1.attention.self.value.bias'] = { ...v, shape: [16], data: (v.data as Float32Array).slice(0, 16) };
    const hfFile = path.join(dir, 'broken-hf.safetensors');
    writeSafetensors(hfFile, hfBad);
    assert.throws(
      () => model.loadEncoderWeights(hfFile),
      (e: any) =>
        isMorec('EMISMATCH', /./)(e) &&
        e.message.includes(hfFile) &&
        e.message.includes('missing tensors: features.3.0.attn.qkv.weight') &&
        /encoder\.layers\.2\.blocks\.1\.attention\.self\.query\.bias \+ .*value\.bias is \[80\], expected \[96\]/.test(e.message),
    );
    // A Swin of another shape does not fit either.
    const other = Model.create(
      { backbone: 'sasrec', numItems: 3, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image: swinConfig(56, { width: 16 }), threads: 2 },
      { items: randomStore(3, 56, 1) },
    );
    assert.throws(() => other.loadEncoderWeights(path.join(FIX, 'swin-tiny.pth')), isMorec('EMISMATCH', /swin-tiny\.pth.*wrong shapes: .*features\.0\.0\.weight is \[8, 3, 4, 4\], expected \[16, 3, 4, 4\]/));
    // The good file still loads afterwards.
    model.loadEncoderWeights(path.join(FIX, 'swin-tiny-hf.safetensors'));
    assert.ok(maxAbsDiff(model.encoderFeatures(items).data, expected.data as Float32Array) < 1e-4);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('invalid Swin configs are refused naming the field', () => {
  const make = (image: Record<string, unknown>, size = 32) => () =>
    Model.create({ backbone: 'sasrec', numItems: 3, d: 8, itemTower: 'image', image: { arch: 'swin', depths: [1, 1], width: 8, heads: [2, 2], imageSize: size, ...image } as ModelConfig['image'], threads: 1 }, { items: randomStore(3, size, 1) });
  assert.throws(make({ heads: [3, 2] }), isMorec('EINVAL', /image\.heads\[0\]/));
  assert.throws(make({ heads: [2] }), isMorec('EINVAL', /image\.heads/));
  assert.throws(make({}, 30), isMorec('EINVAL', /image\.imageSize \(30\) to be divisible by image\.patchSize \(4\)/));
  assert.throws(make({ mlpRatio: 0.05 }), isMorec('EINVAL', /image\.mlpRatio/));
  // Any window, patch and stage count runs; pooled features are width * 2^(stages - 1).
  for (const [image, size, F] of [[{ depths: [1], heads: [1], windowSize: 3 }, 24, 8], [{ depths: [1, 2, 1], heads: [1, 2, 4], windowSize: 4, patchSize: 2 }, 20, 32], [{ windowSize: 1 }, 16, 16]] as const) {
    const model = make(image, size)();
    assert.deepEqual(model.encoderFeatures(Int32Array.from([1, 2])).shape, [2, F]);
  }
});

test('train mode: without stochastic depth it computes the eval features; with it, whole residual branches drop per image', () => {
  const { model, items, expected } = fixtureModel(56);
  model.loadEncoderWeights(path.join(FIX, 'swin-tiny.safetensors'));
  assert.ok(maxAbsDiff(model.encoderFeatures(items, { train: true }).data, expected.data as Float32Array) < 1e-4);
  const sd = fixtureModel(56, { dropPath: 0.5 }).model;
  sd.loadEncoderWeights(path.join(FIX, 'swin-tiny.safetensors'));
  const a = sd.encoderFeatures(items, { train: true }).data, b = sd.encoderFeatures(items, { train: true }).data;
  assert.ok(maxAbsDiff(a, expected.data as Float32Array) > 1e-3, 'stochastic depth changes the training forward');
  assert.ok(maxAbsDiff(a, b) > 1e-3, 'a fresh draw each call');
  // Eval mode afterwards: no stochastic depth, and nothing was changed by the training forwards.
  assert.ok(maxAbsDiff(sd.encoderFeatures(items).data, expected.data as Float32Array) < 1e-4);
});

const trainImage = { arch: 'swin', depths: [1, 1, 1], width: 8, heads: [1, 2, 2], windowSize: 4, imageSize: 32 };

test('finetuneTopStages: the patch embedding and bottom stages (with the merging before them) stay bit-identical and get no optimizer state', async () => {
  const numItems = 20;
  const seqs = chainWorld(24, numItems, 11);
  const model = Model.create(
    { backbone: 'sasrec', numItems, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image: { ...trainImage, finetuneTopStages: 1 } as ModelConfig['image'], seed: 5, threads: 2 },
    { items: randomStore(numItems, 32, 12) },
  );
  const before = model.parameters();
  await model.trainEpoch(seqs, { batchSize: 16, lr: 1e-3, encoderLr: 1e-3, weightDecay: 0.1 });
  const after = model.parameters();
  const enc = Object.keys(before).filter((k) => k.startsWith(ENC));
  // Stage i = features.{2i} (its merging, i >= 1) + features.{2i+1}; the top stage is 2: features.4, .5 and the final norm.
  const frozen = enc.filter((k) => /^item_tower\.encoder\.features\.[0-3]\./.test(k));
  const tuned = enc.filter((k) => /^item_tower\.encoder\.(features\.[45]\.|norm\.)/.test(k));
  assert.equal(frozen.length + tuned.length, enc.length);
  assert.ok(frozen.includes(ENC + 'features.2.reduction.weight') && tuned.includes(ENC + 'features.4.reduction.weight'));
  for (const k of frozen) assert.deepEqual(after[k].data, before[k].data, `${k} frozen`);
  for (const k of tuned) assert.notDeepEqual(after[k].data, before[k].data, `${k} trained`);
  const state = model.native.optimizerState().tensors;
  for (const k of frozen) assert.equal(state[`${k}.exp_avg`], undefined, `${k} has no optimizer state`);
  for (const k of tuned) assert.ok(state[`${k}.exp_avg`], `${k} has optimizer state`);
});

test('cached frozen stages train like uncached ones (1e-5)', async () => {
  const numItems = 16;
  const seqs = chainWorld(24, numItems, 8);
  const items = randomStore(numItems, 32, 13);
  const run = async (cacheFrozen: boolean) => {
    const model = Model.create(
      { backbone: 'sasrec', numItems, d: 16, heads: 2, maxLen: 8, dropout: 0, itemTower: 'image', image: { ...trainImage, finetuneTopStages: 1, cacheFrozen } as ModelConfig['image'], seed: 2, threads: 2 },
      { items },
    );
    const losses = [];
    for (let e = 0; e < 2; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 16, lr: 1e-3, encoderLr: 1e-3 })).loss);
    return { losses, params: model.parameters() };
  };
  const a = await run(false), b = await run(true);
  let max = 0;
  for (const k of Object.keys(a.params)) max = Math.max(max, maxAbsDiff(a.params[k].data, b.params[k].data));
  assert.ok(Math.abs(a.losses[1] - b.losses[1]) < 1e-5, `${a.losses} vs ${b.losses}`);
  assert.ok(max < 1e-5, `max parameter difference ${max}`);
});

test('gradient checkpointing of Swin blocks trains exactly like plain back-propagation, stochastic depth and attention dropout replayed (1e-5)', async () => {
  const numItems = 16;
  const seqs = chainWorld(24, numItems, 9);
  const items = randomStore(numItems, 32, 14);
  const run = async (gradientCheckpointing: boolean, finetuneTopStages: number) => {
    const image = { ...trainImage, depths: [2, 1, 1], dropPath: 0.3, attentionDropout: 0.2, finetuneTopStages, gradientCheckpointing };
    const model = Model.create(
      { backbone: 'sasrec', numItems, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image: image as ModelConfig['image'], seed: 6, threads: 2 },
      { items },
    );
    const losses = [];
    for (let e = 0; e < 2; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 16, lr: 1e-3, encoderLr: 1e-3 })).loss);
    return { losses, params: model.parameters() };
  };
  for (const top of [-1, 1]) {
    const a = await run(false, top), b = await run(true, top);
    let max = 0;
    for (const k of Object.keys(a.params)) max = Math.max(max, maxAbsDiff(a.params[k].data, b.params[k].data));
    assert.ok(Math.abs(a.losses[1] - b.losses[1]) < 1e-5, `top ${top}: ${a.losses} vs ${b.losses}`);
    assert.ok(max < 1e-5, `top ${top}: max parameter difference ${max}`);
  }
});

test('E2E Swin MoRec: the loss falls over epochs', async () => {
  const numItems = 20;
  const seqs = chainWorld(40, numItems, 31);
  const model = Model.create(
    { backbone: 'sasrec', numItems, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image: { ...trainImage, dropPath: 0.1 } as ModelConfig['image'], seed: 7, threads: 2 },
    { items: randomStore(numItems, 32, 32) },
  );
  const losses: number[] = [];
  for (let e = 0; e < 4; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 16, lr: 3e-3, encoderLr: 1e-3 })).loss);
  assert.ok(losses[3] < losses[0], `losses ${losses.map((l) => l.toFixed(4))}`);
});

const FULL = process.env.MOREC_FULL_IMAGE_REFERENCE;
test('a real torchvision swin_t at 224x224 (MOREC_FULL_IMAGE_REFERENCE): features equal torchvision within float32 error', { skip: !FULL && 'set MOREC_FULL_IMAGE_REFERENCE=DIR (make_swin_fixture.py --full DIR)' }, (t) => {
  const dir = FULL!;
  const ref = readSafetensors(path.join(dir, 'swin_t-reference.safetensors'));
  const n = ref.tensors.pixels224.shape[0];
  const model = Model.create(
    {
      backbone: 'sasrec', numItems: n, d: 16, heads: 2, maxLen: 8, itemTower: 'image', threads: 2,
      image: { arch: 'swin', depths: [2, 2, 6, 2], width: 96, heads: [3, 6, 12, 24], windowSize: 7, patchSize: 4, imageSize: 224, mean: JSON.parse(ref.metadata.mean), std: JSON.parse(ref.metadata.std) } as ModelConfig['image'],
    },
    { items: pixelStore(ref.tensors.pixels224.data as Int32Array, n, 224) },
  );
  const report = model.loadEncoderWeights(path.join(dir, 'swin_t.safetensors'));
  assert.equal(report.loaded, 4 + 12 * 13 + 3 * 3 + 2);
  const got = model.encoderFeatures(Int32Array.from({ length: n }, (_, i) => i + 1));
  assert.deepEqual(got.shape, [n, 768]);
  const diff = maxAbsDiff(got.data, ref.tensors.features224.data as Float32Array);
  const diff64 = maxAbsDiff(got.data, ref.tensors.features224_f64.data as Float32Array);
  t.diagnostic(`swin_t: max |features - torchvision f32| = ${diff}, max |features - float64| = ${diff64}, torchvision's own |f32 - f64| = ${ref.metadata.float32_error}`);
  assert.ok(diff < 1e-4 && diff64 < 1e-4, `max |features - torchvision| = ${diff}, float64 ${diff64}`);
});
