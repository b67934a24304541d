import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { loadAddon, Sequences } from '../lib';
import { rng } from './helpers';

function bruteForceRanks(users: Float32Array, items: Float32Array, d: number, hOff: Int32Array, hItems: Int32Array, targets: Int32Array): Int32Array {
  const U = users.length / d, N1 = items.length / d;
  const out = new Int32Array(U);
  for (let u = 0; u < U; u++) {
    const score = (j: number) => {
      let s = 0;
      for (let k = 0; k < d; k++) s += users[u * d + k] * items[j * d + k];
      return s;
    };
    const masked = new Set<number>([0]);
    for (let i = hOff[u]; i < hOff[u + 1]; i++) if (hItems[i] !== targets[u]) masked.add(hItems[i]);
    const t = score(targets[u]);
    let rank = 0;
    for (let j = 1; j < N1; j++) if (!masked.has(j) && score(j) > t) rank++;
    out[u] = rank;
  }
  return out;
}

test('native full-ranking ranks equal a brute-force TypeScript ranking, with history masking', () => {
  const addon = loadAddon();
  const r = rng(7);
  for (const [U, N, d, chunk] of [
    [1, 5, 3, 1024],
    [37, 60, 8, 8], // several chunks, last one partial
    [120, 300, 16, 50],
  ]) {
    const users = Float32Array.from({ length: U * d }, () => r() * 2 - 1);
    const items = Float32Array.from({ length: (N + 1) * d }, () => r() * 2 - 1);
    const hOff = new Int32Array(U + 1);
    const hist: number[] = [];
    const targets = new Int32Array(U);
    for (let u = 0; u < U; u++) {
      const len = Math.floor(r() * Math.min(N, 12));
      for (let i = 0; i < len; i++) hist.push(1 + Math.floor(r() * N));
      hOff[u + 1] = hist.length;
      // sometimes the target is also in the history: it must not be masked
      targets[u] = len > 0 && r() < 0.2 ? hist[hist.length - 1] : 1 + Math.floor(r() * N);
    }
    const hItems = Int32Array.from(hist);
    const expected = bruteForceRanks(users, items, d, hOff, hItems, targets);
    const got = addon.fullRankingRanks(users, items, d, hOff, hItems, targets, { chunkRows: chunk, threads: 2 });
    assert.deepEqual(Array.from(got), Array.from(expected), `U=${U} N=${N} d=${d}`);
  }
});

test('masking removes exactly the history items: a planted high-scoring seen item does not count', () => {
  const addon = loadAddon();
  // d = 1: item j scores j. Target 3; items 4 and 5 are higher but 5 is in the history -> rank 1.
  const items = Float32Array.from([100, 1, 2, 3, 4, 5]); // row 0 = padding, scores highest, never counts
  const ranks = addon.fullRankingRanks(Float32Array.from([1]), items, 1, Int32Array.from([0, 2]), Int32Array.from([5, 1]), Int32Array.from([3]));
  assert.deepEqual(Array.from(ranks), [1]);
});

function histories(users: number, numItems: number, seed: number): Sequences {
  const r = rng(seed);
  const seqs: number[][] = [];
  for (let u = 0; u < users; u++) {
    const len = 1 + Math.floor(r() * (numItems - 5));
    seqs.push(Array.from({ length: len }, () => 1 + Math.floor(r() * numItems)));
  }
  return Sequences.fromArrays(seqs, numItems);
}

test('the training negative sampler never returns padding or a seen item (many draws)', () => {
  const numItems = 30;
  const seqs = histories(200, numItems, 3);
  const count = 200;
  const negs = loadAddon().sampleNegatives(seqs.native, { count, seed: 11 });
  assert.equal(negs.length, seqs.users * count);
  const hit = new Set<number>();
  for (let u = 0; u < seqs.users; u++) {
    const seen = new Set(seqs.sequence(u));
    for (let k = 0; k < count; k++) {
      const n = negs[u * count + k];
      assert.ok(n >= 1 && n <= numItems, `negative ${n} out of 1..${numItems}`);
      assert.ok(!seen.has(n), `user ${u} got seen item ${n}`);
      hit.add(n);
    }
  }
  assert.equal(hit.size, numItems, 'every item is drawn by someone: the sampler is not stuck on a subset');
});

test('the sampled-evaluation sampler draws distinct unseen items, never padding', () => {
  const numItems = 40;
  const seqs = histories(100, numItems, 5);
  const count = 4;
  const negs = loadAddon().sampleNegatives(seqs.native, { count, seed: 2, distinct: true });
  for (let u = 0; u < seqs.users; u++) {
    const seen = new Set(seqs.sequence(u));
    const drawn = Array.from(negs.subarray(u * count, (u + 1) * count));
    assert.equal(new Set(drawn).size, count);
    for (const n of drawn) assert.ok(n >= 1 && n <= numItems && !seen.has(n));
  }
});

test('sampling from a user who has seen every item is an error, not a hang', () => {
  const seqs = Sequences.fromArrays([[1, 2, 3]], 3);
  assert.throws(() => loadAddon().sampleNegatives(seqs.native, { count: 1 }), /every one of the 3 items/);
});
