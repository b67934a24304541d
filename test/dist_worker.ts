/**
 * One rank of the data-parallel tests (test/distributed.test.ts): trains a small model for a few steps, alone or
 * joined to the process group its environment describes, then evaluates, and writes what the test compares
 * (weights, losses, validation ranks) to a JSON file. Also called in-process by the test for the one-process run.
 */
import * as fs from 'node:fs';
import { Model, ModelConfig, prepareDataset, prepareTextTower, ProcessGroup, Sequences } from '../lib';
import { chainWorld, randomStore } from './helpers';

export interface WorkerSpec {
  tower: 'id' | 'text' | 'image';
  epochs: number;
  maxBatches: number;
  batchSize: number;
  gradAccum?: number;
  /** Text tower: gradient checkpointing (re-entrant backward inside the encoder). */
  checkpointing?: boolean;
  backbone?: 'sasrec' | 'dssm';
  /** Kill this process (SIGKILL) when this rank reaches batch 2 of epoch 1 (the failure test). */
  dieAtRank?: number;
  out?: string;
}

export interface WorkerOutput {
  params: Record<string, number[]>;
  losses: number[];
  ranks: number[];
  allreduce?: unknown;
  /** Evaluation progress through the item table: items encoded so far (numItems once the table is whole). */
  tableProgress: number[];
}

async function data(spec: WorkerSpec): Promise<{ seqs: Sequences; config: ModelConfig; items?: import('../lib').ItemStore }> {
  const backbone = spec.backbone ?? 'sasrec';
  if (spec.tower === 'id') {
    const seqs = chainWorld(400, 90, 5);
    return { seqs, config: { backbone, numItems: 90, numUsers: seqs.users, d: 24, heads: 2, blocks: 2, maxLen: 10, dropout: 0, seed: 7, threads: 1 } };
  }
  if (spec.tower === 'image') {
    // A ResNet with BatchNorm on random 8x8 images: its running statistics are per-rank state.
    const seqs = chainWorld(160, 40, 6);
    const image = { arch: 'resnet', block: 'basic', depths: [1, 1], width: 4, imageSize: 8 } as ModelConfig['image'];
    return { seqs, items: randomStore(40, 8, 3), config: { backbone, numItems: 40, d: 16, heads: 2, blocks: 1, maxLen: 8, dropout: 0, seed: 7, threads: 1, itemTower: 'image', image: { ...image, encodeBatch: 8 } as ModelConfig['image'] } };
  }
  const ds = await prepareDataset('synthetic', { maxLen: 10, minSeqLen: 5, synthetic: { seed: 3, scale: 0.3 } });
  const text = prepareTextTower(ds, { encoder: 'bert-tiny', maxTokens: 12 });
  return {
    seqs: ds.sequences,
    items: text.items,
    config: { backbone, numItems: ds.sequences.numItems, numUsers: ds.sequences.users, d: 24, heads: 2, blocks: 1, maxLen: 10, dropout: 0, seed: 7, threads: 1, itemTower: 'text', text: { ...(text.text as object), hiddenDropout: 0, attentionDropout: 0, gradientCheckpointing: !!spec.checkpointing, encodeBatch: 16 } as ModelConfig['text'] },
  };
}

export async function runWorker(spec: WorkerSpec, group?: ProcessGroup): Promise<WorkerOutput> {
  const { seqs, config, items } = await data(spec);
  const model = Model.create(config, items ? { items } : {});
  if (group) await model.joinGroup(group);
  const losses: number[] = [];
  let allreduce: unknown;
  for (let epoch = 0; epoch < spec.epochs; epoch++) {
    const r = await model.trainEpoch(seqs, { epoch, batchSize: spec.batchSize, lr: 3e-3, encoderLr: 1e-3, maxBatches: spec.maxBatches, gradAccum: spec.gradAccum ?? 1, progressEvery: 1 }, (done) => {
      if (spec.dieAtRank === (group?.rank ?? 0) && epoch === 1 && done === 2) process.kill(process.pid, 'SIGKILL');
    });
    losses.push(r.loss);
    allreduce = r.allreduce;
  }
  const tableProgress: number[] = [];
  const ranks = Array.from(await model.evaluate(seqs, { split: 'valid' }, (done) => done <= seqs.numItems && tableProgress.push(done)));
  const params: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(model.parameters())) params[name] = Array.from(t.data);
  return { params, losses, ranks, allreduce, tableProgress };
}

if (require.main === module) {
  (async () => {
    const spec = JSON.parse(process.argv[2]) as WorkerSpec;
    const group = await ProcessGroup.fromEnv(process.env, { timeoutMs: Number(process.env.TEST_DIST_TIMEOUT_MS ?? 20000) });
    const out = await runWorker(spec, group);
    if (spec.out) fs.writeFileSync(`${spec.out}.${group?.rank ?? 0}.json`, JSON.stringify(out));
    group?.close();
  })().catch((e) => {
    process.stderr.write(`${e.code ?? 'ERROR'}: ${e.message}\n`);
    process.exit(1);
  });
}
