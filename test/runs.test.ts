// Run folders as a careless or unlucky user meets them: reruns, bad options, kill -9, signals, other data.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Model } from '../lib/model';
import { MorecError } from '../lib/errors';

const cli = path.resolve(__dirname, '..', 'lib', 'cli', 'main.js');
const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-runs-cache-'));
const env = { ...process.env, MOREC_CACHE: cache };
// Small and quick; patience large enough that every run trains all its epochs.
const TRAIN = ['--scale', '0.25', '--epochs', '4', '--patience', '10', '--d', '16', '--quiet', '--threads', '1'];

function morec(args: string[], extraEnv: Record<string, string> = {}) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...env, ...extraEnv } });
}

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = fs.readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return out;
}

/** What a finished run must reproduce exactly: test and valid metrics, best epoch, every epoch's loss and valid metrics. */
function outcome(dir: string) {
  const r = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
  const epochs = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const { trainSeconds: _t, evalSeconds: _e, ...rest } = JSON.parse(l);
    return rest;
  });
  return { test: r.test, valid: r.valid, bestEpoch: r.bestEpoch, epochs: r.epochs, history: epochs };
}

const runs = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-runs-'));
let reference: ReturnType<typeof outcome>;

test('an uninterrupted reference run', () => {
  const r = morec(['train', ...TRAIN, '--name', 'ref', '--runs-dir', runs]);
  assert.equal(r.status, 0, r.stderr);
  reference = outcome(path.join(runs, 'ref'));
  assert.equal(reference.history.length, 4);
});

test('rerunning a run name is refused (exit 2) and leaves the old run byte-identical, bad options too', () => {
  const dir = path.join(runs, 'ref');
  const before = snapshot(dir);
  for (const extra of [['--epochs', '0'], [], ['--d', '-3'], ['--config', '/nonexistent.json']]) {
    const r = morec(['train', ...TRAIN, '--name', 'ref', '--runs-dir', runs, ...extra]);
    assert.equal(r.status, 2, `${extra}: ${r.stderr}`);
    assert.match(r.stderr, /^(EUSAGE|EEXIST): /, extra.join(' '));
    assert.deepEqual(snapshot(dir), before, `${extra.join(' ')} changed the run folder`);
  }
  // Bad options on a new name leave no folder behind.
  const r = morec(['train', ...TRAIN, '--name', 'fresh', '--runs-dir', runs, '--lr', '-1']);
  assert.equal(r.status, 2);
  assert.equal(fs.existsSync(path.join(runs, 'fresh')), false);
});

test('--overwrite replaces a run explicitly; --resume of a finished run reproduces its results', () => {
  const a = morec(['train', ...TRAIN, '--name', 'ow', '--runs-dir', runs, '--epochs', '1']);
  assert.equal(a.status, 0, a.stderr);
  const b = morec(['train', ...TRAIN, '--name', 'ow', '--runs-dir', runs, '--overwrite']);
  assert.equal(b.status, 0, b.stderr);
  assert.deepEqual(outcome(path.join(runs, 'ow')), reference);
  const c = morec(['train', '--name', 'ow', '--runs-dir', runs, '--resume', '--quiet']);
  assert.equal(c.status, 0, c.stderr);
  assert.deepEqual(outcome(path.join(runs, 'ow')), reference);
});

test('kill -9 during each save of a run, then --resume: the final metrics equal the uninterrupted run', () => {
  // Writes of a 4-epoch run: config, metrics, then per epoch best and/or last checkpoints (3 files each).
  for (const at of [3, 4, 5, 8, 12, 14]) {
    const name = `kill-${at}`;
    const dir = path.join(runs, name);
    const killed = morec(['train', ...TRAIN, '--name', name, '--runs-dir', runs], { MOREC_FAULT_WRITE: `kill:${at}` });
    assert.equal(killed.signal, 'SIGKILL', `kill:${at} ${killed.stderr}`);
    const resumable = fs.existsSync(path.join(dir, 'last', 'checkpoint.json'));
    const r = morec(['train', ...(resumable ? ['--resume'] : [...TRAIN, '--overwrite']), '--name', name, '--runs-dir', runs, '--quiet']);
    assert.equal(r.status, 0, `kill:${at} resume: ${r.stderr}`);
    assert.deepEqual(outcome(dir), reference, `kill:${at}`);
  }
});

/** Every checkpoint folder in a run either loads whole or is refused with a MorecError. */
async function checkpointsWholeOrRefused(dir: string): Promise<{ loaded: number; refused: number }> {
  let loaded = 0;
  let refused = 0;
  for (const sub of ['checkpoint', 'last']) {
    const d = path.join(dir, sub);
    if (!fs.existsSync(d)) continue;
    try {
      await Model.load(d, { threads: 1 });
      loaded++;
    } catch (e) {
      assert.ok(e instanceof MorecError, `${d}: ${e}`);
      refused++;
    }
  }
  return { loaded, refused };
}

test('kill -9 at 30 random moments: checkpoints load whole or are refused, and resumed runs equal the uninterrupted one', async (t) => {
  let kills = 0;
  let loaded = 0;
  let refused = 0;
  let finished = 0;
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let chain = 0; kills < 30 && chain < 40; chain++) {
    const name = `random-${chain}`;
    const dir = path.join(runs, name);
    for (let attempt = 0; attempt < 40; attempt++) {
      const resumable = fs.existsSync(path.join(dir, 'last', 'checkpoint.json'));
      const args = ['train', ...(resumable ? ['--resume'] : [...TRAIN, ...(fs.existsSync(dir) ? ['--overwrite'] : [])]), '--name', name, '--runs-dir', runs, '--quiet'];
      const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const delay = 100 + random() * 1500;
      const timer = kills < 30 ? setTimeout(() => child.kill('SIGKILL'), delay) : undefined;
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
      clearTimeout(timer);
      if (signal === 'SIGKILL') {
        kills++;
        const c = await checkpointsWholeOrRefused(dir);
        loaded += c.loaded;
        refused += c.refused;
        continue;
      }
      assert.equal(code, 0, stderr);
      assert.deepEqual(outcome(dir), reference, name);
      finished++;
      break;
    }
  }
  t.diagnostic(`${kills} kills; checkpoints after a kill: ${loaded} loaded whole, ${refused} refused; ${finished} interrupted runs finished equal to the reference`);
  assert.ok(kills >= 30);
  assert.ok(finished >= 1);
});

test('SIGINT and SIGTERM stop at the next batch with a whole checkpoint and exit 130/143; --resume then equals the uninterrupted run', async () => {
  for (const [sig, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const name = `signal-${sig}`;
    const child = spawn(process.execPath, [cli, 'train', ...TRAIN.filter((a) => a !== '--quiet'), '--name', name, '--runs-dir', runs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (/epoch +1 loss/.test(stdout) && !child.killed) child.kill(sig); // during epoch 2 (or just before it)
    });
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, status, stderr);
    assert.match(stderr, new RegExp(`EABORT: ${sig}: training stopped .*The last whole checkpoint is after epoch \\d+; continue with: morec train .*--name ${name} --resume`));
    const dir = path.join(runs, name);
    assert.deepEqual(await checkpointsWholeOrRefused(dir), { loaded: 2, refused: 0 });
    const r = morec(['train', '--name', name, '--runs-dir', runs, '--resume', '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(outcome(dir), reference, sig);
  }
});

test('morec eval refuses other data (exit 1, EMISMATCH) unless --force, which warns', () => {
  const dir = path.join(runs, 'ref');
  const other = morec(['eval', '--run', dir, '--dataset', 'synthetic', '--quiet']);
  // The run's config is reused (seed 42, scale 0.25): same data, accepted.
  assert.equal(other.status, 0, other.stderr);
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  const edited = { ...cfg, seed: 7 }; // now the run's options prepare another synthetic world
  fs.writeFileSync(cfgFile, JSON.stringify(edited));
  try {
    const refused = morec(['eval', '--run', dir, '--quiet']);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /EMISMATCH: the run was trained on data with fingerprint .* refusing to use other data \(pass --force/);
    const forced = morec(['eval', '--run', dir, '--quiet', '--force']);
    assert.match(forced.stderr, /WARNING: --force/);
  } finally {
    fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2) + '\n');
  }
});

test('CLI failures are coded: usage errors exit 2, failures exit 1, a --config of null is refused', () => {
  const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-cfg-'));
  fs.writeFileSync(path.join(bad, 'null.json'), 'null');
  fs.writeFileSync(path.join(bad, 'typo.json'), JSON.stringify({ train: { learningRate: 0.1 } }));
  const cases: [string[], number, RegExp][] = [
    [['train', '--config', path.join(bad, 'null.json'), '--runs-dir', runs], 2, /EUSAGE: .*null\.json: expected a JSON object .* but found null/],
    [['train', '--config', path.join(bad, 'typo.json'), '--runs-dir', runs], 2, /EUSAGE: .*unknown key train\.learningRate/],
    [['train', '--scale', '0', '--runs-dir', runs], 2, /EUSAGE: Expected a number in \[0\.01, 1000\] for scale but received 0/],
    [['train', '--bogus'], 2, /EUSAGE: Unknown argument/],
    [['eval', '--run', path.join(runs, 'nothing-here')], 1, /ENOENT: .*nothing-here: no such run or checkpoint folder/],
    [['eval', '--run', runs], 2, /EUSAGE: .*no config\.json naming the dataset/],
    [['train', '--dataset', '/nonexistent/data.csv', '--runs-dir', runs], 1, /^E[A-Z]+: .*\/nonexistent\/data\.csv/],
  ];
  for (const [args, status, re] of cases) {
    const r = morec(args);
    assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
});
