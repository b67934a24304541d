/**
 * The image item tower end to end: pixels in the item store (in memory and memory-mapped), the tower's
 * contract (each distinct item encoded once, the item table), frozen stages with and without the cache,
 * BatchNorm statistics through checkpoints, and a run on the synthetic world's pictures.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ItemStore, Model, ModelConfig, MorecError, trainRun } from '../lib';
import { chainWorld, isMorec, rng } from './helpers';

const N = 24, S = 16;
const resnet = { arch: 'resnet', block: 'basic', depths: [1, 1], width: 4, imageSize: S } as ModelConfig['image'];

/** Items whose picture tells their chain position apart: a bright square whose place and colour depend on i. */
function pixels(seed: number): Uint8Array {
  const r = rng(seed);
  const px = new Uint8Array((N + 1) * 3 * S * S);
  for (let i = 1; i <= N; i++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < S; y++)
        for (let x = 0; x < S; x++) {
          const on = Math.abs(x - (i % 8) * 2) < 3 && Math.abs(y - Math.floor(i / 8) * 5) < 3;
          px[((i * 3 + c) * S + y) * S + x] = on ? (c === i % 3 ? 250 : 60) : Math.floor(r() * 40);
        }
  return px;
}

function tmp(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `morec-${name}-`));
}

test('image item stores: bad pixel arrays and pixel files are refused with the expected sizes named', () => {
  assert.throws(() => ItemStore.fromPixels({ numItems: 2, height: 4, width: 4, pixels: new Uint8Array(10) }), isMorec('EINVAL', /3 x height x width = 144 bytes but received 10/));
  assert.throws(() => ItemStore.fromPixels({ numItems: 2, height: 4, width: 4, pixels: [1, 2] as unknown as Uint8Array }), isMorec('EINVAL', /Uint8Array/));
  const dir = tmp('pixfile');
  const file = path.join(dir, 'pixels.u8');
  fs.writeFileSync(file, Buffer.alloc(100));
  assert.throws(() => ItemStore.fromPixelFile({ numItems: 2, height: 4, width: 4, file }), isMorec('EFORMAT', /pixels\.u8: holds 100 bytes but 2 items .* need 144 \(truncated/));
  assert.throws(() => ItemStore.fromPixelFile({ numItems: 2, height: 4, width: 4, file: path.join(dir, 'none.u8') }), isMorec('ENOENT', /none\.u8/));
  const store = ItemStore.fromPixels({ numItems: 2, height: 4, width: 4, pixels: new Uint8Array(144) });
  assert.equal(store.kind, 'images');
  // A model that needs the other kind of store, or another size, says so.
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 2, itemTower: 'image', image: { ...resnet, imageSize: 8 } as ModelConfig['image'] }, { items: store }), isMorec('EINVAL', /4 x 4 pixels but image.imageSize is 8/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 2, itemTower: 'image', image: resnet }), isMorec('EINVAL', /ItemStore/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 2, itemTower: 'image', image: { ...resnet, depths: 'x' } as unknown as ModelConfig['image'] }, { items: store }), isMorec('EINVAL', /image\.depths/));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a memory-mapped pixel file gives the same features and item table as the same pixels in memory', async () => {
  const px = pixels(1);
  const dir = tmp('mmap');
  const file = path.join(dir, 'pixels.u8');
  fs.writeFileSync(file, px);
  const cfg = { backbone: 'sasrec', numItems: N, d: 8, heads: 2, maxLen: 8, itemTower: 'image', image: resnet, seed: 3, threads: 2 } as ModelConfig;
  const a = Model.create(cfg, { items: ItemStore.fromPixels({ numItems: N, height: S, width: S, pixels: px }) });
  const b = Model.create(cfg, { items: ItemStore.fromPixelFile({ numItems: N, height: S, width: S, file }) });
  const items = Int32Array.from({ length: N }, (_, i) => i + 1);
  assert.deepEqual(b.encoderFeatures(items).data, a.encoderFeatures(items).data);
  const ta = await a.itemVectors(), tb = await b.itemVectors();
  assert.deepEqual(tb, ta);
  // Row 0 is the padding item: the zero vector; every item is encoded (no zero rows).
  for (let k = 0; k < 8; k++) assert.equal(ta[k], 0);
  for (let i = 1; i <= N; i++) assert.ok(ta.subarray(i * 8, i * 8 + 8).some((v) => v !== 0), `item ${i}`);
  // The item table equals the features projected by the tower: Linear then GELU, checked by hand for one item.
  const p = a.parameters();
  const f = a.encoderFeatures(Int32Array.of(5)).data;
  const W = p['item_tower.projection.weight'], bias = p['item_tower.projection.bias'];
  const F = f.length;
  for (let j = 0; j < 8; j++) {
    let z = bias.data[j];
    for (let k = 0; k < F; k++) z += W.data[j * F + k] * f[k];
    const gelu = 0.5 * z * (1 + erf(z / Math.SQRT2));
    assert.ok(Math.abs(gelu - ta[5 * 8 + j]) < 1e-5, `item 5 dim ${j}: ${gelu} vs ${ta[5 * 8 + j]}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is only 1.5e-7 accurate; a series is exact enough for |x| < 3.
  let sum = x, term = x;
  for (let n = 1; n < 60; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

test('image E2E training lowers the loss, and BatchNorm statistics travel with the checkpoint', async () => {
  const seqs = chainWorld(60, N, 5);
  const items = ItemStore.fromPixels({ numItems: N, height: S, width: S, pixels: pixels(2) });
  const model = Model.create({ backbone: 'sasrec', numItems: N, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image: resnet, seed: 1, threads: 2 }, { items });
  const before = model.parameters()['item_tower.encoder.bn1.running_mean'].data.slice();
  const losses: number[] = [];
  for (let e = 0; e < 6; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 16, lr: 3e-3, encoderLr: 3e-3 })).loss);
  assert.ok(losses[5] < losses[0] - 0.05, `loss ${losses.map((l) => l.toFixed(4)).join(' ')}`);
  const after = model.parameters()['item_tower.encoder.bn1.running_mean'].data;
  assert.notDeepEqual(after, before, 'training updates the running statistics');
  const ranks = await model.evaluate(seqs, { split: 'valid' });
  const dir = tmp('ckpt');
  await model.save(dir);
  const { model: loaded } = await Model.load(dir, {}, { items });
  assert.deepEqual(loaded.parameters()['item_tower.encoder.bn1.running_var'].data, model.parameters()['item_tower.encoder.bn1.running_var'].data);
  assert.deepEqual(await loaded.evaluate(seqs, { split: 'valid' }), ranks);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('cached frozen stages train exactly like uncached ones (1e-5), and frozen weights stay bit-identical', async () => {
  const seqs = chainWorld(40, N, 8);
  const items = ItemStore.fromPixels({ numItems: N, height: S, width: S, pixels: pixels(3) });
  const run = async (cacheFrozen: boolean) => {
    const model = Model.create(
      { backbone: 'sasrec', numItems: N, d: 16, heads: 2, maxLen: 8, dropout: 0, itemTower: 'image', image: { ...resnet, finetuneTopStages: 1, cacheFrozen } as ModelConfig['image'], seed: 2, threads: 2 },
      { items },
    );
    const before = model.parameters();
    const losses = [];
    for (let e = 0; e < 2; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 16, lr: 1e-3, encoderLr: 1e-3 })).loss);
    return { before, losses, params: model.parameters() };
  };
  const a = await run(false), b = await run(true);
  const frozen = Object.keys(a.params).filter((k) => k.startsWith('item_tower.encoder.') && !k.startsWith('item_tower.encoder.layer2.'));
  const tuned = Object.keys(a.params).filter((k) => k.startsWith('item_tower.encoder.layer2.') && /weight$/.test(k));
  assert.ok(frozen.length >= 6 && tuned.length >= 4, `${frozen.length} frozen, ${tuned.length} tuned`);
  for (const k of frozen) assert.deepEqual(a.params[k].data, a.before[k].data, `${k} frozen (running statistics included)`);
  for (const k of tuned) assert.notDeepEqual(a.params[k].data, a.before[k].data, `${k} trained`);
  let max = 0;
  for (const k of Object.keys(a.params)) for (let i = 0; i < a.params[k].data.length; i++) max = Math.max(max, Math.abs(a.params[k].data[i] - b.params[k].data[i]));
  assert.ok(Math.abs(a.losses[1] - b.losses[1]) < 1e-5, `${a.losses} vs ${b.losses}`);
  assert.ok(max < 1e-5, `max parameter difference ${max}`);
});

test('a run with --item-tower image on the synthetic world: image store, results and a resumable checkpoint', async () => {
  const dir = tmp('imagerun');
  const cfg = {
    dataset: 'synthetic', maxLen: 10, minSeqLen: 5, seed: 4, scale: 0.05,
    model: { backbone: 'sasrec' as const, itemTower: 'image' as const, d: 16, heads: 2 },
    train: { batchSize: 64, lr: 3e-3, encoderLr: 3e-3, weightDecay: 0.1, epochs: 2, patience: 2, gradAccum: 1 },
    image: { encoder: 'resnet-mini', size: 32 },
    threads: 2,
  };
  const lines: string[] = [];
  const out = await trainRun(path.join(dir, 'run'), cfg, { log: (l) => lines.push(l), mode: 'new' });
  assert.equal(out.results.itemTower, 'resnet-mini(scratch)');
  assert.equal(out.results.pretrained, false);
  assert.ok(out.results.encoderParameters! > 1000);
  assert.ok(lines.some((l) => /^image tower resnet-mini\(scratch\): resnet/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^images: .* 32x32/.test(l)), lines.join('\n'));
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'config.json'), 'utf8'));
  assert.equal(config.model.image.imageSize, 32);
  assert.deepEqual(config.model.image.mean, [0.5, 0.5, 0.5]);
  // A second run over the same data reuses the image store rather than decoding again.
  const lines2: string[] = [];
  await trainRun(path.join(dir, 'run2'), { ...cfg, train: { ...cfg.train, epochs: 1 } }, { log: (l) => lines2.push(l), mode: 'new' });
  assert.ok(lines2.some((l) => /^images: .*reused/.test(l)), lines2.join('\n'));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('image encoders resolve from presets, bare weights files (architecture given or guessed, and said so) and Hugging Face Swin folders', async () => {
  const { resolveImageEncoder, imageEncoderPresets } = await import('../lib');
  assert.deepEqual(imageEncoderPresets(), ['resnet-mini', 'resnet18', 'resnet34', 'resnet50', 'swin-b', 'swin-t']);
  const r50 = resolveImageEncoder('resnet50');
  assert.equal(r50.weights, undefined);
  assert.deepEqual([r50.config.arch, r50.config.block, r50.config.depths, r50.config.width, r50.config.imageSize], ['resnet', 'bottleneck', [3, 4, 6, 3], 64, 224]);
  const swinB = resolveImageEncoder('swin-b').config;
  assert.deepEqual([swinB.depths, swinB.width, swinB.heads, swinB.windowSize], [[2, 2, 18, 2], 128, [4, 8, 16, 32], 7]);
  const dir = tmp('encoders');
  const file = path.join(dir, 'resnet18-f37072fd.pth');
  fs.writeFileSync(file, 'x');
  const guessed = resolveImageEncoder(file);
  assert.equal(guessed.weights, file);
  assert.deepEqual(guessed.config.depths, [2, 2, 2, 2]);
  assert.match(guessed.guessed!, /architecture resnet18 guessed from the file name resnet18-f37072fd\.pth/);
  assert.equal(resolveImageEncoder(file, 'resnet34').guessed, undefined);
  const anon = path.join(dir, 'weights.pth');
  fs.writeFileSync(anon, 'x');
  assert.throws(() => resolveImageEncoder(anon), isMorec('EINVAL', /weights\.pth: cannot tell the architecture .* --image-arch/));
  assert.throws(() => resolveImageEncoder(anon, 'resnet99'), isMorec('EINVAL', /resnet99/));
  assert.throws(() => resolveImageEncoder(path.join(dir, 'nothing-here')), isMorec('EINVAL', /none of them/));
  // microsoft/swin-tiny-patch4-window7-224's config.json, as the paper's code loaded it.
  const hf = path.join(dir, 'swin-tiny');
  fs.mkdirSync(hf);
  fs.writeFileSync(path.join(hf, 'model.safetensors'), 'x');
  fs.writeFileSync(path.join(hf, 'config.json'), JSON.stringify({ model_type: 'swin', embed_dim: 96, depths: [2, 2, 6, 2], num_heads: [3, 6, 12, 24], window_size: 7, patch_size: 4, mlp_ratio: 4.0, layer_norm_eps: 1e-5, image_size: 224, hidden_act: 'gelu', use_absolute_embeddings: false }));
  const s = resolveImageEncoder(hf);
  assert.deepEqual([s.config.arch, s.config.width, s.config.depths, s.config.heads, s.config.imageSize], ['swin', 96, [2, 2, 6, 2], [3, 6, 12, 24], 224]);
  assert.equal(s.weights, path.join(hf, 'model.safetensors'));
  fs.writeFileSync(path.join(hf, 'config.json'), JSON.stringify({ model_type: 'resnet', embedding_size: 64 }));
  assert.throws(() => resolveImageEncoder(hf), isMorec('EINVAL', /model_type 'resnet' is not supported for images/));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('gradient checkpointing of ResNet blocks trains exactly like plain back-propagation, BatchNorm statistics included (1e-5)', async () => {
  const seqs = chainWorld(40, N, 11);
  const items = ItemStore.fromPixels({ numItems: N, height: S, width: S, pixels: pixels(4) });
  const run = async (gradientCheckpointing: boolean, finetuneTopStages: number) => {
    const model = Model.create(
      { backbone: 'sasrec', numItems: N, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image: { ...resnet, depths: [2, 1], finetuneTopStages, gradientCheckpointing } as ModelConfig['image'], seed: 6, threads: 2 },
      { items },
    );
    const losses = [];
    for (let e = 0; e < 2; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 16, lr: 1e-3, encoderLr: 1e-3 })).loss);
    return { losses, params: model.parameters() };
  };
  for (const top of [-1, 1]) {
    const a = await run(false, top), b = await run(true, top);
    let max = 0;
    for (const k of Object.keys(a.params)) for (let i = 0; i < a.params[k].data.length; i++) max = Math.max(max, Math.abs(a.params[k].data[i] - b.params[k].data[i]));
    assert.ok(Math.abs(a.losses[1] - b.losses[1]) < 1e-5, `top ${top}: ${a.losses} vs ${b.losses}`);
    assert.ok(max < 1e-5, `top ${top}: max parameter/statistics difference ${max}`);
    assert.ok(a.losses[1] < a.losses[0]);
  }
});

test("missingImage 'drop' removes the items without a usable image from the data set, says so, and evaluates on the same data", async () => {
  const sharp = (await import('sharp')).default;
  const dir = tmp('dropdata');
  const r = rng(21);
  const ITEMS = 14;
  const lines = ['user,item,timestamp'];
  for (let u = 0; u < 40; u++) {
    let it = 1 + Math.floor(r() * ITEMS);
    for (let t = 0; t < 7; t++) {
      lines.push(`u${u},i${it},${t}`);
      it = (it % ITEMS) + 1;
    }
  }
  fs.writeFileSync(path.join(dir, 'interactions.csv'), lines.join('\n') + '\n');
  fs.mkdirSync(path.join(dir, 'pics'));
  const items = ['item,image'];
  for (let i = 1; i <= ITEMS; i++) {
    if (i === 3) items.push(`i${i},pics/none.png`); // missing file
    else if (i === 7) {
      fs.writeFileSync(path.join(dir, 'pics', 'bad.png'), 'not a png');
      items.push(`i${i},pics/bad.png`); // corrupt
    } else {
      const px = Buffer.alloc(16 * 16 * 3, (i * 17) % 256);
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(dir, 'pics', `${i}.png`));
      items.push(`i${i},pics/${i}.png`);
    }
  }
  fs.writeFileSync(path.join(dir, 'items.csv'), items.join('\n') + '\n');
  const cfg = {
    dataset: dir, maxLen: 5, minSeqLen: 5, seed: 1, scale: 1,
    model: { backbone: 'sasrec' as const, itemTower: 'image' as const, d: 8, heads: 2 },
    train: { batchSize: 16, lr: 1e-3, weightDecay: 0, epochs: 1, patience: 1, gradAccum: 1 },
    image: { encoder: 'resnet-mini', size: 16, missingImage: 'error' as const },
    threads: 2,
  };
  const cache = tmp('dropcache');
  process.env.MOREC_CACHE = cache;
  try {
    // Images decode concurrently: whichever bad one comes first stops the run, naming its file.
    await assert.rejects(trainRun(path.join(dir, 'run-error'), cfg, { mode: 'new' }), (e: unknown) => {
      assert.ok(e instanceof MorecError && (e.code === 'ENOENT' || e.code === 'EFORMAT'), String(e));
      assert.match(e.message, /(none|bad)\.png/);
      return true;
    });
    const log: string[] = [];
    const out = await trainRun(path.join(dir, 'run'), { ...cfg, image: { ...cfg.image, missingImage: 'drop' } }, { mode: 'new', log: (l) => log.push(l) });
    const text = log.join('\n');
    assert.match(text, /removed 2 items \(no usable image, missingImage 'drop'; listed in .*report\.tsv\) with their \d+ interactions/);
    assert.equal(out.results.items, ITEMS - 2);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'config.json'), 'utf8'));
    assert.deepEqual([...config.droppedItems.ids].sort(), ['i3', 'i7']);
    // Every item left has its picture: no blank rows were needed.
    assert.match(text, /images: 12 items 16x16 pil-bilinear \(ok 12\)/);
    // Resuming the finished run's data: the same fingerprint (the dropped items are part of it).
    const again = await trainRun(path.join(dir, 'run'), { ...cfg, image: { ...cfg.image, missingImage: 'drop' } }, { mode: 'auto' });
    assert.equal(again.how, 'reused');
    // morec eval prepares the same data (without the dropped items) and reproduces the run's test metrics.
    const { spawnSync } = await import('node:child_process');
    const ev = spawnSync(process.execPath, [path.join(__dirname, '..', 'lib', 'cli', 'main.js'), 'eval', '--run', path.join(dir, 'run'), '--threads', '2'], {
      encoding: 'utf8',
      env: { ...process.env, MOREC_CACHE: cache },
    });
    assert.equal(ev.status, 0, ev.stderr);
    const m = JSON.parse(ev.stdout.slice(ev.stdout.indexOf('{')));
    assert.ok(Math.abs(m['HR@10'] - out.results.test['HR@10']) < 1e-9, `${m['HR@10']} vs ${out.results.test['HR@10']}`);
  } finally {
    delete process.env.MOREC_CACHE;
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(cache, { recursive: true, force: true });
  }
});
