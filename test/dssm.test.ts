import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { fit, loadAddon, metrics, Model, popularityRanks, Sequences } from '../lib';
import { NamedTensor } from '../lib/native';
import { chainWorld, rng } from './helpers';

// An independent TypeScript DSSM: the study's code (MLP_Layers: each layer Dropout -> Linear -> GELU, on the
// user tower and on the ID item tower; BCEWithLogitsLoss, one mean over each pair's 1 + k logits) and
// morec's earlier variant (ReLU between layers, last layer linear, user tower only; mean(pos) + mean(neg)).

/** erfc with fractional error < 1.2e-7 everywhere (Numerical Recipes' erfcc, Chebyshev fit). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}
const gelu = (x: number) => 0.5 * x * erfc(-x / Math.SQRT2); // x * Phi(x), erf form
const relu = (x: number) => Math.max(0, x);
const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0);
/** BCE with logits, as torch computes it. */
const bce = (x: number, y: number) => Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));

function row(t: NamedTensor, r: number): number[] {
  const d = t.shape[t.shape.length - 1];
  return Array.from(t.data.subarray(r * d, (r + 1) * d));
}

function linear(p: Record<string, NamedTensor>, prefix: string, x: number[]): number[] {
  const w = p[`${prefix}.weight`], b = p[`${prefix}.bias`];
  const [out, inp] = w.shape;
  return Array.from({ length: out }, (_, o) => b.data[o] + x.reduce((s, v, i) => s + w.data[o * inp + i] * v, 0));
}

function mlp(p: Record<string, NamedTensor>, prefix: string, depth: number, style: 'dropout-linear-gelu' | 'linear-relu', x: number[]): number[] {
  let h = x;
  for (let i = 0; i < depth; i++) {
    h = linear(p, `${prefix}.${i}`, h); // Dropout(0) is the identity
    if (style === 'dropout-linear-gelu') h = h.map(gelu);
    else if (i + 1 < depth) h = h.map(relu);
  }
  return h;
}

// Every user's training prefix (sequence without its last two items) covers all items but one, so each
// positive's one uniform negative "not in the prefix" is that item: the batch is fixed, negatives included.
const numItems = 4;
const tiny = Sequences.fromArrays(
  [
    [1, 2, 3, 1, 4, 2], // prefix 1 2 3 1 -> negative 4
    [2, 3, 4, 2, 1, 3], // prefix 2 3 4 2 -> negative 1
    [3, 4, 1, 4, 2, 2], // prefix 3 4 1 4 -> negative 2
  ],
  numItems,
);
const onlyNegative = [4, 1, 2];
const prefixes = [0, 1, 2].map((u) => Array.from(tiny.sequence(u).subarray(0, -2)));

test('DSSM loss (study defaults) equals an independent TypeScript DSSM: Dropout(0) -> Linear -> GELU on both towers, one BCE mean', async () => {
  const depth = 2;
  const model = Model.create({ backbone: 'dssm', numItems, numUsers: 3, d: 3, dssmDepth: depth, dropout: 0, seed: 11, threads: 1 });
  assert.equal(model.config.dssmMlp, 'dropout-linear-gelu');
  assert.equal(model.config.dssmItemMlp, true);
  const p = model.parameters();
  assert.deepEqual(Object.keys(p).filter((k) => k.includes('mlp')).sort(), [
    'item_tower.mlp.0.bias', 'item_tower.mlp.0.weight', 'item_tower.mlp.1.bias', 'item_tower.mlp.1.weight',
    'user_tower.mlp.0.bias', 'user_tower.mlp.0.weight', 'user_tower.mlp.1.bias', 'user_tower.mlp.1.weight',
  ]);
  const user = (u: number) => mlp(p, 'user_tower.mlp', depth, 'dropout-linear-gelu', row(p['user_tower.user_embedding.weight'], u));
  const item = (i: number) => mlp(p, 'item_tower.mlp', depth, 'dropout-linear-gelu', row(p['item_tower.id_embedding.weight'], i));
  // Pairs: every (user, prefix item), 1 positive + 1 negative logit each, one mean over all of them.
  let sum = 0, logits = 0;
  for (let u = 0; u < 3; u++)
    for (const i of prefixes[u]) {
      sum += bce(dot(user(u), item(i)), 1) + bce(dot(user(u), item(onlyNegative[u])), 0);
      logits += 2;
    }
  const expected = sum / logits;
  // lr 0: the epoch's loss is the loss of its one batch at these weights.
  const r = await model.trainEpoch(tiny, { batchSize: 1000, lr: 0, weightDecay: 0 });
  assert.equal(r.batches, 1);
  assert.equal(r.positions, 12);
  assert.equal(r.sequences, 12, 'pair rows');
  assert.ok(Math.abs(r.loss - expected) < 1e-5, `native ${r.loss} vs reference ${expected}`);
  // The item table used for ranking goes through the item MLP too.
  const table = await model.itemVectors();
  for (let i = 1; i <= numItems; i++) item(i).forEach((v, k) => assert.ok(Math.abs(table[i * 3 + k] - v) < 1e-5, `item ${i}`));
});

test("morec's earlier DSSM stays reachable: linear-relu user MLP only, user batching (last maxLen), mean(pos) + mean(neg)", async () => {
  const depth = 2, maxLen = 3;
  const model = Model.create({ backbone: 'dssm', numItems, numUsers: 3, d: 3, maxLen, dssmDepth: depth, dssmMlp: 'linear-relu', dssmItemMlp: false, seed: 11, threads: 1 });
  const p = model.parameters();
  assert.deepEqual(Object.keys(p).filter((k) => k.startsWith('item_tower.')), ['item_tower.id_embedding.weight']);
  const user = (u: number) => mlp(p, 'user_tower.mlp', depth, 'linear-relu', row(p['user_tower.user_embedding.weight'], u));
  const item = (i: number) => row(p['item_tower.id_embedding.weight'], i);
  let pos = 0, neg = 0, n = 0;
  for (let u = 0; u < 3; u++)
    for (const i of prefixes[u].slice(-maxLen)) {
      // the oldest prefix item is dropped (prefix 4 > maxLen 3)
      pos += bce(dot(user(u), item(i)), 1);
      neg += bce(dot(user(u), item(onlyNegative[u])), 0);
      n++;
    }
  const expected = pos / n + neg / n;
  const r = await model.trainEpoch(tiny, { batchSize: 1000, lr: 0, dssmBatching: 'users' });
  assert.equal(r.positions, 9);
  assert.equal(r.sequences, 3, 'user rows');
  assert.ok(Math.abs(r.loss - expected) < 1e-5, `native ${r.loss} vs reference ${expected}`);
  // The same weights under pair batching: the study's loss over all 12 pairs, about half the earlier form's.
  const pairs = await model.trainEpoch(tiny, { batchSize: 1000, lr: 0 });
  assert.equal(pairs.positions, 12);
});

test('pair batching visits every (user, prefix item) pair exactly once per epoch, shuffled, in batches of batchSize pairs', () => {
  // Random histories with repeated items (a pair that occurs twice in a prefix is visited twice).
  const r = rng(5);
  const n = 40;
  const seqs = Sequences.fromArrays(
    Array.from({ length: 60 }, (_, u) => Array.from({ length: u % 7 === 0 ? 2 : 3 + Math.floor(r() * 14) }, () => 1 + Math.floor(r() * n))),
    n,
  );
  const model = Model.create({ backbone: 'dssm', numItems: n, numUsers: seqs.users, d: 4, maxLen: 5, threads: 1 });
  const expected = new Map<string, number>();
  let pairs = 0;
  for (let u = 0; u < seqs.users; u++)
    for (const i of seqs.sequence(u).subarray(0, -2)) {
      expected.set(`${u}:${i}`, (expected.get(`${u}:${i}`) ?? 0) + 1);
      pairs++;
    }
  const batchSize = 16;
  const orders: string[] = [];
  for (const epoch of [0, 1]) {
    const b = model.epochBatches(seqs, { epoch, batchSize });
    assert.equal(b.users.length, pairs, 'one position per pair');
    const seen = new Map<string, number>();
    for (let m = 0; m < b.users.length; m++) {
      const key = `${b.users[m]}:${b.positives[m]}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      assert.ok(!seqs.sequence(b.users[m]).subarray(0, -2).includes(b.negatives[m]), 'negatives are never in the prefix');
      assert.ok(b.negatives[m] >= 1 && b.negatives[m] <= n);
    }
    assert.deepEqual([...seen.entries()].sort(), [...expected.entries()].sort(), 'every pair exactly as often as in the prefixes');
    const sizes = Array.from(b.batchOffsets.subarray(1), (o, k) => o - b.batchOffsets[k]);
    assert.equal(sizes.length, Math.ceil(pairs / batchSize));
    assert.ok(sizes.slice(0, -1).every((s) => s === batchSize), `batch sizes ${sizes}`);
    // shuffled pairs, not users: the first batch mixes many users
    assert.ok(new Set(b.users.subarray(0, batchSize)).size > batchSize / 2);
    orders.push(Array.from(b.users).join(','));
  }
  assert.notEqual(orders[0], orders[1], 'a fresh order every epoch');
  // trainEpoch trains on exactly these positions
  return model.trainEpoch(seqs, { batchSize }).then((res) => {
    assert.equal(res.positions, pairs);
    assert.equal(res.batches, Math.ceil(pairs / batchSize));
  });
});

test("user batching keeps morec's earlier rows: the last maxLen prefix items of each user", () => {
  const seqs = Sequences.fromArrays([[1, 2, 3, 4, 5, 6, 7, 8], [3, 4, 5], [2, 6]], 8);
  const model = Model.create({ backbone: 'dssm', numItems: 8, numUsers: 3, d: 4, maxLen: 4, threads: 1 });
  const b = model.epochBatches(seqs, { dssmBatching: 'users', batchSize: 10 });
  const byUser = (u: number) => Array.from(b.positives.filter((_, m) => b.users[m] === u));
  assert.deepEqual(byUser(0), [3, 4, 5, 6]);
  assert.deepEqual(byUser(1), [3]);
  assert.deepEqual(byUser(2), []);
  const pairs = model.epochBatches(seqs, { batchSize: 10 });
  assert.deepEqual(Array.from(pairs.positives.filter((_, m) => pairs.users[m] === 0)).sort(), [1, 2, 3, 4, 5, 6]);
});

test('DSSM with the study defaults (pairs, GELU MLPs on both towers) learns on planted chains', async () => {
  const world = chainWorld(300, 60, 2);
  const model = Model.create({ backbone: 'dssm', numItems: 60, numUsers: world.users, d: 16, dssmDepth: 1, seed: 5, threads: 2 });
  const losses: number[] = [];
  for (let e = 0; e < 6; e++) losses.push((await model.trainEpoch(world, { batchSize: 128, lr: 5e-3, epoch: e })).loss);
  assert.ok(losses[5] < losses[0] * 0.8, `losses ${losses.map((l) => l.toFixed(3))}`);
  const m = metrics(await model.evaluate(world, { split: 'valid' }));
  const pop = metrics(popularityRanks(world, 'valid'));
  assert.ok(m['HR@10'] > 1.5 * pop['HR@10'], `DSSM ${m['HR@10']} vs popularity ${pop['HR@10']}`);
});

// ---- maskRepeatedTarget: the study masks a held-out item the user already saw (with the history) ----

function bruteForceRank(user: number[], items: Float32Array, d: number, history: ArrayLike<number>, target: number, maskRepeated: boolean): number {
  const N1 = items.length / d;
  const score = (j: number) => dot(user, Array.from(items.subarray(j * d, (j + 1) * d)));
  const repeated = Array.from(history).includes(target);
  const masked = new Set<number>([0, ...Array.from(history).filter((h) => h !== target || maskRepeated)]);
  const t = maskRepeated && repeated ? -Infinity : score(target);
  let rank = 0;
  for (let j = 1; j < N1; j++) if (!masked.has(j) && score(j) > t) rank++;
  return rank;
}

test('maskRepeatedTarget changes exactly the ranks of users whose target is in their history, as a brute-force ranking does; the count is right', async () => {
  const r = rng(21);
  const n = 30;
  // Short random histories over few items: many users repeat their held-out items.
  const seqs = Sequences.fromArrays(Array.from({ length: 80 }, () => Array.from({ length: 3 + Math.floor(r() * 8) }, () => 1 + Math.floor(r() * n))), n);
  const d = 6;
  const model = Model.create({ backbone: 'dssm', numItems: n, numUsers: seqs.users, d, threads: 1, seed: 3 });
  await model.trainEpoch(seqs, { batchSize: 32, lr: 1e-2 });
  const users = model.parameters()['user_tower.user_embedding.weight'];
  const items = await model.itemVectors();
  for (const split of ['valid', 'test'] as const) {
    const holdOut = split === 'valid' ? 2 : 1;
    const repeated: number[] = [];
    for (let u = 0; u < seqs.users; u++) {
      const s = seqs.sequence(u);
      if (s.subarray(0, s.length - holdOut).includes(s[s.length - holdOut])) repeated.push(u);
    }
    assert.deepEqual(Array.from(seqs.repeatedTargetUsers(split)), repeated);
    assert.ok(repeated.length >= 10 && repeated.length < seqs.users, `${repeated.length} repeated ${split} targets`);
    const plain = await model.evaluate(seqs, { split });
    const masked = await model.evaluate(seqs, { split, maskRepeatedTarget: true });
    const changed: number[] = [];
    for (let u = 0; u < seqs.users; u++) {
      const s = seqs.sequence(u);
      const history = s.subarray(0, s.length - holdOut), target = s[s.length - holdOut];
      assert.equal(plain[u], bruteForceRank(row(users, u), items, d, history, target, false), `user ${u} unmasked`);
      assert.equal(masked[u], bruteForceRank(row(users, u), items, d, history, target, true), `user ${u} masked`);
      if (plain[u] !== masked[u]) changed.push(u);
    }
    // Only repeated users change, and each of them now ranks below every unmasked item.
    assert.ok(changed.every((u) => repeated.includes(u)));
    for (const u of repeated) assert.equal(masked[u], n - new Set(seqs.sequence(u).subarray(0, seqs.sequence(u).length - holdOut)).size);
    assert.ok(changed.length >= repeated.length - 2, `${changed.length} of ${repeated.length} repeated users changed`);
    // Sampled ranking: a masked target ranks below all of its negatives.
    const sampled = await model.evaluate(seqs, { split, mode: 'sampled', numNegatives: 5, seed: 1, maskRepeatedTarget: true });
    for (const u of repeated) assert.equal(sampled[u], 5);
  }
  // The ranking primitive takes the same option.
  const U = seqs.users;
  const hOff = new Int32Array(U + 1), hist: number[] = [], targets = new Int32Array(U);
  for (let u = 0; u < U; u++) {
    const s = seqs.sequence(u);
    hist.push(...s.subarray(0, -1));
    hOff[u + 1] = hist.length;
    targets[u] = s[s.length - 1];
  }
  const got = loadAddon().fullRankingRanks(users.data, items, d, hOff, Int32Array.from(hist), targets, { maskRepeatedTarget: true, chunkRows: 7 });
  assert.deepEqual(Array.from(got), Array.from(await model.evaluate(seqs, { split: 'test', maskRepeatedTarget: true })));
});

test('an epoch in 4 parts trains exactly the whole epoch\'s positions, once each; fit validates after each part', async () => {
  const seqs = chainWorld(120, 40, 9);
  const model = Model.create({ backbone: 'dssm', numItems: 40, numUsers: seqs.users, d: 8, maxLen: 10, threads: 1 });
  const whole = model.epochBatches(seqs, { epoch: 3, batchSize: 32 });
  const key = (b: { users: Int32Array; positives: Int32Array }, m: number) => `${b.users[m]}:${b.positives[m]}`;
  const parts = [0, 1, 2, 3].map((part) => model.epochBatches(seqs, { epoch: 3, batchSize: 32, part, parts: 4 }));
  // The same shuffled rows, cut into 4 consecutive slices of batches.
  const joined = parts.flatMap((b) => Array.from(b.users, (_, m) => key(b, m)));
  assert.deepEqual(joined, Array.from(whole.users, (_, m) => key(whole, m)));
  const batches = parts.map((b) => b.batchOffsets.length - 1);
  assert.equal(batches.reduce((a, x) => a + x, 0), whole.batchOffsets.length - 1);
  assert.ok(Math.max(...batches) - Math.min(...batches) <= 1, `part sizes ${batches}`);
  // Each part draws its own negatives (not the whole epoch's stream restarted).
  assert.notDeepEqual(Array.from(parts[1].negatives.subarray(0, 20)), Array.from(parts[0].negatives.subarray(0, 20)));
  assert.throws(() => model.epochBatches(seqs, { part: 4, parts: 4 }), /part/);
  const r = await fit(model, seqs, { batchSize: 32, maxEpochs: 2, patience: 100, validationsPerEpoch: 4 });
  assert.equal(r.history.length, 8);
  assert.deepEqual(r.history.map((h) => `${h.epoch}.${h.part}`), ['0.0', '0.1', '0.2', '0.3', '1.0', '1.1', '1.2', '1.3']);
  assert.equal(r.epochs, 2);
  assert.equal(r.history.reduce((a, h) => a + h.train.positions, 0), 2 * whole.users.length);
});
