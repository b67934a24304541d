// What can take long does not hold the event loop: a checkpoint of a large model is saved and loaded while a
// timer keeps firing, and a long job stopped by its AbortSignal leaves the model and the last checkpoint whole.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { metrics, Model, MorecError } from '../lib';
import { readCheckpoint, writeCheckpoint } from '../lib/checkpoint';
import { NamedTensor } from '../lib/native';
import { FitState, fit } from '../lib/train/fit';
import { chainWorld } from './helpers';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'morec-nonblocking-'));
}

/**
 * Runs `job` while a 10 ms interval ticks; resolves its result and the longest time (ms) the event loop went
 * without a tick, the time from the call to the first tick and from the last tick to the result included.
 */
async function ticking<T>(job: () => Promise<T>): Promise<{ result: T; longest: number; ms: number }> {
  const started = performance.now();
  let last = started;
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 10);
  try {
    const result = await job();
    const now = performance.now();
    return { result, longest: Math.max(longest, now - last), ms: now - started };
  } finally {
    clearInterval(timer);
  }
}

/** Milliseconds a synchronous call takes. */
function timed(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/** Whether two sets of named tensors hold the same bytes. */
function sameBits(a: Record<string, NamedTensor | Float32Array>, b: Record<string, NamedTensor | Float32Array>): boolean {
  const bytes = (t: NamedTensor | Float32Array) => {
    const d = t instanceof Float32Array ? t : t.data;
    return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  };
  const keys = Object.keys(a).sort();
  return keys.join() === Object.keys(b).sort().join() && keys.every((k) => bytes(a[k]).equals(bytes(b[k])));
}

/** Each file of a folder by name, with its sha256. */
function folderHashes(dir: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')]));
}

/** Generous for a loaded 2-core machine: serialization, hashing, I/O and checks hold the loop ~20-60 ms at a time. */
const STALL_MS = 250;

test('save and load of a 50 MB model keep the event loop turning, and the loaded weights are the saved ones bit for bit', async (t) => {
  const config = { backbone: 'sasrec' as const, numItems: 200_000, d: 64, maxLen: 20, seed: 5, threads: 1 };
  const model = Model.create(config); // 200,001 x 64 floats of item embeddings: 51 MB of weights, 102 MB of AdamW state
  await model.trainEpoch(chainWorld(64, config.numItems, 3), { batchSize: 32 }); // an optimizer state that is not all zeros
  const dir = tmp();
  try {
    const params = model.native.parameters();
    const optimizer = model.native.optimizerState();

    // What a save and a load do in TypeScript (serialize, hash, write, read, verify, check finiteness).
    const write = await ticking(() => writeCheckpoint(path.join(dir, 'direct'), { params, optimizer, config: model.config }));
    const read = await ticking(() => readCheckpoint(path.join(dir, 'direct')));
    assert.ok(sameBits(read.result.params, params) && sameBits(read.result.optimizer!.tensors, optimizer.tensors), 'read back bit for bit');

    // End to end. A save copies the weights and optimizer state out on the job thread, a load builds the model
    // and copies the state in there, so neither holds the loop for the core's steps; those steps are also timed
    // run synchronously, for comparison.
    const coreLoad = () => {
      let fresh: Model | undefined;
      const create = timed(() => (fresh = Model.create(config)));
      return Math.max(create, timed(() => fresh!.native.setOptimizerState(optimizer)));
    };
    const core = { load: coreLoad() };
    const save = await ticking(() => model.save(path.join(dir, 'model')));
    const load = await ticking(() => Model.load(path.join(dir, 'model')));
    core.load = Math.max(core.load, coreLoad());
    const loaded = load.result.model;
    assert.ok(sameBits(loaded.native.parameters(), params), 'the loaded weights equal the saved ones bit for bit');
    const loadedOptimizer = loaded.native.optimizerState();
    assert.equal(loadedOptimizer.step, optimizer.step);
    assert.ok(sameBits(loadedOptimizer.tensors, optimizer.tensors), 'so does the optimizer state');

    const f = (x: number) => x.toFixed(0);
    t.diagnostic(`writeCheckpoint: longest stall ${f(write.longest)} ms of ${f(write.ms)} ms; readCheckpoint: ${f(read.longest)} of ${f(read.ms)} ms`);
    t.diagnostic(`Model.save: longest stall ${f(save.longest)} ms of ${f(save.ms)} ms; Model.load: ${f(load.longest)} of ${f(load.ms)} ms (its core steps, building the model and copying state in, take ${f(core.load)} ms when run synchronously)`);
    assert.ok(write.longest < STALL_MS, `writeCheckpoint held the event loop for ${f(write.longest)} ms`);
    assert.ok(read.longest < STALL_MS, `readCheckpoint held the event loop for ${f(read.longest)} ms`);
    assert.ok(save.longest < STALL_MS, `Model.save held the event loop for ${f(save.longest)} ms`);
    assert.ok(load.longest < STALL_MS, `Model.load held the event loop for ${f(load.longest)} ms (the core's steps, run synchronously, take ${f(core.load)} ms)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('abort mid-epoch leaves the model usable and the last checkpoint intact', async (t) => {
  const world = chainWorld(600, 120, 7);
  const model = Model.create({ backbone: 'sasrec', numItems: 120, d: 32, maxLen: 12, seed: 3, threads: 1 });
  const train = { batchSize: 8, lr: 3e-3, progressEvery: 1 };
  const dir = tmp();
  try {
    // One epoch, checkpointed after it as a resumable run checkpoints (lib/run.ts).
    let state: FitState | undefined;
    const first = await fit(model, world, {
      ...train,
      maxEpochs: 1,
      onState: (s, e) => {
        state = s;
        return model.save(dir, { trainingState: { fit: s }, metrics: { valid: e.valid }, best: e.best ? 'current' : 'keep' });
      },
    });
    const saved = model.native.parameters();
    const before = folderHashes(dir);
    assert.deepEqual(Object.keys(before), ['checkpoint.json', 'model-1.safetensors', 'optimizer-1.safetensors']);

    // The next epoch, stopped from its progress callback after a few batches.
    const controller = new AbortController();
    let error: unknown;
    await fit(model, world, {
      ...train,
      maxEpochs: 3,
      resume: state,
      signal: controller.signal,
      onBatch: (_epoch, done) => {
        if (done >= 3) controller.abort(new Error('stop'));
      },
      onState: () => assert.fail('no epoch after the first may finish'),
    }).then(
      () => assert.fail('the aborted fit resolved'),
      (e) => (error = e),
    );
    assert.ok(error instanceof MorecError && error.code === 'EABORT', String(error));
    const m = /aborted at batch (\d+) of (\d+)/.exec(error.message);
    assert.ok(m, error.message);
    const [at, total] = [Number(m[1]), Number(m[2])];
    assert.ok(at >= 3 && at < total, `aborted at batch ${at} of ${total}`);
    assert.equal((error.cause as Error).message, 'stop');
    assert.ok(!sameBits(model.native.parameters(), saved), 'the steps taken before the abort are kept');

    // The model is usable: it evaluates, and a further epoch trains it on (its loss below the first epoch's).
    const ranks = await model.evaluate(world, { split: 'valid' });
    assert.equal(ranks.length, world.users);
    assert.ok(Number.isFinite(metrics(ranks)['HR@10']));
    const next = await model.trainEpoch(world, { ...train, epoch: 1 });
    assert.equal(next.batches, total);
    assert.ok(next.loss < first.history[0].loss, `loss ${next.loss} after the abort vs ${first.history[0].loss} in the first epoch`);

    // The checkpoint is the one written before the aborted epoch, byte for byte, and it loads.
    assert.deepEqual(folderHashes(dir), before);
    const { model: restored, info } = await Model.load(dir, {}, { restoreBest: true });
    assert.equal((info.trainingState as { fit: FitState }).fit.epochs, 1);
    assert.ok(sameBits(restored.native.parameters(), saved), 'the checkpoint holds the weights of the first epoch');
    t.diagnostic(`aborted at batch ${at} of ${total}; first epoch loss ${first.history[0].loss.toFixed(4)}, the epoch after the abort ${next.loss.toFixed(4)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
