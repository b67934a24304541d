/**
 * Loads the libtorch addon and types the whole native surface in one place. Every call into native code
 * goes through here, so native errors always surface as MorecError.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from './errors';

/** A BERT/RoBERTa text encoder and the tower around it ([CLS] or mean -> Linear(hidden -> d) -> GELU). */
export interface NativeTextTowerConfig {
  kind: 'bert' | 'roberta';
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPositions: number;
  typeVocabSize: number;
  /** Default 0 (BERT) or 1 (RoBERTa, whose position ids start at padTokenId + 1). */
  padTokenId: number;
  layerNormEps: number;
  hiddenDropout: number;
  attentionDropout: number;
  pooling: 'cls' | 'mean';
  /** -1 (default): all trainable. n >= 0: embeddings and all but the top n layers frozen. */
  finetuneTopLayers: number;
  /** With frozen bottom layers: compute their output per item once and reuse it (skips their dropout). */
  cacheFrozen: boolean;
  /** Keep only each encoder layer's input in the forward pass; recompute the layer in the backward pass. */
  gradientCheckpointing: boolean;
  /** Items per forward pass when the whole item table is built. */
  encodeBatch: number;
}

/** The image tower's encoder (torchvision's ResNet or Swin) and input normalization. */
export interface NativeImageTowerConfig {
  arch: 'resnet' | 'swin';
  /** ResNet blocks: 'basic' (ResNet-18/34) or 'bottleneck' (ResNet-50/101/152). */
  block: 'basic' | 'bottleneck';
  /** Blocks per stage (ResNet-50 [3, 4, 6, 3]; Swin-T [2, 2, 6, 2]; Swin-B [2, 2, 18, 2]). */
  depths: number[];
  /** ResNet: stem and first-stage width (torchvision 64). Swin: embed_dim (T 96, B 128). Doubles per stage. */
  width: number;
  /** ResNet bottleneck inner width per group (64; wide ResNets 128). */
  widthPerGroup: number;
  /** Swin: heads per stage (T [3, 6, 12, 24], B [4, 8, 16, 32]). */
  heads: number[];
  windowSize: number;
  patchSize: number;
  mlpRatio: number;
  /** Swin stochastic depth rate, linear over the blocks (torchvision swin_t 0.2; default 0). */
  dropPath: number;
  attentionDropout: number;
  layerNormEps: number;
  /** Pixels per side of the item store's images. */
  imageSize: number;
  /** Per-channel normalization of [0, 1] pixels (paper: 0.5 and 0.5; ImageNet: [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]). */
  mean: number[];
  std: number[];
  /** -1 (default): all trainable. n >= 0: the stem and all but the top n stages frozen. */
  finetuneTopStages: number;
  /** BatchNorm keeps its running statistics while training (eval-mode normalization). */
  freezeBatchNorm: boolean;
  cacheFrozen: boolean;
  gradientCheckpointing: boolean;
  /** ResNet: NHWC memory format. */
  channelsLast: boolean;
  encodeBatch: number;
}

/** Two-stage MoRec: frozen-encoder features per item (an ItemStore of features) and the trained adapter. */
export interface NativeFeatureTowerConfig {
  /** Features per item (the item store's dim). */
  dim: number;
  /** Adapter layers after Linear(dim -> d) -> GELU: n x [Dropout, Linear(d -> d), GELU] (Table 5: 0 ... 12). */
  adapterDepth: number;
  /** The adapter's dropout; < 0 (default): the model's dropout. */
  adapterDropout: number;
  /** Items per pass when the whole item table is built. */
  encodeBatch: number;
}

export interface NativeModelConfig {
  backbone: 'sasrec' | 'dssm';
  /**
   * Item tower: 'id' (learned ID embeddings), 'text' / 'image' (an encoder over each item's tokens / pixels,
   * trained end to end), or 'features' (two-stage: cached frozen-encoder features + a trained adapter). The
   * modality towers need an ItemStore.
   */
  itemTower: 'id' | 'text' | 'image' | 'features';
  /** itemTower 'text': the encoder. */
  text?: NativeTextTowerConfig;
  /** itemTower 'image': the encoder (pixels come from an ItemStore of images). */
  image?: NativeImageTowerConfig;
  /** itemTower 'features': the adapter over the item store's features. */
  features?: NativeFeatureTowerConfig;
  /**
   * ID + modality fusion: 'none' (default), 'add' (ID embedding + modality vector) or 'cat' (Dropout -> Linear(2d
   * -> d) -> GELU over both), then fusionDepth x [Dropout, Linear, GELU]. Needs a modality item tower.
   */
  fusion: 'none' | 'add' | 'cat';
  fusionDepth: number;
  /** Items are 1..numItems; 0 is padding. */
  numItems: number;
  /** DSSM only: number of users (user-ID embedding rows). */
  numUsers: number;
  d: number;
  blocks: number;
  heads: number;
  maxLen: number;
  /** SASRec's dropout; DSSM: the dropout of its MLP layers (dssmMlp 'dropout-linear-gelu'). */
  dropout: number;
  activation: 'relu' | 'gelu';
  /** DSSM MLP depth k (0, the default: the user embedding itself, and the ID vectors themselves). */
  dssmDepth: number;
  /**
   * DSSM MLP layers: 'dropout-linear-gelu' (default; the study's code: every layer Dropout(dropout) -> Linear ->
   * GELU, the last one included) or 'linear-relu' (morec's earlier DSSM: ReLU between layers, last layer
   * linear, no dropout).
   */
  dssmMlp: 'dropout-linear-gelu' | 'linear-relu';
  /**
   * DSSM with the ID item tower: the ID vectors go through an MLP of their own (same depth and style; the
   * study's id_encoder). Default true; false: only the user tower has an MLP. Modality towers have none.
   */
  dssmItemMlp: boolean;
  seed: number;
  /** Intra-op threads of this model's jobs, at most (the process budget, setThreads, applies too); default: all cores. */
  threads: number;
  /** 'cpu' (default) or 'cuda' / 'cuda:N' with a CUDA build of libtorch. */
  device: string;
  /** SASRec batches: 'packed' (no padding; CPU), 'padded' (any device), 'auto' (packed on CPU). */
  sequenceLayout: 'auto' | 'packed' | 'padded';
}

export interface NativeEpochOptions {
  epoch?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  encoderLr?: number;
  encoderWeightDecay?: number;
  gradAccum?: number;
  /** Put users of similar length into the same batch (fewer padded positions in the padded layout). */
  bucketByLength?: boolean;
  /** Stop after this many batches (benchmarks). */
  maxBatches?: number;
  progressEvery?: number;
  /**
   * 'bce' (default): BCE with logits, one negative per position drawn uniformly (never a seen item).
   * 'inbatch': softmax cross-entropy against the batch's item occurrences (SASRec: every item of the batch's
   * training windows; DSSM: the batch's positives) with the logQ correction (minus the log of each item's
   * share of the training-prefix interactions), items of the user's training prefix masked except the
   * position's own positive (the study's in-batch debiased loss).
   */
  loss?: 'bce' | 'inbatch';
  /**
   * DSSM rows. 'pairs' (default; the study's code): every (user, item) pair of the training prefixes, shuffled,
   * batchSize pairs per batch, BCE = one mean over each pair's 1 + 1 logits. 'users' (morec's earlier DSSM):
   * batchSize users per batch with the last maxLen items of their prefix, BCE = mean(positives) +
   * mean(negatives), 2x the other. Ignored by SASRec.
   */
  dssmBatching?: 'pairs' | 'users';
  /** Train only part `part` (0-based) of `parts` equal slices of the epoch's batches (its own random streams). */
  part?: number;
  parts?: number;
}

export interface NativeEpochResult {
  loss: number;
  batches: number;
  /** Batch rows trained: users, or (user, item) pairs with DSSM's 'pairs' batching. */
  sequences: number;
  /** Positions (positives) trained. */
  positions: number;
  steps: number;
  optimizerSteps: number;
  seconds: number;
  /** Data-parallel epochs (a model joined to a process group of several ranks): the gradient all-reduce. */
  allreduce?: {
    /** Gradient bytes summed across ranks per optimizer step. */
    bytesPerStep: number;
    buckets: number;
    /** Bucket all-reduces started from autograd hooks before backward ended (over the epoch's steps). */
    startedInBackward: number;
    /** Seconds spent waiting for all-reduces after backward (communication not hidden behind it). */
    waitSeconds: number;
    /** Seconds in the reducer after backward in all (copies, waits, write-back). */
    seconds: number;
  };
}

export interface NativeEvalOptions {
  split?: 'valid' | 'test';
  /** 'full': rank against all items (the paper's protocol); 'sampled': against numNegatives sampled items. */
  mode?: 'full' | 'sampled';
  numNegatives?: number;
  seed?: number;
  batchSize?: number;
  chunkRows?: number;
  /**
   * The study's protocol: a held-out item the user already has in its input is masked with the rest of the
   * history (ranked below every unmasked item: a miss). Default false: the target is never masked.
   * Sequences.repeatedTargetUsers(split) lists the users this changes.
   */
  maskRepeatedTarget?: boolean;
}

/** The positions one training epoch visits, batch by batch (Model.epochBatches). */
export interface NativeEpochBatches {
  /** batches + 1 offsets into the per-position arrays. */
  batchOffsets: Int32Array;
  users: Int32Array;
  positives: Int32Array;
  /** One per position with loss 'bce'; empty with 'inbatch'. */
  negatives: Int32Array;
}

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export interface ConfigField {
  type: 'integer' | 'number' | 'boolean' | 'string' | 'choice' | 'object' | 'integers' | 'numbers';
  min?: number;
  max?: number;
  /** 'integers' | 'numbers': allowed array lengths. */
  minLength?: number;
  maxLength?: number;
  choices?: string[];
  required?: boolean;
  fields?: ConfigSchema;
}
export type ConfigSchema = Record<string, ConfigField>;

export interface NativeSequences {
  readonly users: number;
  readonly numItems: number;
  readonly interactions: number;
  repeatedTargetUsers(split: 'valid' | 'test'): Int32Array;
}

export interface NativeItemStore {
  readonly numItems: number;
  readonly maxTokens: number;
  readonly kind: 'tokens' | 'images' | 'features';
  /** Feature stores: features per item. */
  readonly dim: number;
}

export interface NativeImportReport {
  loaded: number;
  ignored: string[];
}

export interface NativeModel {
  readonly config: NativeModelConfig;
  trainEpoch(
    seqs: NativeSequences,
    options: NativeEpochOptions,
    onProgress?: (done: number, total: number, loss: number) => void,
  ): Promise<NativeEpochResult>;
  epochBatches(seqs: NativeSequences, options: NativeEpochOptions): NativeEpochBatches;
  evaluate(seqs: NativeSequences, options: NativeEvalOptions, onProgress?: (done: number, total: number) => void): Promise<Int32Array>;
  encodeSequences(inputIds: Int32Array, rows: number): Float32Array;
  itemVectors(onProgress?: (done: number, total: number) => void): Promise<Float32Array>;
  /** Stops the running or queued job at its next batch (it rejects with EABORT); no effect when idle. */
  cancel(): void;
  loadEncoderWeights(file: string): NativeImportReport;
  encoderHiddenStates(items: Int32Array): NamedTensor;
  encoderFeatures(items: Int32Array, train?: boolean): NamedTensor;
  parameters(): Record<string, NamedTensor>;
  setParameters(params: Record<string, Float32Array | NamedTensor>): void;
  snapshotWeights(): void;
  restoreWeights(): void;
  optimizerState(): { step: number; tensors: Record<string, NamedTensor> };
  /** Weights and optimizer state copied together on the job thread (Model.save): nothing blocks the event loop. */
  /** setParameters (and setOptimizerState) on the job thread; the arrays are checked here and held until copied. */
  assignState(params: Record<string, Float32Array | NamedTensor>, optimizer?: { step: number; tensors: Record<string, Float32Array | NamedTensor> }): Promise<void>;
    stateCopy(): Promise<{ params: Record<string, NamedTensor>; optimizer: { step: number; tensors: Record<string, NamedTensor> } }>;
  setOptimizerState(state: { step: number; tensors: Record<string, Float32Array | NamedTensor> }): void;
  /** A collective: every rank's model takes rank 0's state; then epochs and evaluations run data-parallel (null: alone). */
  joinGroup(group: NativeProcessGroup | null): Promise<void>;
}

/** A c10d process group (TCPStore rendezvous; Gloo on CPU, NCCL on CUDA builds). */
export interface NativeProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: string;
  storeSet(key: string, value: string): void;
  /** Waits until some rank sets key (timeoutMs 0: the group's timeout). */
  storeGet(key: string, timeoutMs?: number): Promise<string>;
  allreduce(values: Float64Array, op?: 'sum' | 'max'): Promise<Float64Array>;
  barrier(): Promise<void>;
  recordFailure(message: string): void;
  close(): void;
}

export interface NativeProcessGroupOptions {
  masterAddr: string;
  masterPort: number;
  worldSize: number;
  rank: number;
  /** Rendezvous and collective timeout (default 300 s: a rank that hangs this long fails the job). */
  timeoutMs?: number;
  /** 'gloo' (CPU tensors; default) or 'nccl' (CUDA builds). */
  backend?: 'gloo' | 'nccl';
}

/** Counts of a Scorer's native serving path. */
export interface NativeScorerStats {
  /** Requests answered (or failed) so far. */
  requests: number;
  /** Native passes (one user-encoder pass + one GEMM each) that answered them. */
  batches: number;
  /** The most requests one pass answered. */
  largestBatch: number;
  /** Requests queued now, not yet in a pass. */
  queued: number;
  /** Intra-op threads of the latest pass: the budget's share left by a long job running beside it. */
  threads: number;
}

/** A model's item table kept natively for serving: requests are queued, micro-batched and answered with the top K. */
export interface NativeScorer {
  /**
   * Queues one request: history (item indices, oldest first), user (DSSM user index, else -1), k, exclude
   * (item indices), filter (allowed item indices, or null for all), maskHistory. Resolves the top k.
   */
  recommend(history: Int32Array, user: number, k: number, exclude: Int32Array, filter: Int32Array | null, maskHistory: boolean): Promise<{ items: Int32Array; scores: Float32Array }>;
  /** recommend() for many requests (the same six arguments each), queued together so that they share a pass. */
  recommendMany(requests: readonly (readonly [Int32Array, number, number, Int32Array, Int32Array | null, boolean])[]): Promise<{ items: Int32Array; scores: Float32Array }>[];
  stats(): NativeScorerStats;
  /** Rejects queued requests with ECLOSED, frees the table after the pass in flight, gives the model back. */
  close(): void;
}

export interface NativeAddon {
  Sequences: new (offsets: Int32Array, items: Int32Array, numItems: number) => NativeSequences;
  Model: new (config: Partial<NativeModelConfig>, items?: NativeItemStore) => NativeModel;
  /** new Model(config, items), built on the job thread. */
  createModel(config: Partial<NativeModelConfig>, items?: NativeItemStore): Promise<NativeModel>;
  /** itemTable: (numItems + 1) x d (Model.itemVectors); maxBatch: most requests per pass (1: no micro-batching). */
  Scorer: new (model: NativeModel, itemTable: Float32Array, options: { maxBatch: number; threads: number }) => NativeScorer;
  ItemStore: new (
    options:
      | { numItems: number; maxTokens: number; tokens: Int32Array; lengths: Int32Array }
      | { numItems: number; height: number; width: number; pixels: Uint8Array }
      | { numItems: number; height: number; width: number; file: string; offset?: number }
      | Record<string, unknown>,
  ) => NativeItemStore;
  fullRankingRanks(
    userVectors: Float32Array,
    itemVectors: Float32Array,
    d: number,
    historyOffsets: Int32Array,
    historyItems: Int32Array,
    targets: Int32Array,
    options?: { chunkRows?: number; threads?: number; maskRepeatedTarget?: boolean },
  ): Int32Array;
  sampleNegatives(seqs: NativeSequences, options: { count?: number; seed?: number; distinct?: boolean }): Int32Array;
  /** The model config's fields, from the core's one list (native/models/model_config.h). */
  configSchema(): ConfigSchema;
  connectProcessGroup(options: NativeProcessGroupOptions): Promise<NativeProcessGroup>;
  torchInfo(): { version: string; cuda: boolean; cudaDevices: number; threads: number; parallel: string };
  /** Sets the process-wide thread budget (clamped to [1, cores]); returns the budget in force. */
  setThreads(threads: number): number;
  getThreads(): { threads: number; cores: number };
}

const root = path.resolve(__dirname, '..', '..');

/**
 * Where the addon may be, in the order tried: an explicit path, local builds, then the prebuilt for this platform
 * (prebuilds/<platform>-<arch>-<flavour>, flavour MOREC_FLAVOUR or cpu; then prebuilds/<platform>-<arch>). A local
 * build is tried first because it is only ever there on purpose: a source checkout, MOREC_BUILD_FROM_SOURCE=1, or
 * an install whose prebuilt did not load (scripts/install.js).
 */
export function addonCandidates(): string[] {
  // An explicit MOREC_ADDON is the only candidate, so a test of that binary cannot silently use another.
  if (process.env.MOREC_ADDON) return [path.resolve(process.env.MOREC_ADDON)];
  const platform = `${process.platform}-${process.arch}`;
  return [
    path.join(root, 'build', 'Release', 'morec.node'),
    path.join(root, 'build', 'morec.node'),
    path.join(root, 'prebuilds', `${platform}-${process.env.MOREC_FLAVOUR || 'cpu'}`, 'morec.node'),
    path.join(root, 'prebuilds', platform, 'morec.node'),
  ];
}

/** The libtorch runtime a prebuilt needs, as its build.json (scripts/prebuild.js) says; Debian's when it says nothing. */
function prebuiltRuntime(file: string): string {
  try {
    const runtime = JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'build.json'), 'utf8')).runtime;
    if (runtime?.install || runtime?.note) return String(runtime.install || runtime.note);
  } catch {
    // no build.json: a prebuilt from before build.json, or a hand-placed binary
  }
  return 'apt-get install libtorch1.13 libopenblas0-openmp';
}

function explain(file: string, err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const prebuilt = path.basename(path.dirname(path.dirname(file))) === 'prebuilds';
  if (/libtorch|libc10|libtorch_cpu/.test(msg))
    return prebuilt
      ? `${file}: libtorch is not installed or not on the library path (${msg.split('\n')[0]}). This prebuilt needs the libtorch runtime; on Debian: ${prebuiltRuntime(file)}`
      : `${file}: libtorch is not installed or not on the library path (${msg.split('\n')[0]}). On Debian: apt-get install libtorch-dev libopenblas0-openmp`;
  if (/NODE_MODULE_VERSION|was compiled against a different Node\.js version/.test(msg))
    return `${file}: built for another Node.js ABI; rebuild with npm rebuild morec (${msg.split('\n')[0]})`;
  if (prebuilt && /GLIBC_|GLIBCXX_|CXXABI_|undefined symbol/.test(msg))
    return `${file}: this prebuilt was built for another system or libtorch (${msg.split('\n')[0]}); compile instead with MOREC_BUILD_FROM_SOURCE=1 npm rebuild morec`;
  return `${file}: ${msg.split('\n')[0]}`;
}

let cached: NativeAddon | undefined;

/** MOREC_THREADS=n: the process-wide thread budget (setThreads) in force from the start, for services and the CLI. */
function budgetFromEnvironment(): number | undefined {
  const value = process.env.MOREC_THREADS;
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new MorecError('EINVAL', `Expected a positive integer for MOREC_THREADS but received '${value}'`);
  return n;
}

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const budget = budgetFromEnvironment();
  const failures: string[] = [];
  for (const file of addonCandidates()) {
    if (!fs.existsSync(file)) {
      failures.push(`${file}: not built`);
      continue;
    }
    try {
      const addon = require(file) as NativeAddon;
      if (budget !== undefined) addon.setThreads(budget);
      cached = addon;
      return cached;
    } catch (err) {
      failures.push(explain(file, err));
    }
  }
  throw new MorecError(
    'ENOADDON',
    'morec could not load its native addon. Tried:\n  ' +
      failures.join('\n  ') +
      '\nBuild it with `npm run build:native` (needs libtorch-dev, cmake and a C++17 compiler).',
  );
}
