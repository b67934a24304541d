import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Model, MorecError } from '../lib';
import { chainWorld } from './helpers';

/** A real garbage collector whether or not node runs with --expose-gc (npm test does not pass it). */
function exposedGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

test('an epoch runs off the event loop: a timer keeps firing and progress is reported', async () => {
  const world = chainWorld(2000, 300, 2);
  const model = Model.create({ backbone: 'sasrec', numItems: 300, d: 64, maxLen: 16, threads: 2 });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const progress: Array<[number, number, number]> = [];
  const started = Date.now();
  // Enough epochs to be observable on any machine; the timer must keep firing while they run.
  let r = await model.trainEpoch(world, { batchSize: 32, progressEvery: 5 }, (done, total, loss) => progress.push([done, total, loss]));
  let epochs = 1;
  for (; Date.now() - started < 400 && epochs < 50; epochs++) r = await model.trainEpoch(world, { batchSize: 32, epoch: epochs });
  clearInterval(timer);
  const elapsed = Date.now() - started;
  // A blocked loop could tick at most once between epochs; a free one every 5 ms (allow a loaded machine).
  assert.ok(ticks > epochs + 5 && ticks >= elapsed / 50, `${ticks} ticks in ${elapsed} ms over ${epochs} epochs`);
  assert.ok(progress.length >= 1);
  const lastProgress = progress[progress.length - 1];
  assert.equal(lastProgress[1], r.batches);
  assert.ok(Number.isFinite(lastProgress[2]));
});

test('a second call while an epoch runs is rejected with EBUSY, and the model works afterwards', async () => {
  const world = chainWorld(400, 100, 3);
  const model = Model.create({ backbone: 'sasrec', numItems: 100, d: 16, maxLen: 10, threads: 1 });
  const epoch = model.trainEpoch(world, { batchSize: 16 });
  await assert.rejects(model.evaluate(world), (e: unknown) => e instanceof MorecError && e.code === 'EBUSY');
  assert.throws(() => model.parameters(), (e: unknown) => e instanceof MorecError && e.code === 'EBUSY');
  await epoch;
  const ranks = await model.evaluate(world);
  assert.equal(ranks.length, world.users);
});

test('a throwing progress callback does not break the epoch; a model dropped mid-epoch still finishes', async () => {
  const world = chainWorld(300, 80, 4);
  const model = Model.create({ backbone: 'sasrec', numItems: 80, d: 16, maxLen: 10, threads: 1 });
  let calls = 0;
  const r = await model.trainEpoch(world, { batchSize: 8, progressEvery: 1 }, () => {
    calls++;
    throw new Error('progress consumer failed');
  });
  assert.equal(calls, 1, 'the callback is not called again after it throws');
  assert.ok(Number.isFinite(r.loss));
  // Start an epoch and drop every JS reference to the model; the native side keeps it alive until done,
  // through full collections run while the epoch runs; afterwards the model is collected.
  const gc = exposedGc();
  let collected = false;
  const registry = new FinalizationRegistry(() => (collected = true));
  let dropped: Model | undefined = Model.create({ backbone: 'sasrec', numItems: 80, d: 16, maxLen: 10, threads: 1 });
  registry.register(dropped, 'model');
  let settled = false;
  const pending = dropped.trainEpoch(world, { batchSize: 8 }).finally(() => (settled = true));
  dropped = undefined;
  while (!settled) {
    gc();
    await turn();
  }
  assert.ok(Number.isFinite((await pending).loss));
  for (let i = 0; i < 20 && !collected; i++) {
    gc();
    await turn();
  }
  assert.equal(collected, true, 'the dropped model was garbage-collected');
});
