/**
 * npm run bench: SASRec IDRec training throughput and full-ranking evaluation time on amazon-toys
 * (d 64, 2 blocks, 2 heads, L 50, batch 128), morec against the same model and loop in PyTorch eager
 * (bench/sasrec_reference.py on /usr/bin/python3, the same libtorch generation), measured in the same run.
 * Options: --threads N (default 2), --steps N (batches per epoch; 0 = full epoch), --data FILE.
 * Then the text MoRec benchmark (bench/text_bench.ts; its options: --text-steps, --text-encoder) and the image
 * MoRec benchmark (bench/image_bench.ts; --image-steps, --image-encoder, --image-size, --image-scale).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAddon, loadRaw, metrics, Model, Sequences } from '../lib';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const root = path.resolve(__dirname, '..', '..');
const data = path.resolve(arg('data', path.join(root, '..', 'shared', 'data', 'amazon-toys', 'Toys_and_Games.txt')));
const threads = Number(arg('threads', '2'));
const steps = Number(arg('steps', '0'));

interface Row {
  impl: string;
  seqPerSec: number;
  evalSeconds: number;
  hr: number;
}

function runReference(): Row | undefined {
  const python = '/usr/bin/python3';
  if (!fs.existsSync(python)) return undefined;
  const script = path.join(root, 'bench', 'sasrec_reference.py');
  const r = spawnSync(python, [script, '--data', data, '--threads', String(threads), '--steps', String(steps), '--eval', '1'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) {
    console.error(`PyTorch reference failed (exit ${r.status}); is python3-torch installed?`);
    return undefined;
  }
  const line = r.stdout.trim().split('\n').pop() ?? '{}';
  const j = JSON.parse(line);
  return { impl: `pytorch eager ${j.torch}`, seqPerSec: j.seqPerSec, evalSeconds: j.evalSeconds, hr: j['HR@10'] };
}

async function runMorec(sequenceLayout: 'packed' | 'padded'): Promise<Row> {
  const raw = await loadRaw(data);
  const sequences = new Sequences(raw.offsets, raw.items, raw.itemIds.length);
  const model = Model.create({ backbone: 'sasrec', numItems: sequences.numItems, d: 64, blocks: 2, heads: 2, maxLen: 50, dropout: 0.1, threads, seed: 1, sequenceLayout });
  const r = await model.trainEpoch(sequences, { batchSize: 128, lr: 1e-3, weightDecay: 0.1, maxBatches: steps });
  const t0 = process.hrtime.bigint();
  const ranks = await model.evaluate(sequences, { split: 'valid' });
  const evalSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { impl: `morec ${sequenceLayout}`, seqPerSec: r.sequences / r.seconds, evalSeconds, hr: metrics(ranks)['HR@10'] };
}

async function main() {
  const info = loadAddon().torchInfo();
  console.log(`# SASRec IDRec on ${path.basename(data)}: d 64, 2 blocks, 2 heads, L 50, batch 128, ${threads} threads, libtorch ${info.version}`);
  console.log(`# training: ${steps ? `${steps} batches` : 'one full epoch'} (morec's time includes batch building and negative sampling; the reference's excludes its data preparation)`);
  const reference = runReference();
  const rows: Row[] = [];
  if (reference) rows.push(reference);
  rows.push(await runMorec('packed'));
  rows.push(await runMorec('padded'));
  console.log('');
  console.log('| implementation | train seq/s | x PyTorch | full-ranking eval s | x PyTorch | valid HR@10 after 1 epoch |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    const tr = reference ? (r.seqPerSec / reference.seqPerSec).toFixed(2) : 'n/a';
    const ev = reference ? (reference.evalSeconds / r.evalSeconds).toFixed(2) : 'n/a';
    console.log(`| ${r.impl} | ${r.seqPerSec.toFixed(0)} | ${tr} | ${r.evalSeconds.toFixed(2)} | ${ev} | ${r.hr.toFixed(4)} |`);
  }
  if (!reference) console.log('\nPyTorch reference unavailable (needs /usr/bin/python3 with python3-torch): no ratio printed.');
  // Text MoRec in its own process, so its peak RSS is the text run's alone (it takes the same options).
  const text = spawnSync(process.execPath, [path.join(__dirname, 'text_bench.js'), ...process.argv.slice(2)], { stdio: 'inherit' });
  if (text.status !== 0) throw new Error(`text benchmark failed (exit ${text.status})`);
  // Image MoRec likewise in its own process (options --image-steps, --image-encoder, --image-size, --image-scale).
  const image = spawnSync(process.execPath, [path.join(__dirname, 'image_bench.js'), ...process.argv.slice(2)], { stdio: 'inherit' });
  if (image.status !== 0) throw new Error(`image benchmark failed (exit ${image.status})`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
