// Checkpoints are whole or refused: every probe that once loaded a mixed, edited, partial or poisoned
// checkpoint silently is a regression test here.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Model } from '../lib/model';
import { MorecError } from '../lib/errors';
import { writeSafetensors } from '../lib/io/safetensors';
import { isMorec } from './helpers';

const config = { backbone: 'sasrec' as const, numItems: 20, d: 8, maxLen: 6, heads: 2, threads: 1, dropout: 0 };

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'morec-ckpt-'));
}

/** A model whose weights differ from a fresh one's (so a mix of two saves is visible). */
function perturbed(seed: number): Model {
  const m = Model.create({ ...config, seed });
  const p = m.native.parameters();
  m.setParameters(Object.fromEntries(Object.entries(p).map(([k, t]) => [k, t.data.map((v, i) => v + 0.01 * ((i % 7) - 3))])));
  return m;
}

test('save writes generation-named files and a manifest with sizes and hashes; the previous generation is removed', async () => {
  const dir = tmp();
  const m = perturbed(1);
  const a = await m.save(dir);
  assert.equal(a.files.model.name, 'model-1.safetensors');
  assert.equal(a.files.model.bytes, fs.statSync(path.join(dir, 'model-1.safetensors')).size);
  assert.match(a.files.model.sha256, /^[0-9a-f]{64}$/);
  const b = await m.save(dir);
  assert.equal(b.files.model.name, 'model-2.safetensors');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['checkpoint.json', 'model-2.safetensors', 'optimizer-2.safetensors']);
  assert.equal(b.files.model.sha256, a.files.model.sha256, 'same weights, same hash');
});

test('a mix of two saves (new weights beside the old manifest) is refused naming the file', async () => {
  const dir = tmp();
  await perturbed(1).save(dir);
  const manifest = fs.readFileSync(path.join(dir, 'checkpoint.json'));
  const other = tmp();
  await perturbed(2).save(other);
  // The state a kill between writing the weights and writing the manifest would leave with fixed file names.
  fs.copyFileSync(path.join(other, 'model-1.safetensors'), path.join(dir, 'model-1.safetensors'));
  fs.writeFileSync(path.join(dir, 'checkpoint.json'), manifest);
  await assert.rejects(Model.load(dir), isMorec('EFORMAT', /model-1\.safetensors: its sha256 .* differs .*refusing to load/));
});

test('a hand-edited manifest (heads changed) is refused; so is a config that disagrees with the weights file', async () => {
  const dir = tmp();
  await perturbed(1).save(dir);
  const file = path.join(dir, 'checkpoint.json');
  const info = JSON.parse(fs.readFileSync(file, 'utf8'));
  info.config.heads = 4;
  fs.writeFileSync(file, JSON.stringify(info, null, 2));
  await assert.rejects(Model.load(dir), isMorec('EFORMAT', /changed after it was written/));
  // Even with the digest recomputed, the config stored inside the weights file disagrees.
  const { digest: _d, ...body } = info;
  info.digest = require('node:crypto').createHash('sha256').update(JSON.stringify(body)).digest('hex');
  fs.writeFileSync(file, JSON.stringify(info, null, 2));
  await assert.rejects(Model.load(dir), isMorec('EMISMATCH', /config differs from the one saved with the weights in model-1\.safetensors \(heads 4 vs 2\)/));
});

test('a missing optimizer file is an error unless loading for inference; truncated files are refused', async () => {
  const dir = tmp();
  const m = perturbed(1);
  await m.save(dir);
  fs.rmSync(path.join(dir, 'optimizer-1.safetensors'));
  await assert.rejects(Model.load(dir), isMorec('ENOENT', /optimizer-1\.safetensors: the optimizer file listed in checkpoint\.json is missing/));
  const { model } = await Model.load(dir, {}, { inference: true });
  assert.deepEqual(model.native.parameters()['item_tower.id_embedding.weight'].data, m.native.parameters()['item_tower.id_embedding.weight'].data);
  const w = path.join(dir, 'model-1.safetensors');
  fs.truncateSync(w, fs.statSync(w).size - 4);
  await assert.rejects(Model.load(dir, {}, { inference: true }), isMorec('EFORMAT', /bytes but checkpoint\.json lists/));
});

test('non-finite weights are refused with the tensor named', async () => {
  const dir = tmp();
  const m = perturbed(1);
  const p = m.native.parameters();
  const key = 'item_tower.id_embedding.weight';
  const poisoned = Object.fromEntries(Object.entries(p).map(([k, t]) => [k, k === key ? t.data.map((v, i) => (i === 3 ? NaN : i === 5 ? Infinity : v)) : t.data]));
  m.setParameters(poisoned);
  await m.save(dir);
  await assert.rejects(Model.load(dir), isMorec('ENONFINITE', /tensor 'item_tower\.id_embedding\.weight' holds 2 non-finite values/));
});

test('temp files and unlisted tensor files of interrupted saves are removed by the next save', async () => {
  const dir = tmp();
  const m = perturbed(1);
  await m.save(dir);
  fs.writeFileSync(path.join(dir, 'optimizer-2.safetensors.tmp-123-456'), 'partial');
  fs.writeFileSync(path.join(dir, 'model-2.safetensors'), 'orphan of an interrupted save');
  await assert.doesNotReject(Model.load(dir)); // the manifest still lists generation 1, which is whole
  await m.save(dir);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['checkpoint.json', 'model-2.safetensors', 'optimizer-2.safetensors']);
});

test('a best-weights entry survives later saves and restores as the snapshot', async () => {
  const dir = tmp();
  const best = perturbed(1);
  await best.save(dir, { best: 'current' });
  const bestWeights = best.native.parameters()['item_tower.id_embedding.weight'].data;
  // Later states keep pointing at the best weights, which stay on disk while they are listed.
  const later = perturbed(2);
  later.native.setOptimizerState(best.native.optimizerState());
  const info = await later.save(dir, { best: 'keep' });
  assert.equal(info.files.best?.name, 'model-1.safetensors');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['checkpoint.json', 'model-1.safetensors', 'model-2.safetensors', 'optimizer-2.safetensors']);
  const { model } = await Model.load(dir, {}, { restoreBest: true });
  assert.notDeepEqual(model.native.parameters()['item_tower.id_embedding.weight'].data, bestWeights);
  model.restoreWeights();
  assert.deepEqual(model.native.parameters()['item_tower.id_embedding.weight'].data, bestWeights);
});

/** Runs a save in a child process with a write fault injected at the n-th atomic write. */
function saveWithFault(dir: string, fault: string, seed: number) {
  const script = `
    const { Model } = require(${JSON.stringify(require.resolve('../lib/model'))});
    const m = Model.create(${JSON.stringify(config)});
    const p = m.native.parameters();
    m.setParameters(Object.fromEntries(Object.entries(p).map(([k, t]) => [k, t.data.map((v) => v + ${seed} * 0.001)])));
    m.save(${JSON.stringify(dir)}).catch((e) => { console.error(e.code + ': ' + e.message); process.exit(1); });`;
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, MOREC_FAULT_WRITE: fault } });
}

test('kill -9 or ENOSPC at each write of a save leaves the previous checkpoint loadable and whole', async () => {
  for (const kind of ['kill', 'enospc']) {
    for (const at of [1, 2, 3]) {
      const dir = tmp();
      const first = perturbed(1);
      await first.save(dir);
      const before = first.native.parameters()['item_tower.id_embedding.weight'].data;
      const r = saveWithFault(dir, `${kind}:${at}`, 5);
      if (kind === 'kill') assert.equal(r.signal, 'SIGKILL', `${kind}:${at} ${r.stderr}`);
      else assert.match(r.stderr, /EIO|ENOSPC/, `${kind}:${at}`);
      const { model } = await Model.load(dir);
      assert.deepEqual(model.native.parameters()['item_tower.id_embedding.weight'].data, before, `${kind}:${at}: the previous checkpoint is intact`);
      // The next save cleans what the interrupted one left.
      const info = await model.save(dir);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['checkpoint.json', info.files.model.name, info.files.optimizer.name].sort(), `${kind}:${at}`);
    }
  }
});

test('writeSafetensors failing (ENOSPC) is a MorecError EIO naming the file, with no temp file left', () => {
  const dir = tmp();
  const file = path.join(dir, 'x.safetensors');
  process.env.MOREC_FAULT_WRITE = 'enospc:1'; // the first atomic write of this process while set
  try {
    assert.throws(() => writeSafetensors(file, { a: { shape: [2], data: new Float32Array([1, 2]) } }), isMorec('EIO', /x\.safetensors: cannot write \(ENOSPC\); the previous content is unchanged/));
    assert.equal(fs.existsSync(file), false);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  } finally {
    delete process.env.MOREC_FAULT_WRITE;
  }
});
