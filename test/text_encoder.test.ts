/**
 * The text item tower against an independent reference: tiny BERT and RoBERTa checkpoints (random weights,
 * Hugging Face layouts, safetensors and pytorch_model.bin) whose hidden states were computed at development
 * time from torch.nn.TransformerEncoderLayer (test/fixtures/text/make_text_encoder_fixtures.py); plus
 * checkpoint errors, freezing, the frozen-layer cache and E2E training.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ItemStore } from '../lib/item_store';
import { metrics, Model, ModelConfig, prepareDataset, Sequences } from '../lib';
import { prepareTextTower } from '../lib/text/text_tower';
import { encoderParameterCount, resolveTextEncoder } from '../lib/text/encoder';
import { readSafetensors, writeSafetensors } from '../lib/io/safetensors';
import { chainWorld } from './helpers';

const FIX = path.join(__dirname, '..', '..', 'test', 'fixtures', 'text');
const inputs = JSON.parse(fs.readFileSync(path.join(FIX, 'inputs.json'), 'utf8'));

function fixtureStore(kind: 'bert' | 'roberta'): ItemStore {
  const rows: number[][] = inputs[kind].input_ids;
  const T = inputs.seq_len as number;
  const pad = inputs[kind].special_ids.pad as number;
  const tokens = new Int32Array((rows.length + 1) * T).fill(pad);
  rows.forEach((r, i) => tokens.set(r, (i + 1) * T));
  const lengths = Int32Array.from([0, ...(inputs.lengths as number[])]);
  return new ItemStore({ numItems: rows.length, maxTokens: T, tokens, lengths });
}

function textModel(folder: string, kind: 'bert' | 'roberta', extra: Record<string, unknown> = {}, d = 32, sequenceLayout: 'packed' | 'padded' = 'packed'): Model {
  const spec = resolveTextEncoder(path.join(FIX, folder));
  const model = Model.create(
    { backbone: 'sasrec', numItems: 5, d, heads: 2, maxLen: 8, itemTower: 'text', text: { ...spec.config, ...extra } as ModelConfig['text'], threads: 2, sequenceLayout },
    { items: fixtureStore(kind) },
  );
  return model;
}

function maxMaskedDiff(got: Float32Array, T: number, H: number, ref: { last_hidden_state: number[]; attention_mask: number[][]; last_hidden_state_shape: number[] }) {
  const RT = ref.last_hidden_state_shape[1];
  let max = 0;
  ref.attention_mask.forEach((mask, b) =>
    mask.forEach((m, t) => {
      if (!m) return;
      for (let k = 0; k < H; k++) max = Math.max(max, Math.abs(got[(b * T + t) * H + k] - ref.last_hidden_state[(b * RT + t) * H + k]));
    }),
  );
  return max;
}

const cases: [string, string, 'bert' | 'roberta', string][] = [
  ['tiny-bert', 'model.safetensors', 'bert', 'bert'],
  ['tiny-bert', 'pytorch_model.bin', 'bert', 'bert'],
  ['tiny-bert-f16', 'model.safetensors', 'bert', 'bert-f16'],
  ['tiny-roberta', 'model.safetensors', 'roberta', 'roberta'],
  ['tiny-roberta', 'pytorch_model.bin', 'roberta', 'roberta'],
];

for (const [folder, file, kind, refName] of cases)
  for (const layout of ['packed', 'padded'] as const)
  test(`${folder}/${file} (${layout}): hidden states equal the torch.nn reference to 1e-5`, () => {
    const ref = JSON.parse(fs.readFileSync(path.join(FIX, 'reference', `${refName}.json`), 'utf8'));
    const model = textModel(folder, kind, {}, 32, layout);
    const before = model.encoderHiddenStates(Int32Array.from([1, 2, 3, 4, 5]));
    const report = model.loadEncoderWeights(path.join(FIX, folder, file));
    assert.equal(report.loaded, 5 + 16 * 2, 'every encoder tensor loaded (5 embedding tensors + 16 per layer)');
    if (file.endsWith('.bin') && kind === 'bert') assert.ok(report.ignored.includes('cls.predictions.decoder.weight') && report.ignored.includes('bert.pooler.dense.weight'));
    const h = model.encoderHiddenStates(Int32Array.from([1, 2, 3, 4, 5]));
    const [n, T, H] = h.shape;
    assert.deepEqual([n, T, H], [5, 38, 32]);
    const diff = maxMaskedDiff(h.data, T, H, ref);
    assert.ok(diff < 1e-5, `max |hidden - reference| = ${diff}`);
    // The comparison can fail: the randomly initialised encoder is far from the reference.
    assert.ok(maxMaskedDiff(before.data, T, H, ref) > 0.1);
  });

function erf(x: number): number {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

for (const pooling of ['cls', 'mean'] as const)
  for (const layout of ['packed', 'padded'] as const)
  test(`text tower (${pooling} pooling, ${layout}): item vectors = GELU(W * ${pooling}(hidden) + b), computed independently`, async () => {
    const ref = JSON.parse(fs.readFileSync(path.join(FIX, 'reference', 'bert.json'), 'utf8'));
    const model = textModel('tiny-bert', 'bert', { pooling }, 16, layout);
    model.loadEncoderWeights(path.join(FIX, 'tiny-bert', 'model.safetensors'));
    const params = model.parameters();
    const W = params['item_tower.projection.weight'].data, bias = params['item_tower.projection.bias'].data;
    const pooled: number[] = ref[pooling];
    const table = await model.itemVectors();
    assert.equal(table.length, 6 * 16);
    for (let k = 0; k < 16; k++) assert.equal(table[k], 0, 'row 0 (padding) is zero');
    let max = 0;
    for (let i = 0; i < 5; i++)
      for (let o = 0; o < 16; o++) {
        let z = bias[o];
        for (let k = 0; k < 32; k++) z += W[o * 32 + k] * pooled[i * 32 + k];
        const g = 0.5 * z * (1 + erf(z / Math.SQRT2));
        max = Math.max(max, Math.abs(table[(i + 1) * 16 + o] - g));
      }
    assert.ok(max < 1e-5, `max |item vector - reference| = ${max}`);
  });

test('checkpoint errors name the file and the tensors; a malicious pickle is refused without running', () => {
  const model = textModel('tiny-bert', 'bert');
  const trunc = path.join(FIX, 'truncated', 'model.safetensors');
  assert.throws(() => model.loadEncoderWeights(trunc), (e: any) => e.code === 'EFORMAT' && e.message.includes(trunc));
  const mism = path.join(FIX, 'mismatched', 'model.safetensors');
  assert.throws(
    () => model.loadEncoderWeights(mism),
    (e: any) =>
      e.code === 'EMISMATCH' &&
      e.message.includes(mism) &&
      e.message.includes('encoder.layer.1.intermediate.dense.weight is [48, 32], expected [64, 32]') &&
      e.message.includes('missing tensors: encoder.layer.0.output.LayerNorm.bias'),
  );
  const roberta = path.join(FIX, 'tiny-roberta', 'model.safetensors');
  assert.throws(() => model.loadEncoderWeights(roberta), (e: any) => e.code === 'EMISMATCH' && /wrong shapes: .*word_embeddings/.test(e.message));
  const pwned = '/tmp/morec-pwned';
  fs.rmSync(pwned, { force: true });
  const bad = path.join(FIX, 'malicious', 'pytorch_model.bin');
  assert.throws(() => model.loadEncoderWeights(bad), (e: any) => e.code === 'EFORMAT' && e.message.includes(bad) && /system/.test(e.message));
  assert.equal(fs.existsSync(pwned), false, 'the pickle did not execute');
  assert.throws(() => model.loadEncoderWeights(path.join(FIX, 'nope.safetensors')), (e: any) => e.message.includes('nope.safetensors'));
  // A failed load leaves the model as it was: still usable.
  assert.equal(model.encoderHiddenStates(Int32Array.from([1])).shape[2], 32);
});

test('a Hugging Face checkpoint holding NaN or Inf is refused with the tensor named, and nothing is loaded', () => {
  const model = textModel('tiny-bert', 'bert');
  const before = model.encoderHiddenStates(Int32Array.from([1, 2])).data;
  const src = readSafetensors(path.join(FIX, 'tiny-bert', 'model.safetensors'));
  const name = Object.keys(src.tensors).find((k) => k.endsWith('encoder.layer.1.output.dense.weight'))!;
  assert.ok(name);
  const data = Float32Array.from(src.tensors[name].data as Float32Array);
  data[0] = NaN;
  data[7] = -Infinity;
  const tensors = { ...src.tensors, [name]: { ...src.tensors[name], data } };
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'morec-nan-'));
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, tensors as Record<string, { shape: number[]; data: Float32Array }>);
  assert.throws(
    () => model.loadEncoderWeights(file),
    (e: any) => e.code === 'ENONFINITE' && e.message.includes(file) && e.message.includes(`'${name}' holds 2 non-finite values`),
  );
  assert.deepEqual(model.encoderHiddenStates(Int32Array.from([1, 2])).data, before, 'no tensor was copied');
});

test('a text tower needs an ItemStore that fits it', () => {
  const spec = resolveTextEncoder(path.join(FIX, 'tiny-bert'));
  const base = { backbone: 'sasrec' as const, numItems: 5, d: 32, heads: 2, maxLen: 8, itemTower: 'text' as const, text: spec.config as ModelConfig['text'] };
  assert.throws(() => Model.create(base), /ItemStore/);
  assert.throws(() => Model.create({ ...base, numItems: 6 }, { items: fixtureStore('bert') }), /5 items but the model has numItems 6/);
  assert.throws(() => Model.create({ ...base, text: { ...base.text!, vocabSize: 50 } }, { items: fixtureStore('bert') }), /token id \d+ .* 50 entries/);
  assert.throws(() => Model.create({ ...base, text: { ...base.text!, maxPositions: 20 } }, { items: fixtureStore('bert') }), /up to 38 tokens/);
});

// A small text world: item i's title is up to three tokens that name it (so the encoder can tell items
// apart), between [CLS] = 1 and [SEP] = 2; lengths 4..5 of 6 so that batches run the packed (padding-free) path.
function textWorld(numItems: number, users: number, seed: number) {
  const seqs = chainWorld(users, numItems, seed);
  const T = 6;
  const tokens = new Int32Array((numItems + 1) * T);
  const lengths = new Int32Array(numItems + 1);
  for (let i = 1; i <= numItems; i++) {
    const words = [3 + (i % 10), 13 + (Math.floor(i / 10) % 10), 23 + (i % 7)].slice(0, 2 + (i % 2));
    tokens.set([1, ...words, 2], i * T);
    lengths[i] = words.length + 2;
  }
  return { seqs, store: new ItemStore({ numItems, maxTokens: T, tokens, lengths }) };
}

const tinyText = {
  kind: 'bert' as const, vocabSize: 40, hidden: 32, layers: 2, heads: 2, intermediate: 64, maxPositions: 8, typeVocabSize: 2,
  padTokenId: 0, layerNormEps: 1e-12, hiddenDropout: 0.1, attentionDropout: 0.1,
};

test('E2E text MoRec: loss falls over epochs with SASRec and DSSM; evaluation ranks from the item table', async () => {
  const { seqs, store } = textWorld(60, 200, 5);
  for (const backbone of ['sasrec', 'dssm'] as const) {
    const model = Model.create({ backbone, numItems: 60, numUsers: seqs.users, d: 32, heads: 2, maxLen: 10, itemTower: 'text', text: tinyText as ModelConfig['text'], seed: 1, threads: 2 }, { items: store });
    // DSSM learns per-user vectors from few positives each: it needs more steps (as with ID towers).
    const [epochs, lr] = backbone === 'sasrec' ? [4, 3e-3] : [8, 1e-2];
    const losses: number[] = [];
    for (let e = 0; e < epochs; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 32, lr, encoderLr: lr / 3 })).loss);
    assert.ok(losses[epochs - 1] < losses[0] * 0.85, `${backbone} losses ${losses.map((l) => l.toFixed(3))}`);
    const m = metrics(await model.evaluate(seqs, { split: 'valid' }));
    assert.equal(m.users, seqs.users);
    assert.ok(m['HR@10'] > 10 / 60, `${backbone} valid HR@10 ${m['HR@10']} above chance`);
  }
});

test('finetuneTopLayers: frozen weights stay bit-identical, tuned ones change, frozen ones have no optimizer state', async () => {
  const { seqs, store } = textWorld(40, 80, 6);
  const model = Model.create(
    { backbone: 'sasrec', numItems: 40, d: 32, heads: 2, maxLen: 10, itemTower: 'text', text: { ...tinyText, finetuneTopLayers: 1 } as ModelConfig['text'], threads: 2 },
    { items: store },
  );
  const before = model.parameters();
  await model.trainEpoch(seqs, { batchSize: 16, lr: 1e-3, encoderLr: 1e-3, weightDecay: 0.1 });
  const after = model.parameters();
  const frozen = Object.keys(before).filter((k) => k.startsWith('item_tower.encoder.embeddings.') || k.startsWith('item_tower.encoder.encoder.layer.0.'));
  const tuned = Object.keys(before).filter((k) => k.startsWith('item_tower.encoder.encoder.layer.1.') || k.startsWith('item_tower.projection.'));
  assert.equal(frozen.length, 5 + 16);
  assert.equal(tuned.length, 16 + 2);
  for (const k of frozen) assert.deepEqual(after[k].data, before[k].data, `${k} frozen`);
  for (const k of tuned) assert.notDeepEqual(after[k].data, before[k].data, `${k} trained`);
  const state = model.native.optimizerState().tensors;
  for (const k of frozen) assert.equal(state[`${k}.exp_avg`], undefined, `${k} has no optimizer state`);
  for (const k of tuned) assert.ok(state[`${k}.exp_avg`], `${k} has optimizer state`);
});

test('cached frozen layers train exactly like uncached ones when dropout is 0 (1e-5)', async () => {
  const { seqs, store } = textWorld(40, 80, 7);
  const run = async (cacheFrozen: boolean, sequenceLayout: 'packed' | 'padded' = 'packed') => {
    const model = Model.create(
      {
        backbone: 'sasrec', numItems: 40, d: 32, heads: 2, maxLen: 10, dropout: 0, itemTower: 'text', seed: 9, threads: 2, sequenceLayout,
        text: { ...tinyText, hiddenDropout: 0, attentionDropout: 0, finetuneTopLayers: 1, cacheFrozen } as ModelConfig['text'],
      },
      { items: store },
    );
    const losses = [];
    for (let e = 0; e < 2; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 16, lr: 1e-3, encoderLr: 1e-3 })).loss);
    return { losses, params: model.parameters(), table: await model.itemVectors() };
  };
  const a = await run(false), b = await run(true);
  // The padded layout computes the same numbers (the packed kernel only skips padding).
  const c = await run(false, 'padded');
  assert.ok(Math.abs(a.losses[1] - c.losses[1]) < 1e-4, `packed ${a.losses} vs padded ${c.losses}`);
  assert.ok(Math.abs(a.losses[1] - b.losses[1]) < 1e-5, `${a.losses} vs ${b.losses}`);
  let max = 0;
  for (const k of Object.keys(a.params)) for (let i = 0; i < a.params[k].data.length; i++) max = Math.max(max, Math.abs(a.params[k].data[i] - b.params[k].data[i]));
  for (let i = 0; i < a.table.length; i++) max = Math.max(max, Math.abs(a.table[i] - b.table[i]));
  assert.ok(max < 1e-5, `max parameter/table difference ${max}`);
  assert.ok(a.losses[1] !== 0);
});

test('gradient checkpointing trains exactly like plain back-propagation, dropout included (1e-5)', async () => {
  const { seqs, store } = textWorld(40, 80, 9);
  const run = async (gradientCheckpointing: boolean, sequenceLayout: 'packed' | 'padded', finetuneTopLayers: number) => {
    const model = Model.create(
      {
        backbone: 'sasrec', numItems: 40, d: 32, heads: 2, maxLen: 10, itemTower: 'text', seed: 4, threads: 2, sequenceLayout,
        text: { ...tinyText, finetuneTopLayers, gradientCheckpointing } as ModelConfig['text'],
      },
      { items: store },
    );
    const losses = [];
    for (let e = 0; e < 2; e++) losses.push((await model.trainEpoch(seqs, { epoch: e, batchSize: 16, lr: 1e-3, encoderLr: 1e-3 })).loss);
    return { losses, params: model.parameters() };
  };
  for (const layout of ['packed', 'padded'] as const)
    for (const top of [-1, 1]) {
      const a = await run(false, layout, top), b = await run(true, layout, top);
      let max = 0;
      for (const k of Object.keys(a.params)) for (let i = 0; i < a.params[k].data.length; i++) max = Math.max(max, Math.abs(a.params[k].data[i] - b.params[k].data[i]));
      assert.ok(max < 1e-5 && Math.abs(a.losses[1] - b.losses[1]) < 1e-5, `${layout} top ${top}: max parameter difference ${max}, losses ${a.losses} vs ${b.losses}`);
      // and training moved the encoder's top layer (the comparison is not between two untouched models)
      const init = Model.create({ backbone: 'sasrec', numItems: 40, d: 32, heads: 2, maxLen: 10, itemTower: 'text', seed: 4, threads: 2, sequenceLayout: layout, text: { ...tinyText, finetuneTopLayers: top } as ModelConfig['text'] }, { items: store }).parameters();
      const k = 'item_tower.encoder.encoder.layer.1.output.dense.weight';
      assert.notDeepEqual(b.params[k].data, init[k].data);
    }
});

test('itemVectors() resolves a copy that later training does not change', async () => {
  const { seqs } = textWorld(30, 50, 8);
  const model = Model.create({ backbone: 'sasrec', numItems: 30, d: 16, heads: 2, maxLen: 10, threads: 2 });
  const table = await model.itemVectors();
  const snapshot = Float32Array.from(table);
  await model.trainEpoch(seqs, { batchSize: 16, lr: 1e-2 });
  assert.deepEqual(table, snapshot);
  assert.notDeepEqual(await model.itemVectors(), snapshot);
  void Sequences;
});

test('prepareTextTower: scratch vocabulary from the titles, tokens cached beside the data set (a damaged cache is rebuilt)', async () => {
  const cacheDir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'morec-text-cache-'));
  const data = await prepareDataset('synthetic', { maxLen: 20, synthetic: { seed: 3, scale: 0.25 }, cacheDir });
  const first = prepareTextTower(data, { encoder: 'bert-tiny' });
  assert.match(first.summary, /word vocabulary of \d+ title words/);
  assert.doesNotMatch(first.summary, /from the cache/);
  assert.equal(first.label, 'bert-tiny(scratch)');
  assert.equal(first.pretrained, false);
  assert.equal(first.text.vocabSize, first.tokenizer.vocabSize);
  // every title's words are in the vocabulary: no [UNK]
  for (let i = 1; i <= first.items.numItems; i++)
    for (let t = 0; t < first.items.lengths[i]; t++) assert.notEqual(first.items.tokens[i * 30 + t], first.tokenizer.unkId);
  const second = prepareTextTower(data, { encoder: 'bert-tiny' });
  assert.match(second.summary, /tokens from the cache/);
  assert.deepEqual(second.items.tokens, first.items.tokens);
  assert.deepEqual(second.items.lengths, first.items.lengths);
  const cacheFile = fs.readdirSync(data.cacheDir!).find((f) => f.startsWith('tokens-'))!;
  fs.truncateSync(path.join(data.cacheDir!, cacheFile), 100);
  const third = prepareTextTower(data, { encoder: 'bert-tiny' });
  assert.doesNotMatch(third.summary, /from the cache/);
  assert.deepEqual(third.items.tokens, first.items.tokens);
  // a data set without titles is refused
  assert.throws(() => prepareTextTower({ ...data, text: undefined }), /has no item texts/);
});

test('evaluation builds the item table first and reports it in its progress (items, then users)', async () => {
  const { seqs, store } = textWorld(30, 40, 10);
  const model = Model.create({ backbone: 'sasrec', numItems: 30, d: 16, heads: 2, maxLen: 10, itemTower: 'text', text: { ...tinyText, encodeBatch: 7 } as ModelConfig['text'], threads: 2 }, { items: store });
  const seen: [number, number][] = [];
  const ranks = await model.evaluate(seqs, { split: 'valid', batchSize: 16 }, (d, t) => seen.push([d, t]));
  // Progress messages may be coalesced (only the latest is delivered): check what arrives, not how many.
  assert.ok(seen.length >= 1);
  const evaluated = Array.from(ranks).filter((r) => r >= 0).length;
  for (const [, t] of seen) assert.equal(t, 30 + evaluated);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i][0] >= seen[i - 1][0]);
  assert.ok(seen[seen.length - 1][0] > 30, 'users are counted after the items');
});

test('encoderParameterCount equals the number of encoder weights the model really holds', () => {
  const model = textModel('tiny-bert', 'bert');
  const params = model.parameters();
  let n = 0;
  for (const [name, t] of Object.entries(params)) if (name.startsWith('item_tower.encoder.')) n += t.data.length;
  const text = model.config.text!;
  assert.equal(encoderParameterCount(text), n, 'parameters under item_tower.encoder.');
});
