import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const cli = path.resolve(__dirname, '..', 'lib', 'cli', 'main.js');
const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-cli-cache-'));

function morec(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, MOREC_CACHE: cache } });
}

/** morec eval of a run folder gives exactly the test metrics its results.json recorded; returns the results. */
function evalReproducesRun(dir: string) {
  const results = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
  const ev = morec('eval', '--run', dir, '--quiet');
  assert.equal(ev.status, 0, ev.stderr);
  const m = JSON.parse(ev.stdout);
  assert.equal(m['HR@10'], results.test['HR@10']);
  assert.equal(m['NDCG@10'], results.test['NDCG@10']);
  return results;
}

test('morec --help lists every command; each command documents its options', () => {
  const help = morec('--help');
  assert.equal(help.status, 0);
  for (const c of ['train', 'eval', 'data', 'extract', 'export-onnx', 'study', 'info']) assert.match(help.stdout, new RegExp(`morec ${c}`));
  const trainHelp = morec('train', '--help').stdout;
  for (const o of ['--dataset', '--backbone', '--d', '--lr', '--epochs', '--patience', '--config', '--name', '--runs-dir', '--quiet', '--threads',
    '--item-tower', '--text-encoder', '--tokenizer', '--max-tokens', '--pooling', '--finetune-top-layers', '--cache-frozen', '--encoder-lr'])
    assert.ok(trainHelp.includes(o), o);
  assert.ok(morec('eval', '--help').stdout.includes('--split'));
});

test('morec train writes a run folder whose checkpoint morec eval reproduces exactly', () => {
  const runs = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-runs-'));
  const r = morec('train', '--scale', '0.25', '--epochs', '3', '--name', 'r1', '--runs-dir', runs, '--quiet', '--threads', '2');
  assert.equal(r.status, 0, r.stderr);
  const dir = path.join(runs, 'r1');
  for (const f of ['config.json', 'metrics.jsonl', 'results.json', 'checkpoint/checkpoint.json', 'last/checkpoint.json']) assert.ok(fs.existsSync(path.join(dir, f)), f);
  const lines = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  for (const l of lines) for (const k of ['epoch', 'loss', 'valid HR@10', 'valid NDCG@10', 'trainSeconds']) assert.ok(k in l, k);
  const results = evalReproducesRun(dir);
});

test('morec train --item-tower text (from scratch) and morec eval of its run agree exactly', () => {
  const runs = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-runs-'));
  const r = morec('train', '--item-tower', 'text', '--pooling', 'mean', '--scale', '0.25', '--epochs', '2', '--batch-size', '256', '--encoder-lr', '1e-3',
    '--name', 't1', '--runs-dir', runs, '--quiet', '--threads', '2');
  assert.equal(r.status, 0, r.stderr);
  const dir = path.join(runs, 't1');
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  assert.equal(config.model.itemTower, 'text');
  assert.equal(config.model.text.pooling, 'mean');
  assert.equal(config.text.encoder, 'bert-tiny');
  assert.equal(config.model.text.hidden, 128);
  const results = evalReproducesRun(dir);
  assert.ok(results.test['HR@10'] > 0);
});

test('morec data summarises a data set', () => {
  const r = morec('data', '--dataset', path.resolve(__dirname, '..', '..', '..', 'shared', 'data', 'amazon-scientific'), '--quiet');
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.users, 2928);
  assert.equal(s.format, 'amazon-atomic');
  assert.equal(s.hasText, true);
  assert.ok(s.sequenceLength.min >= 5);
});

test('argument errors are one clear line and exit code 2 (bad usage)', () => {
  const bad = morec('train', '--d', '-3', '--quiet');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^EUSAGE: Expected a positive integer for d but received -3$/m);
  const none = morec();
  assert.equal(none.status, 2);
  assert.match(none.stderr, /Expected a command/);
  const badConfig = morec('train', '--config', '/nonexistent.json', '--quiet');
  assert.equal(badConfig.status, 2);
  assert.match(badConfig.stderr, /nonexistent\.json: cannot read the config/);
});

test('two-stage from the command line: morec extract, morec data lists the cache, train --item-tower features --fusion, eval reproduces it; export-onnx', () => {
  const runs = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-cli-ts-'));
  const data = ['--dataset', 'synthetic', '--scale', '0.05', '--seed', '3', '--max-len', '10'];
  const ex = morec('extract', ...data, '--feature-encoder', 'bert-tiny', '--pooling', 'mean', '--quiet');
  assert.equal(ex.status, 0, ex.stderr);
  const cache = JSON.parse(ex.stdout);
  assert.equal(cache.status, 'extracted');
  assert.equal(cache.dim, 128);
  assert.equal(cache.pooling, 'mean');
  assert.equal(morec('extract', ...data, '--feature-encoder', 'bert-tiny', '--pooling', 'mean', '--quiet').stdout.includes('"status": "hit"'), true);
  const summary = JSON.parse(morec('data', ...data, '--quiet').stdout);
  assert.equal(summary.featureCaches.length, 1);
  assert.equal(summary.featureCaches[0].dir, cache.cache);
  const tr = morec('train', ...data, '--item-tower', 'features', '--feature-encoder', 'bert-tiny', '--pooling', 'mean', '--adapter-depth', '2', '--fusion', 'add', '--epochs', '2', '--runs-dir', runs, '--name', 'ts', '--quiet');
  assert.equal(tr.status, 0, tr.stderr);
  const results = evalReproducesRun(path.join(runs, 'ts'));
  assert.equal(results.itemTower, 'bert-tiny(scratch, TS adapter 2) + ID (add)');
  const config = JSON.parse(fs.readFileSync(path.join(runs, 'ts', 'config.json'), 'utf8'));
  assert.deepEqual([config.model.itemTower, config.model.fusion, config.model.features.adapterDepth, config.model.features.dim], ['features', 'add', 2, 128]);
  // export-onnx writes a Hugging Face folder's encoder; a bad encoder name is a usage error.
  const out = path.join(runs, 'tiny-bert.onnx');
  const exp = morec('export-onnx', '--encoder', path.resolve(__dirname, '..', '..', 'test', 'fixtures', 'text', 'tiny-bert'), '--out', out);
  assert.equal(exp.status, 0, exp.stderr);
  assert.deepEqual(JSON.parse(exp.stdout).outputs, ['last_hidden_state']);
  assert.ok(fs.statSync(out).size > 50_000);
  const bad = morec('export-onnx', '--encoder', 'no-such-encoder', '--out', out);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /EUSAGE: .*no-such-encoder/);
  fs.rmSync(runs, { recursive: true, force: true });
});
