import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { metrics, MorecError } from '../lib';

test('HR@K and NDCG@K equal hand-computed values; unevaluated users (-1) are skipped', () => {
  // ranks 0, 1, 9, 10, 50, -1: hits at K=10 are ranks 0, 1, 9.
  const m = metrics(new Int32Array([0, 1, 9, 10, 50, -1]), [1, 10]);
  assert.equal(m.users, 5);
  assert.equal(m['HR@10'], 3 / 5);
  const ndcg = (1 / Math.log2(2) + 1 / Math.log2(3) + 1 / Math.log2(11)) / 5;
  assert.ok(Math.abs(m['NDCG@10'] - ndcg) < 1e-12);
  assert.ok(Math.abs(m['NDCG@10'] - 0.3839989) < 1e-6); // (1 + 0.6309298 + 0.2890648) / 5
  assert.equal(m['HR@1'], 1 / 5);
  assert.equal(m['NDCG@1'], 1 / 5);
});

test('sampled-protocol metrics carry a distinct name', () => {
  const m = metrics([0, 200], 10, '(sampled100)');
  assert.equal(m['HR@10(sampled100)'], 0.5);
  assert.equal(m['HR@10'], undefined);
});

test('metrics rejects a bad K', () => {
  assert.throws(() => metrics([0], 0), (e: unknown) => e instanceof MorecError && /positive integer for K but received 0/.test(e.message));
});
