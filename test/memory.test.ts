// Memory over many model lifetimes, with a real garbage collector (exposed here, not assumed).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const helpers = require.resolve('./helpers');
const lib = path.resolve(__dirname, '..', 'lib');

test('RSS stays flat over 1,000 create / train / evaluate / drop cycles (gc exposed)', (t) => {
  const script = `
    const { Model } = require(${JSON.stringify(lib)});
    const { chainWorld } = require(${JSON.stringify(helpers)});
    const world = chainWorld(64, 40, 1);
    const mib = () => process.memoryUsage().rss / 2 ** 20;
    (async () => {
      const marks = {};
      for (let i = 1; i <= 1000; i++) {
        const m = Model.create({ backbone: i % 2 ? 'sasrec' : 'dssm', numItems: 40, numUsers: world.users, d: 16, maxLen: 8, threads: 1 });
        await m.trainEpoch(world, { batchSize: 32 });
        await m.evaluate(world, { split: 'valid' });
        if (i % 100 === 0) { gc(); marks[i] = mib(); }
      }
      console.log(JSON.stringify(marks));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const marks = JSON.parse(r.stdout) as Record<string, number>;
  const growth = marks['1000'] - marks['200'];
  t.diagnostic(`RSS after 200 cycles ${marks['200'].toFixed(1)} MiB, after 1000 ${marks['1000'].toFixed(1)} MiB (growth ${growth.toFixed(1)} MiB over 800 cycles)`);
  // A leak of one small model per cycle (~100 KiB of weights + optimizer state) would add > 80 MiB.
  assert.ok(growth < 40, `RSS grew ${growth.toFixed(1)} MiB over 800 cycles`);
});

test('a model dropped mid-epoch is really collected while its epoch runs, and the epoch still resolves', () => {
  const script = `
    const { Model } = require(${JSON.stringify(lib)});
    const { chainWorld } = require(${JSON.stringify(helpers)});
    const world = chainWorld(300, 80, 4);
    let collected = false;
    const registry = new FinalizationRegistry(() => { collected = true; });
    (async () => {
      let model = Model.create({ backbone: 'sasrec', numItems: 80, d: 16, maxLen: 10, threads: 1 });
      registry.register(model, 'model');
      const pending = model.trainEpoch(world, { batchSize: 4 });
      model = undefined;
      for (let i = 0; i < 20 && !collected; i++) { gc(); await new Promise((r) => setImmediate(r)); }
      const r = await pending;
      for (let i = 0; i < 20 && !collected; i++) { gc(); await new Promise((r) => setImmediate(r)); }
      console.log(JSON.stringify({ collected, loss: r.loss }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.collected, true, 'the JS wrapper was garbage-collected');
  assert.ok(Number.isFinite(out.loss));
});
