/**
 * npm run bench:features: the two-stage path on amazon-scientific's real titles (1,585 items).
 *  1. Feature extraction throughput (items/s) of a text encoder exported to ONNX by morec (default bert-small's
 *     architecture with the bert-base-uncased vocabulary; the weights do not change the work), with 1 and 2
 *     workers, against a plain loop on the main thread calling onnxruntime-node's run() over the same batches,
 *     measured in the same run.
 *  2. Epoch time of two-stage training (frozen features + adapter, depths 0 and 8) against end-to-end
 *     training of the same encoder on the same data (SASRec d 64, batch 128).
 * Options: --encoder NAME (a text preset; default bert-small), --threads N (default 2), --batch N (titles per
 * ONNX run, default 64), --e2e-batches N (E2E batches timed and scaled to the epoch; default 10).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareDataset } from '../lib/data/dataset';
import { extractFeatures, FeatureInputs } from '../lib/features/extract';
import { ItemStore } from '../lib/item_store';
import { Model, ModelConfig } from '../lib/model';
import { exportEncoderOnnx } from '../lib/onnx';
import { prepareTextTower } from '../lib/text/text_tower';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const root = path.resolve(__dirname, '..', '..');
const dataPath = path.join(root, '..', 'shared', 'data', 'amazon-scientific');
const vocab = path.join(root, '..', 'shared', 'vocab', 'bert-base-uncased');
const encoder = arg('encoder', 'bert-small');
const threads = Number(arg('threads', '2'));
const B = Number(arg('batch', '64'));
const e2eBatches = Number(arg('e2e-batches', '10'));

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-features-bench-'));
  const data = await prepareDataset(dataPath, { cacheDir: path.join(work, 'cache'), maxLen: 20, minSeqLen: 5 });
  const t = prepareTextTower(data, { encoder, tokenizer: vocab, maxTokens: 30, pooling: 'cls' });
  const N = t.items.numItems;
  const seqs = data.sequences;
  console.log(`data ${data.name}: ${seqs.users} users, ${N} items; encoder ${encoder} (hidden ${t.text.hidden}, ${t.text.layers} layers, vocabulary ${t.text.vocabSize}), ${threads} threads`);
  const e2eConfig: ModelConfig = { backbone: 'sasrec', numItems: N, d: 64, blocks: 2, heads: 2, maxLen: 20, itemTower: 'text', text: t.text as ModelConfig['text'], threads, seed: 1 };
  const model = Model.create(e2eConfig, { items: t.items });
  const onnx = path.join(work, 'encoder.onnx');
  const rep = exportEncoderOnnx(model, onnx);
  console.log(`exported ${onnx}: ${(rep.bytes / 1e6).toFixed(1)} MB`);
  const inputs: FeatureInputs = { kind: 'text', numItems: N, maxTokens: t.items.maxTokens, tokens: t.items.tokens, lengths: t.items.lengths, fingerprint: 'bench' };

  // 1a. A plain loop on the main thread: the same batches (length-sorted, trimmed), one session with all threads.
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const order = Array.from({ length: N }, (_, i) => i + 1).sort((a, b) => inputs.lengths[a] - inputs.lengths[b] || a - b);
  const T0 = inputs.maxTokens;
  let lagMax = 0, last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lagMax = Math.max(lagMax, now - last);
    last = now;
  }, 10);
  const p0 = performance.now();
  for (let s = 0; s < N; s += B) {
    const items = order.slice(s, s + B);
    let T = 1;
    for (const i of items) T = Math.max(T, inputs.lengths[i]);
    const ids = new BigInt64Array(items.length * T), mask = new BigInt64Array(items.length * T);
    items.forEach((i, r) => {
      for (let k = 0; k < inputs.lengths[i]; k++) {
        ids[r * T + k] = BigInt(inputs.tokens[i * T0 + k]);
        mask[r * T + k] = 1n;
      }
    });
    await session.run({ input_ids: new ort.Tensor('int64', ids, [items.length, T]), attention_mask: new ort.Tensor('int64', mask, [items.length, T]) });
  }
  const plainSeconds = (performance.now() - p0) / 1000;
  clearInterval(timer);
  const plainLag = lagMax;
  await session.release();
  const rows: { how: string; itemsPerSec: number; lagMs: number }[] = [{ how: `plain main-thread loop (1 session, ${threads} threads)`, itemsPerSec: N / plainSeconds, lagMs: plainLag }];

  // 1b. morec's extraction in workers (a fresh cache each time).
  for (const workers of [1, 2]) {
    lagMax = 0;
    last = performance.now();
    const timer2 = setInterval(() => {
      const now = performance.now();
      lagMax = Math.max(lagMax, now - last);
      last = now;
    }, 10);
    const c = await extractFeatures(onnx, inputs, path.join(work, `extract-${workers}`), { workers, threads: Math.max(1, Math.floor(threads / workers)), batchSize: B, pooling: 'cls' });
    clearInterval(timer2);
    rows.push({ how: `morec extract, ${workers} worker${workers > 1 ? 's' : ''} x ${Math.max(1, Math.floor(threads / workers))} threads`, itemsPerSec: N / c.seconds, lagMs: lagMax });
  }
  const ref = rows[0].itemsPerSec;
  console.log('\n| extraction | items/s | vs plain loop | longest main-thread timer gap ms |\n|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.how} | ${r.itemsPerSec.toFixed(1)} | ${(r.itemsPerSec / ref).toFixed(2)}x | ${r.lagMs.toFixed(0)} |`);

  // 2. Epoch time: E2E (timed over e2eBatches batches, scaled to the epoch) vs TS with the cached features.
  const c = await extractFeatures(onnx, inputs, path.join(work, 'extract-1'), { pooling: 'cls', batchSize: B });
  const features = ItemStore.fromFeatureFile({ numItems: N, dim: c.dim, file: c.file, dtype: c.dtype });
  const batches = Math.ceil(seqs.users / 128);
  const e0 = performance.now();
  await model.trainEpoch(seqs, { epoch: 0, batchSize: 128, lr: 1e-3, encoderLr: 1e-4, maxBatches: e2eBatches });
  const e2eEpoch = ((performance.now() - e0) / 1000) * (batches / Math.min(e2eBatches, batches));
  console.log(`\n| training (SASRec d 64, batch 128, ${batches} batches per epoch) | epoch s | E2E / this |\n|---|---|---|`);
  console.log(`| E2E ${encoder} (${Math.min(e2eBatches, batches)} batches timed, scaled) | ${e2eEpoch.toFixed(2)} | 1.0x |`);
  for (const depth of [0, 8]) {
    const ts = Model.create({ backbone: 'sasrec', numItems: N, d: 64, blocks: 2, heads: 2, maxLen: 20, itemTower: 'features', features: { dim: c.dim, adapterDepth: depth } as ModelConfig['features'], threads, seed: 1 }, { items: features });
    await ts.trainEpoch(seqs, { epoch: 0, batchSize: 128, lr: 1e-3 }); // warm-up
    const s0 = performance.now();
    const reps = 3;
    for (let e = 1; e <= reps; e++) await ts.trainEpoch(seqs, { epoch: e, batchSize: 128, lr: 1e-3 });
    const tsEpoch = (performance.now() - s0) / 1000 / reps;
    console.log(`| TS adapter ${depth} (full epochs) | ${tsEpoch.toFixed(3)} | ${(e2eEpoch / tsEpoch).toFixed(1)}x |`);
  }
  console.log(`| (one-off) feature extraction, 1 worker | ${c.seconds.toFixed(2)} | |`);
  fs.rmSync(work, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
