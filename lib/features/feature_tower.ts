/**
 * Everything a two-stage (TS) item tower needs from a data set: a frozen encoder as an ONNX file, its features
 * for every item (extracted once into a feature cache, lib/features/extract.ts) and the ItemStore that
 * memory-maps them. The encoder is
 *   - an ONNX file, or a folder with model.onnx (a Hugging Face Optimum export: its tokenizer files beside it);
 *   - or anything the end-to-end towers take (a text or image preset, a Hugging Face BERT/RoBERTa/Swin folder, a
 *     torchvision weights file): morec builds that encoder natively, loads the weights and writes it as ONNX
 *     (lib/onnx) -- so TS and E2E share one encoder, and only what is trained differs. A preset is exported
 *     with the model seed's initial weights: the same ones an E2E run with that seed starts from.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Dataset } from '../data/dataset';
import { MorecError } from '../errors';
import { DroppedImages, imageTowerOrDropped, itemImages, normalization } from '../image/image_tower';
import { MissingImagePolicy } from '../image/store';
import { ResizeRule } from '../image/decode';
import { hashFile } from '../io/hash';
import { ItemStore } from '../item_store';
import { Model } from '../model';
import { NativeFeatureTowerConfig } from '../native';
import { exportEncoderOnnx } from '../onnx';
import { resolveTextEncoder } from '../text/encoder';
import { prepareTextTower, tokenizedItems } from '../text/text_tower';
import { loadTokenizer, MissingTextPolicy } from '../text/tokenizer';
import { knownKeys } from '../validate';
import { readJson, RunConfigFile } from '../run';
import { ExtractOptions, extractFeatures, FeatureCache, FeatureInputs, probeOnnx } from './extract';

/** Extraction options (ExtractOptions: dtype, workers, threads, batchSize, provider, output, progress) and what to extract from. */
export interface FeatureTowerOptions extends Pick<ExtractOptions, 'output' | 'dtype' | 'workers' | 'threads' | 'batchSize' | 'provider' | 'onProgress' | 'signal' | 'log'> {
  /**
   * The frozen encoder: an .onnx file, a folder with model.onnx, a morec run folder (its trained encoder), or a
   * text/image encoder as the E2E towers take it (preset name, Hugging Face folder, torchvision weights file),
   * exported to ONNX first. Default 'bert-tiny'.
   */
  encoder?: string;
  /** 'text' or 'image' (default: from the ONNX inputs, or from which kind of encoder the name resolves to). */
  modality?: 'text' | 'image';
  /** Layers after Linear(features -> d) -> GELU (Table 5's TS depths: 0, 2, 6, 8, 10, 12). Default 0. */
  adapterDepth?: number;
  adapterDropout?: number;
  /** Text: 'cls' (default) or 'mean' over the last hidden state. */
  pooling?: 'cls' | 'mean';
  /** Text: tokenizer folder (default: the encoder folder's, or for a preset the data set's word vocabulary). */
  tokenizer?: string;
  maxTokens?: number;
  missingText?: MissingTextPolicy;
  /** Image: pixels per side (default: the ONNX input's fixed size, else the encoder preset's, else 224). */
  size?: number;
  normalize?: 'paper' | 'imagenet';
  missingImage?: MissingImagePolicy;
  resize?: ResizeRule;
  /** Image weights file's architecture preset (as ImageTowerOptions.arch). */
  arch?: string;
  /** The seed of a preset encoder's initial weights (default 42; runs pass their model seed). */
  seed?: number;
  /** Where caches are written (default: the data set's cache folder, else a temp folder). */
  workDir?: string;
}

export interface PreparedFeatureTower {
  features: Partial<NativeFeatureTowerConfig> & { dim: number };
  items: ItemStore;
  cache: FeatureCache;
  /** The ONNX file the features came from. */
  onnx: string;
  pretrained: boolean;
  /** e.g. 'bert-tiny(scratch, TS adapter 8)'. */
  label: string;
  summary: string[];
}

const FEATURE_TOWER_OPTIONS = ['encoder', 'modality', 'adapterDepth', 'adapterDropout', 'pooling', 'output', 'dtype', 'workers', 'threads', 'batchSize', 'provider', 'tokenizer', 'maxTokens', 'missingText', 'size', 'normalize', 'missingImage', 'resize', 'arch', 'seed', 'workDir', 'onProgress', 'signal', 'log'];

/** A run folder (morec train) whose model has a text or image encoder: its best checkpoint and config. */
export function runEncoderOf(name: string): { dir: string; checkpoint: string; config: RunConfigFile; modality: 'text' | 'image' } | undefined {
  const dir = path.resolve(name);
  const configFile = path.join(dir, 'config.json');
  const checkpoint = path.join(dir, 'checkpoint');
  if (!fs.existsSync(configFile) || !fs.existsSync(path.join(checkpoint, 'checkpoint.json'))) return undefined;
  const config = readJson<RunConfigFile>(configFile, "the run's config");
  const tower = config.model?.itemTower;
  if (tower !== 'text' && tower !== 'image')
    throw new MorecError('EINVAL', `${dir}: the run's item tower is '${String(tower)}'; a run can serve as a frozen encoder only when it trained a text or image encoder`);
  return { dir, checkpoint, config, modality: tower };
}

/** An .onnx file, or a folder holding model.onnx (or onnx/model.onnx); undefined for anything else. */
export function onnxFileOf(name: string): { file: string; folder?: string } | undefined {
  const st = fs.statSync(name, { throwIfNoEntry: false });
  if (st?.isFile() && name.endsWith('.onnx')) return { file: path.resolve(name) };
  if (st?.isDirectory()) {
    for (const f of ['model.onnx', path.join('onnx', 'model.onnx')]) if (fs.existsSync(path.join(name, f))) return { file: path.resolve(name, f), folder: path.resolve(name) };
  }
  return undefined;
}

function hash(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex');
}

/** The feature tower of a data set, or (image encoders under missingImage 'drop') the items to drop first. */
export async function featureTowerOrDropped(data: Dataset, options: FeatureTowerOptions = {}): Promise<PreparedFeatureTower | DroppedImages> {
  knownKeys(options, FEATURE_TOWER_OPTIONS, 'feature tower');
  const name = options.encoder ?? 'bert-tiny';
  const root = options.workDir ?? data.cacheDir ?? path.join(os.tmpdir(), 'morec');
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 42;
  const summary: string[] = [];
  const onnx = onnxFileOf(name);
  const run = onnx ? undefined : runEncoderOf(name);
  let inputs: FeatureInputs;
  let onnxFile: string;
  let pretrained = true;
  let base: string;
  let modality = options.modality;
  if (onnx) {
    onnxFile = onnx.file;
    const io = await probeOnnx(onnxFile);
    modality ??= io.inputs.some((v) => v.name === 'input_ids') ? 'text' : 'image';
    base = path.basename(onnx.folder ?? onnxFile).replace(/\.onnx$/, '');
    if (modality === 'text') {
      const dir = options.tokenizer ?? onnx.folder;
      if (!dir) throw new MorecError('EINVAL', `${onnxFile}: a text encoder needs its tokenizer: pass tokenizer (a folder with tokenizer.json, vocab.txt or vocab.json + merges.txt), or keep the .onnx in its export folder`);
      if (!data.text) throw new MorecError('EINVAL', `data set ${data.name} has no item texts for the text encoder ${onnxFile}`);
      const tokenizer = loadTokenizer(dir);
      const maxTokens = options.maxTokens ?? 30;
      const missingText = options.missingText ?? 'error';
      const { items } = tokenizedItems(data, data.text, tokenizer, maxTokens, missingText);
      inputs = { kind: 'text', numItems: items.numItems, maxTokens, tokens: items.tokens, lengths: items.lengths, fingerprint: hash([data.fingerprint, tokenizer.fingerprint, maxTokens, missingText]) };
      summary.push(`two-stage text encoder ${onnxFile} (ONNX), ${tokenizer.kind} tokenizer from ${dir}, ${maxTokens} tokens per title`);
    } else {
      const px = io.inputs[0]?.shape ?? [];
      const size = options.size ?? (typeof px[2] === 'number' ? px[2] : 224);
      const r = await itemImages(data, { size, missingImage: options.missingImage, resize: options.resize, workDir: options.workDir, signal: options.signal, log: options.log });
      if ('dropped' in r) return r;
      const norm = normalization(options.normalize);
      inputs = { kind: 'image', numItems: r.store.numItems, file: r.store.file, height: r.store.height, width: r.store.width, ...norm, fingerprint: hash([r.store.fingerprint, norm]) };
      summary.push(`two-stage image encoder ${onnxFile} (ONNX), ${size}x${size} pixels normalized with mean ${norm.mean.join('/')} std ${norm.std.join('/')}`);
    }
  } else if (run) {
    // The encoder a morec run trained (its best checkpoint), on the run's own data and inputs.
    if (run.config.dataFingerprint !== data.fingerprint)
      throw new MorecError('EMISMATCH', `${run.dir}: the run was trained on data with fingerprint ${run.config.dataFingerprint.slice(0, 12)}… but this data set is ${data.fingerprint.slice(0, 12)}…; a run's encoder is frozen for the data it was trained on`);
    modality = run.modality;
    const manifest = readJson<{ digest: string }>(path.join(run.checkpoint, 'checkpoint.json'), 'the checkpoint manifest');
    const key = hash(['run', manifest.digest]);
    onnxFile = path.join(root, 'encoders', `run-${key.slice(0, 16)}.onnx`);
    // Labelled by the encoder the run trained (e.g. bert-tiny), the run itself named in the summary.
    const enc = (run.modality === 'text' ? run.config.text?.encoder ?? 'bert-tiny' : run.config.image?.encoder ?? 'resnet-mini');
    base = path.basename(enc).replace(/\.(pth|bin|safetensors)$/, '');
    pretrained = true;
    let items: ItemStore;
    if (modality === 'text') {
      const t = prepareTextTower(data, run.config.text);
      items = t.items;
      inputs = { kind: 'text', numItems: t.items.numItems, maxTokens: t.items.maxTokens, tokens: t.items.tokens, lengths: t.items.lengths, fingerprint: hash([data.fingerprint, t.tokenizer.fingerprint, t.items.maxTokens, run.config.text?.missingText ?? 'error']) };
    } else {
      const im = run.config.model.image!;
      const r = await itemImages(data, { size: im.imageSize, missingImage: run.config.image?.missingImage, resize: run.config.image?.resize, workDir: options.workDir, signal: options.signal, log: options.log });
      if ('dropped' in r) return r;
      items = ItemStore.fromPixelFile({ numItems: r.store.numItems, height: r.store.height, width: r.store.width, file: r.store.file });
      inputs = { kind: 'image', numItems: r.store.numItems, file: r.store.file, height: r.store.height, width: r.store.width, mean: im.mean, std: im.std, fingerprint: hash([r.store.fingerprint, im.mean, im.std]) };
    }
    summary.push(`two-stage ${modality} encoder: the encoder trained by run ${run.dir} (its best checkpoint), frozen`);
    if (!fs.existsSync(onnxFile)) {
      const { model } = await Model.load(run.checkpoint, options.threads ? { threads: options.threads } : {}, { items, inference: true });
      const rep = exportEncoderOnnx(model, onnxFile);
      summary.push(`exported it to ${onnxFile} (${(rep.bytes / 1e6).toFixed(1)} MB, ${rep.nodes} ONNX nodes)`);
    } else summary.push(`frozen encoder ${onnxFile} (exported before)`);
  } else {
    // A morec encoder: built natively, weights loaded, written as ONNX once (cached by what defines it).
    if (!modality) {
      try {
        resolveTextEncoder(name);
        modality = 'text';
      } catch {
        modality = 'image';
      }
    }
    let model: Model | undefined;
    let key: string;
    let weights: string | undefined;
    if (modality === 'text') {
      const t = prepareTextTower(data, { encoder: name, maxTokens: options.maxTokens, pooling: options.pooling, tokenizer: options.tokenizer, missingText: options.missingText, workDir: options.workDir });
      weights = t.weights;
      pretrained = t.pretrained;
      base = t.label.replace(/\(.*\)$/, '');
      key = hash(['text', t.text, weights ? (await hashFile(weights)).sha256 : `scratch seed ${seed}`, t.tokenizer.fingerprint]);
      onnxFile = path.join(root, 'encoders', `text-${key.slice(0, 16)}.onnx`);
      const maxTokens = t.items.maxTokens;
      inputs = { kind: 'text', numItems: t.items.numItems, maxTokens, tokens: t.items.tokens, lengths: t.items.lengths, fingerprint: hash([data.fingerprint, t.tokenizer.fingerprint, maxTokens, options.missingText ?? 'error']) };
      summary.push(t.summary.replace(/^text tower /, 'two-stage text encoder '));
      if (!fs.existsSync(onnxFile)) model = Model.create({ backbone: 'sasrec', numItems: t.items.numItems, itemTower: 'text', text: t.text as never, seed, threads: options.threads }, { items: t.items });
    } else {
      const r = await imageTowerOrDropped(data, { encoder: name, arch: options.arch, size: options.size, normalize: options.normalize, missingImage: options.missingImage, resize: options.resize, workDir: options.workDir, onProgress: undefined, signal: options.signal, log: options.log });
      if ('dropped' in r) return r;
      weights = r.weights;
      pretrained = r.pretrained;
      base = r.label.replace(/\(.*\)$/, '');
      key = hash(['image', r.image, weights ? (await hashFile(weights)).sha256 : `scratch seed ${seed}`]);
      onnxFile = path.join(root, 'encoders', `image-${key.slice(0, 16)}.onnx`);
      inputs = { kind: 'image', numItems: r.store.numItems, file: r.store.file, height: r.store.height, width: r.store.width, mean: r.image.mean!, std: r.image.std!, fingerprint: hash([r.store.fingerprint, r.image.mean, r.image.std]) };
      summary.push(...r.summary.map((l) => l.replace(/^image tower /, 'two-stage image encoder ')));
      if (!fs.existsSync(onnxFile)) model = Model.create({ backbone: 'sasrec', numItems: r.store.numItems, itemTower: 'image', image: r.image as never, seed, threads: options.threads }, { items: r.items });
    }
    if (model) {
      if (weights) model.loadEncoderWeights(weights);
      const rep = exportEncoderOnnx(model, onnxFile);
      summary.push(`exported the frozen encoder to ${onnxFile} (${(rep.bytes / 1e6).toFixed(1)} MB, ${rep.nodes} ONNX nodes)${weights ? '' : `, initial weights of seed ${seed}`}`);
    } else {
      summary.push(`frozen encoder ${onnxFile} (exported before)`);
    }
  }
  // A run's encoder is read as the run's tower read it.
  const pooling = modality === 'text' ? (run ? run.config.model.text?.pooling : undefined) ?? options.pooling ?? 'cls' : undefined;
  const total = inputs.numItems;
  const cache = await extractFeatures(onnxFile, inputs, root, {
    pooling,
    ...(options.output ? { output: options.output } : {}),
    dtype: options.dtype,
    workers: options.workers,
    threads: options.threads,
    batchSize: options.batchSize,
    provider: options.provider,
    dataFingerprint: data.fingerprint,
    onProgress: options.onProgress,
    signal: options.signal,
    log,
  });
  summary.push(
    `feature cache ${cache.dir}: ${total} items x ${cache.dim} ${cache.dtype} (${cache.pooling === 'pooled' ? 'pooled output' : `${cache.pooling} pooling`}), ` +
      (cache.status === 'hit' ? 'reused' : `${cache.status} at ${cache.itemsPerSecond.toFixed(0)} items/s with ${cache.workers} worker${cache.workers > 1 ? 's' : ''}`),
  );
  const items = ItemStore.fromFeatureFile({ numItems: cache.numItems, dim: cache.dim, file: cache.file, dtype: cache.dtype }, { featureCache: cache.key });
  const features: PreparedFeatureTower['features'] = { dim: cache.dim, adapterDepth: options.adapterDepth ?? 0 };
  if (options.adapterDropout !== undefined) features.adapterDropout = options.adapterDropout;
  const label = `${base!}(${run ? 'E2E-trained' : pretrained ? 'pretrained' : 'scratch'}, TS adapter ${features.adapterDepth})`;
  return { features, items, cache, onnx: onnxFile, pretrained, label, summary };
}

/** As featureTowerOrDropped, refusing when items would have to be dropped. */
export async function prepareFeatureTower(data: Dataset, options: FeatureTowerOptions = {}): Promise<PreparedFeatureTower> {
  const r = await featureTowerOrDropped(data, options);
  if ('dropped' in r)
    throw new MorecError('EINVAL', `${r.dropped.length} items have no usable image (see ${r.reportFile}) and policy 'drop' removes them: prepare the data set with dropItems (trainRun does), or use missingImage 'blank'`);
  return r;
}
