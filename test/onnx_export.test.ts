/**
 * ONNX export of the item towers' encoders (lib/onnx): each exported file is run with onnxruntime-node and its
 * output compared with the native libtorch encoder of the same model, to 1e-4 (max absolute difference):
 * tiny BERT and RoBERTa (test/fixtures/text weights; a batch of 5 rows of 2 to 38 tokens, padded; cls and mean
 * pooling), ResNet with BasicBlocks and with Bottlenecks (test/fixtures/image weights and BatchNorm statistics)
 * and Swin at 56x56 and 64x64 (padding to windows, shifted-window masks, odd patch merging). Also: masked
 * positions do not change the outputs; an ID tower is refused; the file is written atomically; the wire format.
 */
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ItemStore } from '../lib/item_store';
import { Model, ModelConfig } from '../lib';
import { readSafetensors } from '../lib/io/safetensors';
import { resolveTextEncoder } from '../lib/text/encoder';
import { exportEncoderOnnx } from '../lib/onnx';
import { Writer } from '../lib/onnx/protobuf';
import { isMorec, pixelStore } from './helpers';

const TOLERANCE = 1e-4; // max |ONNX Runtime - libtorch| over every compared value
const TEXT = path.join(__dirname, '..', '..', 'test', 'fixtures', 'text');
const IMAGE = path.join(__dirname, '..', '..', 'test', 'fixtures', 'image');
const inputs = JSON.parse(fs.readFileSync(path.join(TEXT, 'inputs.json'), 'utf8'));

const tmpDirs: string[] = [];
after(() => tmpDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function tmpFile(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-onnx-'));
  tmpDirs.push(dir);
  return path.join(dir, name);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

// ---- text ----------------------------------------------------------------------------------------------

type TextKind = 'bert' | 'roberta';
const rows = (kind: TextKind): number[][] => inputs[kind].input_ids;
const lengths: number[] = inputs.lengths; // [12, 3, 38, 2, 20]
const T: number = inputs.seq_len; // 38, the longest row

function textModel(folder: string, kind: TextKind, pooling: 'cls' | 'mean'): Model {
  const spec = resolveTextEncoder(path.join(TEXT, folder));
  const pad = inputs[kind].special_ids.pad as number;
  const n = rows(kind).length;
  const tokens = new Int32Array((n + 1) * T).fill(pad);
  rows(kind).forEach((r, i) => tokens.set(r, (i + 1) * T));
  const store = new ItemStore({ numItems: n, maxTokens: T, tokens, lengths: Int32Array.from([0, ...lengths]) });
  const model = Model.create(
    { backbone: 'sasrec', numItems: n, d: 16, heads: 2, maxLen: 8, itemTower: 'text', text: { ...spec.config, pooling } as ModelConfig['text'], threads: 2 },
    { items: store },
  );
  model.loadEncoderWeights(path.join(TEXT, folder, 'model.safetensors'));
  return model;
}

/** input_ids / attention_mask of the fixture batch; `fill` replaces the ids of padded positions. */
function textFeeds(kind: TextKind, fill?: (b: number, t: number) => number): Record<string, ort.Tensor> {
  const B = rows(kind).length;
  const ids = new BigInt64Array(B * T);
  const mask = new BigInt64Array(B * T);
  rows(kind).forEach((r, b) => {
    for (let t = 0; t < T; t++) {
      const real = t < lengths[b];
      ids[b * T + t] = BigInt(real || !fill ? r[t] : fill(b, t));
      mask[b * T + t] = real ? 1n : 0n;
    }
  });
  return { input_ids: new ort.Tensor('int64', ids, [B, T]), attention_mask: new ort.Tensor('int64', mask, [B, T]) };
}

/** Pools [B, T, H] hidden states as the text tower does: cls = row 0, mean = the mean over unmasked tokens. */
function pool(hidden: ArrayLike<number>, Tn: number, H: number, pooling: 'cls' | 'mean'): Float32Array {
  const out = new Float32Array(lengths.length * H);
  lengths.forEach((len, b) => {
    for (let k = 0; k < H; k++) {
      if (pooling === 'cls') out[b * H + k] = hidden[(b * Tn) * H + k];
      else {
        let s = 0;
        for (let t = 0; t < len; t++) s += hidden[(b * Tn + t) * H + k];
        out[b * H + k] = s / len;
      }
    }
  });
  return out;
}

/** max |a - b| over the unmasked positions of two [B, T, H] tensors. */
function maskedDiff(a: ArrayLike<number>, aT: number, b: ArrayLike<number>, bT: number, H: number): number {
  let max = 0;
  lengths.forEach((len, r) => {
    for (let t = 0; t < len; t++)
      for (let k = 0; k < H; k++) max = Math.max(max, Math.abs(a[(r * aT + t) * H + k] - b[(r * bT + t) * H + k]));
  });
  return max;
}

for (const [folder, kind] of [['tiny-bert', 'bert'], ['tiny-roberta', 'roberta']] as [string, TextKind][])
  test(`${folder}: the exported encoder's last_hidden_state and its cls / mean pooling equal the native encoder's (max abs diff <= ${TOLERANCE})`, async (t) => {
    const H = 32;
    for (const pooling of ['cls', 'mean'] as const) {
      const model = textModel(folder, kind, pooling);
      const file = tmpFile(`${kind}.onnx`);
      const report = exportEncoderOnnx(model, file);
      assert.deepEqual(
        { kind: report.kind, inputs: report.inputs, outputs: report.outputs, bytes: report.bytes },
        { kind: 'text', inputs: ['input_ids', 'attention_mask'], outputs: ['last_hidden_state'], bytes: fs.statSync(file).size },
      );
      assert.ok(report.nodes > 50, `${report.nodes} nodes`);
      const session = await ort.InferenceSession.create(file);
      assert.deepEqual(session.inputNames, ['input_ids', 'attention_mask']);
      assert.deepEqual(session.outputNames, ['last_hidden_state']);
      const out = (await session.run(textFeeds(kind))).last_hidden_state;
      assert.deepEqual(out.dims, [5, T, H]);
      const got = out.data as Float32Array;

      const items = Int32Array.from([1, 2, 3, 4, 5]);
      // The native encoder's hidden states (the reference for both pooling rules: encoderFeatures covers image towers).
      const ref = model.encoderHiddenStates(items);
      assert.deepEqual(ref.shape, [5, T, H]);
      const hiddenDiff = maskedDiff(got, T, ref.data, ref.shape[1], H);
      const pooledDiff = maxAbsDiff(pool(got, T, H, pooling), pool(ref.data, ref.shape[1], H, pooling));
      t.diagnostic(`${kind} ${pooling}: max |hidden - native| = ${hiddenDiff.toExponential(2)}, max |pooled - native| = ${pooledDiff.toExponential(2)}`);
      assert.ok(hiddenDiff <= TOLERANCE, `max |hidden - native| = ${hiddenDiff}`);
      assert.ok(pooledDiff <= TOLERANCE, `max |${pooling} pooled - native| = ${pooledDiff}`);
      // Not vacuous: the pooled outputs are far from zero and differ between rows.
      assert.ok(maxAbsDiff(pool(got, T, H, pooling).subarray(0, H), pool(got, T, H, pooling).subarray(H, 2 * H)) > 0.1);

      if (pooling === 'cls') {
        // Masked positions are ignored: other ids there leave every unmasked output as it was.
        const noisy = (await session.run(textFeeds(kind, (b, p) => 3 + ((b * 7 + p * 13) % 50)))).last_hidden_state.data as Float32Array;
        const maskedEffect = maskedDiff(noisy, T, got, T, H);
        assert.ok(maskedEffect <= 1e-6, `padding ids changed the outputs by ${maskedEffect}`);
      }
    }
  });

// ---- image ---------------------------------------------------------------------------------------------

const resnetIndex = JSON.parse(fs.readFileSync(path.join(IMAGE, 'resnet-fixtures.json'), 'utf8'));

/** The normalized float pixels the native tower computes from the store's bytes: (x / 255 - mean) / std. */
function normalized(pixels: ArrayLike<number>, n: number, size: number, mean: number[], std: number[]): Float32Array {
  const plane = size * size;
  const out = new Float32Array(n * 3 * plane);
  for (let i = 0; i < out.length; i++) {
    const c = Math.floor(i / plane) % 3;
    out[i] = (pixels[i] / 255 - mean[c]) / std[c];
  }
  return out;
}

async function checkImage(t: { diagnostic(msg: string): void }, label: string, model: Model, pixels: ArrayLike<number>, n: number, size: number, mean: number[], std: number[]) {
  const file = tmpFile('image.onnx');
  const report = exportEncoderOnnx(model, file);
  assert.deepEqual(
    { kind: report.kind, inputs: report.inputs, outputs: report.outputs, bytes: report.bytes },
    { kind: 'image', inputs: ['pixel_values'], outputs: ['pooler_output'], bytes: fs.statSync(file).size },
  );
  const session = await ort.InferenceSession.create(file);
  const out = (await session.run({ pixel_values: new ort.Tensor('float32', normalized(pixels, n, size, mean, std), [n, 3, size, size]) })).pooler_output;
  const ref = model.encoderFeatures(Int32Array.from({ length: n }, (_, i) => i + 1));
  assert.deepEqual(out.dims, ref.shape);
  const diff = maxAbsDiff(out.data as Float32Array, ref.data);
  t.diagnostic(`${label}: max |pooler_output - native| = ${diff.toExponential(2)} (features up to ${Math.max(...Array.from(ref.data, Math.abs)).toFixed(2)})`);
  assert.ok(diff <= TOLERANCE, `${label}: max |pooler_output - native| = ${diff}`);
}

for (const name of ['resnet-basic', 'resnet-bottleneck'])
  test(`${name}: the exported encoder's pooler_output equals the native encoder's eval-mode features (max abs diff <= ${TOLERANCE})`, async (t) => {
    const m = resnetIndex.models[name];
    const size = resnetIndex.imageSize as number;
    const pixels = readSafetensors(path.join(IMAGE, `${name}-reference.safetensors`)).tensors.pixels.data as Int32Array;
    const image = {
      arch: 'resnet', block: m.block, depths: m.depths, width: m.width, widthPerGroup: m.widthPerGroup,
      imageSize: size, mean: resnetIndex.mean, std: resnetIndex.std,
    } as ModelConfig['image'];
    const model = Model.create(
      { backbone: 'sasrec', numItems: m.n, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image, threads: 2 },
      { items: pixelStore(pixels, m.n, size) },
    );
    model.loadEncoderWeights(path.join(IMAGE, `${name}.safetensors`)); // random weights and BatchNorm statistics
    await checkImage(t, name, model, pixels, m.n, size, resnetIndex.mean, resnetIndex.std);
  });

test(`swin (56x56 and 64x64): the exported encoder's pooler_output equals the native encoder's (max abs diff <= ${TOLERANCE})`, async (t) => {
  const ref = readSafetensors(path.join(IMAGE, 'swin-tiny-reference.safetensors'));
  const c = JSON.parse(ref.metadata.config);
  const mean = JSON.parse(ref.metadata.mean) as number[];
  const std = JSON.parse(ref.metadata.std) as number[];
  const sizes = JSON.parse(ref.metadata.sizes) as Record<string, number>;
  for (const size of [56, 64]) {
    const n = sizes[String(size)];
    const pixels = ref.tensors[`pixels${size}`].data as Int32Array;
    const image = {
      arch: 'swin', depths: c.depths, width: c.embed_dim, heads: c.num_heads, windowSize: c.window_size, patchSize: c.patch_size,
      mlpRatio: c.mlp_ratio, layerNormEps: c.layer_norm_eps, imageSize: size, mean, std,
    } as ModelConfig['image'];
    const model = Model.create(
      { backbone: 'sasrec', numItems: n, d: 16, heads: 2, maxLen: 8, itemTower: 'image', image, threads: 2 },
      { items: pixelStore(pixels, n, size) },
    );
    model.loadEncoderWeights(path.join(IMAGE, 'swin-tiny.safetensors'));
    await checkImage(t, `swin ${size}x${size}`, model, pixels, n, size, mean, std);
  }
});

// ---- refusals, files, wire format ------------------------------------------------------------------------

test('an ID item tower is refused with EINVAL naming what is supported, and nothing is written', () => {
  const model = Model.create({ backbone: 'sasrec', numItems: 10, d: 8, heads: 2, maxLen: 4, threads: 1 });
  const file = tmpFile('id.onnx');
  assert.throws(() => exportEncoderOnnx(model, file), isMorec('EINVAL', /itemTower 'id'.*supported: itemTower 'text' \(BERT, RoBERTa\)/));
  assert.deepEqual(fs.readdirSync(path.dirname(file)), []);
  assert.throws(() => exportEncoderOnnx(model, ''), isMorec('EINVAL', /file path/));
});

test('the file is written atomically: an export over an existing file replaces it and leaves no temporary file', () => {
  const model = Model.create(
    { backbone: 'sasrec', numItems: 2, d: 8, heads: 2, maxLen: 4, itemTower: 'image', threads: 1, image: { arch: 'resnet', block: 'basic', depths: [1], width: 4, imageSize: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } as ModelConfig['image'] },
    { items: pixelStore(new Uint8Array(2 * 3 * 16 * 16), 2, 16) },
  );
  const file = tmpFile('resnet.onnx');
  fs.writeFileSync(file, 'old');
  const report = exportEncoderOnnx(model, file);
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['resnet.onnx']);
  assert.equal(fs.statSync(file).size, report.bytes);
  const bytes = fs.readFileSync(file);
  // ModelProto starts with ir_version (field 1, varint) = 8.
  assert.deepEqual([...bytes.subarray(0, 2)], [0x08, 8]);
});

test('protobuf writer: varints, negative int64, fixed32 floats, strings, packed and nested fields', () => {
  const hex = (w: Writer) => Buffer.from(w.finish()).toString('hex');
  assert.equal(hex(new Writer().int(1, 150)), '089601'); // the protobuf documentation's example
  assert.equal(hex(new Writer().int(3, 300)), '18ac02');
  assert.equal(hex(new Writer().int(1, -1)), '08ffffffffffffffffff01');
  assert.equal(hex(new Writer().int(1, 2 ** 40)), '088080808080' + '20');
  assert.equal(hex(new Writer().float(2, 1)), '150000803f');
  assert.equal(hex(new Writer().string(2, 'testing')), '120774657374696e67');
  assert.equal(hex(new Writer().packedVarints(4, [3, 270, 86942])), '2206038e029ea705');
  assert.equal(hex(new Writer().repeatedVarints(1, [1, 2])), '08010802');
  assert.equal(hex(new Writer().fixed64(1, 1n)), '090100000000000000');
  assert.equal(hex(new Writer().message(3, new Writer().int(1, 150))), '1a03089601');
  const big = new Uint8Array(1000).fill(7);
  const w = new Writer().bytes(9, big);
  assert.equal(w.length, 1 + 2 + 1000);
  assert.equal(w.chunks().at(-1), big, 'large bytes fields are referenced, not copied');
});
