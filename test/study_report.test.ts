// Studies over run folders (resumable, grids, warm-N variants) and the report they render.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-study-cache-'));
const STUDY = ['--models', 'sasrec-id,dssm-id', '--epochs', '4', '--patience', '10', '--scale', '0.25', '--threads', '1', '--quiet'];

function trainJs(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [path.join(root, 'train.js'), ...args], { encoding: 'utf8', env: { ...process.env, MOREC_CACHE: cache, ...env }, cwd: root });
}

/** The summary without wall times. */
function summary(out: string) {
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as Record<string, unknown>[];
  return rows.map(({ seconds: _s, ...rest }) => rest);
}

/** A small XML well-formedness check: every tag closes in order, one root <svg>. */
function wellFormedSvg(svg: string): { elements: number } {
  const stack: string[] = [];
  let elements = 0;
  const re = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = re.exec(svg); m; m = re.exec(svg)) {
    assert.ok(!/[<>]/.test(svg.slice(last, m.index)), `stray markup before offset ${m.index}`);
    last = re.lastIndex;
    const [, close, name, , self] = m;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    else {
      elements++;
      if (!self) stack.push(name);
    }
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  return { elements };
}

let reference: ReturnType<typeof summary>;
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-studies-'));

test('a study writes one run folder per cell, results.json, report.md and parseable SVG figures', () => {
  const out = path.join(base, 'ref');
  const r = trainJs([...STUDY, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  reference = summary(out);
  assert.deepEqual(reference.map((x) => x.model), ['sasrec-id', 'dssm-id']);
  for (const row of reference) {
    assert.ok(fs.existsSync(path.join(out, row.runDir as string, 'results.json')));
    const b = row.buckets as Record<string, { users: number }>;
    assert.equal(b.new.users + b.cold.users + b.warm.users, row.users, 'every user is in one bucket');
  }
  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.match(report, /## Table 2/);
  assert.ok(report.includes(`| sasrec-id | id | id | ${rows[0]['HR@10'].toFixed(4)} / ${rows[0]['NDCG@10'].toFixed(4)} |`));
  assert.ok(report.includes(`${rows[1].buckets.warm['HR@10'].toFixed(4)} (${rows[1].buckets.warm.users})`));
  const figures = fs.readdirSync(path.join(out, 'figures')).sort();
  assert.deepEqual(figures, ['hr10-by-bucket.svg', 'hr10-by-item-tower.svg', 'learning-curves.svg']);
  for (const f of figures) {
    const svg = fs.readFileSync(path.join(out, 'figures', f), 'utf8');
    assert.ok(wellFormedSvg(svg).elements > 20, f);
    assert.ok(report.includes(`(figures/${f})`), f);
  }
  const curves = fs.readFileSync(path.join(out, 'figures', 'learning-curves.svg'), 'utf8');
  assert.match(curves, /valid HR@10/);
});

test('a study killed with kill -9 (in a save, and at random moments) continues to the same summary when rerun', () => {
  for (const at of [6, 14, 22]) {
    const out = path.join(base, `killed-${at}`);
    const killed = trainJs([...STUDY, '--out', out], { MOREC_FAULT_WRITE: `kill:${at}` });
    assert.equal(killed.signal, 'SIGKILL', `kill:${at}: ${killed.stderr}`);
    const again = trainJs([...STUDY, '--out', out]);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(summary(out), reference, `kill:${at}`);
  }
});

test('rerunning a finished study reuses its runs; another spec in the same folder is refused (exit 2)', () => {
  const out = path.join(base, 'ref');
  const before = fs.readFileSync(path.join(out, 'cells', 'synthetic', 'sasrec-id', 'default', 'results.json'), 'utf8');
  const again = trainJs([...STUDY, '--out', out].filter((a) => a !== '--quiet'));
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /finished earlier \(.*sasrec-id\/default\); reusing its results/);
  assert.equal(fs.readFileSync(path.join(out, 'cells', 'synthetic', 'sasrec-id', 'default', 'results.json'), 'utf8'), before);
  const other = trainJs([...STUDY.map((a) => (a === '4' ? '5' : a)), '--out', out]);
  assert.equal(other.status, 2);
  assert.match(other.stderr, /EEXIST: .* holds a study with another spec/);
});

test('a study file with a grid and a warm-N data set: the best cell by valid HR@10 is chosen; the report has the grid and Table 3', () => {
  const out = path.join(base, 'grid');
  const file = path.join(base, 'study.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ datasets: ['synthetic', { path: 'synthetic', warm: 15 }], models: ['sasrec-id'], grid: { lr: [1e-3, 5e-3] }, epochs: 3, patience: 10, scale: 0.25 }),
  );
  const r = trainJs(['--config', file, '--out', out, '--threads', '1', '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.equal(rows.length, 2);
  for (const row of rows) {
    assert.deepEqual(Object.keys(row.grid), ['lr=0.001', 'lr=0.005']);
    const best = Math.max(...(Object.values(row.grid) as number[]));
    assert.equal(row.validHR10, best);
    assert.equal(row.cell.lr, Object.entries(row.grid).find(([, v]) => v === best)![0] === 'lr=0.001' ? 0.001 : 0.005);
  }
  assert.ok(rows[1].items < rows[0].items, 'warm-15 drops rare items');
  assert.match(rows[1].protocol, /warm-15: items with < 15 interactions dropped/);
  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.match(report, /## Table 3: warm-N/);
  assert.match(report, /## Grid: validation HR@10 of every cell/);
  const bad = path.join(base, 'bad-study.json');
  fs.writeFileSync(bad, JSON.stringify({ model: ['sasrec-id'] }));
  const refused = trainJs(['--config', bad, '--out', path.join(base, 'bad')]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /unknown key model \(did you mean models\?\)/);
});

test("--protocol paper: L, stopping, masking and DSSM's 4 validations per epoch follow the official code, and rows say so", () => {
  const out = path.join(base, 'paper');
  const r = trainJs(['--models', 'sasrec-id,dssm-id', '--protocol', 'paper', '--epochs', '2', '--scale', '0.25', '--threads', '1', '--quiet', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  for (const row of rows) {
    assert.match(row.protocol, /^paper: .*a repeated target counts as a miss, users with >= 5 interactions keep their last 20 \+ 3/);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, row.runDir, 'config.json'), 'utf8'));
    assert.equal(cfg.protocol.maskRepeatedTarget, true);
    assert.equal(cfg.train.patience, row.backbone === 'sasrec' ? 7 : 11);
  }
  const dssm = rows.find((x: { backbone: string }) => x.backbone === 'dssm');
  const lines = fs.readFileSync(path.join(out, dssm.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => `${l.epoch}.${l.part}`), ['1.1', '1.2', '1.3', '1.4', '2.1', '2.2', '2.3', '2.4']);
  assert.equal(dssm.epochs, 2);
  // morec eval of a paper run applies the run's masking, so it reproduces the run's test metrics exactly.
  for (const row of rows) {
    const ev = spawnSync(process.execPath, [path.join(root, 'dist', 'lib', 'cli', 'main.js'), 'eval', '--run', path.join(out, row.runDir), '--quiet'], { encoding: 'utf8', env: { ...process.env, MOREC_CACHE: cache } });
    assert.equal(ev.status, 0, ev.stderr);
    const m = JSON.parse(ev.stdout);
    assert.equal(m.maskRepeatedTarget, true);
    assert.equal(m['HR@10'], row['HR@10']);
    assert.equal(m['NDCG@10'], row['NDCG@10']);
  }
});

test('data kind for the paper protocol: H&M and Bili are vision data sets (L 10), MIND and Amazon text (L 20)', () => {
  const { dataKindOf } = require('../lib/study') as typeof import('../lib/study');
  const kinds = [
    dataKindOf({ format: 'hm', name: 'hm-sample' }),
    dataKindOf({ format: 'idvsmorec', name: 'HM', image: ['a.jpg'] }),
    dataKindOf({ format: 'idvsmorec', name: 'Bili', image: ['a.jpg'], text: ['t'] }),
    dataKindOf({ format: 'mind', name: 'mind-sample', text: ['t'] }),
    dataKindOf({ format: 'amazon-atomic', name: 'amazon-scientific', text: ['t'] }),
    dataKindOf({ format: 'synthetic', name: 'synthetic', text: ['t'], image: ['a.png'] }),
  ];
  assert.deepEqual(kinds, ['vision', 'vision', 'vision', 'text', 'text', 'text']);
});
