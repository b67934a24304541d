/**
 * A recommender model: create from a config, train epoch by epoch, evaluate to ranks, save and load.
 * All math runs in the native libtorch core; each epoch or evaluation is one async native call.
 */
import * as os from 'node:os';
import { awaitNative, invalid, MorecError, toMorecError } from './errors';
import { CheckpointInfo, readCheckpoint, writeCheckpoint } from './checkpoint';
import { ItemStore } from './item_store';
import { ConfigField, ConfigSchema, loadAddon, NamedTensor, NativeImportReport, NativeEpochBatches, NativeEpochOptions, NativeEpochResult, NativeEvalOptions, NativeModel, NativeModelConfig } from './native';
import { Sequences } from './sequences';
import { didYouMean, knownKeys, nonNegativeInt, numberIn, oneOf, positiveInt } from './validate';
import { abortable, JobOptions } from './jobs';
import { configThreads } from './threads';
import { ProcessGroup } from './dist/group';

export type Backbone = 'sasrec' | 'dssm';

/** A model's configuration: backbone and numItems are required, the rest has defaults (see NativeModelConfig). */
export type ModelConfig = Partial<NativeModelConfig> & Pick<NativeModelConfig, 'backbone' | 'numItems'>;
export type EpochOptions = NativeEpochOptions & JobOptions;
export type EpochResult = NativeEpochResult;
export type EvaluateOptions = NativeEvalOptions & JobOptions;

export type { CheckpointInfo };

/** "a positive integer", "an integer in [-1, 128]", ... as the core words them. */
function describeField(f: ConfigField): string {
  if (f.type === 'integer') {
    if (f.min === 1 && (f.max ?? 0) >= 2 ** 31 - 2) return 'a positive integer';
    if (f.min === 0 && (f.max ?? 0) >= 2 ** 31 - 2) return 'a non-negative integer';
    return `an integer in [${f.min}, ${f.max}]`;
  }
  if (f.type === 'number') return `a number in [${f.min}, ${f.max}]`;
  if (f.type === 'integers' || f.type === 'numbers') {
    const n = f.minLength === f.maxLength ? `${f.minLength}` : `${f.minLength} to ${f.maxLength}`;
    return `an array of ${n} ${f.type} in [${f.min}, ${f.max}]`;
  }
  if (f.type === 'choice') return `one of ${(f.choices ?? []).map((c) => `'${c}'`).join(' | ')}`;
  if (f.type === 'object') return 'a config object';
  return `a ${f.type}`;
}

/** Checks a config object against the core's schema: known keys only, each of its type and range. */
function checkFields(o: Record<string, unknown>, schema: ConfigSchema, prefix: string): void {
  for (const key of Object.keys(o))
    if (!(key in schema) && o[key] !== undefined)
      throw new MorecError('EINVAL', `Unknown option ${prefix}${key}${didYouMean(key, Object.keys(schema))} (expected one of ${Object.keys(schema).join(', ')})`);
  for (const [key, f] of Object.entries(schema)) {
    const v = o[key];
    const name = prefix + key;
    if (v === undefined) {
      if (f.required) throw invalid(describeField(f), name, v);
      continue;
    }
    const ok =
      f.type === 'integer' ? typeof v === 'number' && Number.isInteger(v) && v >= f.min! && v <= f.max!
      : f.type === 'number' ? typeof v === 'number' && Number.isFinite(v) && v >= f.min! && v <= f.max!
      : f.type === 'boolean' ? typeof v === 'boolean'
      : f.type === 'string' ? typeof v === 'string'
      : f.type === 'choice' ? typeof v === 'string' && (f.choices ?? []).includes(v)
      : f.type === 'integers' || f.type === 'numbers'
        ? Array.isArray(v) && v.length >= f.minLength! && v.length <= f.maxLength! &&
          v.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= f.min! && x <= f.max! && (f.type === 'numbers' || Number.isInteger(x)))
      : typeof v === 'object' && v !== null && !Array.isArray(v);
    if (!ok) throw invalid(describeField(f), name, v);
  }
}

let schemaCache: ConfigSchema | undefined;

/**
 * Validates a model config before it reaches the core, against the core's own field list (one home for
 * names, types and ranges); relations between fields (heads divide d, ...) are checked by the core.
 */
export function validateConfig(config: ModelConfig): Partial<NativeModelConfig> {
  if (typeof config !== 'object' || config === null) throw invalid('a config object', 'config', config);
  const schema = (schemaCache ??= loadAddon().configSchema());
  const { text, image, features, ...top } = schema;
  checkFields(config as Record<string, unknown>, { ...top, text, image, features }, ''); // tower configs listed last
  for (const tower of ['text', 'image', 'features'] as const) {
    if (config.itemTower !== tower) continue;
    const sub = config[tower];
    if (typeof sub !== 'object' || sub === null || Array.isArray(sub))
      throw invalid(`a ${tower} ${tower === 'features' ? 'adapter' : 'encoder'} config object (required by itemTower '${tower}')`, tower, sub);
    checkFields(sub as unknown as Record<string, unknown>, schema[tower].fields ?? {}, `${tower}.`);
  }
  if (config.backbone === 'dssm' && config.numUsers === undefined) throw invalid('a positive integer', 'numUsers', config.numUsers);
  if (config.device !== undefined && !/^(cpu|cuda(:\d+)?)$/.test(config.device)) throw invalid("'cpu' or 'cuda[:N]'", 'device', config.device);
  return { ...config, threads: configThreads(config.threads) } as Partial<NativeModelConfig>;
}

export const EPOCH_OPTIONS = ['epoch', 'batchSize', 'lr', 'weightDecay', 'encoderLr', 'encoderWeightDecay', 'gradAccum', 'bucketByLength', 'maxBatches', 'progressEvery', 'loss', 'dssmBatching', 'part', 'parts', 'signal'] as const;
export const EVALUATE_OPTIONS = ['split', 'mode', 'numNegatives', 'seed', 'batchSize', 'chunkRows', 'maskRepeatedTarget', 'signal'] as const;

function validateEpochOptions(o: EpochOptions): EpochOptions {
  if (typeof o !== 'object' || o === null) throw invalid('an options object', 'options', o);
  knownKeys(o, EPOCH_OPTIONS, 'epoch');
  if (o.epoch !== undefined) nonNegativeInt(o.epoch, 'epoch');
  if (o.batchSize !== undefined) positiveInt(o.batchSize, 'batchSize');
  for (const k of ['lr', 'weightDecay', 'encoderLr', 'encoderWeightDecay'] as const) if (o[k] !== undefined) numberIn(o[k], k, 0, 10);
  if (o.gradAccum !== undefined) positiveInt(o.gradAccum, 'gradAccum');
  if (o.bucketByLength !== undefined && typeof o.bucketByLength !== 'boolean') throw invalid('a boolean', 'bucketByLength', o.bucketByLength);
  if (o.maxBatches !== undefined) nonNegativeInt(o.maxBatches, 'maxBatches');
  if (o.progressEvery !== undefined) positiveInt(o.progressEvery, 'progressEvery');
  if (o.loss !== undefined) oneOf(o.loss, 'loss', ['bce', 'inbatch'] as const);
  if (o.dssmBatching !== undefined) oneOf(o.dssmBatching, 'dssmBatching', ['pairs', 'users'] as const);
  return o;
}

function validateEvaluateOptions(o: EvaluateOptions): EvaluateOptions {
  if (typeof o !== 'object' || o === null) throw invalid('an options object', 'options', o);
  knownKeys(o, EVALUATE_OPTIONS, 'evaluate');
  if (o.split !== undefined) oneOf(o.split, 'split', ['valid', 'test'] as const);
  if (o.mode !== undefined) oneOf(o.mode, 'mode', ['full', 'sampled'] as const);
  for (const k of ['numNegatives', 'batchSize', 'chunkRows'] as const) if (o[k] !== undefined) positiveInt(o[k], k);
  if (o.seed !== undefined) nonNegativeInt(o.seed, 'seed');
  if (o.maskRepeatedTarget !== undefined && typeof o.maskRepeatedTarget !== 'boolean') throw invalid('a boolean', 'maskRepeatedTarget', o.maskRepeatedTarget);
  return o;
}

/**
 * A checkpoint's config from before a field existed meant that field's old behaviour, not today's default:
 * DSSM checkpoints without dssmMlp had ReLU MLPs on the user tower only.
 */
function withLegacyDefaults(config: ModelConfig): ModelConfig {
  if (config.backbone === 'dssm' && config.dssmMlp === undefined) return { ...config, dssmMlp: 'linear-relu', dssmItemMlp: false };
  return config;
}

/** The checks of Model.create: the config against the core's schema, the item store a modality tower needs. */
function checkCreate(config: ModelConfig, options: { items?: ItemStore }): Partial<NativeModelConfig> {
  const valid = validateConfig(config);
  if (typeof options !== 'object' || options === null) throw invalid('an options object', 'options', options);
  if (options.items !== undefined && !(options.items instanceof ItemStore)) throw invalid('an ItemStore', 'items', options.items);
  const needs = { text: "encodes each item's tokens", image: "encodes each item's pixels", features: "adapts each item's cached features" } as const;
  if (valid.itemTower && valid.itemTower !== 'id' && !options.items)
    throw new MorecError('EINVAL', `Expected an ItemStore for items (itemTower '${valid.itemTower}' ${needs[valid.itemTower]}) but received undefined`);
  return valid;
}

/** Runs a native call, turning whatever it throws into a MorecError. */
function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toMorecError(e);
  }
}

function checkSequences(seqs: unknown, numItems: number): Sequences {
  if (!(seqs instanceof Sequences)) throw invalid('a Sequences object', 'sequences', seqs);
  if (seqs.numItems !== numItems)
    throw new MorecError('EINVAL', `Expected sequences over ${numItems} items (the model's numItems) but received ${seqs.numItems}`);
  return seqs;
}

export class Model {
  /** @internal */
  readonly native: NativeModel;

  private constructor(native: NativeModel) {
    this.native = native;
  }

  /** options.items: the per-item inputs a modality tower reads (required by itemTower 'text'). */
  static create(config: ModelConfig, options: { items?: ItemStore } = {}): Model {
    const valid = checkCreate(config, options);
    return callNative(() => new Model(new (loadAddon().Model)(valid, options.items?.native)));
  }

  /** create(), the model built on morec's job thread (a large item table's initialization takes a while). */
  static async createAsync(config: ModelConfig, options: { items?: ItemStore } = {}): Promise<Model> {
    const valid = checkCreate(config, options);
    return new Model(await awaitNative(() => loadAddon().createModel(valid, options.items?.native)));
  }

  /**
   * Loads a pretrained checkpoint (safetensors, or a PyTorch zip: pytorch_model.bin / .pth) into the tower's
   * encoder. Text: Hugging Face BERT/RoBERTa (BertModel layout, with or without a `bert.`/`roberta.` prefix,
   * LayerNorm gamma/beta accepted). Image: torchvision ResNet / Swin state dicts (also with a `module.` or
   * `model.` prefix; timm ResNets share torchvision's names) and Hugging Face SwinModel. Classifier heads,
   * poolers and pre-training heads are ignored and reported; anything else that does not fit is an EMISMATCH.
   */
  loadEncoderWeights(file: string): NativeImportReport {
    if (typeof file !== 'string' || file.length === 0) throw invalid('a checkpoint file path', 'file', file);
    if (this.config.itemTower !== 'text' && this.config.itemTower !== 'image')
      throw new MorecError('EINVAL', `loadEncoderWeights needs itemTower 'text' or 'image' but this model has '${this.config.itemTower}'`);
    return callNative(() => this.native.loadEncoderWeights(file));
  }

  get config(): NativeModelConfig {
    return this.native.config;
  }

  /**
   * One training epoch; resolves the mean loss and counts. onProgress(batchesDone, batchesTotal, runningLoss).
   * options.signal stops it at the next batch (EABORT); the steps taken so far are kept.
   */
  async trainEpoch(seqs: Sequences, options: EpochOptions & JobOptions = {}, onProgress?: (done: number, total: number, loss: number) => void): Promise<EpochResult> {
    checkSequences(seqs, this.config.numItems);
    validateEpochOptions(options);
    const { signal, ...native } = options;
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid('a function', 'onProgress', onProgress);
    return abortable(signal, () => this.native.cancel(), () => awaitNative(() => this.native.trainEpoch(seqs.native, native, onProgress)));
  }

  /**
   * The positions trainEpoch(seqs, options) would train on, batch by batch -- built natively by the same code
   * with the same seeds, negatives included, but without training (for tests and inspection; synchronous).
   */
  epochBatches(seqs: Sequences, options: Omit<EpochOptions, 'signal'> & { rank?: number; worldSize?: number } = {}): NativeEpochBatches {
    checkSequences(seqs, this.config.numItems);
    // rank / worldSize: the share of each global batch that rank trains in a data-parallel epoch.
    const { rank, worldSize, ...epoch } = options;
    validateEpochOptions(epoch);
    if (worldSize !== undefined) positiveInt(worldSize, 'worldSize');
    if (rank !== undefined) numberIn(nonNegativeInt(rank, 'rank'), 'rank', 0, (worldSize ?? 1) - 1);
    return callNative(() => this.native.epochBatches(seqs.native, options));
  }

  /**
   * Makes this model data-parallel over `group` (every rank calls it: a collective). Every rank's model takes
   * rank 0's weights, optimizer state and best-weights snapshot; from then on each epoch trains every global
   * batch split across the ranks (each rank its contiguous share of the batch's rows, gradients summed across
   * ranks before each optimizer step: the global batch's gradient), and evaluate() ranks each rank's share of the
   * users and gathers them, so every rank gets every rank. null: this process alone again.
   */
  async joinGroup(group: ProcessGroup | null): Promise<void> {
    if (group !== null && !(group instanceof ProcessGroup)) throw invalid('a ProcessGroup or null', 'group', group);
    await awaitNative(() => this.native.joinGroup(group ? group.native : null));
    this.group = group ?? undefined;
  }

  /** The process group this model trains over (joinGroup), if any. */
  group?: ProcessGroup;

  /**
   * 0-based rank of each user's held-out item (-1: user not evaluated). Feed to metrics().
   * onProgress(done, total): total = numItems (the item table, built first) + evaluated users.
   * options.signal stops it at the next item-table or user batch (EABORT).
   */
  async evaluate(seqs: Sequences, options: EvaluateOptions & JobOptions = {}, onProgress?: (done: number, total: number) => void): Promise<Int32Array> {
    checkSequences(seqs, this.config.numItems);
    validateEvaluateOptions(options);
    const { signal, ...native } = options;
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid('a function', 'onProgress', onProgress);
    return abortable(signal, () => this.native.cancel(), () => awaitNative(() => this.native.evaluate(seqs.native, native, onProgress)));
  }

  /** SASRec hidden states of left-padded windows (rows x T ids) -> Float32Array rows x T x d. */
  encodeSequences(inputIds: Int32Array, rows: number): Float32Array {
    return callNative(() => this.native.encodeSequences(inputIds, rows));
  }

  /** The text encoder's last-layer hidden states of items (indices 1..numItems): shape [n, T, hidden], T = longest. */
  encoderHiddenStates(items: Int32Array): NamedTensor {
    return callNative(() => this.native.encoderHiddenStates(items));
  }

  /**
   * The modality encoder's pooled output for items (indices 1..numItems): shape [n, features], without
   * gradients. Text: [CLS] or masked mean (the tower's pooling) of the last layer, eval mode. Image: the pooled
   * output; options.train runs it in train mode (BatchNorm running statistics update, as in a training step).
   * This is what a frozen copy of the encoder feeds the two-stage path.
   */
  encoderFeatures(items: Int32Array, options: { train?: boolean } = {}): NamedTensor {
    if (!(items instanceof Int32Array)) throw invalid('an Int32Array of item indices', 'items', items);
    if (typeof options !== 'object' || options === null) throw invalid('an options object', 'options', options);
    if (options.train !== undefined && typeof options.train !== 'boolean') throw invalid('a boolean', 'train', options.train);
    return callNative(() => this.native.encoderFeatures(items, options.train ?? false));
  }

  /**
   * A copy of every item's vector, (numItems + 1) x d, row 0 = padding; encoder towers encode each item.
   * options.signal stops it at the next batch of items (EABORT).
   */
  async itemVectors(onProgress?: (done: number, total: number) => void, options: JobOptions = {}): Promise<Float32Array> {
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid('a function', 'onProgress', onProgress);
    if (typeof options !== 'object' || options === null) throw invalid('an options object', 'options', options);
    return abortable(options.signal, () => this.native.cancel(), () => awaitNative(() => this.native.itemVectors(onProgress)));
  }

  parameters(): Record<string, NamedTensor> {
    return callNative(() => this.native.parameters());
  }

  setParameters(params: Record<string, Float32Array | NamedTensor>): void {
    callNative(() => this.native.setParameters(params));
  }

  /** Copies every weight into native memory (one snapshot per model, replaced by the next call). */
  snapshotWeights(): void {
    callNative(() => this.native.snapshotWeights());
  }

  /** Puts the snapshot's weights back (the optimizer state is left as it is). */
  restoreWeights(): void {
    callNative(() => this.native.restoreWeights());
  }

  /**
   * Saves weights, optimizer state and a manifest (checkpoint.json, written last, listing each file's size
   * and sha256) into `dir`. A save interrupted at any moment leaves the previous checkpoint loadable; files of
   * interrupted saves are removed by the next save. extra.best: 'current' marks these weights as the best so
   * far, 'keep' keeps the best weights of the checkpoint already in `dir` (used by resumable runs).
   * The weights and optimizer state are copied together on morec's job thread (a consistent snapshot, taken
   * after the jobs queued before it; the model is busy until the copy is made, so await save() before the next
   * epoch); serializing, hashing and writing them then run without holding the event loop.
   */
  async save(dir: string, extra: { trainingState?: Record<string, unknown>; metrics?: Record<string, unknown>; best?: 'current' | 'keep' } = {}): Promise<CheckpointInfo> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalid('a folder path', 'dir', dir);
    const { params, optimizer } = await awaitNative(() => this.native.stateCopy());
    return writeCheckpoint(dir, { params, optimizer, config: this.config, ...extra });
  }

  /**
   * Loads a checkpoint written by save(), verifying it whole (see lib/checkpoint.ts) or refusing it;
   * `overrides` may change threads or device. options.items: a text-tower model needs the same ItemStore it
   * was trained with (see prepareTextTower). options.inference: no optimizer state is read (nor required).
   * options.restoreBest: the checkpoint's best weights become the model's snapshot (restoreWeights()), for
   * resuming a run. Files are read, hashed and checked without holding the event loop for long, and the
   * event loop runs between the core's synchronous steps (building the model, copying weights in, copying
   * the optimizer state in), each of which takes a while for a large item table.
   */
  static async load(
    dir: string,
    overrides: { threads?: number; device?: string } = {},
    options: { items?: ItemStore; inference?: boolean; restoreBest?: boolean } = {},
  ): Promise<{ model: Model; info: CheckpointInfo }> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalid('a checkpoint folder path', 'dir', dir);
    for (const key of Object.keys(overrides ?? {}))
      if (key !== 'threads' && key !== 'device') throw new MorecError('EINVAL', `Unknown override ${key} (a checkpoint's config is fixed; only threads and device may change)`);
    const ckpt = await readCheckpoint(dir, { inference: options.inference, best: options.restoreBest });
    if (options.restoreBest && !ckpt.info.files.best) throw new MorecError('EINVAL', `${dir}: the checkpoint holds no best weights to restore`);
    // Built and filled on the job thread: the event loop only checks names and sizes.
    const model = await Model.createAsync({ ...withLegacyDefaults(ckpt.info.config as ModelConfig), ...overrides }, { items: options.items });
    if (options.restoreBest && ckpt.best) {
      await awaitNative(() => model.native.assignState(ckpt.best!));
      model.snapshotWeights();
    }
    await awaitNative(() => model.native.assignState(ckpt.params, ckpt.optimizer));
    if (options.restoreBest && !ckpt.best) model.snapshotWeights();
    return { model, info: ckpt.info };
  }
}
