// The serving Recommender: its answers against brute-force rankings and the evaluation path, micro-batching
// (counted native passes), concurrency with the event loop free, errors with codes, and memory over many calls.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { getThreads, ItemStore, Model, openRun, Recommender, Sequences, setThreads } from '../lib';
import { chainWorld, isMorec, rng } from './helpers';

/** Two answers agree: same items in the same order (up to neighbours whose scores tie within float noise), scores within 1e-5. */
function assertSameAnswers(got: { item: string; score: number }[][], want: { item: string; score: number }[][]) {
  assert.equal(got.length, want.length);
  got.forEach((g, q) => {
    assert.equal(g.length, want[q].length, `query ${q}`);
    g.forEach((x, i) => {
      assert.ok(Math.abs(x.score - want[q][i].score) < 1e-5, `query ${q}, position ${i}: score ${x.score} vs ${want[q][i].score}`);
      if (x.item !== want[q][i].item) assert.ok(Math.abs(x.score - want[q][i].score) < 1e-5 && g.some((y) => y.item === want[q][i].item), `query ${q}, position ${i}: ${x.item} vs ${want[q][i].item}`);
    });
  });
}

const ids = (n: number, prefix = 'i') => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

/** Brute force in JS: every item's score against the user vector, padding and history masked, best first (ties: smaller index). */
function bruteForce(table: Float32Array, d: number, user: Float32Array, masked: Iterable<number>): { item: number; score: number }[] {
  const n = table.length / d;
  const skip = new Set<number>([0, ...masked]);
  const out: { item: number; score: number }[] = [];
  for (let i = 1; i < n; i++) {
    if (skip.has(i)) continue;
    let s = 0;
    for (let j = 0; j < d; j++) s += table[i * d + j] * user[j];
    out.push({ item: i, score: s });
  }
  return out.sort((a, b) => b.score - a.score || a.item - b.item);
}

/** The input window of user u for a split (test: all but the last item). */
function inputOf(seqs: Sequences, u: number, holdOut: number): Int32Array {
  const s = seqs.sequence(u);
  return s.subarray(0, s.length - holdOut);
}

async function trainedSasrec(numItems = 60, users = 200) {
  const world = chainWorld(users, numItems, 3);
  const model = Model.create({ backbone: 'sasrec', numItems, d: 16, maxLen: 10, threads: 1, seed: 5 });
  for (let e = 0; e < 3; e++) await model.trainEpoch(world, { epoch: e, batchSize: 32 });
  return { world, model };
}

test('SASRec IDRec: recommend() equals a brute-force ranking over the item table and the encoder, and the evaluation\'s ranks', async () => {
  const { world, model } = await trainedSasrec();
  const N = 60;
  const d = model.config.d;
  const table = await model.itemVectors();
  const ranks = await model.evaluate(world, { split: 'test' });
  // Reference user vectors: SASRec's hidden state at the last column of each left-padded window.
  const T = model.config.maxLen;
  const users = Array.from({ length: 40 }, (_, u) => u);
  const windows = new Int32Array(users.length * T);
  users.forEach((u, r) => {
    const h = inputOf(world, u, 1).slice(-T);
    windows.set(h, r * T + T - h.length);
  });
  const hidden = model.encodeSequences(windows, users.length);
  const rec = await Recommender.fromModel(model, { itemIds: ids(N) });
  try {
    let compared = 0;
    let maxDiff = 0;
    for (const [r, u] of users.entries()) {
      const history = inputOf(world, u, 1);
      const userVec = hidden.subarray((r * T + T - 1) * d, (r * T + T) * d);
      const ref = bruteForce(table, d, userVec, history);
      const got = await rec.recommend(Array.from(history, (i) => `i${i}`), { k: N });
      assert.equal(got.length, ref.length, 'every unmasked item is listed when k = numItems');
      // Same order wherever the reference's scores are not within float noise of each other.
      for (let i = 0; i < ref.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(got[i].score - ref[i].score));
        if (i + 1 < ref.length && ref[i].score - ref[i + 1].score > 1e-4 && (i === 0 || ref[i - 1].score - ref[i].score > 1e-4))
          assert.equal(got[i].item, `i${ref[i].item}`, `user ${u}, position ${i}`);
      }
      // The evaluation's 0-based rank of the held-out item is its position in the full recommendation list.
      const target = world.sequence(u).at(-1)!;
      if (!history.includes(target)) {
        assert.equal(got.findIndex((x) => x.item === `i${target}`), ranks[u], `user ${u}: rank of the test item`);
        compared++;
      }
    }
    assert.ok(maxDiff < 1e-4, `scores differ from the brute force by ${maxDiff}`);
    assert.ok(compared > 30, `${compared} users compared with the evaluation`);
  } finally {
    await rec.close();
  }
  // Closed: the model is the caller's again.
  await model.trainEpoch(world, { epoch: 9, batchSize: 32 });
});

test('a MoRec tower (two-stage features with an adapter, fused with IDs) and DSSM rank as their evaluation does', async () => {
  const N = 50;
  const world = chainWorld(150, N, 4);
  const r = rng(8);
  const features = new Float32Array((N + 1) * 12).map(() => r() - 0.5);
  const items = ItemStore.fromFeatures({ numItems: N, dim: 12, features });
  const cases: [string, Model][] = [
    ['sasrec features + id (add)', Model.create({ backbone: 'sasrec', itemTower: 'features', features: { dim: 12, adapterDepth: 1, adapterDropout: -1, encodeBatch: 256 }, fusion: 'add', numItems: N, d: 16, maxLen: 10, threads: 1 }, { items })],
    ['dssm id', Model.create({ backbone: 'dssm', numItems: N, numUsers: world.users, d: 16, maxLen: 10, threads: 1 })],
  ];
  for (const [name, model] of cases) {
    await model.trainEpoch(world, { batchSize: 32 });
    const ranks = await model.evaluate(world, { split: 'valid' });
    const rec = await Recommender.fromModel(model, { itemIds: ids(N), userIds: ids(world.users, 'u') });
    let compared = 0;
    for (let u = 0; u < world.users; u += 3) {
      const history = Array.from(inputOf(world, u, 2), (i) => `i${i}`);
      const target = world.sequence(u).at(-2)!;
      if (history.includes(`i${target}`)) continue;
      const query = model.config.backbone === 'dssm' ? { user: `u${u + 1}`, history } : history;
      const got = await rec.recommend(query, { k: N });
      assert.equal(got.findIndex((x) => x.item === `i${target}`), ranks[u], `${name}, user ${u}`);
      compared++;
    }
    assert.ok(compared > 30, `${name}: ${compared} users compared`);
    await rec.close();
  }
});

test('Recommender.load of a text MoRec run folder (bert-tiny, trained end to end) ranks as the run\'s evaluation', async (t) => {
  const runs = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-serve-runs-'));
  const env = { ...process.env, MOREC_CACHE: fs.mkdtempSync(path.join(os.tmpdir(), 'morec-serve-cache-')) };
  const cli = path.resolve(__dirname, '..', 'lib', 'cli', 'main.js');
  const r = spawnSync(process.execPath, [cli, 'train', '--item-tower', 'text', '--scale', '0.25', '--epochs', '1', '--batch-size', '256', '--encoder-lr', '1e-3',
    '--name', 'text', '--runs-dir', runs, '--quiet', '--threads', '2'], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  const dir = path.join(runs, 'text');
  const saved = process.env.MOREC_CACHE;
  process.env.MOREC_CACHE = env.MOREC_CACHE;
  try {
    const reference = await openRun(dir);
    const ranks = await reference.model.evaluate(reference.data.sequences, { split: 'test' });
    const seqs = reference.data.sequences;
    let progress = 0;
    const rec = await Recommender.load(dir, { onProgress: (done) => (progress = done) });
    assert.equal(rec.itemTower, 'text');
    assert.equal(progress, seqs.numItems, 'the item table was encoded with progress');
    const names = reference.data.itemIds;
    let compared = 0;
    for (let u = 0; u < seqs.users; u += 7) {
      const s = seqs.sequence(u);
      const history = Array.from(s.subarray(0, s.length - 1), (i) => names[i - 1]);
      const target = names[s[s.length - 1] - 1];
      if (history.includes(target)) continue;
      const got = await rec.recommend(history, { k: seqs.numItems });
      assert.equal(got.findIndex((x) => x.item === target), ranks[u], `user ${u}`);
      compared++;
    }
    t.diagnostic(`${compared} users compared`);
    assert.ok(compared > 20);
    // A user by id: the whole known sequence is the history.
    const u0 = reference.data.userIds[0];
    assert.deepEqual(await rec.recommend({ user: u0 }, { k: 5 }), await rec.recommend(Array.from(seqs.sequence(0), (i) => names[i - 1]), { k: 5 }));
    await rec.close();
  } finally {
    if (saved === undefined) delete process.env.MOREC_CACHE;
    else process.env.MOREC_CACHE = saved;
  }
});

test('k, exclude, filter and maskHistory select exactly what they say', async () => {
  const { world, model } = await trainedSasrec();
  const rec = await Recommender.fromModel(model, { itemIds: ids(60) });
  try {
    const history = Array.from(inputOf(world, 0, 1), (i) => `i${i}`);
    const all = await rec.recommend(history, { k: 60 });
    assert.equal(all.length, 60 - new Set(history).size);
    assert.ok(all.every((x) => !history.includes(x.item)), 'history masked by default');
    for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].score >= all[i].score, 'best first');
    assert.deepEqual(await rec.recommend(history, { k: 5 }), all.slice(0, 5));
    const exclude = all.slice(0, 3).map((x) => x.item);
    assert.deepEqual(await rec.recommend(history, { k: 5, exclude }), all.slice(3, 8));
    const filter = [all[10].item, all[2].item, history[0], all[7].item, all[2].item];
    assert.deepEqual(await rec.recommend(history, { k: 10, filter }), [all[2], all[7], all[10]], 'only allowed, unmasked items, each once, best first');
    const unmasked = await rec.recommend(history, { k: 60, maskHistory: false });
    assert.equal(unmasked.length, 60);
    assert.ok(history.every((h) => unmasked.some((x) => x.item === h)));
    const batch = await rec.recommendBatch([history, { history: history.slice(0, 2) }], { k: 4 });
    assertSameAnswers(batch, [all.slice(0, 4), await rec.recommend(history.slice(0, 2), { k: 4 })]);
  } finally {
    await rec.close();
  }
});

test('micro-batching: concurrent requests share native passes (counted), and answer exactly as one by one', async () => {
  const { world, model } = await trainedSasrec();
  const histories = Array.from({ length: 64 }, (_, u) => Array.from(inputOf(world, u, 1), (i) => `i${i}`));
  const single = await Recommender.fromModel(model, { itemIds: ids(60) }, { batching: false });
  const alone: { item: string; score: number }[][] = [];
  for (const h of histories) alone.push(await single.recommend(h, { k: 10 }));
  const together = await Promise.all(histories.map((h) => single.recommend(h, { k: 10 })));
  assert.deepEqual(together, alone, 'one pass per request: the very same numbers');
  const s1 = single.stats();
  assert.equal(s1.requests, 128);
  assert.equal(s1.batches, 128, 'batching off: one native pass per request');
  assert.equal(s1.largestBatch, 1);
  await single.close();

  const batched = await Recommender.fromModel(model, { itemIds: ids(60) });
  const got = await Promise.all(histories.map((h) => batched.recommend(h, { k: 10 })));
  // A pass over many rows may sum in another order than a pass over one (GEMM blocking): equal within 1e-5.
  assertSameAnswers(got, alone);
  const s2 = batched.stats();
  assert.equal(s2.requests, 64);
  // Separate calls reach the queue one by one: the serving thread takes whatever is queued when it is free, so
  // how many passes they need depends on timing (1-3 on an idle machine, ~12 on a loaded one); never one each.
  assert.ok(s2.batches <= 32, `64 concurrent requests took ${s2.batches} native passes`);
  // One recommendBatch call is queued at once: exactly one pass for 64 queries.
  const viaBatch = await batched.recommendBatch(histories, { k: 10 });
  assertSameAnswers(viaBatch, alone);
  assert.equal(batched.stats().batches - s2.batches, 1, 'one recommendBatch of 64 queries: one native pass');
  assert.equal(batched.stats().largestBatch, 64);
  await batched.close();
  const capped = await Recommender.fromModel(model, { itemIds: ids(60) }, { maxBatch: 8 });
  await Promise.all(histories.map((h) => capped.recommend(h, { k: 10 })));
  assert.ok(capped.stats().largestBatch <= 8 && capped.stats().batches >= 8, JSON.stringify(capped.stats()));
  await capped.close();
});

test('500 concurrent calls are all answered correctly while a 10 ms timer keeps firing', async (t) => {
  const N = 30000;
  const world = chainWorld(600, N, 6);
  const model = Model.create({ backbone: 'sasrec', numItems: N, d: 64, maxLen: 20, threads: 1 });
  await model.trainEpoch(world, { batchSize: 64 });
  const rec = await Recommender.fromModel(model, { itemIds: ids(N) }, { maxBatch: 8 });
  try {
    const histories = Array.from({ length: 500 }, (_, u) => Array.from(inputOf(world, u, 1), (i) => `i${i}`));
    const expected: { item: string; score: number }[][] = [];
    for (const h of histories.slice(0, 50)) expected.push(await rec.recommend(h, { k: 10 }));
    let ticks = 0;
    let last = performance.now();
    let worst = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
      ticks++;
    }, 10);
    const t0 = performance.now();
    const got = await Promise.all(histories.map((h) => rec.recommend(h, { k: 10 })));
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    assertSameAnswers(got.slice(0, 50), expected);
    assert.ok(got.every((g) => g.length === 10));
    t.diagnostic(`500 calls in ${elapsed.toFixed(0)} ms, ${rec.stats().batches} native passes, ${ticks} ticks, longest gap ${worst.toFixed(1)} ms`);
    // A blocked event loop would show one gap as long as the whole run; the bound leaves room for a noisy machine.
    assert.ok(worst < Math.max(150, elapsed / 2), `the timer stalled ${worst.toFixed(1)} ms during ${elapsed.toFixed(0)} ms of work`);
    assert.ok(rec.stats().batches >= 500 / 8, 'passes of at most 8 requests');
  } finally {
    await rec.close();
  }
});

test('serving shares the process thread budget with a running epoch: its passes take what the epoch leaves', { skip: os.availableParallelism() < 2 && 'needs 2 cores' }, async () => {
  const before = getThreads();
  setThreads(2);
  try {
    const { model } = await trainedSasrec();
    const rec = await Recommender.fromModel(model, { itemIds: ids(60) }, { threads: 2 });
    await rec.recommend(['i1', 'i2']);
    assert.equal(rec.stats().threads, 2, 'alone, a pass uses the whole budget');
    const world = chainWorld(4000, 3000, 9);
    const trainer = Model.create({ backbone: 'sasrec', numItems: 3000, d: 64, maxLen: 20, threads: 2 });
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let done = false;
    const epoch = trainer.trainEpoch(world, { batchSize: 16, progressEvery: 1 }, () => started()).then(() => (done = true));
    await running;
    await rec.recommend(['i1', 'i2']);
    const during = rec.stats().threads;
    const overlapped = !done;
    await epoch;
    await rec.recommend(['i1', 'i2']);
    assert.ok(overlapped, 'the pass ran while the epoch did');
    assert.equal(during, 1, 'beside a 2-thread epoch a pass gets the 1 thread left');
    assert.equal(rec.stats().threads, 2, 'the epoch over, the whole budget again');
    await rec.close();
  } finally {
    setThreads(before);
  }
});

test('unknown ids, bad arguments, a served model and a closed recommender fail with codes', async () => {
  const { world, model } = await trainedSasrec();
  const rec = await Recommender.fromModel(model, { itemIds: ids(60), userIds: ids(world.users, 'u'), sequences: world });
  await assert.rejects(rec.recommend(['i1', 'nope', 'gone']), isMorec('EUNKNOWN', /query.history holds 2 item ids .*'nope', 'gone'/));
  const skipped = await rec.recommendDetailed(['i1', 'nope'], { unknownItems: 'skip', k: 3 });
  assert.deepEqual(skipped.unknownItems, ['nope']);
  assert.deepEqual(skipped.items, await rec.recommend(['i1'], { k: 3 }));
  await assert.rejects(rec.recommend(['i1'], { exclude: ['x'] }), isMorec('EUNKNOWN', /exclude holds 1 item id .*'x'/));
  await assert.rejects(rec.recommend({ user: 'nobody' }), isMorec('EUNKNOWN', /user 'nobody'/));
  // A SASRec user given by id: its known sequence is the history.
  assert.deepEqual(await rec.recommend({ user: 'u3' }, { k: 5 }), await rec.recommend(Array.from(world.sequence(2), (i) => `i${i}`), { k: 5 }));
  await assert.rejects(rec.recommend([]), isMorec('EINVAL', /SASRec needs at least one known item/));
  await assert.rejects(rec.recommend(['i1'], { k: 0 }), isMorec('EINVAL', /positive integer for k/));
  await assert.rejects(rec.recommend(['i1'], { k: 61 }), isMorec('EINVAL', /k in 1\.\.60/));
  await assert.rejects(rec.recommend(['i1'], { kk: 3 } as never), isMorec('EINVAL', /kk/));
  await assert.rejects(rec.recommend([1 as never]), isMorec('EINVAL', /id string for query.history\[0\]/));
  await assert.rejects(rec.recommend({} as never), isMorec('EINVAL', /neither/));
  await assert.rejects(model.trainEpoch(world, { batchSize: 32 }), isMorec('EBUSY', /being served/));
  assert.throws(() => model.parameters(), isMorec('EBUSY', /being served/));
  // The native class checks its arguments too.
  const { loadAddon } = await import('../lib');
  const Scorer = loadAddon().Scorer;
  assert.throws(() => new Scorer({} as never, new Float32Array(4), { maxBatch: 1, threads: 0 }), /Expected a Model for model/);
  await rec.close();
  const other = new Scorer(model.native, await model.itemVectors(), { maxBatch: 4, threads: 0 });
  assert.throws(() => other.recommend(new Int32Array([61]), -1, 3, new Int32Array(0), null, true), /item indices in 1\.\.60 for history but received 61/);
  assert.throws(() => other.recommend(new Int32Array([1]), -1, 3, new Int32Array([0]), null, true), /for exclude but received 0/);
  assert.throws(() => new Scorer(model.native, new Float32Array(7), { maxBatch: 4, threads: 0 }), /item table of \(numItems \+ 1\) x d = 61 x 16/);
  other.close();
  await assert.rejects(rec.recommend(['i1']), isMorec('ECLOSED', /closed/));
  // Requests queued when close() comes are rejected, not lost.
  const third = new Scorer(model.native, await model.itemVectors(), { maxBatch: 1, threads: 0 });
  const queued = Array.from({ length: 20 }, () => third.recommend(new Int32Array([1, 2]), -1, 3, new Int32Array(0), null, true));
  third.close();
  const settled = await Promise.allSettled(queued);
  const rejected = settled.filter((s) => s.status === 'rejected');
  // Each one is settled: answered (the pass in flight, if the serving thread had taken one) or ECLOSED.
  assert.ok(rejected.every((s) => (s as PromiseRejectedResult).reason?.code === 'ECLOSED'), String((rejected[0] as PromiseRejectedResult)?.reason));
  assert.equal(third.stats().requests, 20 - rejected.length, 'what was not rejected was served');
  // Every scorer closed: the model trains again.
  await model.trainEpoch(world, { batchSize: 32 });
  const dssm = Model.create({ backbone: 'dssm', numItems: 60, numUsers: world.users, d: 8, threads: 1 });
  const drec = await Recommender.fromModel(dssm, { itemIds: ids(60), userIds: ids(world.users, 'u') });
  await assert.rejects(drec.recommend(['i1', 'i2']), isMorec('EINVAL', /DSSM's user tower embeds user ids/));
  assert.equal((await drec.recommend({ user: 'u1' }, { k: 4 })).length, 4);
  await drec.close();
  await assert.rejects(Recommender.fromModel(dssm, { itemIds: ids(60) }), isMorec('EINVAL', /userIds for a DSSM model/));
  await assert.rejects(Recommender.fromModel(dssm, { itemIds: ids(59), userIds: [] }), isMorec('EINVAL', /60 item ids/));
});

test('RSS stays flat over 10,000 recommend() calls after a warm-up (gc exposed)', (t) => {
  const lib = path.resolve(__dirname, '..', 'lib');
  const helpers = require.resolve('./helpers');
  const script = `
    const { Model, Recommender } = require(${JSON.stringify(lib)});
    const { chainWorld } = require(${JSON.stringify(helpers)});
    const N = 500;
    const world = chainWorld(300, N, 2);
    const ids = Array.from({ length: N }, (_, i) => 'i' + (i + 1));
    const mib = () => process.memoryUsage().rss / 2 ** 20;
    (async () => {
      const model = Model.create({ backbone: 'sasrec', numItems: N, d: 32, maxLen: 20, threads: 1 });
      await model.trainEpoch(world, { batchSize: 64 });
      const rec = await Recommender.fromModel(model, { itemIds: ids });
      const histories = Array.from({ length: 300 }, (_, u) => Array.from(world.sequence(u).slice(0, -1), (i) => 'i' + i));
      const marks = {};
      for (let i = 0; i < 250; i++) {
        await Promise.all(Array.from({ length: 100 }, (_, j) => rec.recommend(histories[(i * 100 + j) % 300], { k: 20, exclude: ['i1'] })));
        if ((i + 1) % 50 === 0) { gc(); await new Promise((r) => setImmediate(r)); gc(); marks[(i + 1) * 100] = mib(); }
      }
      const s = rec.stats();
      await rec.close();
      console.log(JSON.stringify({ marks, requests: s.requests }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { marks: Record<string, number>; requests: number };
  assert.equal(out.requests, 25000);
  // The allocator's arenas grow over the first ~15,000 calls (score buffers of varying batch sizes on the
  // serving thread), then stay; the 10,000 calls after that are measured.
  const growth = out.marks['25000'] - out.marks['15000'];
  t.diagnostic(`RSS (MiB) by calls: ${JSON.stringify(Object.fromEntries(Object.entries(out.marks).map(([k, v]) => [k, +v.toFixed(1)])))}`);
  // A leaked request (its arrays, its Promise) of ~1 KiB each would add > 9 MiB over 10,000 calls.
  assert.ok(growth < 8, `RSS grew ${growth.toFixed(1)} MiB over 10,000 calls`);
});

test('MOREC_THREADS sets the process thread budget from the start; a bad value is refused by name', () => {
  const lib = path.resolve(__dirname, '..', 'lib');
  const run = (value: string) => spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(lib)}).getThreads())`], { encoding: 'utf8', env: { ...process.env, MOREC_THREADS: value } });
  const one = run('1');
  assert.equal(one.status, 0, one.stderr);
  assert.equal(one.stdout.trim(), '1');
  const bad = run('two');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /Expected a positive integer for MOREC_THREADS but received 'two'/);
});
