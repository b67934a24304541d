/**
 * The study that `node train.js` runs: each requested model trained to early stop on validation HR@10,
 * evaluated on test with its best weights, reported as a table and as results.json rows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from './errors';
import { prepareDataset } from './data/dataset';
import { Model, ModelConfig } from './model';
import { popularityRanks } from './popularity';
import { metrics } from './metrics';
import { fit, FitOptions } from './train/fit';

export interface ModelPreset {
  backbone: 'sasrec' | 'dssm';
  itemTower: 'id';
  paradigm: 'id' | 'e2e' | 'ts';
  config: Partial<ModelConfig>;
  train: FitOptions;
}

/** The rows of the study; MoRec presets (text, image, two-stage) join this table. */
export const MODEL_PRESETS: Record<string, ModelPreset> = {
  'sasrec-id': {
    backbone: 'sasrec',
    itemTower: 'id',
    paradigm: 'id',
    config: { d: 64, blocks: 2, heads: 2, dropout: 0.1 },
    train: { batchSize: 128, lr: 1e-3, weightDecay: 0.1 },
  },
  'dssm-id': {
    backbone: 'dssm',
    itemTower: 'id',
    paradigm: 'id',
    config: { d: 64, dssmDepth: 0 },
    train: { batchSize: 128, lr: 1e-3, weightDecay: 0.1 },
  },
};

export interface StudyOptions {
  /** 'synthetic' (the embedded default) or a path to a data set. */
  dataset?: string;
  models?: string[];
  epochs?: number;
  patience?: number;
  maxLen?: number;
  out?: string;
  seed?: number;
  threads?: number;
  scale?: number;
  /** Prepared-dataset cache folder (default $MOREC_CACHE or ~/.cache/morec); false = no cache. */
  cacheDir?: string | false;
  log?: (line: string) => void;
}

export interface ResultRow {
  model: string;
  backbone: 'sasrec' | 'dssm';
  itemTower: string;
  paradigm: 'id' | 'e2e' | 'ts';
  dataset: string;
  split: 'test';
  'HR@10': number;
  'NDCG@10': number;
  protocol: string;
  validHR10: number;
  epochs: number;
  bestEpoch: number;
  seconds: number;
  users: number;
  items: number;
  seed: number;
}

export async function runStudy(options: StudyOptions = {}): Promise<ResultRow[]> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 42;
  const maxLen = options.maxLen ?? 20;
  const models = options.models ?? Object.keys(MODEL_PRESETS);
  for (const m of models)
    if (!MODEL_PRESETS[m]) throw new MorecError('EINVAL', `Expected models from ${Object.keys(MODEL_PRESETS).join(', ')} but received '${m}'`);
  const data = await prepareDataset(options.dataset ?? 'synthetic', {
    minSeqLen: 5,
    maxLen,
    synthetic: { seed, scale: options.scale ?? 1 },
    cacheDir: options.cacheDir,
  });
  const seqs = data.sequences;
  log(`dataset ${data.name} (${data.format}): ${seqs.users} users, ${seqs.numItems} items, ${seqs.items.length} interactions (users with >= 5, last ${maxLen + 3} kept)`);
  const pop = metrics(popularityRanks(seqs, 'test'));
  log(`popularity baseline: test HR@10 ${pop['HR@10'].toFixed(4)} NDCG@10 ${pop['NDCG@10'].toFixed(4)}`);
  const rows: ResultRow[] = [];
  for (const name of models) {
    const preset = MODEL_PRESETS[name];
    const model = Model.create({
      backbone: preset.backbone,
      itemTower: preset.itemTower,
      numItems: seqs.numItems,
      numUsers: seqs.users,
      maxLen,
      seed,
      threads: options.threads,
      ...preset.config,
    });
    log(`${name}: training (early stop on valid HR@10, patience ${options.patience ?? 5})`);
    const result = await fit(model, seqs, {
      ...preset.train,
      maxEpochs: options.epochs ?? 100,
      patience: options.patience ?? 5,
      onEpoch: (e) =>
        log(
          `  epoch ${String(e.epoch + 1).padStart(3)} loss ${e.loss.toFixed(4)} valid HR@10 ${e.valid['HR@10'].toFixed(4)} NDCG@10 ${e.valid['NDCG@10'].toFixed(4)} ` +
            `(${e.trainSeconds.toFixed(1)}s + ${e.evalSeconds.toFixed(1)}s)${e.best ? ' *' : ''}`,
        ),
    });
    rows.push({
      model: name,
      backbone: preset.backbone,
      itemTower: preset.itemTower,
      paradigm: preset.paradigm,
      dataset: data.name === 'synthetic' ? `synthetic(seed=${seed},scale=${options.scale ?? 1})` : data.name,
      split: 'test',
      'HR@10': result.test['HR@10'],
      'NDCG@10': result.test['NDCG@10'],
      protocol: 'leave-one-out, full ranking over all items, history masked',
      validHR10: result.valid['HR@10'],
      epochs: result.epochs,
      bestEpoch: result.bestEpoch + 1,
      seconds: result.seconds,
      users: seqs.users,
      items: seqs.numItems,
      seed,
    });
  }
  if (options.out) {
    fs.mkdirSync(options.out, { recursive: true });
    fs.writeFileSync(path.join(options.out, 'results.json'), JSON.stringify(rows, null, 2) + '\n');
  }
  return rows;
}

export function formatTable(rows: ResultRow[]): string {
  const lines = ['| model | backbone | item tower | paradigm | HR@10 | NDCG@10 | epochs (best) | time s |', '|---|---|---|---|---|---|---|---|'];
  for (const r of rows)
    lines.push(
      `| ${r.model} | ${r.backbone} | ${r.itemTower} | ${r.paradigm} | ${r['HR@10'].toFixed(4)} | ${r['NDCG@10'].toFixed(4)} | ${r.epochs} (${r.bestEpoch}) | ${r.seconds.toFixed(1)} |`,
    );
  return lines.join('\n');
}
