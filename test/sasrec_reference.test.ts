import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { Model, readSafetensors } from '../lib';

// test/fixtures/sasrec_ref.safetensors is written by test/fixtures/make_sasrec_fixture.py: an independent
// PyTorch implementation of the study's SASRec (bench/sasrec_torch.py) with random weights, left-padded
// inputs narrower than maxLen (so the position offset maxLen - T + c is exercised) and its outputs.
const fixture = path.resolve(__dirname, '..', '..', 'test', 'fixtures', 'sasrec_ref.safetensors');

for (const sequenceLayout of ['packed', 'padded'] as const)
test(`SASRec forward (${sequenceLayout} layout) equals the PyTorch reference to 1e-5 (hidden states and item scores)`, async () => {
  const { tensors, metadata } = readSafetensors(fixture);
  const numItems = Number(metadata.numItems);
  const d = Number(metadata.d);
  const model = Model.create({
    backbone: 'sasrec',
    numItems,
    d,
    heads: Number(metadata.heads),
    blocks: Number(metadata.blocks),
    maxLen: Number(metadata.maxLen),
    threads: 1,
    sequenceLayout,
  });
  const weights: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(tensors)) if (name.startsWith('item_tower.') || name.startsWith('user_encoder.')) weights[name] = t.data as Float32Array;
  model.setParameters(weights);

  const ids = tensors.input_ids.data as Int32Array;
  const [B, T] = tensors.input_ids.shape;
  const hidden = model.encodeSequences(ids, B);
  const expected = tensors.expected_hidden.data as Float32Array;
  assert.equal(hidden.length, expected.length);
  let maxDiff = 0;
  for (let i = 0; i < hidden.length; i++) maxDiff = Math.max(maxDiff, Math.abs(hidden[i] - expected[i]));
  assert.ok(maxDiff < 1e-5, `max |hidden - reference| = ${maxDiff}`);
  // padded positions are exactly zero
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      if (ids[b * T + t] === 0) for (let k = 0; k < d; k++) assert.equal(hidden[(b * T + t) * d + k], 0);

  const items = await model.itemVectors();
  const scores = tensors.expected_scores.data as Float32Array;
  let maxScoreDiff = 0;
  for (let b = 0; b < B; b++)
    for (let j = 0; j <= numItems; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += hidden[(b * T + T - 1) * d + k] * items[j * d + k];
      maxScoreDiff = Math.max(maxScoreDiff, Math.abs(s - scores[b * (numItems + 1) + j]));
    }
  assert.ok(maxScoreDiff < 1e-5, `max |score - reference| = ${maxScoreDiff}`);
});

test('a model with different weights does not match the reference (the comparison can fail)', () => {
  const { tensors, metadata } = readSafetensors(fixture);
  const model = Model.create({ backbone: 'sasrec', numItems: Number(metadata.numItems), d: Number(metadata.d), heads: 2, blocks: 2, maxLen: 8, seed: 99 });
  const hidden = model.encodeSequences(tensors.input_ids.data as Int32Array, tensors.input_ids.shape[0]);
  const expected = tensors.expected_hidden.data as Float32Array;
  let maxDiff = 0;
  for (let i = 0; i < hidden.length; i++) maxDiff = Math.max(maxDiff, Math.abs(hidden[i] - expected[i]));
  assert.ok(maxDiff > 1e-2);
});
