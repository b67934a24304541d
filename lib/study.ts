/**
 * Studies: data sets × models × grid values, each cell a run folder (lib/run.ts) trained to early stop on
 * validation HR@10 and tested with its best weights. The best cell of each model and data set (by valid HR@10)
 * becomes a row of results.json and of the printed table. `node train.js` runs the default study.
 * A study folder holds study.json (its spec), cells/<data set>/<model>/<cell>/ and results.json; rerunning the
 * same spec into the same folder reuses finished cells and resumes unfinished ones, so a study killed at any
 * moment continues where it stopped and ends with the same summary.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MorecError } from './errors';
import { Dataset, formatLoadReport, prepareDataset } from './data/dataset';
import { ModelConfig } from './model';
import { popularityRanks } from './popularity';
import { metrics } from './metrics';
import { FitOptions } from './train/fit';
import { TextTowerOptions } from './text/text_tower';
import { ImageTowerOptions } from './image/image_tower';
import { MODELS_DIR, resolveTextEncoder } from './text/encoder';
import { onnxFileOf, runEncoderOf } from './features/feature_tower';
import { writeAtomic } from './io/safetensors';
import { DataKind, GridValues, paperGrid, ProtocolName, protocolFor } from './protocol';
import { RunOutcome, RunResults, TrainConfig, trainRun } from './run';
import { ProcessGroup } from './dist/group';

export interface ModelPreset {
  backbone: 'sasrec' | 'dssm';
  itemTower: 'id' | 'text' | 'image' | 'features';
  /** itemTower 'text': the encoder and tokenization (StudyOptions.textEncoder overrides the encoder). */
  text?: TextTowerOptions;
  /** itemTower 'image': the encoder and image size (StudyOptions.imageEncoder overrides the encoder). */
  image?: TrainConfig['image'];
  /** itemTower 'features' (two-stage): the frozen encoder and the adapter (StudyOptions.featureEncoder overrides the encoder). */
  features?: TrainConfig['features'];
  paradigm: 'id' | 'e2e' | 'ts';
  config: Partial<ModelConfig>;
  train: FitOptions;
}

// Two-stage text rows: the text rows' encoder, frozen (a preset keeps the initial weights of the study's seed, the
// same an E2E row starts from), its features extracted once with ONNX Runtime, and a trained adapter of n layers.
function tsPreset(backbone: 'sasrec' | 'dssm', adapterDepth: number, fusion?: 'add' | 'cat'): ModelPreset {
  return {
    backbone,
    itemTower: 'features',
    features: { encoder: 'bert-tiny', pooling: 'mean', adapterDepth },
    paradigm: 'ts',
    config: backbone === 'sasrec' ? { d: 64, blocks: 2, heads: 2, dropout: 0.1, ...(fusion ? { fusion } : {}) } : { d: 64, dssmDepth: 0, ...(fusion ? { fusion } : {}) },
    train: backbone === 'sasrec' ? { batchSize: 128, lr: 1e-3, weightDecay: 0.1 } : { batchSize: 512, lr: 1e-3, weightDecay: 0.1 },
  };
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
    // Batches of 512 (user, item) pairs as the official DSSM scripts; measured on the synthetic world:
    // test HR@10 0.189 (lr 1e-3) vs 0.180 (lr 3e-3).
    train: { batchSize: 512, lr: 1e-3, weightDecay: 0.1 },
  },
  // Text MoRec, end to end: the encoder is fine-tuned with the recommender (here trained from scratch, since
  // no weights can ship; --text-encoder <folder> fine-tunes a real checkpoint with the paper's [CLS] pooling).
  // A scratch encoder pools the mean of its last layer: on the synthetic world it reached valid HR@10 0.23
  // in 30 epochs where [CLS] reached 0.12 (a random encoder's [CLS] barely tells items apart at first).
  // Batches of 256 users encode each distinct title once per batch, half the encoder passes of 128 per epoch:
  // measured on the synthetic world, test HR@10 0.2390 in 122 s (256) vs 0.2426 in 172 s (128), which keeps
  // the default study, two-stage rows included, near 5 minutes.
  'sasrec-text': {
    backbone: 'sasrec',
    itemTower: 'text',
    text: { encoder: 'bert-tiny', maxTokens: 30, pooling: 'mean' },
    paradigm: 'e2e',
    config: { d: 64, blocks: 2, heads: 2, dropout: 0.1 },
    train: { batchSize: 256, lr: 2e-3, encoderLr: 2e-3, weightDecay: 0.1 },
  },
  'dssm-text': {
    backbone: 'dssm',
    itemTower: 'text',
    text: { encoder: 'bert-tiny', maxTokens: 30, pooling: 'mean' },
    paradigm: 'e2e',
    config: { d: 64, dssmDepth: 0 },
    // Batches of (user, item) pairs: each batch encodes its distinct items once, so larger batches cost fewer
    // encoder passes per epoch. Measured on the synthetic world (2 cores, shared): 2048 pairs, lr 1e-2 / 3e-3
    // reached test HR@10 0.143 in 105 s; 1024 pairs 0.141 in 147 s; 512 pairs 0.139 in 212 s (the paper's
    // 512 is in the 'paper' grid).
    train: { batchSize: 2048, lr: 1e-2, encoderLr: 3e-3, weightDecay: 0.1 },
  },
  // Image MoRec, end to end: a narrow ResNet trained from scratch on the items' pictures (32x32 on the
  // synthetic world); --image-encoder <weights or folder> fine-tunes a real ResNet/Swin. Batches of 256 users
  // encode each distinct item once per batch, so they cost half the encoder passes of 128 per epoch: measured on
  // the synthetic world, test HR@10 0.2305 in 28 s (resnet-mini, 256) vs 0.2360 in 47 s (128).
  'sasrec-image': {
    backbone: 'sasrec',
    itemTower: 'image',
    image: { encoder: 'resnet-mini' },
    paradigm: 'e2e',
    config: { d: 64, blocks: 2, heads: 2, dropout: 0.1 },
    train: { batchSize: 256, lr: 2e-3, encoderLr: 2e-3, weightDecay: 0.1 },
  },
  'dssm-image': {
    backbone: 'dssm',
    itemTower: 'image',
    image: { encoder: 'resnet-mini' },
    paradigm: 'e2e',
    config: { d: 64, dssmDepth: 0 },
    train: { batchSize: 2048, lr: 1e-2, encoderLr: 3e-3, weightDecay: 0.1 },
  },
  // Two-stage (Table 5's TS rows): the adapter over frozen text features, 0 and 8 layers; the depth series
  // (2, 6, 10, 12) comes from StudyOptions.adapterDepths.
  'sasrec-ts0': tsPreset('sasrec', 0),
  'sasrec-ts8': tsPreset('sasrec', 8),
  'dssm-ts0': tsPreset('dssm', 0),
  'dssm-ts8': tsPreset('dssm', 8),
  // ID + modality fusion over the frozen features (the study's id_plus_mo two-stage towers).
  'sasrec-ts-add': tsPreset('sasrec', 0, 'add'),
  'sasrec-ts-cat': tsPreset('sasrec', 0, 'cat'),
};

export interface StudyDataset {
  /** 'synthetic' or a path to a data set. */
  path: string;
  /** Folder and table name (default: the data set's name, plus -warmN). */
  label?: string;
  /** Warm-N: drop items with fewer than N interactions. */
  warm?: number;
  /** 'text' or 'vision' (L = 20 or 10 under the paper protocol); default: vision for H&M/Bili layouts. */
  kind?: DataKind;
}

export interface StudyModel {
  /** Row name. */
  name: string;
  /** A MODEL_PRESETS entry this model starts from. */
  preset?: string;
  config?: Partial<ModelConfig>;
  train?: Partial<TrainConfig['train']>;
  text?: TextTowerOptions;
  image?: TrainConfig['image'];
  features?: TrainConfig['features'];
  /** This model's own grid (replaces the study's). */
  grid?: GridValues | 'paper';
}

export interface StudyOptions {
  /** 'synthetic' (the embedded default) or a path to a data set. Shorthand for datasets: [dataset]. */
  dataset?: string;
  datasets?: (string | StudyDataset)[];
  /** Preset names or model specs. */
  models?: (string | StudyModel)[];
  /**
   * Values to try: { lr: [1e-3, 1e-4], d: [64, 128] } (train.* and model.* keys, short or dotted), or 'paper':
   * each model's grid from the official scripts (lib/protocol.ts PAPER_GRIDS).
   */
  grid?: GridValues | 'paper';
  /** 'morec' (default) or 'paper' (the official code's L, stopping and masking; see lib/protocol.ts). */
  protocol?: ProtocolName;
  epochs?: number;
  patience?: number;
  /** Patience growth (FitOptions.patienceGrowth; default: the protocol's). */
  patienceGrowth?: number;
  maxLen?: number;
  /** Study folder (default: none — cells go to a temporary folder). */
  out?: string;
  /** Replace a study folder that holds another spec (default: refuse it). */
  overwrite?: boolean;
  seed?: number;
  threads?: number;
  scale?: number;
  /** Text rows: a preset name from models/ (from scratch) or a Hugging Face checkpoint folder to fine-tune. */
  textEncoder?: string;
  /** Image rows: a preset name from models/ (from scratch), a torchvision/timm weights file or a Hugging Face Swin folder. */
  imageEncoder?: string;
  /** Text rows: tokenizer folder (default: the checkpoint's, or a vocabulary built from the titles). */
  tokenizer?: string;
  /**
   * Two-stage rows: the frozen encoder (an .onnx file, a folder with model.onnx, or anything textEncoder takes;
   * default: textEncoder, so TS and E2E rows share one encoder).
   */
  featureEncoder?: string;
  /**
   * Table 5's adapter-depth series: each two-stage row of the study (sasrec-ts0, ...) runs once per depth, as
   * <backbone>-ts<depth> (e.g. [2, 6, 8, 10, 12]).
   */
  adapterDepths?: number[];
  log?: (line: string) => void;
  signal?: AbortSignal;
  /**
   * Data-parallel: every run of the study trains over this process group (every rank calls runStudy with the
   * same options). Rank 0 alone writes the study folder and logs; it reads each data set first.
   */
  group?: ProcessGroup;
}

export interface ResultRow {
  model: string;
  backbone: 'sasrec' | 'dssm';
  itemTower: string;
  paradigm: 'id' | 'e2e' | 'ts';
  /** Whether the item encoder started from pretrained weights (null for ID towers). */
  pretrained: boolean | null;
  /** Parameters of the item encoder (null for ID towers). */
  encoderParameters: number | null;
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
  /** The grid values of the chosen cell ({} without a grid) and its run folder. */
  cell: Record<string, number | string | boolean>;
  runDir: string;
  /** Test metrics by target-item bucket: new (0 training interactions), cold (1-9), warm (>= 10). */
  buckets: RunResults['buckets'];
  /** Valid HR@10 of every cell tried, by cell name. */
  grid: Record<string, number>;
  /** Users whose test item is already in their history (see the protocol's masking). */
  repeatedTargets: number;
  /** What the item tower reads: 'id', 'text' or 'image' (two-stage rows: their frozen encoder's input). */
  modality?: 'id' | 'text' | 'image';
  /** Two-stage rows: the adapter's depth (null otherwise). */
  adapterDepth?: number | null;
  /** ID + modality fusion ('add', 'cat'), or null. */
  fusion?: string | null;
}

const TRAIN_KEYS = ['batchSize', 'lr', 'weightDecay', 'encoderLr', 'encoderWeightDecay', 'gradAccum', 'epochs', 'patience', 'patienceGrowth', 'loss', 'validationsPerEpoch'];

/** The cartesian product of the grid, as lists of [key, value]. */
function gridCells(grid: GridValues | undefined): [string, number | string | boolean][][] {
  let cells: [string, number | string | boolean][][] = [[]];
  for (const [key, values] of Object.entries(grid ?? {})) {
    if (!Array.isArray(values) || values.length === 0) throw new MorecError('EINVAL', `Expected a non-empty array of values for grid.${key}`);
    cells = cells.flatMap((c) => values.map((v) => [...c, [key, v] as [string, number | string | boolean]]));
  }
  return cells;
}

function cellName(cell: [string, unknown][]): string {
  return cell.length ? cell.map(([k, v]) => `${k.replace(/^(train|model)\./, '')}=${v}`).join(',').replace(/[^A-Za-z0-9=.,_+-]/g, '_') : 'default';
}

function applyCell(cfg: TrainConfig, cell: [string, number | string | boolean][]): TrainConfig {
  const out: TrainConfig = { ...cfg, model: { ...cfg.model }, train: { ...cfg.train } };
  for (const [key, v] of cell) {
    const [scope, field] = key.includes('.') ? key.split('.', 2) : [TRAIN_KEYS.includes(key) ? 'train' : key === 'maxLen' ? 'top' : 'model', key];
    if (scope === 'train') (out.train as Record<string, unknown>)[field] = v;
    else if (scope === 'model') (out.model as Record<string, unknown>)[field] = v;
    else if (scope === 'top' && field === 'maxLen') out.maxLen = v as number;
    else throw new MorecError('EINVAL', `Unknown grid key ${key} (expected train.<option>, model.<option> or maxLen)`);
  }
  return out;
}

function resolveModel(m: string | StudyModel): { name: string; preset: ModelPreset; spec: StudyModel } {
  const spec: StudyModel = typeof m === 'string' ? { name: m, preset: m } : m;
  if (typeof spec !== 'object' || spec === null || typeof spec.name !== 'string') throw new MorecError('EINVAL', `Expected a preset name or { name, preset, config, train } for a study model but received ${JSON.stringify(m)}`);
  const base = MODEL_PRESETS[spec.preset ?? spec.name];
  if (!base) throw new MorecError('EINVAL', `Expected models from ${Object.keys(MODEL_PRESETS).join(', ')} but received '${spec.preset ?? spec.name}'`);
  return { name: spec.name, preset: base, spec };
}

/** The paper's vision data sets are H&M and Bili (cover images); MIND and the Amazon sets are text data sets. */
export function dataKindOf(data: Pick<Dataset, 'format' | 'name' | 'image' | 'text'>): DataKind {
  if (data.format === 'hm' || /(^|[^a-z])(hm|h&m|bili)/i.test(data.name)) return 'vision';
  return data.image && !data.text ? 'vision' : 'text';
}

/** Whether a feature encoder reads titles (text presets, BERT/RoBERTa folders, ONNX with input_ids by name). */
function featureModality(encoder: string, tokenizer?: string): 'text' | 'image' {
  const run = onnxFileOf(encoder) ? undefined : runEncoderOf(encoder);
  if (run) return run.modality;
  const onnx = onnxFileOf(encoder);
  if (onnx) return tokenizer || (onnx.folder && ['tokenizer.json', 'vocab.txt', 'vocab.json'].some((f) => fs.existsSync(path.join(onnx.folder!, f)))) ? 'text' : 'image';
  try {
    resolveTextEncoder(encoder);
    return 'text';
  } catch {
    return 'image';
  }
}

function isPreset(encoder: string): boolean {
  return !encoder.includes('/') && fs.existsSync(path.join(MODELS_DIR, `${encoder}.json`));
}

function datasetLabel(ds: StudyDataset): string {
  const base = ds.label ?? (ds.path === 'synthetic' ? 'synthetic' : path.basename(path.resolve(ds.path)).replace(/\.[a-z]+$/, ''));
  return ds.warm && !ds.label ? `${base}-warm${ds.warm}` : base;
}

export async function runStudy(options: StudyOptions = {}): Promise<ResultRow[]> {
  const group = options.group && options.group.worldSize > 1 ? options.group : undefined;
  const lead = !group || group.rank === 0;
  const log = lead ? (options.log ?? (() => {})) : () => {};
  const seed = options.seed ?? 42;
  const datasets: StudyDataset[] = (options.datasets ?? [options.dataset ?? 'synthetic']).map((d) => (typeof d === 'string' ? { path: d } : d));
  let modelSpecs = options.models ?? Object.keys(MODEL_PRESETS);
  if (options.adapterDepths !== undefined) {
    const depths = options.adapterDepths;
    if (!Array.isArray(depths) || depths.length === 0 || depths.some((n) => !Number.isInteger(n) || n < 0 || n > 64))
      throw new MorecError('EINVAL', `Expected a non-empty array of integers in 0..64 for adapterDepths but received ${JSON.stringify(depths)}`);
    // Each two-stage row without fusion becomes one row per depth (its preset's other settings kept).
    const seen = new Set<string>();
    modelSpecs = modelSpecs.flatMap((m) => {
      const r = resolveModel(m);
      if (r.preset.itemTower !== 'features' || r.preset.config.fusion) return [m];
      return depths
        .map((n): StudyModel => ({ ...r.spec, name: `${r.preset.backbone}-ts${n}`, preset: r.spec.preset ?? r.name, features: { ...r.spec.features, adapterDepth: n } }))
        .filter((x) => !seen.has(x.name) && (seen.add(x.name), true));
    });
  }
  const models = modelSpecs.map(resolveModel);
  if (models.length === 0) throw new MorecError('EINVAL', 'Expected at least one model');
  if (options.grid !== undefined && options.grid !== 'paper') gridCells(options.grid); // checked before anything runs
  const protocolName = options.protocol ?? 'morec';
  const out = path.resolve(options.out ?? fs.mkdtempSync(path.join(os.tmpdir(), 'morec-study-')));
  // Every data set is read (or found in the cache) before the study folder is touched: a first look gives its
  // summary, the popularity baseline, and its kind (for the protocol's L).
  const probes = new Map<StudyDataset, { probe: Dataset; kind: DataKind }>();
  // Data-parallel: rank 0 prepares (and caches) every data set first; the others then read the cache.
  const key = group ? group.scope('study') : '';
  if (group && !lead) await group.share(`${key}/probed`, undefined, 24 * 3600 * 1000);
  for (const ds of datasets) {
    const probe = await prepareDataset(ds.path, { minSeqLen: 5, maxLen: options.maxLen ?? 20, ...(ds.warm ? { warm: ds.warm } : {}), synthetic: { seed, scale: options.scale ?? 1 } });
    probes.set(ds, { probe, kind: ds.kind ?? dataKindOf(probe) });
  }
  if (group && lead) await group.share(`${key}/probed`, true);
  // The study's spec decides whether this folder may be continued.
  const { log: _l, signal: _s, threads: _t, out: _o, overwrite: _w, group: _g, ...spec } = options;
  const specFile = path.join(out, 'study.json');
  if (lead && fs.existsSync(specFile)) {
    const old = fs.readFileSync(specFile, 'utf8');
    if (old !== JSON.stringify(spec, null, 2) + '\n') {
      if (!options.overwrite) throw new MorecError('EEXIST', `${out} holds a study with another spec (study.json); pass --overwrite to replace it or choose another --out`);
      fs.rmSync(path.join(out, 'cells'), { recursive: true, force: true });
    } else log(`continuing the study in ${out} (finished cells are reused, unfinished ones resumed)`);
  }
  if (lead) {
    fs.mkdirSync(out, { recursive: true });
    writeAtomic(specFile, [Buffer.from(JSON.stringify(spec, null, 2) + '\n')]);
  }

  const rows: ResultRow[] = [];
  for (const ds of datasets) {
    const label = datasetLabel(ds);
    const { probe, kind } = probes.get(ds)!;
    const seqs = probe.sequences;
    for (const line of formatLoadReport(probe.report)) log(line);
    log(`dataset ${probe.name} (${probe.format}): ${seqs.users} users, ${seqs.numItems} items, ${seqs.items.length} interactions`);
    const pop = metrics(popularityRanks(seqs, 'test'));
    log(`popularity baseline: test HR@10 ${pop['HR@10'].toFixed(4)} NDCG@10 ${pop['NDCG@10'].toFixed(4)}`);
    for (const { name, preset, spec: m } of models) {
      const has = (v: (string | null)[] | undefined) => !!v && v.some((x) => x !== null && x !== undefined);
      const featureEncoder = options.featureEncoder ?? options.textEncoder ?? m.features?.encoder ?? preset.features?.encoder ?? 'bert-tiny';
      const needsText = preset.itemTower === 'text' || (preset.itemTower === 'features' && featureModality(featureEncoder, options.tokenizer) === 'text');
      const needsImage = preset.itemTower === 'image' || (preset.itemTower === 'features' && !needsText);
      if ((needsImage && !has(probe.image)) || (needsText && !has(probe.text))) {
        log(`${name}: skipped on ${label} (the data set has no item ${needsImage ? 'images' : 'texts'})`);
        continue;
      }
      const proto = protocolFor(protocolName, preset.backbone, kind);
      let text: TextTowerOptions | undefined;
      if (preset.itemTower === 'text') {
        const encoder = options.textEncoder ?? m.text?.encoder ?? preset.text?.encoder;
        const pretrained = resolveTextEncoder(encoder ?? 'bert-tiny').weights !== undefined;
        text = { ...preset.text, ...m.text, encoder, tokenizer: options.tokenizer ?? m.text?.tokenizer ?? preset.text?.tokenizer, ...(pretrained ? { pooling: 'cls' as const } : {}) };
      }
      let image: TrainConfig['image'] | undefined;
      if (preset.itemTower === 'image') image = { ...preset.image, ...m.image, ...(options.imageEncoder ? { encoder: options.imageEncoder } : {}) };
      let features: TrainConfig['features'] | undefined;
      if (preset.itemTower === 'features') {
        const encoder = featureEncoder;
        // A pretrained encoder's features are read as the paper does ([CLS]); a scratch one's as the E2E rows (mean).
        const pretrained = !isPreset(encoder);
        features = { ...preset.features, ...m.features, encoder, ...(options.tokenizer ? { tokenizer: options.tokenizer } : {}), ...(pretrained ? { pooling: 'cls' as const } : {}) };
      }
      const base: TrainConfig = {
        dataset: ds.path,
        maxLen: options.maxLen ?? proto.maxLen,
        minSeqLen: proto.minSeqLen,
        ...(ds.warm ? { warm: ds.warm } : {}),
        seed,
        scale: options.scale ?? 1,
        model: { backbone: preset.backbone, itemTower: preset.itemTower, ...preset.config, ...m.config },
        train: {
          batchSize: 128,
          lr: 1e-3,
          weightDecay: 0.1,
          gradAccum: 1,
          ...(preset.train as Partial<TrainConfig['train']>),
          ...m.train,
          ...(proto.validationsPerEpoch > 1 ? { validationsPerEpoch: proto.validationsPerEpoch } : {}),
          epochs: options.epochs ?? m.train?.epochs ?? proto.maxEpochs,
          patience: options.patience ?? m.train?.patience ?? proto.patience,
          patienceGrowth: options.patienceGrowth ?? m.train?.patienceGrowth ?? proto.patienceGrowth,
        },
        ...(text ? { text } : {}),
        ...(image ? { image } : {}),
        ...(features ? { features } : {}),
        protocol: { name: proto.name, maskRepeatedTarget: proto.maskRepeatedTarget },
        threads: options.threads,
      };
      const gridSpec = m.grid ?? options.grid;
      const grid = gridSpec === 'paper' ? paperGrid(preset.backbone, preset.itemTower, kind) : gridSpec;
      if (gridSpec === 'paper' && !grid) log(`${name}: the official scripts have no grid for ${preset.backbone} with ${preset.itemTower} items on ${kind} data; its preset values are used`);
      const cells = gridCells(grid);
      let best: { outcome: RunOutcome; cell: [string, number | string | boolean][] } | undefined;
      const gridValues: Record<string, number> = {};
      for (const cell of cells) {
        const cfg = applyCell(base, cell);
        const runDir = path.join(out, 'cells', label, name, cellName(cell));
        log(`${name} on ${label}${cell.length ? ` [${cellName(cell)}]` : ''}: training (early stop on valid HR@10, patience ${cfg.train.patience}${cfg.train.patienceGrowth ? ` or ${cfg.train.patienceGrowth * 100}% of the epochs to the best` : ''}, at most ${cfg.train.epochs} epochs)`);
        const outcome = await trainRun(runDir, cfg, { mode: 'auto', log, signal: options.signal, ...(group ? { group } : {}) });
        gridValues[cellName(cell)] = outcome.results.valid['HR@10'];
        if (!best || outcome.results.valid['HR@10'] > best.outcome.results.valid['HR@10']) best = { outcome, cell };
      }
      const r = best!.outcome.results;
      rows.push({
        model: name,
        backbone: preset.backbone,
        itemTower: r.itemTower,
        paradigm: preset.paradigm,
        pretrained: r.pretrained,
        encoderParameters: r.encoderParameters ?? null,
        dataset: ds.label ?? (ds.path === 'synthetic' ? `synthetic(seed=${seed},scale=${options.scale ?? 1})${ds.warm ? `-warm${ds.warm}` : ''}` : label),
        split: 'test',
        'HR@10': r.test['HR@10'],
        'NDCG@10': r.test['NDCG@10'],
        protocol: r.protocol,
        validHR10: r.valid['HR@10'],
        epochs: r.epochs,
        bestEpoch: r.bestEpoch,
        seconds: r.seconds,
        users: r.users,
        items: r.items,
        seed,
        cell: Object.fromEntries(best!.cell),
        runDir: path.relative(out, best!.outcome.runDir),
        buckets: r.buckets,
        grid: gridValues,
        repeatedTargets: r.repeatedTargets,
        modality: r.modality,
        adapterDepth: r.adapterDepth ?? null,
        fusion: r.fusion ?? null,
      });
      if (lead) writeAtomic(path.join(out, 'results.json'), [Buffer.from(JSON.stringify(rows, null, 2) + '\n')]);
    }
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
