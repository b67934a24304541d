/**
 * A run: one model trained to early stop in its own folder. `morec train` and every study cell are runs.
 *   config.json    what was asked (the config below, the model's full config, the data set's path and fingerprint)
 *   metrics.jsonl  one line per epoch
 *   checkpoint/    the best weights (for eval and serving)
 *   last/          the resumable state after the latest epoch (weights, optimizer, best weights, fit state)
 *   results.json   valid/test metrics of the best epoch, per-bucket test metrics, the protocol
 * Everything is validated and prepared before the folder is touched; a run folder is never reused silently.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readManifest } from './checkpoint';
import { Dataset, formatLoadReport, prepareDataset } from './data/dataset';
import { MorecError, toMorecError } from './errors';
import { ProcessGroup } from './dist/group';
import { writeAtomic } from './io/safetensors';
import { Metrics } from './metrics';
import { Model, ModelConfig } from './model';
import { NativeModelConfig } from './native';
import { bucketMetrics, BucketMetrics } from './buckets';
import { describeProtocol, Protocol } from './protocol';
import { fit, FitState } from './train/fit';
import { prepareTextTower, TextTowerOptions } from './text/text_tower';
import { encoderParameterCount } from './text/encoder';
import { DroppedImages, ImageTowerOptions, imageTowerOrDropped, prepareImageTower, PreparedImageTower } from './image/image_tower';
import { featureTowerOrDropped, FeatureTowerOptions, prepareFeatureTower, PreparedFeatureTower } from './features/feature_tower';

export interface TrainConfig {
  name?: string;
  dataset: string;
  maxLen: number;
  minSeqLen: number;
  /** Keep duplicate interactions (same user, item and timestamp) instead of dropping them. */
  keepDuplicates?: boolean;
  /** Warm-N: drop items with fewer than N interactions (the paper's Table 3). */
  warm?: number;
  seed: number;
  scale: number;
  model: Partial<ModelConfig> & { backbone: 'sasrec' | 'dssm' };
  train: {
    batchSize: number;
    lr: number;
    weightDecay: number;
    encoderLr?: number;
    encoderWeightDecay?: number;
    epochs: number;
    patience: number;
    /** Patience grows with the run (FitOptions.patienceGrowth; default 0.25, 0 = fixed). */
    patienceGrowth?: number;
    gradAccum: number;
    /** 'bce' (one sampled negative per position) or 'inbatch' (in-batch softmax with logQ correction). */
    loss?: 'bce' | 'inbatch';
    /** Validations per epoch (patience counts validations). */
    validationsPerEpoch?: number;
  };
  /** itemTower 'text': encoder, tokenizer and tokenization (TextTowerOptions). */
  text?: TextTowerOptions;
  /** itemTower 'image': encoder, image size and normalization, missing-image policy (ImageTowerOptions). */
  image?: Omit<ImageTowerOptions, 'onProgress' | 'signal' | 'log'>;
  /** itemTower 'features' (two-stage): the frozen encoder, its inputs, the adapter depth (FeatureTowerOptions). */
  features?: Omit<FeatureTowerOptions, 'onProgress' | 'signal' | 'log' | 'seed'>;
  /** Evaluation protocol details beyond L and the minimum length (see lib/protocol.ts). */
  protocol?: Pick<Protocol, 'name' | 'maskRepeatedTarget'>;
  threads?: number;
}

export interface RunConfigFile extends TrainConfig {
  name: string;
  model: NativeModelConfig & { backbone: 'sasrec' | 'dssm' };
  dataFingerprint: string;
  /** The data set as an absolute path ('synthetic' stays as it is). */
  datasetPath: string;
  /** What decides the outcome (the config without threads and name, the data set path resolved): a study cell is reused only when it matches. */
  outcomeKey: string;
  /** Items removed from the data set because they have no usable image (image.missingImage 'drop'). */
  droppedItems?: { ids: string[]; reason: string };
}

export interface RunResults {
  name: string;
  dataset: string;
  fingerprint: string;
  /** 'id', or the text tower's label, e.g. 'bert-small(scratch)'. */
  itemTower: string;
  pretrained: boolean | null;
  /** Parameters of the item encoder (text towers; null for ID towers). */
  encoderParameters: number | null;
  bestEpoch: number;
  epochs: number;
  valid: Metrics;
  test: Metrics;
  /** Test metrics of users whose target is a new (0 training interactions), cold (1-9) or warm (>= 10) item. */
  buckets: BucketMetrics;
  seconds: number;
  protocol: string;
  /** Users whose test item is already in their history (a miss under maskRepeatedTarget, a near-certain hit otherwise). */
  repeatedTargets: number;
  users: number;
  items: number;
  /** What the item tower reads: 'id', 'text' or 'image' (two-stage towers: their frozen encoder's input). */
  modality: 'id' | 'text' | 'image';
  /** Two-stage towers: the adapter's depth (null otherwise). */
  adapterDepth: number | null;
  /** ID + modality fusion ('add', 'cat'), or null. */
  fusion: string | null;
}

/** How long the other ranks of a data-parallel run wait for rank 0's plan and data (preparation may take hours; a rank 0 that dies ends the wait at once). */
const DIST_WAIT_MS = 24 * 3600 * 1000;

/** The files morec writes in a run folder (overwrite removes exactly these). */
export const RUN_FILES = ['config.json', 'metrics.jsonl', 'results.json', 'checkpoint', 'last'];

export type RunMode = 'new' | 'resume' | 'overwrite' | 'auto';

export interface RunOptions {
  /**
   * 'new' (default): refuse a folder that holds a run; 'resume': continue it from last/; 'overwrite': replace it;
   * 'auto' (study cells): a finished run with the same config is reused, an unfinished one resumed, a run
   * whose config differs refused.
   */
  mode?: RunMode;
  /** A dropped duplicate or a guessed header is an error. */
  strict?: boolean;
  signal?: AbortSignal;
  log?: (line: string) => void;
  onBatch?: (epoch: number, done: number, total: number, loss: number) => void;
  onLoad?: (fraction: number, what: string) => void;
  /** Errors in the given options are EUSAGE (command-line usage) rather than EINVAL. */
  usage?: boolean;
  /**
   * Data-parallel training over this process group (every rank calls trainRun with the same arguments). Rank 0
   * decides the plan (new, resumed or reused run; the config), prepares the data first (the others then find it
   * cached and check they hold the same), and alone writes the run folder, logs and reports progress.
   */
  group?: ProcessGroup;
}

/** What rank 0 decided, for the other ranks of a data-parallel run. */
interface RunPlan {
  cfg: TrainConfig;
  resume: boolean;
  dropItems?: { ids: string[]; reason: string };
  reused?: RunResults;
}

export interface RunOutcome {
  runDir: string;
  results: RunResults;
  /** 'trained' | 'resumed' | 'reused' (a finished run with the same config). */
  how: 'trained' | 'resumed' | 'reused';
}

export function readJson<T>(file: string, what: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MorecError(code === 'ENOENT' ? 'ENOENT' : 'EIO', `${file}: cannot read ${what} (${code})`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new MorecError('EFORMAT', `${file}: ${what} is not valid JSON (${(e as Error).message})`);
  }
}

/** The dataset-preparation options of a config (what its fingerprint depends on). */
export function prepareOptionsOf(cfg: Pick<TrainConfig, 'maxLen' | 'minSeqLen' | 'keepDuplicates' | 'warm' | 'seed' | 'scale'>) {
  return {
    maxLen: cfg.maxLen,
    minSeqLen: cfg.minSeqLen,
    keepDuplicates: cfg.keepDuplicates ?? false,
    ...(cfg.warm ? { warm: cfg.warm } : {}),
    synthetic: { seed: cfg.seed, scale: cfg.scale },
  };
}

/** The parts of a config that decide a run's outcome (threads and the name do not), as one string. */
function outcomeKey(cfg: TrainConfig): string {
  const { threads: _t, name: _n, ...rest } = cfg;
  const sorted = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => [k, sorted((v as Record<string, unknown>)[k])])) : v;
  return JSON.stringify(sorted({ ...rest, dataset: cfg.dataset === 'synthetic' ? 'synthetic' : path.resolve(cfg.dataset) }));
}

/** Trains (or resumes, or reuses) the run in `runDir` with config `cfg`. */
export async function trainRun(runDir: string, cfg: TrainConfig, options: RunOptions = {}): Promise<RunOutcome> {
  const group = options.group && options.group.worldSize > 1 ? options.group : undefined;
  if (!group) return trainRunOn(runDir, cfg, options);
  try {
    return await trainRunOn(runDir, cfg, { ...options, group });
  } catch (e) {
    // The other ranks wait for this one in a collective: their errors will quote why it stopped.
    const err = toMorecError(e);
    if (err.code !== 'EDIST') group.recordFailure(`${err.code}: ${err.message}`);
    throw e;
  }
}

async function trainRunOn(runDir: string, cfg: TrainConfig, options: RunOptions): Promise<RunOutcome> {
  const mode = options.mode ?? 'new';
  const group = options.group;
  // Rank 0 leads: it alone reads and writes the run folder, logs and reports progress.
  const lead = !group || group.rank === 0;
  const log = lead ? (options.log ?? (() => {})) : () => {};
  const onLoad = lead ? options.onLoad : undefined;
  const key = group ? group.scope('run') : '';
  const asUsage = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      if (options.usage && e instanceof MorecError && e.code === 'EINVAL') throw new MorecError('EUSAGE', e.message, { cause: e });
      throw e;
    }
  };
  const name = path.basename(runDir);
  const existing = lead && fs.existsSync(runDir) ? fs.readdirSync(runDir).filter((f) => RUN_FILES.includes(f)) : [];
  const resumable = lead && fs.existsSync(path.join(runDir, 'last', 'checkpoint.json'));
  let stored: RunConfigFile | undefined;
  let overwrite = mode === 'overwrite';
  if (!lead) {
    // The plan rank 0 made: the config (a resumed run's stored one), and whether the run resumes or was reused.
    const plan = await group!.share<RunPlan>(`${key}/plan`, undefined, DIST_WAIT_MS);
    if (plan.reused) return { runDir, results: plan.reused, how: 'reused' };
    cfg = plan.cfg;
    if (plan.resume) stored = { droppedItems: plan.dropItems } as RunConfigFile;
  } else if (mode === 'resume') {
    if (!resumable) throw new MorecError('EUSAGE', `${runDir}: no run to resume here (last/checkpoint.json is missing; a run becomes resumable after its first epoch)`);
    stored = readJson<RunConfigFile>(path.join(runDir, 'config.json'), "the run's config");
    cfg = { ...stored, dataset: stored.datasetPath ?? stored.dataset, threads: cfg.threads ?? stored.threads };
  } else if (mode === 'auto' && existing.length) {
    const old = fs.existsSync(path.join(runDir, 'config.json')) ? readJson<RunConfigFile>(path.join(runDir, 'config.json'), "the run's config") : undefined;
    const same = old && old.outcomeKey === outcomeKey(cfg);
    if (old && !same) throw new MorecError('EEXIST', `${runDir} holds a run with another config; remove it or choose another folder`);
    if (same && fs.existsSync(path.join(runDir, 'results.json'))) {
      const results = readJson<RunResults>(path.join(runDir, 'results.json'), "the run's results");
      log(`${name}: finished earlier (${runDir}); reusing its results`);
      if (group) await group.share<RunPlan>(`${key}/plan`, { cfg, resume: false, reused: results });
      return { runDir, results, how: 'reused' };
    }
    if (same && resumable) {
      stored = old;
      cfg = { ...old!, dataset: old!.datasetPath ?? old!.dataset, threads: cfg.threads ?? old!.threads };
    } else overwrite = true; // killed before its first epoch ended: nothing to keep
  } else if (existing.length && mode === 'new') {
    throw new MorecError('EEXIST', `${runDir} already holds a run (${existing.join(', ')}); pass --resume to continue it or --overwrite to replace it`);
  }

  if (lead && group) await group.share<RunPlan>(`${key}/plan`, { cfg, resume: !!stored, ...(stored?.droppedItems ? { dropItems: stored.droppedItems } : {}) });
  // The data set, item inputs and feature caches are prepared by rank 0 first; the other ranks then find them
  // in the cache (nothing is prepared twice at once) and must arrive at the same data.
  if (group && !lead) await group.share<{ fingerprint: string }>(`${key}/prepared`, undefined, DIST_WAIT_MS);

  // Everything is validated and prepared before the run folder is touched.
  const prepare = { ...prepareOptionsOf(cfg), strict: options.strict ?? false, onProgress: onLoad };
  let dropItems = stored?.droppedItems;
  let data: Dataset = await prepareDataset(cfg.dataset, { ...prepare, ...(dropItems ? { dropItems } : {}) });
  const text = cfg.model.itemTower === 'text' ? asUsage(() => prepareTextTower(data, cfg.text)) : undefined;
  // Image and two-stage towers may find items without a usable image (missingImage 'drop'): the data set is
  // then prepared again without those items (the load report says so) and the tower built on it.
  let image: PreparedImageTower | undefined;
  let features: PreparedFeatureTower | undefined;
  const onImages = onLoad ? (done: number, total: number) => onLoad(done / total, 'images') : undefined;
  const modality = (d: Dataset): Promise<PreparedImageTower | PreparedFeatureTower | DroppedImages> =>
    cfg.model.itemTower === 'image'
      ? imageTowerOrDropped(d, { ...cfg.image, signal: options.signal, log, onProgress: onImages })
      : featureTowerOrDropped(d, { ...cfg.features, seed: cfg.seed, threads: cfg.features?.threads ?? cfg.threads, signal: options.signal, log, onProgress: onLoad ? (done, total) => onLoad(done / total, 'features') : undefined });
  if (cfg.model.itemTower === 'image' || cfg.model.itemTower === 'features') {
    let r = await modality(data);
    if ('dropped' in r) {
      for (const line of r.summary) log(line);
      dropItems = { ids: r.dropped, reason: `no usable image, missingImage 'drop'; listed in ${r.reportFile}` };
      data = await prepareDataset(cfg.dataset, { ...prepare, dropItems });
      r = await modality(data);
      if ('dropped' in r) throw new MorecError('EINVAL', `${cfg.dataset}: ${r.dropped.length} items still have no usable image after removing the others (see ${r.reportFile})`);
    }
    if ('image' in r) image = r;
    else features = r;
  }
  for (const line of formatLoadReport(data.report)) log(line);
  const seqs = data.sequences;
  if (group) {
    const prepared = await group.share(`${key}/prepared`, lead ? { fingerprint: data.fingerprint } : undefined);
    if (prepared.fingerprint !== data.fingerprint)
      throw new MorecError('EMISMATCH', `${cfg.dataset}: rank ${group.rank} prepared data with fingerprint ${data.fingerprint.slice(0, 12)}… but rank 0 has ${prepared.fingerprint.slice(0, 12)}…; every rank must train on the same data`);
  }
  if (lead && stored && stored.dataFingerprint !== data.fingerprint)
    throw new MorecError('EMISMATCH', `${cfg.dataset}: the data set changed since the run started (fingerprint ${data.fingerprint.slice(0, 12)}… vs ${stored.dataFingerprint.slice(0, 12)}… in config.json); refusing to resume on other data`);
  log(`dataset ${data.name}: ${seqs.users} users, ${seqs.numItems} items; run folder ${runDir}`);
  if (text) log(text.summary);
  if (image) for (const line of image.summary) log(line);
  if (features) for (const line of features.summary) log(line);
  const tower = text ?? image ?? features;
  const items = text?.items ?? image?.items ?? features?.items;
  // Data-parallel on CUDA: each process of a machine on its own device, cuda:<LOCAL_RANK>.
  const device = group && cfg.model.device?.startsWith('cuda') ? { device: `cuda:${group.localRank}` } : {};
  let model: Model;
  let state: FitState | undefined;
  if (stored && lead) {
    const loaded = await Model.load(path.join(runDir, 'last'), { ...(cfg.threads ? { threads: cfg.threads } : {}), ...device }, { items, restoreBest: true });
    model = loaded.model;
    state = (loaded.info.trainingState as { fit?: FitState }).fit;
    if (!state) throw new MorecError('EFORMAT', `${path.join(runDir, 'last')}: the checkpoint holds no training state to resume from`);
    log(`resuming ${name} after epoch ${state.epochs}${state.stopped ? ' (training had finished; testing)' : ''}`);
  } else {
    model = asUsage(() =>
      Model.create(
        {
          ...cfg.model,
          ...(text ? { text: text.text as ModelConfig['text'] } : {}),
          ...(image ? { image: image.image as ModelConfig['image'] } : {}),
          ...(features ? { features: features.features as ModelConfig['features'] } : {}),
          numItems: seqs.numItems,
          numUsers: seqs.users,
          maxLen: cfg.maxLen,
          seed: cfg.seed,
          threads: cfg.threads,
          ...device,
        },
        { items },
      ),
    );
    if (lead && tower && 'weights' in tower && tower.weights) {
      const report = model.loadEncoderWeights(tower.weights);
      const ignored = report.ignored.length ? `: ${report.ignored.slice(0, 4).join(', ')}${report.ignored.length > 4 ? ', ...' : ''}` : '';
      log(`loaded ${report.loaded} encoder tensors from ${tower.weights} (ignored ${report.ignored.length}${ignored})`);
    }
  }

  if (group) {
    // Every rank takes rank 0's weights, optimizer state and best weights (fresh, resumed or pretrained), and
    // where the run stands.
    await model.joinGroup(group);
    state = (await group.share(`${key}/state`, lead ? { state: state ?? null } : undefined)).state ?? undefined;
    log(`data-parallel: ${group.worldSize} processes (${group.backend}), each training 1/${group.worldSize} of every batch of ${cfg.train.batchSize}`);
  }

  // From here on the run folder is written (by rank 0 alone).
  if (overwrite && lead) for (const f of existing) fs.rmSync(path.join(runDir, f), { recursive: true, force: true });
  if (lead) fs.mkdirSync(runDir, { recursive: true });
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  if (!lead) {
    // nothing to write
  } else if (stored) {
    // Epochs logged after the last whole checkpoint are run again.
    const kept = fs.existsSync(metricsFile) ? fs.readFileSync(metricsFile, 'utf8').split('\n').filter(Boolean).slice(0, state!.epochs) : [];
    writeAtomic(metricsFile, [Buffer.from(kept.map((l) => l + '\n').join(''))]);
  } else {
    const runConfig: RunConfigFile = {
      ...cfg,
      name,
      model: model.config as RunConfigFile['model'],
      dataFingerprint: data.fingerprint,
      datasetPath: cfg.dataset === 'synthetic' ? 'synthetic' : path.resolve(cfg.dataset),
      outcomeKey: outcomeKey(cfg),
      ...(dropItems ? { droppedItems: dropItems } : {}),
    };
    writeAtomic(path.join(runDir, 'config.json'), [Buffer.from(JSON.stringify(runConfig, null, 2) + '\n')]);
    writeAtomic(metricsFile, [Buffer.alloc(0)]);
  }
  const mask = cfg.protocol?.maskRepeatedTarget ? { maskRepeatedTarget: true } : {};
  const result = await fit(model, seqs, {
    batchSize: cfg.train.batchSize,
    lr: cfg.train.lr,
    weightDecay: cfg.train.weightDecay,
    ...(cfg.train.encoderLr !== undefined ? { encoderLr: cfg.train.encoderLr } : {}),
    ...(cfg.train.encoderWeightDecay !== undefined ? { encoderWeightDecay: cfg.train.encoderWeightDecay } : {}),
    gradAccum: cfg.train.gradAccum,
    ...(cfg.train.loss ? { loss: cfg.train.loss } : {}),
    ...(cfg.train.validationsPerEpoch ? { validationsPerEpoch: cfg.train.validationsPerEpoch } : {}),
    maxEpochs: cfg.train.epochs,
    patience: cfg.train.patience,
    ...(cfg.train.patienceGrowth !== undefined ? { patienceGrowth: cfg.train.patienceGrowth } : {}),
    evaluate: mask,
    resume: state,
    signal: options.signal,
    onBatch: lead ? options.onBatch : undefined,
    onEpoch: (e) => {
      if (!lead) return;
      const line = { epoch: e.epoch + 1, ...(e.part !== undefined ? { part: e.part + 1 } : {}), loss: e.loss, 'valid HR@10': e.valid['HR@10'], 'valid NDCG@10': e.valid['NDCG@10'], trainSeconds: e.trainSeconds, evalSeconds: e.evalSeconds, best: e.best };
      fs.appendFileSync(metricsFile, JSON.stringify(line) + '\n');
      log(`  epoch ${String(e.epoch + 1).padStart(3)}${e.part !== undefined ? `.${e.part + 1}` : ''} loss ${e.loss.toFixed(4)} valid HR@10 ${e.valid['HR@10'].toFixed(4)} NDCG@10 ${e.valid['NDCG@10'].toFixed(4)} (${e.trainSeconds.toFixed(1)}s + ${e.evalSeconds.toFixed(1)}s)${e.best ? ' *' : ''}`);
    },
    onBest: (e) => (lead ? model.save(path.join(runDir, 'checkpoint'), { trainingState: { epoch: e.epoch + 1 }, metrics: { valid: e.valid } }) : undefined),
    // The resumable state: this epoch's weights and optimizer, the best weights so far, where the run stands.
    onState: (s, e) => (lead ? model.save(path.join(runDir, 'last'), { trainingState: { fit: s }, metrics: { valid: e.valid }, best: e.best ? 'current' : 'keep' }) : undefined),
  });
  const results: RunResults = {
    name,
    dataset: data.name,
    fingerprint: data.fingerprint,
    itemTower: tower ? tower.label + (cfg.model.fusion && cfg.model.fusion !== 'none' ? ` + ID (${cfg.model.fusion})` : '') : 'id',
    pretrained: tower ? tower.pretrained : null,
    encoderParameters: model.config.text ? encoderParameterCount(model.config.text) : image ? imageEncoderParameters(model) : null,
    bestEpoch: result.bestEpoch + 1,
    epochs: result.epochs,
    valid: result.valid,
    test: result.test,
    buckets: bucketMetrics(data, result.testRanks, 'test'),
    seconds: result.seconds,
    protocol: describeProtocol({ name: cfg.protocol?.name ?? 'morec', maxLen: cfg.maxLen, minSeqLen: cfg.minSeqLen, maskRepeatedTarget: !!cfg.protocol?.maskRepeatedTarget, warm: cfg.warm }),
    repeatedTargets: seqs.repeatedTargetUsers('test').length,
    users: seqs.users,
    items: seqs.numItems,
    modality: text ? 'text' : image ? 'image' : features ? features.cache.kind : 'id',
    adapterDepth: model.config.features ? model.config.features.adapterDepth : null,
    fusion: model.config.fusion && model.config.fusion !== 'none' ? model.config.fusion : null,
  };
  if (lead) writeAtomic(path.join(runDir, 'results.json'), [Buffer.from(JSON.stringify(results, null, 2) + '\n')]);
  return { runDir, results, how: stored ? 'resumed' : 'trained' };
}

/** Trainable-or-frozen weights of the image encoder (BatchNorm running statistics are state, not parameters). */
function imageEncoderParameters(model: Model): number {
  let n = 0;
  for (const [name, t] of Object.entries(model.parameters()))
    if (name.startsWith('item_tower.encoder.') && !/running_(mean|var)$/.test(name)) n += t.data.length;
  return n;
}

/** The epochs of the last whole checkpoint of a run, for messages after an interruption. */
export function lastCheckpointEpochs(runDir: string): number | undefined {
  if (!fs.existsSync(path.join(runDir, 'last', 'checkpoint.json'))) return undefined;
  return (readManifest(path.join(runDir, 'last')).trainingState as { fit?: FitState }).fit?.epochs;
}

export interface OpenRunOptions {
  /** The data set (default: the run's). */
  dataset?: string;
  /** Open it even when the data set's fingerprint differs from the run's or none is recorded (warned through `warn`). */
  force?: boolean;
  threads?: number;
  /** Where warnings go (default: process.emitWarning). */
  warn?: (message: string) => void;
}

export interface OpenedRun {
  model: Model;
  data: Dataset;
  /** The run's config.json (empty for a bare checkpoint folder). */
  runConfig: Partial<RunConfigFile>;
  checkpointDir: string;
}

/**
 * A run folder (its best checkpoint) or a bare checkpoint folder, loaded for inference with the data it was
 * trained on: the data set prepared again with the run's options and checked against its fingerprint, and the
 * item tower's inputs (tokens, image store, feature cache) prepared as the run prepared them. No optimizer
 * state is read. Used by `morec eval` and by the serving Recommender.
 */
export async function openRun(dir: string, options: OpenRunOptions = {}): Promise<OpenedRun> {
  const runDir = path.resolve(dir);
  if (!fs.existsSync(runDir)) throw new MorecError('ENOENT', `${runDir}: no such run or checkpoint folder`);
  const warn = options.warn ?? ((m: string) => process.emitWarning(m, { code: 'MOREC_DATA' }));
  const checkpointDir = fs.existsSync(path.join(runDir, 'checkpoint', 'checkpoint.json')) ? path.join(runDir, 'checkpoint') : runDir;
  const configFile = path.join(runDir, 'config.json');
  const runConfig: Partial<RunConfigFile> = fs.existsSync(configFile) ? readJson<Partial<RunConfigFile>>(configFile, "the run's config") : {};
  const dataset = options.dataset ?? runConfig.datasetPath ?? runConfig.dataset;
  if (!dataset) throw new MorecError('EUSAGE', `${runDir}: no config.json naming the dataset; pass --dataset`);
  const data = await prepareDataset(dataset, {
    maxLen: runConfig.maxLen ?? 20,
    minSeqLen: runConfig.minSeqLen ?? 5,
    keepDuplicates: runConfig.keepDuplicates ?? false,
    ...(runConfig.warm ? { warm: runConfig.warm } : {}),
    ...(runConfig.droppedItems ? { dropItems: runConfig.droppedItems } : {}),
    synthetic: { seed: runConfig.seed ?? 42, scale: runConfig.scale ?? 1 },
  });
  if (runConfig.dataFingerprint && runConfig.dataFingerprint !== data.fingerprint) {
    const what = `the run was trained on data with fingerprint ${runConfig.dataFingerprint.slice(0, 12)}… but '${dataset}' prepares ${data.fingerprint.slice(0, 12)}…`;
    if (!options.force) throw new MorecError('EMISMATCH', `${what}; refusing to use other data (pass --force, or force: true, to do it anyway)`);
    warn(`${what}; the results are NOT on the run's data`);
  } else if (!runConfig.dataFingerprint) {
    if (!options.force) throw new MorecError('EMISMATCH', `${configFile}: no data fingerprint recorded, so the data cannot be checked; pass --force (force: true) to use the data anyway`);
    warn(`no data fingerprint recorded in ${configFile}; the data set is not checked`);
  }
  // A text tower reads the items' tokens (rebuilt from the data set with the run's tokenization); an image
  // tower the items' pixels (the image store prepared with the run's size and policy, reused when present).
  const tower = runConfig.model?.itemTower;
  const text = tower === 'text' ? prepareTextTower(data, runConfig.text) : undefined;
  const image = tower === 'image' ? await prepareImageTower(data, { ...runConfig.image, encoder: undefined, arch: undefined, size: runConfig.model?.image?.imageSize }) : undefined;
  const features = tower === 'features' ? await prepareFeatureTower(data, { ...runConfig.features, seed: runConfig.seed }) : undefined;
  const { model } = await Model.load(checkpointDir, options.threads ? { threads: options.threads } : {}, { items: text?.items ?? image?.items ?? features?.items, inference: true });
  if (data.sequences.numItems !== model.config.numItems)
    throw new MorecError('EMISMATCH', `the checkpoint has ${model.config.numItems} items but dataset '${dataset}' prepares ${data.sequences.numItems}`);
  return { model, data, runConfig, checkpointDir };
}
