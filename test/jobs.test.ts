import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { getThreads, ItemStore, loadAddon, Model, MorecError, Sequences, setThreads } from '../lib';
import { chainWorld } from './helpers';

const cores = os.availableParallelism();
const isAbort = (e: unknown) => e instanceof MorecError && e.code === 'EABORT';

/** Runs fn while collecting the process warnings it emits (they are delivered on a later tick). */
async function warningsOf(fn: () => void): Promise<Error[]> {
  const seen: Error[] = [];
  const onWarning = (w: Error) => seen.push(w);
  process.on('warning', onWarning);
  try {
    fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', onWarning);
  }
  return seen.filter((w) => (w as { code?: string }).code === 'MOREC_THREADS');
}

test('threads above the cores are clamped to the cores, with a warning naming both counts', async (t) => {
  let model: Model | undefined;
  const warned = await warningsOf(() => {
    model = Model.create({ backbone: 'sasrec', numItems: 50, d: 16, maxLen: 8, threads: 999 });
  });
  assert.equal(model!.config.threads, cores);
  assert.equal(warned.length, 1);
  assert.match(warned[0].message, new RegExp(`threads 999 exceeds the ${cores} available cores; using ${cores}`));
  // The core clamps on its own too (a config that did not come through validateConfig).
  const raw = new (loadAddon().Model)({ backbone: 'sasrec', numItems: 50, d: 16, maxLen: 8, threads: 999 });
  assert.ok(raw.config.threads <= cores, `native config.threads ${raw.config.threads}`);
  const r = await model!.trainEpoch(chainWorld(200, 50, 1), { batchSize: 32 });
  assert.ok(Number.isFinite(r.loss));
  t.diagnostic(`threads: 999 -> ${model!.config.threads}; epoch ${r.seconds.toFixed(3)} s`);
});

test('setThreads sets the process-wide budget, clamped to the cores', async () => {
  const before = getThreads();
  try {
    assert.equal(setThreads(1), 1);
    assert.equal(getThreads(), 1);
    // Jobs still run (and rank the same) under a budget below the model's own threads.
    const world = chainWorld(300, 80, 2);
    const model = Model.create({ backbone: 'sasrec', numItems: 80, d: 16, maxLen: 8, threads: cores });
    const oneThread = await model.evaluate(world);
    setThreads(cores);
    assert.deepEqual(await model.evaluate(world), oneThread);
    let used = 0;
    const warned = await warningsOf(() => (used = setThreads(cores + 7)));
    assert.equal(used, cores);
    assert.equal(warned.length, 1);
    assert.throws(() => setThreads(0), (e: unknown) => e instanceof MorecError && e.code === 'EINVAL');
    assert.throws(() => setThreads(1.5 as number), (e: unknown) => e instanceof MorecError && e.code === 'EINVAL');
  } finally {
    setThreads(before);
  }
});

// Eight models over the same synthetic world, for the concurrency checks below.
let fleet: { world: Sequences; models: Model[]; sequential: Int32Array[]; sequentialMs: number } | undefined;
async function evaluationFleet() {
  if (fleet) return fleet;
  const world = chainWorld(3000, 2000, 5);
  const models = Array.from({ length: 8 }, (_, i) => Model.create({ backbone: 'sasrec', numItems: 2000, d: 64, maxLen: 16, seed: i }));
  await models[0].evaluate(world); // warm-up
  const t0 = performance.now();
  const sequential: Int32Array[] = [];
  for (const m of models) sequential.push(await m.evaluate(world));
  fleet = { world, models, sequential, sequentialMs: performance.now() - t0 };
  return fleet;
}

test('8 concurrent evaluations give the ranks of sequential ones (and queue instead of oversubscribing)', async (t) => {
  const { world, models, sequential, sequentialMs } = await evaluationFleet();
  const t0 = performance.now();
  const concurrent = await Promise.all(models.map((m) => m.evaluate(world)));
  const concurrentMs = performance.now() - t0;
  concurrent.forEach((ranks, i) => assert.deepEqual(ranks, sequential[i], `model ${i}`));
  t.diagnostic(
    `8 evaluations: sequential ${sequentialMs.toFixed(0)} ms, concurrent ${concurrentMs.toFixed(0)} ms, ratio ${(concurrentMs / sequentialMs).toFixed(2)}`,
  );
});

test('fs.promises.stat resolves while 8 evaluations run (libuv pool stays free)', async (t) => {
  const { world, models } = await evaluationFleet();
  const running = models.map((m) => m.evaluate(world));
  const t0 = performance.now();
  await fs.promises.stat(__filename);
  const statMs = performance.now() - t0;
  const t1 = performance.now();
  await Promise.all(running);
  t.diagnostic(`stat latency ${statMs.toFixed(1)} ms while 8 evaluations ran (${(performance.now() - t1 + statMs).toFixed(0)} ms)`);
  assert.ok(statMs < 2000, `stat took ${statMs} ms`);
});

test('an epoch aborted after its first progress report rejects with EABORT; the model then trains normally', async (t) => {
  const world = chainWorld(4000, 300, 7);
  const model = Model.create({ backbone: 'sasrec', numItems: 300, d: 32, maxLen: 16, threads: 2 });
  const controller = new AbortController();
  let reports = 0;
  let error: unknown;
  await model
    .trainEpoch(world, { batchSize: 8, progressEvery: 1, signal: controller.signal }, () => {
      reports++;
      controller.abort(new Error('user pressed stop'));
    })
    .then(
      () => assert.fail('the aborted epoch resolved'),
      (e) => (error = e),
    );
  assert.ok(isAbort(error), String(error));
  const m = /aborted at batch (\d+) of (\d+)/.exec((error as Error).message);
  assert.ok(m, (error as Error).message);
  const [at, total] = [Number(m[1]), Number(m[2])];
  assert.ok(at >= 1 && at < total, `aborted at ${at} of ${total}`);
  assert.equal(((error as Error).cause as Error).message, 'user pressed stop');
  assert.ok(reports >= 1);
  const full = await model.trainEpoch(world, { batchSize: 8, epoch: 1 });
  assert.equal(full.batches, total);
  assert.ok(Number.isFinite(full.loss) && full.loss > 0, `loss ${full.loss}`);
  t.diagnostic(`aborted at batch ${at} of ${total}; the next epoch ran ${full.batches} batches, loss ${full.loss.toFixed(4)}`);
});

test('an evaluation aborted after its first progress report rejects with EABORT; the model evaluates normally', async (t) => {
  const world = chainWorld(20000, 300, 8);
  const model = Model.create({ backbone: 'sasrec', numItems: 300, d: 32, maxLen: 16, threads: 2 });
  const controller = new AbortController();
  let error: unknown;
  await model.evaluate(world, { batchSize: 4, signal: controller.signal }, () => controller.abort()).then(
    () => assert.fail('the aborted evaluation resolved'),
    (e) => (error = e),
  );
  assert.ok(isAbort(error), String(error));
  const m = /aborted at user batch (\d+) of (\d+)/.exec((error as Error).message);
  assert.ok(m, (error as Error).message);
  assert.ok(Number(m[1]) < Number(m[2]));
  const ranks = await model.evaluate(world);
  assert.equal(ranks.length, world.users);
  assert.ok(ranks.every((r) => r >= 0 && r < 300));
  t.diagnostic((error as Error).message);
});

test('an item table of a text tower aborts at its next batch of items', async () => {
  const numItems = 3000;
  const T = 4;
  const tokens = new Int32Array((numItems + 1) * T);
  const lengths = new Int32Array(numItems + 1);
  for (let i = 1; i <= numItems; i++) {
    tokens.set([1, 3 + (i % 30), 2], i * T);
    lengths[i] = 3;
  }
  const items = new ItemStore({ numItems, maxTokens: T, tokens, lengths });
  const text = { kind: 'bert', vocabSize: 40, hidden: 16, layers: 1, heads: 2, intermediate: 32, maxPositions: 8, typeVocabSize: 2, encodeBatch: 4 };
  const model = Model.create({ backbone: 'sasrec', numItems, d: 16, heads: 2, maxLen: 8, itemTower: 'text', text } as never, { items });
  const controller = new AbortController();
  await assert.rejects(
    model.itemVectors(() => controller.abort(), { signal: controller.signal }),
    (e: unknown) => isAbort(e) && /aborted at item \d+ of 3000/.test((e as Error).message),
  );
  assert.equal((await model.itemVectors()).length, (numItems + 1) * 16);
});

test('an already-aborted signal rejects with EABORT without starting the job', async () => {
  const world = chainWorld(200, 50, 9);
  const model = Model.create({ backbone: 'sasrec', numItems: 50, d: 16, maxLen: 8 });
  const before = model.parameters();
  const signal = AbortSignal.abort();
  await assert.rejects(model.trainEpoch(world, { signal }), isAbort);
  await assert.rejects(model.evaluate(world, { signal }), isAbort);
  await assert.rejects(model.itemVectors(undefined, { signal }), isAbort);
  // Nothing ran: the weights are untouched and the model is not busy.
  assert.deepEqual(model.parameters(), before);
  await assert.rejects(model.trainEpoch(world, { signal: 'stop' as never }), (e: unknown) => e instanceof MorecError && e.code === 'EINVAL');
  assert.ok(Number.isFinite((await model.trainEpoch(world, {})).loss));
});

// A worker thread's own environment: it loads the addon, runs jobs through the same process-wide queue, and
// may be terminated mid-job without taking the process (or the main thread's jobs) down.
const workerCode = `
const { parentPort, workerData } = require('node:worker_threads');
const { Model } = require(workerData.lib);
const { chainWorld } = require(workerData.helpers);
(async () => {
  const world = chainWorld(1500, 400, 11);
  const model = Model.create({ backbone: 'sasrec', numItems: 400, d: 32, maxLen: 12, seed: 3 });
  if (workerData.mode === 'epochs') {
    parentPort.postMessage('started');
    for (let e = 0; ; e++) await model.trainEpoch(world, { batchSize: 8, epoch: e });
  }
  const ranks = await model.evaluate(world);
  parentPort.postMessage(Array.from(ranks));
})();
`;

function startWorker(mode: 'evaluate' | 'epochs'): Worker {
  const workerData = { lib: path.join(__dirname, '..', 'lib'), helpers: path.join(__dirname, 'helpers'), mode };
  return new Worker(workerCode, { eval: true, workerData });
}

test('worker threads run jobs too, and terminating one mid-epoch leaves the main thread working', async () => {
  const worker = startWorker('evaluate');
  const fromWorker = new Promise<number[]>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const world = chainWorld(1500, 400, 11);
  const model = Model.create({ backbone: 'sasrec', numItems: 400, d: 32, maxLen: 12, seed: 3 });
  const [workerRanks, mainRanks] = await Promise.all([fromWorker, model.evaluate(world)]);
  assert.deepEqual(workerRanks, Array.from(mainRanks));
  await worker.terminate();

  const busy = startWorker('epochs');
  await new Promise((resolve, reject) => {
    busy.once('message', resolve);
    busy.once('error', reject);
  });
  await new Promise((resolve) => setTimeout(resolve, 150)); // let an epoch start on the job thread
  await busy.terminate();
  assert.deepEqual(await model.evaluate(world), mainRanks);
});
