import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { loadAddon } from '../lib';
import { rng } from './helpers';

// Whatever JS passes, the native core throws or rejects with a coded error: it never aborts the process.
const r = rng(99);
const samples: unknown[] = [
  undefined, null, 0, -1, 1.5, NaN, Infinity, 2 ** 40, 'x', '', true, {}, [], [1, 2], () => 1,
  new Int32Array(0), new Int32Array([0, 1, 2]), new Float32Array(4), new Float64Array(2), Symbol('s'),
  { backbone: 'sasrec', numItems: 3 }, { data: new Float32Array(1) }, 1, 2, 5, 'valid', 'test', 'full', 'sampled',
  { batchSize: 1 }, { batchSize: 2, maxBatches: 1, progressEvery: 1 }, { split: 'test', batchSize: 1 }, { mode: 'sampled', numNegatives: 2 },
  { threads: 999 }, { chunkRows: 1, threads: 1 }, { step: 1, tensors: {} }, new Int32Array([0, 5]), new Int32Array([1, 2, 3, 4, 5]),
];
const pick = () => samples[Math.floor(r() * samples.length)];

function hasCode(e: unknown): boolean {
  return typeof (e as { code?: unknown })?.code === 'string';
}

test('10,000 random calls to every native entry point give results or coded errors, never a crash', async (t) => {
  const addon = loadAddon();
  const model = new addon.Model({ backbone: 'sasrec', numItems: 5, d: 4, heads: 2, maxLen: 3, threads: 1 });
  const seqs = new addon.Sequences(new Int32Array([0, 5]), new Int32Array([1, 2, 3, 4, 5]), 5);
  const store = new addon.ItemStore({ numItems: 5, maxTokens: 3, tokens: new Int32Array(18).fill(1), lengths: new Int32Array([0, 3, 3, 2, 1, 3]) });
  const text = { kind: 'bert', vocabSize: 4, hidden: 4, layers: 1, heads: 2, intermediate: 8, maxPositions: 4 } as const;
  const textModel = new addon.Model({ backbone: 'sasrec', numItems: 5, d: 4, heads: 2, maxLen: 3, threads: 1, itemTower: 'text', text } as never, store);
  const calls: Array<(a: unknown, b: unknown, c: unknown) => unknown> = [
    (a, b, c) => new (addon.Model as unknown as new (...x: unknown[]) => unknown)(a, b, c),
    (a, b, c) => new (addon.Sequences as unknown as new (...x: unknown[]) => unknown)(a, b, c),
    (a, b, c) => (addon.fullRankingRanks as unknown as (...x: unknown[]) => unknown)(a, b, c, a, b, c),
    (a, b) => (addon.sampleNegatives as unknown as (...x: unknown[]) => unknown)(a, b),
    (a, b, c) => (model.trainEpoch as unknown as (...x: unknown[]) => unknown).call(model, a, b, c),
    (a, b) => (model.trainEpoch as unknown as (...x: unknown[]) => unknown).call(model, seqs, a, b),
    (a, b, c) => (model.evaluate as unknown as (...x: unknown[]) => unknown).call(model, a, b, c),
    (a, b) => (model.evaluate as unknown as (...x: unknown[]) => unknown).call(model, seqs, a, b),
    (a, b) => (model.encodeSequences as unknown as (...x: unknown[]) => unknown).call(model, a, b),
    (a) => (model.setParameters as unknown as (...x: unknown[]) => unknown).call(model, a),
    (a) => (model.setOptimizerState as unknown as (...x: unknown[]) => unknown).call(model, a),
    (a) => new (addon.ItemStore as unknown as new (...x: unknown[]) => unknown)(a),
    (a, b) => new (addon.Model as unknown as new (...x: unknown[]) => unknown)({ backbone: 'sasrec', numItems: 5, itemTower: 'text', text: a }, b),
    (a) => (textModel.encoderHiddenStates as unknown as (...x: unknown[]) => unknown).call(textModel, a),
    (a) => (textModel.loadEncoderWeights as unknown as (...x: unknown[]) => unknown).call(textModel, a),
    (a) => (model.loadEncoderWeights as unknown as (...x: unknown[]) => unknown).call(model, a),
    (a) => (textModel.itemVectors as unknown as (...x: unknown[]) => unknown).call(textModel, a),
    (a, b, c) => (textModel.trainEpoch as unknown as (...x: unknown[]) => unknown).call(textModel, seqs, a, c ?? b),
    () => (model.restoreWeights as unknown as (...x: unknown[]) => unknown).call(model),
    (a) => (model.itemVectors as unknown as (...x: unknown[]) => unknown).call(model, a),
    (a) => (model.cancel as unknown as (...x: unknown[]) => unknown).call(model, a),
    () => model.snapshotWeights(),
    () => model.optimizerState(),
    () => model.config,
    (a) => (textModel.encodeSequences as unknown as (...x: unknown[]) => unknown).call(textModel, a, 1),
    // a job cancelled before it runs, and one cancelled while it runs
    (a) => {
      const p = (model.trainEpoch as unknown as (...x: unknown[]) => Promise<unknown>).call(model, seqs, a);
      model.cancel();
      return p;
    },
    (a, b) => {
      const p = (textModel.evaluate as unknown as (...x: unknown[]) => Promise<unknown>).call(textModel, seqs, a, b);
      setImmediate(() => textModel.cancel());
      return p;
    },
    (a) => (addon.setThreads as unknown as (...x: unknown[]) => unknown)(a),
    (a) => (addon.getThreads as unknown as (...x: unknown[]) => unknown)(a),
    (a, b, c) => (addon.fullRankingRanks as unknown as (...x: unknown[]) => unknown)(
      new Float32Array(4), new Float32Array(12), 2, new Int32Array([0, 1, 2]), new Int32Array([1, 2]), a, b ?? c),
    (a, b) => (addon.sampleNegatives as unknown as (...x: unknown[]) => unknown)(seqs, a ?? b),
    () => [seqs.users, seqs.numItems, seqs.interactions, store.numItems, store.maxTokens],
    (a, b) => (model.epochBatches as unknown as (...x: unknown[]) => unknown).call(model, a, b),
    (a) => (model.epochBatches as unknown as (...x: unknown[]) => unknown).call(model, seqs, a),
    (a) => (seqs.repeatedTargetUsers as unknown as (...x: unknown[]) => unknown).call(seqs, a),
    (a) => (model.trainEpoch as unknown as (...x: unknown[]) => Promise<unknown>).call(model, seqs, { loss: 'inbatch', batchSize: a }),
    (a) => (model.evaluate as unknown as (...x: unknown[]) => Promise<unknown>).call(model, seqs, { maskRepeatedTarget: a }),
  ];
  const budget = addon.getThreads().threads;
  const started = performance.now();
  const count = 10_000;
  let errors = 0;
  let jobs = 0;
  let aborted = 0;
  for (let i = 0; i < count; i++) {
    const call = calls[i % calls.length];
    try {
      const out = call(pick(), pick(), pick());
      if (out instanceof Promise) await out.then(() => jobs++, (e) => {
        assert.ok(hasCode(e), `rejection without a code: ${e}`);
        if ((e as { code: string }).code === 'EABORT') aborted++;
        errors++;
      });
    } catch (e) {
      assert.ok(hasCode(e), `throw without a code: ${e}`);
      errors++;
    }
  }
  addon.setThreads(budget);
  t.diagnostic(
    `${count} calls (${errors} coded errors, ${jobs} async jobs completed, ${aborted} aborted) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  assert.ok(errors > count / 3, `${errors} of ${count} calls were rejected`);
  // and the models still work
  const result = await model.trainEpoch(seqs, { batchSize: 1 });
  assert.ok(Number.isFinite(result.loss));
  const textResult = await textModel.trainEpoch(seqs, { batchSize: 1 });
  assert.ok(Number.isFinite(textResult.loss));
});
