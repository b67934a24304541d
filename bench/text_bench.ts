/**
 * Text MoRec benchmark (part of npm run bench, or alone: node dist/bench/text_bench.js): SASRec (d 64,
 * 2 blocks, 2 heads, L 20, batch 64) over a BERT item tower trained from scratch on amazon-scientific's
 * titles (bert-base-uncased vocabulary, 30 tokens), morec against the same model and loop in PyTorch eager
 * (bench/text_reference.py on /usr/bin/python3), measured in the same run on the same tokens and sequences.
 * Then full fine-tuning against only the top 2 encoder layers (morec: frozen bottom cached per item).
 * Options: --threads N (2), --text-steps N (20 measured batches after 2 warm-up batches),
 * --text-encoder NAME (bert-mini), --text-data DIR, --vocab DIR.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddon, Model, prepareDataset } from '../lib';
import { NativeTextTowerConfig } from '../lib/native';
import { PreparedTextTower, prepareTextTower } from '../lib/text/text_tower';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const root = path.resolve(__dirname, '..', '..');
const shared = path.join(root, '..', 'shared');
const dataDir = path.resolve(arg('text-data', path.join(shared, 'data', 'amazon-scientific')));
const vocab = path.resolve(arg('vocab', path.join(shared, 'vocab', 'bert-base-uncased')));
const threads = Number(arg('threads', '2'));
const steps = Number(arg('text-steps', '20'));
const encoder = arg('text-encoder', 'bert-mini');
const WARMUP = 2; // batches before timing: the first one also allocates (and, with cacheFrozen, builds the cache)
const TOP = 2;
// One place for what both implementations run (the reference reads it from meta.json).
const ARCH = { d: 64, blocks: 2, heads: 2, maxLen: 20, dropout: 0.1 };
const HP = { batchSize: 64, lr: 1e-3, encoderLr: 1e-4, weightDecay: 0.1 };

interface Run {
  seqPerSec: number;
  /** distinct items encoded per second of training; only the reference counts them */
  itemsPerSec?: number;
  firstBatchSeconds: number;
  tableSeconds?: number;
}

interface Reference {
  torch: string;
  full: Run & { distinctPerBatch: number };
  top?: Run;
  peakRssMiB: number;
}

/** The prepared inputs as raw little-endian int32 arrays + meta.json, so both sides train on identical data. */
function writeInputs(dir: string, data: Awaited<ReturnType<typeof prepareDataset>>, prepared: PreparedTextTower): void {
  const write = (name: string, a: Int32Array) => fs.writeFileSync(path.join(dir, name), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  if (os.endianness() !== 'LE') throw new Error('the reference reads little-endian int32 files');
  write('tokens.i32', prepared.items.tokens);
  write('lengths.i32', prepared.items.lengths);
  write('offsets.i32', data.sequences.offsets);
  write('items.i32', data.sequences.items);
  const meta = { numItems: prepared.items.numItems, maxTokens: prepared.items.maxTokens, encoder: prepared.text, ...ARCH, ...HP };
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 1));
}

function runReference(dir: string, top: number): Reference | undefined {
  const python = '/usr/bin/python3';
  if (!fs.existsSync(python)) return undefined;
  const script = path.join(root, 'bench', 'text_reference.py');
  const r = spawnSync(python, [script, '--dir', dir, '--threads', String(threads), '--steps', String(steps), '--warmup', String(WARMUP), '--top', String(top), '--batch', String(HP.batchSize)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) {
    console.error(`PyTorch text reference failed (exit ${r.status}); is python3-torch installed?`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
}

/** Trains warm-up batches then `steps` timed ones; epochs 0, 1, 2 only reseed the shuffle and negatives. */
async function trainMorec(model: Model, seqs: Awaited<ReturnType<typeof prepareDataset>>['sequences']): Promise<Run> {
  const first = await model.trainEpoch(seqs, { ...HP, epoch: 0, maxBatches: 1 });
  await model.trainEpoch(seqs, { ...HP, epoch: 1, maxBatches: WARMUP - 1 });
  const r = await model.trainEpoch(seqs, { ...HP, epoch: 2, maxBatches: steps });
  return { seqPerSec: r.sequences / r.seconds, firstBatchSeconds: first.seconds };
}

export async function textBench(): Promise<void> {
  const info = loadAddon().torchInfo();
  const data = await prepareDataset(dataDir, { minSeqLen: 5, maxLen: ARCH.maxLen, cacheDir: false });
  const prepared = prepareTextTower(data, { encoder, tokenizer: vocab, maxTokens: 30 });
  const text = prepared.text as NativeTextTowerConfig;
  const withTop = text.layers > TOP;
  console.log(`\n# Text MoRec on ${data.name}: SASRec d 64, 2 blocks, 2 heads, L 20, batch ${HP.batchSize}; item tower ${prepared.label} ` +
    `L${text.layers}/H${text.hidden} -> [CLS] -> Linear -> GELU; ${threads} threads, libtorch ${info.version}`);
  console.log(`# ${prepared.summary}`);
  console.log(`# ${data.sequences.offsets.length - 1} users, ${prepared.items.numItems} items; ${steps} timed batches after ${WARMUP} warm-up ` +
    `(morec's time includes batch building and negative sampling; the reference's excludes them)`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-text-bench-'));
  let ref: Reference | undefined;
  try {
    writeInputs(dir, data, prepared);
    ref = runReference(dir, withTop ? TOP : 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const config = { backbone: 'sasrec' as const, itemTower: 'text' as const, numItems: prepared.items.numItems, ...ARCH, threads, seed: 1 };
  const full = Model.create({ ...config, text }, { items: prepared.items });
  const morecFull: Run = await trainMorec(full, data.sequences);
  const t0 = process.hrtime.bigint();
  await full.itemVectors();
  morecFull.tableSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const morecRssMiB = process.resourceUsage().maxRSS / 1024; // KiB on Linux; read before the top-2 model exists

  const x = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? (a / b).toFixed(2) : 'n/a');
  const f = (v: number | undefined, digits: number) => (v === undefined ? '—' : v.toFixed(digits));
  console.log('\nitems/s = distinct items encoded per second of training (inputs, positives and negatives of a batch, each encoded once); ' +
    'counted by the reference only (morec does not report per-batch item counts: —). item table = every item encoded once, eval, no grad, batches of 256.\n');
  console.log('| implementation | train seq/s | items encoded/s | x PyTorch | item table s | x PyTorch |');
  console.log('|---|---|---|---|---|---|');
  if (ref) console.log(`| pytorch eager ${ref.torch} | ${f(ref.full.seqPerSec, 1)} | ${f(ref.full.itemsPerSec, 0)} | 1.00 | ${f(ref.full.tableSeconds, 2)} | 1.00 |`);
  console.log(`| morec | ${f(morecFull.seqPerSec, 1)} | — | ${x(morecFull.seqPerSec, ref?.full.seqPerSec)} | ${f(morecFull.tableSeconds, 2)} | ${x(ref?.full.tableSeconds, morecFull.tableSeconds)} |`);
  if (ref) console.log(`\nreference: ${ref.full.distinctPerBatch.toFixed(0)} distinct items per batch on average`);
  console.log(`peak RSS after the full fine-tuning run and item table: morec ${morecRssMiB.toFixed(0)} MiB` +
    (ref ? `, PyTorch ${ref.peakRssMiB.toFixed(0)} MiB (each its own process)` : ''));

  if (withTop) {
    const topModel = Model.create({ ...config, text: { ...text, finetuneTopLayers: TOP, cacheFrozen: true } }, { items: prepared.items });
    const morecTop = await trainMorec(topModel, data.sequences);
    console.log(`\n## ${prepared.label}: fine-tuning all ${text.layers} layers vs only the top ${TOP} ` +
      `(morec: frozen bottom computed once per item and cached, the first batch builds the cache; PyTorch: bottom in eval mode under torch.no_grad() every batch)\n`);
    console.log('| fine-tuned | morec seq/s | PyTorch seq/s | morec x PyTorch | morec first batch s | PyTorch first batch s |');
    console.log('|---|---|---|---|---|---|');
    const row = (label: string, m: Run, r: Run | undefined) =>
      console.log(`| ${label} | ${f(m.seqPerSec, 1)} | ${f(r?.seqPerSec, 1)} | ${x(m.seqPerSec, r?.seqPerSec)} | ${f(m.firstBatchSeconds, 2)} | ${f(r?.firstBatchSeconds, 2)} |`);
    row(`all ${text.layers} layers`, morecFull, ref?.full);
    row(`top ${TOP} (morec cached)`, morecTop, ref?.top);
    console.log(`\nmorec top-${TOP} cached / full: ${x(morecTop.seqPerSec, morecFull.seqPerSec)}x (goal >= 3x)` +
      (ref?.top ? `; PyTorch top-${TOP} / full: ${x(ref.top.seqPerSec, ref.full.seqPerSec)}x` : ''));
  } else {
    console.log(`\n(${prepared.label} has ${text.layers} layers: no top-${TOP} comparison)`);
  }
  if (!ref) console.log('\nPyTorch reference unavailable (needs /usr/bin/python3 with python3-torch): no ratio printed.');
}

if (require.main === module) {
  textBench().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
