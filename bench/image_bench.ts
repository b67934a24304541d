/**
 * Image MoRec benchmark (part of npm run bench, or alone: node dist/bench/image_bench.js): SASRec (d 64,
 * 2 blocks, 2 heads, L 10, batch 64) over a ResNet item tower (torchvision's resnet18 architecture by
 * default, from scratch) on the synthetic world's pictures, morec against the same model and loop in PyTorch
 * eager with torchvision's own ResNet (bench/image_reference.py on /usr/bin/python3), measured in the same run
 * on the same memory-mapped image store and sequences. Options: --threads N (2), --image-steps N (8 timed
 * batches after 2 warm-up), --image-encoder NAME (resnet18), --image-size N (64), --image-scale X (0.25: the
 * synthetic world's size), --image-channels-last (both sides in NHWC).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddon, Model, prepareDataset } from '../lib';
import { NativeImageTowerConfig } from '../lib/native';
import { prepareImageTower } from '../lib/image/image_tower';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const root = path.resolve(__dirname, '..', '..');
const threads = Number(arg('threads', '2'));
const steps = Number(arg('image-steps', '8'));
const encoder = arg('image-encoder', 'resnet18');
const size = Number(arg('image-size', '64'));
const scale = Number(arg('image-scale', '0.25'));
const channelsLast = process.argv.includes('--image-channels-last');
const WARMUP = 2;
const ARCH = { d: 64, blocks: 2, heads: 2, maxLen: 10, dropout: 0.1 };
const HP = { batchSize: 64, lr: 1e-3, encoderLr: 1e-4, weightDecay: 0.1 };

interface Run {
  seqPerSec: number;
  itemsPerSec?: number;
  firstBatchSeconds: number;
  tableSeconds?: number;
  distinctPerBatch?: number;
}

export async function imageBench(): Promise<void> {
  const info = loadAddon().torchInfo();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-image-bench-'));
  try {
    const data = await prepareDataset('synthetic', { minSeqLen: 5, maxLen: ARCH.maxLen, synthetic: { seed: 1, scale } });
    const prepared = await prepareImageTower(data, { encoder, size, workDir: work, channelsLast });
    const image = prepared.image as NativeImageTowerConfig;
    console.log(`\n# Image MoRec on the synthetic world (scale ${scale}): SASRec d 64, 2 blocks, 2 heads, L ${ARCH.maxLen}, batch ${HP.batchSize}; ` +
      `item tower ${prepared.label} at ${size}x${size} -> pooled -> Linear -> GELU; ${threads} threads, libtorch ${info.version}`);
    for (const l of prepared.summary) console.log(`# ${l}`);
    const seqs = data.sequences;
    console.log(`# ${seqs.users} users, ${prepared.items.numItems} items; ${steps} timed batches after ${WARMUP} warm-up ` +
      `(morec's time includes batch building and negative sampling; the reference's excludes them)`);

    // Inputs for the reference: the same image store file, the same sequences.
    const write = (name: string, a: Int32Array) => fs.writeFileSync(path.join(work, name), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    write('offsets.i32', seqs.offsets);
    write('items.i32', seqs.items);
    const storeFile = fs.readdirSync(work).map((d) => path.join(work, d, 'pixels.u8')).find((f) => fs.existsSync(f))!;
    fs.writeFileSync(path.join(work, 'meta.json'), JSON.stringify({ numItems: prepared.items.numItems, imageSize: size, pixelFile: storeFile, encoder: image, encodeBatch: image.encodeBatch ?? 64, channelsLast, ...ARCH, ...HP }));
    let ref: { torch: string; full: Run; peakRssMiB: number } | undefined;
    if (fs.existsSync('/usr/bin/python3')) {
      const r = spawnSync('/usr/bin/python3', [path.join(root, 'bench', 'image_reference.py'), '--dir', work, '--threads', String(threads), '--steps', String(steps), '--warmup', String(WARMUP), '--batch', String(HP.batchSize)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      if (r.status === 0) ref = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
      else console.error(`PyTorch image reference failed (exit ${r.status}); needs python3-torch and python3-torchvision`);
    }

    const model = Model.create({ backbone: 'sasrec', itemTower: 'image', numItems: prepared.items.numItems, ...ARCH, threads, seed: 1, image }, { items: prepared.items });
    const first = await model.trainEpoch(seqs, { ...HP, epoch: 0, maxBatches: 1 });
    await model.trainEpoch(seqs, { ...HP, epoch: 1, maxBatches: WARMUP - 1 });
    const r = await model.trainEpoch(seqs, { ...HP, epoch: 2, maxBatches: steps });
    const morec: Run = { seqPerSec: r.sequences / r.seconds, firstBatchSeconds: first.seconds };
    const t0 = process.hrtime.bigint();
    await model.itemVectors();
    morec.tableSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const rss = process.resourceUsage().maxRSS / 1024;

    const x = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? (a / b).toFixed(2) : 'n/a');
    const f = (v: number | undefined, digits: number) => (v === undefined ? '—' : v.toFixed(digits));
    const imagesPerSec = ref?.full.distinctPerBatch !== undefined ? (morec.seqPerSec / HP.batchSize) * ref.full.distinctPerBatch : undefined;
    console.log('\nimages/s = distinct items encoded per second of training (counted by the reference; morec\'s estimated from its batches/s and the ' +
      'reference\'s distinct items per batch, the batches being drawn alike). item table = every item encoded once, eval, no grad.\n');
    console.log('| implementation | train seq/s | images/s | x PyTorch | item table s | x PyTorch |');
    console.log('|---|---|---|---|---|---|');
    if (ref) console.log(`| pytorch eager ${ref.torch} (torchvision ${image.arch === "swin" ? "Swin" : "ResNet"}) | ${f(ref.full.seqPerSec, 1)} | ${f(ref.full.itemsPerSec, 0)} | 1.00 | ${f(ref.full.tableSeconds, 2)} | 1.00 |`);
    console.log(`| morec | ${f(morec.seqPerSec, 1)} | ${f(imagesPerSec, 0)} | ${x(morec.seqPerSec, ref?.full.seqPerSec)} | ${f(morec.tableSeconds, 2)} | ${x(ref?.full.tableSeconds, morec.tableSeconds)} |`);
    console.log(`\nfirst batch: morec ${f(morec.firstBatchSeconds, 2)} s, PyTorch ${f(ref?.full.firstBatchSeconds, 2)} s; ` +
      `peak RSS: morec ${rss.toFixed(0)} MiB${ref ? `, PyTorch ${ref.peakRssMiB.toFixed(0)} MiB (each its own process)` : ''}`);
    if (!ref) console.log('\nPyTorch reference unavailable (needs /usr/bin/python3 with python3-torch and python3-torchvision): no ratio printed.');
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  imageBench().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
