#!/usr/bin/env node
/** The morec command line: train, eval, data, study, serve. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import yargs, { Argv } from 'yargs';
import { formatLoadReport, prepareDataset } from '../data/dataset';
import { MorecError, reportFailure } from '../errors';
import { lastCheckpointEpochs, openRun, readJson, TrainConfig, trainRun } from '../run';
import { didYouMean, nonNegativeInt, numberIn, positiveInt } from '../validate';
import { metrics } from '../metrics';
import { loadAddon } from '../native';
import { popularityRanks } from '../popularity';
import { ProgressBar } from './progress';
import { stopOnSignals } from './signals';
import { writeReport } from '../report/report';
import { studyMain } from './study_command';
import { listFeatureCaches } from '../features/extract';
import { prepareFeatureTower } from '../features/feature_tower';
import { exportEncoderFile } from '../onnx/export_file';
import { serve } from '../serve/http';
import { distributedOptions, launchedByMorec, launchOrJoin } from './distributed';

function dataOptions<T>(y: Argv<T>) {
  return y
    .option('dataset', { type: 'string', default: 'synthetic', describe: "'synthetic' or a path to a data set (file or folder)" })
    .option('max-len', { type: 'number', default: 20, describe: 'window L; users keep their last L + 3 items' })
    .option('min-seq-len', { type: 'number', default: 5, describe: 'drop users with fewer interactions' })
    .option('warm', { type: 'number', default: 0, describe: 'warm-N: drop items with fewer than N interactions, then users below --min-seq-len, to a fixpoint (paper: 20, 50, 200; 0 = off)' })
    .option('seed', { type: 'number', default: 42, describe: 'seed of training and of the synthetic world' })
    .option('scale', { type: 'number', default: 1, describe: 'size multiplier of the synthetic world' })
    .option('keep-duplicates', { type: 'boolean', default: false, describe: 'keep rows repeating an earlier row (same user, item, timestamp); default: drop and count them' })
    .option('strict', { type: 'boolean', default: false, describe: 'a dropped duplicate or a guessed header, column or delimiter is an error' })
    .option('quiet', { type: 'boolean', default: false, alias: 'q', describe: 'no progress output' });
}

/** Bad command-line usage (exit status 2): a MorecError EUSAGE. */
function usage(message: string): MorecError {
  return new MorecError('EUSAGE', message);
}

/** Runs `fn`; an EINVAL it throws came from the options given, so it is reported as bad usage. */
function fromOptions<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof MorecError && e.code === 'EINVAL') throw new MorecError('EUSAGE', e.message, { cause: e });
    throw e;
  }
}

/** The two-stage tower's options from --feature-encoder and the text/image input flags they share. */
function featureOptionsFromArgs(args: Record<string, unknown>): NonNullable<TrainConfig['features']> {
  return {
    encoder: args['feature-encoder'] as string,
    adapterDepth: args['adapter-depth'] as number,
    ...(args['feature-modality'] ? { modality: args['feature-modality'] as 'text' | 'image' } : {}),
    pooling: args.pooling as 'cls' | 'mean',
    dtype: args['feature-dtype'] as 'float32' | 'float16',
    workers: args['extract-workers'] as number,
    ...(args['onnx-provider'] !== 'cpu' ? { provider: args['onnx-provider'] as 'cuda' } : {}),
    ...(args['onnx-output'] ? { output: args['onnx-output'] as string } : {}),
    ...(args.tokenizer ? { tokenizer: args.tokenizer as string } : {}),
    maxTokens: args['max-tokens'] as number,
    ...(args['image-arch'] ? { arch: args['image-arch'] as string } : {}),
    ...(args['image-size'] ? { size: args['image-size'] as number } : {}),
    normalize: args['image-normalize'] as 'paper' | 'imagenet',
    missingImage: args['missing-image'] as 'error' | 'blank' | 'drop',
  };
}

/** Flags of the two-stage tower (train and extract). */
function featureFlags<T>(y: Argv<T>) {
  return y
    .option('feature-encoder', { type: 'string', default: 'bert-tiny', describe: 'two-stage: the frozen encoder: an .onnx file, a folder with model.onnx (+ tokenizer), or a text/image preset, Hugging Face folder or weights file (exported to ONNX first)' })
    .option('feature-modality', { choices: ['text', 'image'] as const, describe: "two-stage: what the encoder reads (default: from the ONNX inputs, or the encoder's kind)" })
    .option('feature-dtype', { choices: ['float32', 'float16'] as const, default: 'float32' as const, describe: 'two-stage: how the cached features are stored' })
    .option('extract-workers', { type: 'number', default: 1, describe: 'two-stage: worker threads extracting features, each with its own ONNX Runtime session' })
    .option('onnx-output', { type: 'string', describe: "two-stage: the ONNX output to read (default: last_hidden_state or pooler_output when the model has it, else its first output)" })
    .option('onnx-provider', { choices: ['cpu', 'cuda'] as const, default: 'cpu' as const, describe: "two-stage: ONNX Runtime's execution provider for extraction" })
    .option('tokenizer', { type: 'string', describe: "text: tokenizer folder (default: the checkpoint's, or a vocabulary built from the titles)" })
    .option('max-tokens', { type: 'number', default: 30, describe: 'text: tokens per title, [CLS] and [SEP] included' })
    .option('pooling', { choices: ['cls', 'mean'] as const, default: 'cls' as const, describe: 'text: last-layer [CLS] or masked mean' })
    .option('image-arch', { type: 'string', describe: "image: the preset describing a weights file's architecture (default: guessed from the file name, and said so)" })
    .option('image-size', { type: 'number', describe: "image: pixels per side (default: the encoder's, 224 for the public ones)" })
    .option('image-normalize', { choices: ['paper', 'imagenet'] as const, default: 'paper' as const, describe: "image: mean = std = 0.5 (the study's code) or ImageNet statistics" })
    .option('missing-image', { choices: ['error', 'blank', 'drop'] as const, default: 'error' as const, describe: 'image: an item whose image is missing or corrupt stops the run (error), gets a grey image (blank), or is removed from the data set with its interactions (drop); blank and drop are counted in the load summary and listed in report.tsv' });
}

function trainConfigFromArgs(args: Record<string, unknown>): TrainConfig {
  let cfg: TrainConfig = {
    dataset: args.dataset as string,
    maxLen: args['max-len'] as number,
    minSeqLen: args['min-seq-len'] as number,
    keepDuplicates: args['keep-duplicates'] as boolean,
    ...(args.warm ? { warm: args.warm as number } : {}),
    seed: args.seed as number,
    scale: args.scale as number,
    model: {
      backbone: args.backbone as 'sasrec' | 'dssm',
      d: args.d as number,
      blocks: args.blocks as number,
      heads: args.heads as number,
      dropout: args.dropout as number,
      dssmDepth: args['dssm-depth'] as number,
      itemTower: args['item-tower'] as 'id' | 'text' | 'image' | 'features',
      ...(args.fusion !== 'none' ? { fusion: args.fusion as 'add' | 'cat', fusionDepth: args['fusion-depth'] as number } : {}),
    },
    train: {
      batchSize: args['batch-size'] as number,
      lr: args.lr as number,
      weightDecay: args['weight-decay'] as number,
      epochs: args.epochs as number,
      patience: args.patience as number,
      patienceGrowth: args['patience-growth'] as number,
      gradAccum: args['grad-accum'] as number,
      encoderLr: args['encoder-lr'] as number | undefined,
      encoderWeightDecay: args['encoder-weight-decay'] as number | undefined,
      ...(args.loss !== 'bce' ? { loss: args.loss as 'inbatch' } : {}),
    },
    text:
      args['item-tower'] === 'text'
        ? {
            encoder: args['text-encoder'] as string,
            tokenizer: args.tokenizer as string | undefined,
            maxTokens: args['max-tokens'] as number,
            pooling: args.pooling as 'cls' | 'mean',
            finetuneTopLayers: args['finetune-top-layers'] as number | undefined,
            cacheFrozen: args['cache-frozen'] as boolean,
          }
        : undefined,
    image:
      args['item-tower'] === 'image'
        ? {
            encoder: args['image-encoder'] as string,
            ...(args['image-arch'] ? { arch: args['image-arch'] as string } : {}),
            ...(args['image-size'] ? { size: args['image-size'] as number } : {}),
            normalize: args['image-normalize'] as 'paper' | 'imagenet',
            finetuneTopStages: args['finetune-top-stages'] as number | undefined,
            freezeBatchNorm: args['freeze-batch-norm'] as boolean,
            cacheFrozen: args['cache-frozen'] as boolean,
            missingImage: args['missing-image'] as 'error' | 'blank' | 'drop',
          }
        : undefined,
    features: args['item-tower'] === 'features' ? featureOptionsFromArgs(args) : undefined,
    threads: args.threads as number | undefined,
  };
  if (args.config) {
    const file = path.resolve(args.config as string);
    let fromFile: Partial<TrainConfig>;
    try {
      fromFile = readJson<Partial<TrainConfig>>(file, 'the config');
    } catch (e) {
      throw usage(`--config ${(e as Error).message}`);
    }
    if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile))
      throw usage(`${file}: expected a JSON object {dataset, maxLen, seed, model: {...}, train: {...}} but found ${fromFile === null ? 'null' : Array.isArray(fromFile) ? 'an array' : typeof fromFile}`);
    for (const k of ['model', 'train', 'text', 'image', 'features'] as const)
      if (fromFile[k] !== undefined && (typeof fromFile[k] !== 'object' || fromFile[k] === null || Array.isArray(fromFile[k])))
        throw usage(`${file}: expected an object for ${k}`);
    const known = ['name', 'dataset', 'maxLen', 'minSeqLen', 'keepDuplicates', 'warm', 'seed', 'scale', 'model', 'train', 'text', 'image', 'features', 'threads'];
    for (const k of Object.keys(fromFile)) if (!known.includes(k)) throw usage(`${file}: unknown key ${k}${didYouMean(k, known)} (expected ${known.join(', ')})`);
    const trainKeys = ['batchSize', 'lr', 'weightDecay', 'encoderLr', 'encoderWeightDecay', 'epochs', 'patience', 'patienceGrowth', 'gradAccum', 'loss', 'validationsPerEpoch'];
    for (const k of Object.keys(fromFile.train ?? {})) if (!trainKeys.includes(k)) throw usage(`${file}: unknown key train.${k}${didYouMean(k, trainKeys)} (expected ${trainKeys.join(', ')})`);
    cfg = { ...cfg, ...fromFile, model: { ...cfg.model, ...fromFile.model }, train: { ...cfg.train, ...fromFile.train } };
    if (cfg.model.itemTower === 'text') cfg.text = { encoder: 'bert-tiny', ...fromFile.text };
    if (cfg.model.itemTower === 'image') cfg.image = { encoder: 'resnet-mini', ...fromFile.image };
    if (cfg.model.itemTower === 'features') cfg.features = { encoder: 'bert-tiny', ...fromFile.features };
  }
  const t = cfg.train;
  fromOptions(() => {
    positiveInt(t.batchSize, 'batch-size');
    positiveInt(t.epochs, 'epochs');
    nonNegativeInt(t.patience, 'patience');
    if (t.patienceGrowth !== undefined) numberIn(t.patienceGrowth, 'patience-growth', 0, 10);
    positiveInt(t.gradAccum, 'grad-accum');
    numberIn(t.lr, 'lr', 0, 10);
    numberIn(t.weightDecay, 'weight-decay', 0, 10);
    positiveInt(cfg.minSeqLen, 'min-seq-len');
    nonNegativeInt(cfg.maxLen, 'max-len');
    nonNegativeInt(cfg.seed, 'seed');
    numberIn(cfg.scale, 'scale', 0.01, 1000);
  });
  return cfg;
}

/** The command line main() was given (a launcher starts its processes with it). */
let commandLine: string[] = [];

async function train(args: Record<string, unknown>): Promise<void> {
  const resume = args.resume as boolean;
  if (resume && args.overwrite) throw usage('--resume and --overwrite exclude each other');
  if (resume && !args.name) throw usage('--resume needs --name, the run to continue');
  const launched = launchedByMorec();
  // A process started by --nproc takes its thread share from MOREC_THREADS, not from --threads (the machine's).
  const cfg = resume ? ({ threads: launched ? undefined : args.threads } as TrainConfig) : trainConfigFromArgs(launched ? { ...args, threads: undefined } : args);
  const name = (args.name as string | undefined) ?? cfg.name ?? `${cfg.model.backbone}-${cfg.model.itemTower ?? 'id'}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  if (name.length === 0 || name.includes('/') || name.includes('\\') || name === '.' || name === '..') throw usage(`Expected a run name without path separators for --name but received '${name}'`);
  // --nproc: this process only launches (the name fixed for all: a default name has the time in it) and waits.
  const joined = await launchOrJoin(args, commandLine, args.name ? [] : ['--name', name]);
  if ('exitCode' in joined) {
    process.exitCode = joined.exitCode;
    return;
  }
  const group = joined.group;
  const lead = !group || group.rank === 0;
  const runDir = path.join(path.resolve(args['runs-dir'] as string), name);
  const bar = new ProgressBar((args.quiet as boolean) || !lead);
  const stop = stopOnSignals();
  let outcome;
  try {
    outcome = await trainRun(runDir, cfg, {
      ...(group ? { group } : {}),
      mode: resume ? 'resume' : args.overwrite ? 'overwrite' : 'new',
      strict: args.strict as boolean,
      signal: stop.signal,
      usage: true,
      log: (line) => bar.log(line),
      onLoad: (f, what) => bar.update(`reading ${path.basename(what)}`, Math.floor(f * 100), 100, '%'),
      onBatch: (epoch, done, total, loss) => bar.update(`epoch ${epoch + 1}`, done, total, `loss ${loss.toFixed(4)}`),
    });
  } catch (e) {
    const sig = stop.received();
    // Data-parallel: the signal reaches every rank, and a rank may see another's stop (EDIST) before its own.
    if (sig && e instanceof MorecError && (e.code === 'EABORT' || (group && e.code === 'EDIST'))) {
      if (!lead) throw new MorecError('EABORT', `${sig}: rank ${group!.rank} stopped (${e.message})`, { cause: e });
      const epochs = lastCheckpointEpochs(runDir);
      const nprocFlag = group ? ` --nproc ${process.env.LOCAL_WORLD_SIZE ?? group.worldSize}` : '';
      throw new MorecError(
        'EABORT',
        `${sig}: training stopped (${e.message}). ${epochs !== undefined ? `The last whole checkpoint is after epoch ${epochs}; continue with: morec train --runs-dir ${args['runs-dir']} --name ${name} --resume${nprocFlag}` : 'No epoch had finished; nothing to resume.'}`,
        { cause: e },
      );
    }
    throw e;
  } finally {
    stop.dispose();
    group?.close();
  }
  const r = outcome.results;
  if (lead) console.log(JSON.stringify({ name, 'test HR@10': r.test['HR@10'], 'test NDCG@10': r.test['NDCG@10'], bestEpoch: r.bestEpoch, runDir }));
}

async function evaluate(args: Record<string, unknown>): Promise<void> {
  const { model, data, runConfig, checkpointDir: ckpt } = await openRun(args.run as string, {
    dataset: args.dataset as string | undefined,
    force: args.force as boolean,
    ...(args.threads ? { threads: args.threads as number } : {}),
    warn: (m) => console.error(`WARNING: --force: ${m}`),
  });
  const bar = new ProgressBar(args.quiet as boolean);
  const mode = args.mode as 'full' | 'sampled';
  // The run's protocol decides whether a repeated target counts as a miss (the paper's), as in its results.json.
  const mask = runConfig.protocol?.maskRepeatedTarget ? { maskRepeatedTarget: true } : {};
  const ranks = await model.evaluate(data.sequences, { split: args.split as 'valid' | 'test', mode, numNegatives: args.negatives as number, seed: 0, ...mask }, (d, t) => bar.update('evaluating', d, t));
  const m = metrics(ranks, [5, 10, 20], mode === 'sampled' ? `(sampled${args.negatives})` : '');
  console.log(JSON.stringify({ checkpoint: ckpt, dataset: data.name, fingerprint: data.fingerprint, split: args.split, mode, maskRepeatedTarget: !!mask.maskRepeatedTarget, ...m }, null, 2));
}

/** The data set the data options (dataOptions) describe, prepared with a progress bar. */
function datasetFromArgs(args: Record<string, unknown>, bar: ProgressBar) {
  return prepareDataset(args.dataset as string, {
    maxLen: args['max-len'] as number,
    minSeqLen: args['min-seq-len'] as number,
    keepDuplicates: args['keep-duplicates'] as boolean,
    ...(args.warm ? { warm: args.warm as number } : {}),
    strict: args.strict as boolean,
    synthetic: { seed: args.seed as number, scale: args.scale as number },
    onProgress: (f, what) => bar.update(`reading ${path.basename(what)}`, Math.round(f * 100), 100, '%'),
  });
}

async function dataCommand(args: Record<string, unknown>): Promise<void> {
  const bar = new ProgressBar(args.quiet as boolean);
  const data = await datasetFromArgs(args, bar);
  const s = data.sequences;
  const lengths = Array.from({ length: s.users }, (_, u) => s.offsets[u + 1] - s.offsets[u]).sort((a, b) => a - b);
  const q = (a: number[], p: number) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
  const pops = Array.from(data.popularity.subarray(1)).sort((a, b) => a - b);
  const cold = pops.filter((p) => p < 10).length;
  const pop = metrics(popularityRanks(s, 'test'));
  const summary = {
    dataset: data.name,
    format: data.format,
    fingerprint: data.fingerprint,
    cache: data.cacheDir,
    users: s.users,
    items: s.numItems,
    interactions: s.items.length,
    density: s.items.length / (s.users * s.numItems),
    sequenceLength: { min: lengths[0], median: q(lengths, 0.5), p90: q(lengths, 0.9), max: lengths[lengths.length - 1], mean: s.items.length / s.users },
    trainingPopularity: { min: pops[0], median: q(pops, 0.5), p90: q(pops, 0.9), max: pops[pops.length - 1], coldItems: cold, coldShare: cold / pops.length },
    hasText: !!data.text,
    hasImages: !!data.image,
    popularityBaseline: { 'test HR@10': pop['HR@10'], 'test NDCG@10': pop['NDCG@10'] },
    featureCaches: data.cacheDir
      ? listFeatureCaches(data.cacheDir).map((c) => ({ dir: c.dir, items: c.numItems, dim: c.dim, dtype: c.dtype, kind: c.kind, pooling: c.pooling, encoder: c.encoder.file, encoderSha256: c.encoder.sha256.slice(0, 16), extractSeconds: c.seconds }))
      : [],
    loadReport: formatLoadReport(data.report),
    load: data.report,
  };
  console.log(JSON.stringify(summary, null, 2));
}

async function extractCommand(args: Record<string, unknown>): Promise<void> {
  const bar = new ProgressBar(args.quiet as boolean);
  const stop = stopOnSignals();
  try {
    const data = await datasetFromArgs(args, bar);
    const t = await prepareFeatureTower(data, {
      ...fromOptions(() => featureOptionsFromArgs(args)),
      seed: args.seed as number,
      ...(args.threads ? { threads: args.threads as number } : {}),
      signal: stop.signal,
      log: (line) => bar.log(line),
      onProgress: (done, total) => bar.update('extracting', done, total, 'items'),
    });
    for (const line of t.summary) bar.log(line);
    const c = t.cache;
    console.log(JSON.stringify({ dataset: data.name, fingerprint: data.fingerprint, cache: c.dir, file: c.file, status: c.status, items: c.numItems, dim: c.dim, dtype: c.dtype, pooling: c.pooling, output: c.output, encoder: c.encoder, itemsPerSecond: c.itemsPerSecond, seconds: c.seconds, workers: c.workers }, null, 2));
  } catch (e) {
    const sig = stop.received();
    if (sig && e instanceof MorecError && e.code === 'EABORT') throw new MorecError('EABORT', `${sig}: extraction stopped; run the same command again to resume it`, { cause: e });
    throw e;
  } finally {
    stop.dispose();
  }
}

/** morec serve: load the runs, listen, print one JSON line; SIGINT/SIGTERM shut down gracefully (lib/serve/http.ts). */
async function serveCommand(args: Record<string, unknown>): Promise<void> {
  const port = args.port as number;
  fromOptions(() => {
    numberIn(port, 'port', 0, 65535);
    nonNegativeInt(port, 'port');
    if (args.threads !== undefined) positiveInt(args.threads, 'threads');
    if (args['max-batch'] !== undefined) positiveInt(args['max-batch'], 'max-batch');
  });
  const s = await serve({
    runs: args.run as string[],
    port,
    host: args.host as string,
    batching: args.batching as boolean,
    ...(args['max-batch'] !== undefined ? { maxBatch: args['max-batch'] as number } : {}),
    ...(args.threads !== undefined ? { threads: args.threads as number } : {}),
    ...(args.dataset !== undefined ? { dataset: args.dataset as string } : {}),
    force: args.force as boolean,
    quiet: args.quiet as boolean,
    logger: args.log as boolean,
  });
  console.log(JSON.stringify({ listening: s.url, models: s.recommenders.map((r) => ({ name: r.name, backbone: r.backbone, itemTower: r.itemTower, items: r.numItems })) }));
}

export async function main(argv: string[]): Promise<void> {
  commandLine = argv;
  await yargs(argv)
    .scriptName('morec')
    .usage('$0 <command> [options]')
    .command('train', 'train one model to early stop; writes runs/<name>/ (config.json, metrics.jsonl, checkpoint/, results.json)', (y) =>
      distributedOptions(featureFlags(dataOptions(y)))
        .option('config', { type: 'string', describe: 'JSON file with {dataset, maxLen, seed, model: {...}, train: {...}}; overrides flags' })
        .option('name', { type: 'string', describe: 'run name (default: backbone + time)' })
        .option('runs-dir', { type: 'string', default: 'runs', describe: 'parent folder of run folders' })
        .option('backbone', { choices: ['sasrec', 'dssm'] as const, default: 'sasrec' as const })
        .option('d', { type: 'number', default: 64, describe: 'embedding size' })
        .option('blocks', { type: 'number', default: 2, describe: 'SASRec blocks' })
        .option('heads', { type: 'number', default: 2, describe: 'SASRec attention heads' })
        .option('dropout', { type: 'number', default: 0.1 })
        .option('dssm-depth', { type: 'number', default: 0, describe: 'DSSM user MLP depth' })
        .option('item-tower', { choices: ['id', 'text', 'image', 'features'] as const, default: 'id' as const, describe: 'items as learned IDs, encoded from their titles (text MoRec) or images (image MoRec) end to end, or two-stage: frozen-encoder features (--feature-encoder, extracted once and cached) through a trained adapter' })
        .option('adapter-depth', { type: 'number', default: 0, describe: "two-stage: adapter layers after Linear + GELU (the paper's Table 5: 0, 2, 6, 8, 10, 12)" })
        .option('fusion', { choices: ['none', 'add', 'cat'] as const, default: 'none' as const, describe: 'join a learned ID embedding to the modality vector (text, image or features tower): add, or cat + Linear + GELU' })
        .option('fusion-depth', { type: 'number', default: 0, describe: 'fusion: MLP layers after the join' })
        .option('text-encoder', { type: 'string', default: 'bert-tiny', describe: 'text tower: a preset in models/ (from scratch) or a Hugging Face checkpoint folder to fine-tune' })
        .option('finetune-top-layers', { type: 'number', describe: 'text tower: train only the top N encoder layers (default: all)' })
        .option('cache-frozen', { type: 'boolean', default: false, describe: 'text/image tower: compute the frozen layers once per item (with --finetune-top-layers / --finetune-top-stages)' })
        .option('image-encoder', { type: 'string', default: 'resnet-mini', describe: 'image tower: a preset in models/ (from scratch: resnet-mini, resnet18/34/50, swin-t, swin-b), a torchvision/timm weights file (.pth/.safetensors) or a Hugging Face Swin folder to fine-tune' })
        .option('finetune-top-stages', { type: 'number', describe: 'image tower: train only the top N stages (default: all)' })
        .option('freeze-batch-norm', { type: 'boolean', default: false, describe: 'image tower: BatchNorm keeps its running statistics while training' })
        .option('encoder-lr', { type: 'number', describe: 'learning rate of the text encoder (default 1e-4)' })
        .option('encoder-weight-decay', { type: 'number', describe: 'weight decay of the text encoder (default: --weight-decay)' })
        .option('batch-size', { type: 'number', default: 128 })
        .option('lr', { type: 'number', default: 1e-3 })
        .option('weight-decay', { type: 'number', default: 0.1 })
        .option('grad-accum', { type: 'number', default: 1, describe: 'batches per optimizer step' })
        .option('loss', { choices: ['bce', 'inbatch'] as const, default: 'bce' as const, describe: "'bce': one sampled negative per position; 'inbatch': in-batch softmax cross-entropy with the logQ popularity correction" })
        .option('epochs', { type: 'number', default: 200, describe: 'maximum epochs' })
        .option('patience', { type: 'number', default: 5, describe: 'validation passes without improvement before stopping, at least' })
        .option('patience-growth', { type: 'number', default: 0.25, describe: 'patience grows to this share of the epochs up to the best (0 = fixed patience; measured default, see README "Early stopping")' })
        .option('threads', { type: 'number', describe: 'intra-op threads (default: all cores)' })
        .option('resume', { type: 'boolean', default: false, describe: "continue run --name from its last whole checkpoint (its stored config; the final metrics equal an uninterrupted run's)" })
        .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing run of the same --name (refused otherwise)' }),
      (a) => train(a),
    )
    .command('eval', 'evaluate a run or checkpoint on a split', (y) =>
      y
        .option('run', { type: 'string', demandOption: true, describe: 'run folder (runs/<name>) or checkpoint folder' })
        .option('dataset', { type: 'string', describe: "data set (default: the run's)" })
        .option('split', { choices: ['valid', 'test'] as const, default: 'test' as const })
        .option('mode', { choices: ['full', 'sampled'] as const, default: 'full' as const, describe: 'full ranking, or against sampled negatives' })
        .option('negatives', { type: 'number', default: 100, describe: 'negatives per user in sampled mode' })
        .option('threads', { type: 'number' })
        .option('force', { type: 'boolean', default: false, describe: "evaluate even if the data set's fingerprint differs from the run's (warns loudly)" })
        .option('quiet', { type: 'boolean', default: false, alias: 'q' }),
      (a) => evaluate(a),
    )
    .command('data', 'prepare a data set (cached) and print its summary: counts, lengths, popularity, feature caches', (y) => dataOptions(y), (a) => dataCommand(a))
    .command('extract', "two-stage: run a frozen encoder (ONNX, or a morec encoder exported to ONNX) over every item into the data set's feature cache (reused by train --item-tower features; resumes when interrupted)", (y) =>
      featureFlags(dataOptions(y)).option('threads', { type: 'number', describe: 'intra-op threads per worker (default: the cores divided among the workers)' }),
      (a) => extractCommand(a),
    )
    .command('export-onnx', 'write a text or image encoder (a Hugging Face BERT/RoBERTa/Swin folder, a torchvision weights file, or a preset with seeded initial weights) as the ONNX file the two-stage path reads', (y) =>
      y
        .option('encoder', { type: 'string', demandOption: true, describe: 'Hugging Face folder, weights file (.pth/.safetensors) or preset name' })
        .option('out', { type: 'string', demandOption: true, describe: 'the .onnx file to write' })
        .option('image-arch', { type: 'string', describe: "the preset describing a weights file's architecture (default: guessed from its name)" })
        .option('image-size', { type: 'number', describe: 'Swin: pixels per side the graph is built for (default: the encoder\'s)' })
        .option('seed', { type: 'number', default: 42, describe: "a preset's initial weights" }),
      async (a) => console.log(JSON.stringify(fromOptions(() => exportEncoderFile(a.encoder as string, a.out as string, { arch: a['image-arch'] as string | undefined, size: a['image-size'] as number | undefined, seed: a.seed as number })), null, 2)),
    )
    .command('study', 'the default study (same as node train.js; see morec study --help)', (y) => y.help(false).version(false).strict(false), async () => {
      await studyMain(argv.slice(1), 'morec study');
    })
    .command('report <study>', 'write <study>/report.md and figures/*.svg from a study folder (tables in the paper\'s shape, Vega-Lite figures)', (y) =>
      y.positional('study', { type: 'string', describe: 'study folder (e.g. runs/study)' }),
      async (a) => {
        const r = await writeReport(a.study as string);
        console.log(JSON.stringify({ report: r.file, figures: r.figures }, null, 2));
      },
    )
    .command('serve', 'serve run folders over HTTP: POST /recommend, GET /health, GET /metrics (SIGINT/SIGTERM: finish the requests in flight, then exit)', (y) =>
      y
        .option('run', { type: 'string', array: true, demandOption: true, describe: 'run folder (runs/<name>) or checkpoint folder to serve; repeat for several models (each named after its run)' })
        .option('port', { type: 'number', default: 8080, describe: 'TCP port (0: any free port)' })
        .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (0.0.0.0: every interface)' })
        .option('batching', { type: 'boolean', default: true, describe: 'micro-batching: concurrent requests share native passes (--no-batching: one pass per request)' })
        .option('max-batch', { type: 'number', describe: 'most requests per native pass (default 256)' })
        .option('threads', { type: 'number', describe: 'intra-op threads (default: all cores)' })
        .option('dataset', { type: 'string', describe: "data set (default: each run's)" })
        .option('force', { type: 'boolean', default: false, describe: "serve even if the data set's fingerprint differs from the run's (warns loudly)" })
        .option('log', { type: 'boolean', default: false, describe: "fastify's per-request log (JSON lines on stdout)" })
        .option('quiet', { type: 'boolean', default: false, alias: 'q', describe: 'no progress output' }),
      (a) => serveCommand(a),
    )
    .command('info', 'libtorch version, threads, CUDA', () => {}, () => console.log(JSON.stringify(loadAddon().torchInfo(), null, 2)))
    .demandCommand(1, 'Expected a command: train, eval, data, extract, export-onnx, study, report, serve or info')
    .strict()
    .fail((msg, err) => {
      throw err ?? new MorecError('EUSAGE', msg);
    })
    .help()
    .parseAsync();
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => process.exit(reportFailure(err)));
}
