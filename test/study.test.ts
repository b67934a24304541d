import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { metrics, Model, popularityRanks, prepareDataset } from '../lib';
import { encoderParameterCount } from '../lib/text/encoder';
import { runStudy } from '../lib/study';
import { writeReport } from '../lib/report/report';

const root = path.resolve(__dirname, '..', '..');

function runTrainJs(args: string[], cache: string) {
  return spawnSync(process.execPath, [path.join(root, 'train.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, MOREC_CACHE: cache },
    cwd: root,
  });
}

test('the synthetic world has learnable structure: SASRec beats popularity by a wide margin', async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-cache-'));
  const data = await prepareDataset('synthetic', { maxLen: 20, synthetic: { seed: 1, scale: 0.5 }, cacheDir });
  const model = Model.create({ backbone: 'sasrec', numItems: data.sequences.numItems, d: 32, maxLen: 20, seed: 1, threads: 2 });
  for (let e = 0; e < 15; e++) await model.trainEpoch(data.sequences, { epoch: e, batchSize: 64, lr: 3e-3 });
  const m = metrics(await model.evaluate(data.sequences, { split: 'test' }));
  const pop = metrics(popularityRanks(data.sequences, 'test'));
  assert.ok(m['HR@10'] > 2 * pop['HR@10'], `SASRec ${m['HR@10']} vs popularity ${pop['HR@10']}`);
});

test('node train.js --epochs 2 --out DIR writes results.json rows with the documented schema', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-study-'));
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-cache-'));
  const r = runTrainJs(['--epochs', '2', '--out', out, '--scale', '0.25', '--threads', '2'], cache);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| model \| backbone \| item tower \| paradigm \| HR@10 \| NDCG@10 \| epochs \(best\) \| time s \|/);
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.deepEqual(rows.map((x: { model: string }) => x.model), ['sasrec-id', 'dssm-id', 'sasrec-text', 'dssm-text', 'sasrec-ts0', 'sasrec-ts8', 'sasrec-image']);
  assert.deepEqual(rows.map((x: { itemTower: string }) => x.itemTower), ['id', 'id', 'bert-tiny(scratch)', 'bert-tiny(scratch)', 'bert-tiny(scratch, TS adapter 0)', 'bert-tiny(scratch, TS adapter 8)', 'resnet-mini(scratch)']);
  assert.deepEqual(rows.map((x: { pretrained: boolean | null }) => x.pretrained), [null, null, false, false, false, false, false]);
  assert.deepEqual(rows.map((x: { paradigm: string }) => x.paradigm), ['id', 'id', 'e2e', 'e2e', 'ts', 'ts', 'e2e']);
  // The two-stage rows freeze the text rows' encoder (exported once to ONNX with the seed's initial weights)
  // and extract its features once: the second row reuses the cache.
  assert.match(r.stdout, /exported the frozen encoder to .*text-[0-9a-f]{16}\.onnx \([\d.]+ MB, \d+ ONNX nodes\), initial weights of seed 42/);
  assert.match(r.stdout, /feature cache .*features-[0-9a-f]{16}: \d+ items x 128 float32 \(mean pooling\), extracted at \d+ items\/s with 1 worker/);
  assert.match(r.stdout, /feature cache .*: \d+ items x 128 float32 \(mean pooling\), reused/);
  assert.deepEqual(rows.map((x: { adapterDepth: number | null }) => x.adapterDepth), [null, null, null, null, 0, 8, null]);
  // The report's Table 5 puts the two-stage depths next to the E2E row of the same backbone, with the rows' numbers.
  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  const f4 = (x: number) => x.toFixed(4);
  assert.deepEqual(rows.map((x: { modality: string }) => x.modality), ['id', 'id', 'text', 'text', 'text', 'text', 'image']);
  assert.ok(report.includes('| data set | backbone | modality | E2E | TS n=0 | TS n=8 |'), report);
  // The text two-stage rows are set beside the text E2E row only (not the image row).
  assert.ok(report.includes(`| sasrec | text | ${f4(rows[2]['HR@10'])} (sasrec-text) | ${f4(rows[4]['HR@10'])} | ${f4(rows[5]['HR@10'])} |`), report);
  assert.match(r.stdout, /text tower bert-tiny\(scratch\): word vocabulary of \d+ title words/);
  assert.match(r.stdout, /image tower resnet-mini\(scratch\): resnet \(basic blocks depths 1,1,1,1, width 8\), 32x32 pixels/);
  assert.match(r.stdout, /images: \d+ items 32x32 pil-bilinear \(ok \d+\)/);
  for (const row of rows) {
    assert.equal(typeof row.model, 'string');
    assert.ok(['sasrec', 'dssm'].includes(row.backbone));
    assert.equal(typeof row.itemTower, 'string');
    assert.ok(['id', 'e2e', 'ts'].includes(row.paradigm));
    assert.match(row.dataset, /^synthetic/);
    assert.equal(row.split, 'test');
    assert.ok(row['HR@10'] >= 0 && row['HR@10'] <= 1);
    assert.ok(row['NDCG@10'] >= 0 && row['NDCG@10'] <= row['HR@10']);
    assert.equal(row.epochs, 2);
  }
  // Text rows carry their encoder's size (bert-tiny: L2/H128 over the title vocabulary), ID rows none; the
  // report then has the encoder-size figure.
  const cfg = JSON.parse(fs.readFileSync(path.join(out, rows[2].runDir, 'config.json'), 'utf8'));
  assert.equal(rows[2].encoderParameters, encoderParameterCount(cfg.model.text));
  assert.ok(rows[2].encoderParameters > 400_000, String(rows[2].encoderParameters));
  assert.equal(rows[0].encoderParameters, null);
  assert.ok(fs.readFileSync(path.join(out, 'figures', 'hr10-by-encoder-size.svg'), 'utf8').includes('encoder parameters'));
});

test('train.js --help documents the options; unknown options and bad values fail with a message', () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-cache-'));
  const help = runTrainJs(['--help'], cache);
  assert.equal(help.status, 0);
  for (const opt of ['--dataset', '--models', '--epochs', '--out', '--seed', '--threads', '--patience', '--quiet', '--text-encoder', '--tokenizer', '--image-encoder']) assert.ok(help.stdout.includes(opt), opt);
  const bad = runTrainJs(['--bogus'], cache);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^EUSAGE: Unknown argument: bogus/);
  for (const [args, re] of [
    [['--models', ','], /EUSAGE: Expected at least one model for --models/],
    [['--scale', '0'], /EUSAGE: Expected a number in \[0\.01, 1000\] for --scale but received 0/],
    [['--epochs', '0'], /EUSAGE: Expected a positive integer for --epochs but received 0/],
  ] as const) {
    const r = runTrainJs([...args], cache);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, re);
  }
  const badModel = runTrainJs(['--models', 'sasrec-bert', '--epochs', '1'], cache);
  assert.equal(badModel.status, 2);
  assert.match(badModel.stderr, /models from sasrec-id, dssm-id, sasrec-text, dssm-text, sasrec-image, dssm-image, sasrec-ts0, sasrec-ts8, dssm-ts0, dssm-ts8, sasrec-ts-add, sasrec-ts-cat but received 'sasrec-bert'/);
  const badData = runTrainJs(['--dataset', '/nonexistent/data', '--out', fs.mkdtempSync(path.join(os.tmpdir(), 'morec-study-'))], cache);
  assert.equal(badData.status, 1);
  assert.match(badData.stderr, /existing file or folder for dataset but received '\/nonexistent\/data'/);
});

test('node train.js --text-encoder <Hugging Face folder> fine-tunes that checkpoint and says so', () => {
  // A checkpoint folder as users bring it: config.json + pytorch_model.bin + vocab.txt (the tiny fixture BERT,
  // whose 120-entry vocabulary knows few of the synthetic titles' words: the summary reports the unknown share).
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-hf-'));
  const fix = path.join(root, 'test', 'fixtures', 'text', 'tiny-bert');
  for (const f of ['config.json', 'pytorch_model.bin']) fs.copyFileSync(path.join(fix, f), path.join(folder, f));
  const words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'galaxy', 'orbit', 'rocket', 'recipe', 'garlic', 'guitar', 'new', 'classic'];
  while (words.length < 120) words.push(`w${words.length}`);
  fs.writeFileSync(path.join(folder, 'vocab.txt'), words.join('\n') + '\n');
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-study-'));
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-cache-'));
  const r = runTrainJs(['--models', 'sasrec-text', '--epochs', '1', '--out', out, '--scale', '0.25', '--threads', '2', '--text-encoder', folder], cache);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /loaded 37 encoder tensors from .*pytorch_model\.bin \(ignored 9: /);
  const unknown = Number(/, ([\d.]+)% unknown tokens/.exec(r.stdout)?.[1]);
  assert.ok(unknown > 10 && unknown < 90, `unknown share ${unknown}%`);
  const [row] = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.equal(row.pretrained, true);
  assert.equal(row.itemTower, `${path.basename(folder)}(pretrained)`);
});

test('adapterDepths runs each two-stage row once per depth (Table 5 series) and the report lists them', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-study-depths-'));
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-cache-'));
  const before = process.env.MOREC_CACHE;
  process.env.MOREC_CACHE = cacheDir;
  try {
    const rows = await runStudy({ dataset: 'synthetic', scale: 0.05, models: ['sasrec-ts0', 'sasrec-ts-add'], adapterDepths: [2, 6], epochs: 1, out, threads: 2 });
    assert.deepEqual(rows.map((r) => [r.model, r.adapterDepth, r.fusion]), [['sasrec-ts2', 2, null], ['sasrec-ts6', 6, null], ['sasrec-ts-add', 0, 'add']]);
    const report = fs.readFileSync((await writeReport(out)).file, 'utf8');
    assert.ok(report.includes('| data set | backbone | modality | E2E | TS n=2 | TS n=6 |'), report);
    await assert.rejects(runStudy({ dataset: 'synthetic', scale: 0.05, models: ['sasrec-ts0'], adapterDepths: [-1], out }), /adapterDepths/);
  } finally {
    if (before === undefined) delete process.env.MOREC_CACHE;
    else process.env.MOREC_CACHE = before;
  }
});
