import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ItemStore, metrics, Model, ModelConfig, popularityRanks, Sequences } from '../lib';
import { chainWorld, rng } from './helpers';

// The in-batch debiased softmax loss of the study's code (inbatch_sasrec_e2e_*): every item occurrence of the
// batch is a candidate, logits minus log p(item) (p = the item's share of the training-prefix interactions),
// candidates whose item is in the user's training prefix masked except the position's own positive,
// cross-entropy, mean over positions.

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return s;
};
const logSumExp = (xs: number[]) => {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
};
const prefixOf = (seqs: Sequences, u: number) => Array.from(seqs.sequence(u).subarray(0, -2));

function logPopularity(seqs: Sequences): number[] {
  const counts = new Array<number>(seqs.numItems + 1).fill(0);
  let total = 0;
  for (let u = 0; u < seqs.users; u++)
    for (const i of prefixOf(seqs, u)) {
      counts[i]++;
      total++;
    }
  return counts.map((c) => Math.log(c / total));
}

/**
 * Mean in-batch loss of positions (user u, query vector h, positive t), the candidate columns being `columns`
 * (item occurrences); the positive's own column is one of them.
 */
function inBatchLoss(seqs: Sequences, positions: Array<{ u: number; h: ArrayLike<number>; t: number }>, columns: number[], item: (i: number) => ArrayLike<number>): number {
  const logQ = logPopularity(seqs);
  let sum = 0;
  for (const { u, h, t } of positions) {
    const seen = new Set(prefixOf(seqs, u));
    const own = dot(h, item(t)) - logQ[t];
    const others = columns.filter((c) => !seen.has(c)).map((c) => dot(h, item(c)) - logQ[c]);
    sum += logSumExp([own, ...others]) - own;
  }
  return sum / positions.length;
}

test('in-batch loss on a hand-computed DSSM case (d = 1): logits, logQ correction, masked seen items, softmax CE', async () => {
  // user vectors 1 and 2; item vectors 0.5, -1, 1, 2 (items 1..4)
  const seqs = Sequences.fromArrays([[1, 2, 3, 4], [3, 1, 2, 4]], 4); // prefixes [1, 2] and [3, 1]
  const model = Model.create({ backbone: 'dssm', numItems: 4, numUsers: 2, d: 1, threads: 1 });
  model.setParameters({ 'item_tower.id_embedding.weight': Float32Array.from([0, 0.5, -1, 1, 2]), 'user_tower.user_embedding.weight': Float32Array.from([1, 2]) });
  // p(1) = 2/4, p(2) = p(3) = 1/4; candidates: the four pairs' items 1, 2, 3, 1.
  const lq1 = Math.log(0.5), lq2 = Math.log(0.25), lq3 = Math.log(0.25);
  const ce = (own: number, ...others: number[]) => Math.log([own, ...others].reduce((s, x) => s + Math.exp(x), 0)) - own;
  const expected =
    (ce(1 * 0.5 - lq1, 1 * 1 - lq3) + // user 0, positive 1: item 2 and the other item-1 column are seen -> masked; item 3 stays
      ce(1 * -1 - lq2, 1 * 1 - lq3) + // user 0, positive 2: item 3 stays
      ce(2 * 1 - lq3, 2 * -1 - lq2) + // user 1, positive 3: both item-1 columns masked; item 2 stays
      ce(2 * 0.5 - lq1, 2 * -1 - lq2)) / // user 1, positive 1: user 0's item-1 column is masked (user 1 saw item 1); item 2 stays
    4;
  assert.ok(Math.abs(expected - 0.924505) < 1e-6, `hand value ${expected}`);
  const r = await model.trainEpoch(seqs, { loss: 'inbatch', batchSize: 100, lr: 0 });
  assert.equal(r.positions, 4);
  assert.ok(Math.abs(r.loss - expected) < 1e-5, `native ${r.loss} vs hand-computed ${expected}`);
  // The same through the general reference.
  const items = [0, 0.5, -1, 1, 2];
  const pos = [0, 1].flatMap((u) => prefixOf(seqs, u).map((t) => ({ u, h: [u + 1], t })));
  assert.ok(Math.abs(inBatchLoss(seqs, pos, [1, 2, 3, 1], (i) => [items[i]]) - expected) < 1e-12);
  // No negatives are drawn with the in-batch loss.
  assert.equal(model.epochBatches(seqs, { loss: 'inbatch' }).negatives.length, 0);
});

function randomSequences(users: number, numItems: number, maxLength: number, seed: number): Sequences {
  const r = rng(seed);
  return Sequences.fromArrays(Array.from({ length: users }, () => Array.from({ length: 4 + Math.floor(r() * (maxLength - 3)) }, () => 1 + Math.floor(r() * numItems))), numItems);
}

test('in-batch loss of SASRec (packed and padded) equals a reference over its hidden states: every window item a candidate', async () => {
  const maxLen = 6, numItems = 15;
  const seqs = randomSequences(7, numItems, maxLen + 3, 4); // windows hold whole prefixes, items repeat
  for (const sequenceLayout of ['packed', 'padded'] as const) {
    const model = Model.create({ backbone: 'sasrec', numItems, d: 8, heads: 2, blocks: 1, maxLen, dropout: 0, seed: 2, threads: 1, sequenceLayout });
    const table = await model.itemVectors();
    const item = (i: number) => table.subarray(i * 8, (i + 1) * 8);
    const positions: Array<{ u: number; h: Float32Array; t: number }> = [];
    const columns: number[] = [];
    for (let u = 0; u < seqs.users; u++) {
      const prefix = prefixOf(seqs, u);
      columns.push(...prefix); // the window: inputs and the last positive
      const inputs = prefix.slice(0, -1);
      const hidden = model.encodeSequences(Int32Array.from(inputs), 1);
      inputs.forEach((_, j) => positions.push({ u, h: hidden.subarray(j * 8, (j + 1) * 8), t: prefix[j + 1] }));
    }
    const expected = inBatchLoss(seqs, positions, columns, item);
    const r = await model.trainEpoch(seqs, { loss: 'inbatch', batchSize: 100, lr: 0 });
    assert.equal(r.positions, positions.length);
    assert.ok(Math.abs(r.loss - expected) < 1e-5, `${sequenceLayout}: native ${r.loss} vs reference ${expected}`);
  }
});

function titleStore(numItems: number): ItemStore {
  // Item i's title: [CLS] w_i [SEP], one word per item (the text tower can tell every item apart).
  const T = 3;
  const tokens = new Int32Array((numItems + 1) * T);
  const lengths = new Int32Array(numItems + 1);
  for (let i = 1; i <= numItems; i++) {
    tokens.set([1, 3 + i, 2], i * T);
    lengths[i] = T;
  }
  return new ItemStore({ numItems, maxTokens: T, tokens, lengths });
}
const tinyBert = (numItems: number, dropout: number) => ({ kind: 'bert', vocabSize: numItems + 4, hidden: 16, layers: 1, heads: 2, intermediate: 32, maxPositions: 8, hiddenDropout: dropout, attentionDropout: dropout, pooling: 'mean' }) as ModelConfig['text'];

test('in-batch loss of DSSM over a text item tower equals the reference over its item table', async () => {
  const numItems = 12;
  const seqs = randomSequences(6, numItems, 9, 8);
  const d = 8;
  const model = Model.create({ backbone: 'dssm', numItems, numUsers: seqs.users, d, itemTower: 'text', text: tinyBert(numItems, 0), seed: 4, threads: 1 }, { items: titleStore(numItems) });
  const table = await model.itemVectors();
  const users = model.parameters()['user_tower.user_embedding.weight'].data;
  const positions = [];
  const columns: number[] = [];
  for (let u = 0; u < seqs.users; u++)
    for (const t of prefixOf(seqs, u)) {
      positions.push({ u, h: users.subarray(u * d, (u + 1) * d), t });
      columns.push(t);
    }
  const expected = inBatchLoss(seqs, positions, columns, (i) => table.subarray(i * d, (i + 1) * d));
  const r = await model.trainEpoch(seqs, { loss: 'inbatch', batchSize: 1000, lr: 0, encoderLr: 0 });
  assert.ok(Math.abs(r.loss - expected) < 1e-5, `native ${r.loss} vs reference ${expected}`);
});

test("training with loss 'inbatch' lowers the loss on planted chains (SASRec and DSSM, ID and text towers)", async () => {
  const numItems = 60;
  const world = chainWorld(300, numItems, 3);
  const pop = metrics(popularityRanks(world, 'valid'))['HR@10'];
  const run = async (config: ModelConfig, epochs: number, options: Record<string, number | string>, items?: ItemStore) => {
    const model = Model.create(config, { items });
    const losses: number[] = [];
    for (let e = 0; e < epochs; e++) losses.push((await model.trainEpoch(world, { loss: 'inbatch', epoch: e, ...options })).loss);
    return { losses, hr: metrics(await model.evaluate(world, { split: 'valid' }))['HR@10'] };
  };
  const sasrec = await run({ backbone: 'sasrec', numItems, d: 16, heads: 2, blocks: 1, maxLen: 10, seed: 1, threads: 2 }, 6, { batchSize: 32, lr: 5e-3 });
  assert.ok(sasrec.losses[5] < sasrec.losses[0] * 0.8, `SASRec losses ${sasrec.losses.map((l) => l.toFixed(3))}`);
  assert.ok(sasrec.hr > 3 * pop, `SASRec in-batch valid HR@10 ${sasrec.hr} vs popularity ${pop}`);
  const dssm = await run({ backbone: 'dssm', numItems, numUsers: world.users, d: 16, seed: 1, threads: 2 }, 6, { batchSize: 128, lr: 5e-3 });
  assert.ok(dssm.losses[5] < dssm.losses[0] * 0.9, `DSSM losses ${dssm.losses.map((l) => l.toFixed(3))}`);
  const text = await run(
    { backbone: 'sasrec', numItems, d: 16, heads: 2, blocks: 1, maxLen: 10, itemTower: 'text', text: tinyBert(numItems, 0.1), seed: 1, threads: 2 },
    3,
    { batchSize: 32, lr: 5e-3, encoderLr: 5e-3 },
    titleStore(numItems),
  );
  assert.ok(text.losses[2] < text.losses[0] * 0.9, `SASRec text losses ${text.losses.map((l) => l.toFixed(3))}`);
  console.log(`# in-batch: SASRec ${sasrec.losses.map((l) => l.toFixed(3))} HR@10 ${sasrec.hr.toFixed(3)}; DSSM ${dssm.losses.map((l) => l.toFixed(3))} HR@10 ${dssm.hr.toFixed(3)}; text ${text.losses.map((l) => l.toFixed(3))}; popularity ${pop.toFixed(3)}`);
});

test('loss and dssmBatching are validated', () => {
  const model = Model.create({ backbone: 'dssm', numItems: 4, numUsers: 1, d: 2 });
  const seqs = Sequences.fromArrays([[1, 2, 3, 4]], 4);
  assert.throws(() => model.epochBatches(seqs, { loss: 'softmax' as never }), /Expected one of 'bce' \| 'inbatch' for loss but received 'softmax'|Expected .*'bce'.*for loss/);
  assert.throws(() => model.epochBatches(seqs, { dssmBatching: 'rows' as never }), /dssmBatching/);
  assert.throws(() => model.native.epochBatches(seqs.native, { loss: 'x' as never }), /Expected 'bce' or 'inbatch' for loss but received 'x'/);
});
