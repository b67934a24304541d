import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddon, Model, MorecError, Sequences } from '../lib';
import { isMorec } from './helpers';

test('bad model configs are rejected in TypeScript with uniform messages', () => {
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, d: -3 }), isMorec('EINVAL', /^Expected a positive integer for d but received -3$/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, d: 10, heads: 3 }), isMorec('EINVAL', /heads to divide d/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 1.5 }), isMorec('EINVAL', /positive integer for numItems but received 1.5/));
  assert.throws(() => Model.create({ backbone: 'transformer' as 'sasrec', numItems: 10 }), isMorec('EINVAL', /backbone but received 'transformer'/));
  assert.throws(() => Model.create({ backbone: 'dssm', numItems: 10 }), isMorec('EINVAL', /numUsers but received undefined/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, dropout: 2 }), isMorec('EINVAL', /dropout but received 2/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, device: 'tpu' }), isMorec('EINVAL', /device but received 'tpu'/));
  assert.throws(() => Model.create(null as never), isMorec('EINVAL', /config object/));
  // Keys come from the core's one field list: a misspelt option is refused, not ignored.
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, learningRate: 1e-3 } as never), isMorec('EINVAL', /^Unknown option learningRate \(expected one of backbone, itemTower, numItems/));
  const text = { kind: 'bert', vocabSize: 30, hidden: 32, heads: 2 };
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, itemTower: 'text', text: { ...text, hidden: 0 } } as never), isMorec('EINVAL', /^Expected an integer in \[1, 65536\] for text.hidden but received 0$/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, itemTower: 'text', text: { ...text, pooling: 'max' } } as never), isMorec('EINVAL', /^Expected one of 'cls' \| 'mean' for text.pooling but received 'max'$/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, itemTower: 'text', text: { ...text, hiddenSize: 32 } } as never), isMorec('EINVAL', /^Unknown option text.hiddenSize/));
  assert.throws(() => Model.create({ backbone: 'sasrec', numItems: 10, itemTower: 'text' } as never), isMorec('EINVAL', /text encoder config object .* received undefined/));
  // The core checks the same fields (and relations between them) when called directly.
  const { Model: NativeModel } = loadAddon();
  assert.throws(() => new NativeModel({ backbone: 'sasrec', numItems: 10, itemTower: 'text', text: { ...text, heads: 5 } } as never), /text.heads to divide text.hidden/);
  assert.throws(() => new NativeModel({ backbone: 'sasrec', numItems: 10, itemTower: 'text', text: { ...text, finetuneTopLayers: 3 } } as never), /text.finetuneTopLayers in \[-1, 2\]/);
  assert.throws(() => new NativeModel({ backbone: 'sasrec', numItems: 10, itemTower: 'text', text: { ...text, hidden: 'x' } } as never), /for text.hidden but received 'x'/);
});

test('the native core validates too: raw addon calls with bad arguments throw, never crash', () => {
  const { Model: NativeModel, Sequences: NativeSeqs, fullRankingRanks } = loadAddon();
  const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
  assert.throws(() => new NativeModel({ backbone: 'sasrec', numItems: 10, d: -3 }), /positive integer|\[1, 65536\] for d but received -3/);
  assert.throws(() => new NativeModel({ backbone: 'sasrec', numItems: 10, d: 10, heads: 4 }), code('EINVAL'));
  assert.throws(() => new NativeModel({ backbone: 'sasrec' } as never), /numItems but received undefined/);
  assert.throws(() => new NativeModel('x' as never), /config object/);
  assert.throws(() => new NativeModel({ backbone: 'sasrec', numItems: 10, device: 'cuda' }), code('ENODEVICE'));
  assert.throws(() => new NativeSeqs(new Int32Array([0, 2]), new Int32Array([1, 11]), 10), /1\.\.10 but user 0 has item 11 at position 1/);
  assert.throws(() => new NativeSeqs(new Int32Array([0, 2]), new Int32Array([1, 0]), 10), /has item 0/);
  assert.throws(() => new NativeSeqs(new Int32Array([0, 3]), new Int32Array([1, 2]), 10), /last offset/);
  assert.throws(() => new NativeSeqs(new Int32Array([0, 2, 1]), new Int32Array([1, 2]), 10), /non-decreasing/);
  assert.throws(() => new NativeSeqs([0, 1] as never, new Int32Array([1]), 10), /Int32Array for offsets but received an array/);
  const m = new NativeModel({ backbone: 'sasrec', numItems: 10, d: 8, maxLen: 4, threads: 1 });
  assert.throws(() => m.trainEpoch({} as never, {}), /Sequences object for sequences/);
  assert.throws(() => m.encodeSequences(new Int32Array([1, 2, 99, 0]), 1), /inputIds\[2\] is 99/);
  assert.throws(() => m.encodeSequences(new Int32Array([1, 2, 3, 4, 5]), 1), /1 <= T <= maxLen/);
  assert.throws(() => m.encodeSequences(new Int32Array([1]), 0), /rows/);
  assert.throws(() => m.setParameters({ 'nope.weight': new Float32Array(1) }), /unknown parameter 'nope.weight'/);
  assert.throws(() => m.setParameters({}), /missing parameter/);
  assert.throws(() => fullRankingRanks(new Float32Array(4), new Float32Array(8), 2, new Int32Array([0, 0, 0]), new Int32Array(0), new Int32Array([1, 9])), /targets\[1\] is 9/);
});

test('bad training and evaluation options reject with MorecError', async () => {
  const seqs = Sequences.fromArrays([[1, 2, 3, 4, 5]], 5);
  const model = Model.create({ backbone: 'sasrec', numItems: 5, d: 8, maxLen: 4, threads: 1 });
  await assert.rejects(model.trainEpoch(seqs, { batchSize: 0 }), isMorec('EINVAL', /batchSize but received 0/));
  await assert.rejects(model.trainEpoch(seqs, { lr: -1 }), isMorec('EINVAL', /lr but received -1/));
  await assert.rejects(model.evaluate(seqs, { split: 'train' as 'test' }), isMorec('EINVAL', /split but received 'train'/));
  await assert.rejects(model.evaluate(Sequences.fromArrays([[1, 2]], 6)), isMorec('EINVAL', /over 5 items/));
  await assert.rejects(model.trainEpoch(Sequences.fromArrays([[1, 2, 3]], 5)), isMorec('EINVAL', /no user has a training prefix/));
  const tooFew = Model.create({ backbone: 'sasrec', numItems: 3, d: 8, maxLen: 4, threads: 1 });
  await assert.rejects(tooFew.trainEpoch(Sequences.fromArrays([[1, 2, 3, 1, 2]], 3)), isMorec('ESAMPLE', /every one of the 3 items/));
  const dssm = Model.create({ backbone: 'dssm', numItems: 5, numUsers: 1, d: 8, threads: 1 });
  await assert.rejects(dssm.trainEpoch(Sequences.fromArrays([[1, 2, 3, 4], [1, 2, 3, 4]], 5)), isMorec('EINVAL', /numUsers 1/));
  await assert.rejects(model.trainEpoch(seqs, { lr: 1e9 }), isMorec('EINVAL', /lr but received/));
});

test('a diverging run stops with ENONFINITE instead of writing NaN weights silently', async () => {
  const seqs = Sequences.fromArrays(Array.from({ length: 50 }, (_, u) => [1 + (u % 5), 2, 3, 4, 5, 6]), 8);
  const model = Model.create({ backbone: 'sasrec', numItems: 8, d: 8, maxLen: 6, threads: 1, dropout: 0 });
  const p = model.native.parameters();
  const poisoned = Object.fromEntries(Object.entries(p).map(([k, t]) => [k, t.data.map(() => NaN)]));
  model.setParameters(poisoned);
  await assert.rejects(model.trainEpoch(seqs, {}), isMorec('ENONFINITE', /training loss became nan at batch 0/));
});

test('loading a corrupt or missing checkpoint names the file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-bad-'));
  try {
    await assert.rejects(Model.load(dir), isMorec('EINVAL', /checkpoint\.json is missing/));
    fs.writeFileSync(path.join(dir, 'checkpoint.json'), '{ not json');
    await assert.rejects(Model.load(dir), isMorec('EFORMAT', /checkpoint\.json: not valid JSON/));
    const model = Model.create({ backbone: 'sasrec', numItems: 5, d: 8, maxLen: 4, threads: 1 });
    await model.save(dir);
    fs.writeFileSync(path.join(dir, 'model-1.safetensors'), Buffer.from([1, 2, 3]));
    await assert.rejects(Model.load(dir), isMorec('EFORMAT', /model-1\.safetensors: 3 bytes but checkpoint\.json lists \d+; the checkpoint is not whole/));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing addon is explained (ENOADDON) with every place that was tried', () => {
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const script = `try { require(${JSON.stringify(require.resolve('../lib/native'))}).loadAddon(); } catch (e) { console.log(e.code + '|' + e.message); }`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, MOREC_ADDON: '/nonexistent/morec.node' } });
  assert.match(r.stdout, /^ENOADDON\|morec could not load its native addon/);
  assert.match(r.stdout, /\/nonexistent\/morec\.node: not built/);
  assert.match(r.stdout, /npm run build:native/);
});

test('a checkpoint whose weights do not fit its config is rejected with the tensor named', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-mismatch-'));
  try {
    // Weights of a 5-item model listed in a (whole, consistent) checkpoint of a 6-item model.
    await Model.create({ backbone: 'sasrec', numItems: 6, d: 8, maxLen: 4, threads: 1 }).save(dir);
    const small = Model.create({ backbone: 'sasrec', numItems: 5, d: 8, maxLen: 4, threads: 1 });
    const big = (await Model.load(dir)).model;
    assert.throws(() => big.setParameters(small.native.parameters()), isMorec('EINVAL', /Expected 56 values for parameter 'item_tower\.id_embedding\.weight' but received 48/));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
