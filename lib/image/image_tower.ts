/**
 * Everything an image item tower needs from a data set: the encoder (a preset trained from scratch, a
 * torchvision/timm weights file or a Hugging Face Swin folder) and the ItemStore of the items' pixels, read
 * from an image store prepared once per data set and image size (lib/image/store.ts) and memory-mapped by the
 * core.
 */
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { Dataset } from '../data/dataset';
import { MorecError } from '../errors';
import { ItemStore } from '../item_store';
import { NativeImageTowerConfig } from '../native';
import { resolveImageEncoder } from './encoders';
import { knownKeys } from '../validate';
import { droppedItems, formatImageStoreReport, ImageStore, MissingImagePolicy, prepareImageStore } from './store';
import { ResizeRule } from './decode';

export interface ImageTowerOptions {
  /** Preset name in models/ (trained from scratch), a weights file, or a Hugging Face Swin folder. Default 'resnet-mini'. */
  encoder?: string;
  /** The preset describing a bare weights file's architecture (default: guessed from its name, and said so). */
  arch?: string;
  /** Pixels per side (default: the encoder's imageSize). */
  size?: number;
  /** 'paper' (default: mean = std = 0.5, as the study's code) or 'imagenet' (torchvision's pretraining statistics). */
  normalize?: 'paper' | 'imagenet';
  /** Train only the top n stages (stem and the rest frozen); default: all. */
  finetuneTopStages?: number;
  /** BatchNorm keeps its running statistics while training (usual when fine-tuning with small batches). */
  freezeBatchNorm?: boolean;
  /** Compute the frozen bottom's output once per item (needs finetuneTopStages). */
  cacheFrozen?: boolean;
  channelsLast?: boolean;
  /** Keep only each block's input in the forward pass and recompute the block in the backward pass. */
  gradientCheckpointing?: boolean;
  /**
   * Items whose image is missing or corrupt: 'error' (default), 'blank' (mid-grey, counted and listed) or 'drop'
   * (listed; the data set must then be prepared without them: trainRun does that with PrepareOptions.dropItems).
   */
  missingImage?: MissingImagePolicy;
  /** 'pil-bilinear' (default: the paper's Resize((224, 224)) in Pillow) or 'sharp-linear' (faster). */
  resize?: ResizeRule;
  /** Where the image store is written (default: the data set cache, else a temp folder). */
  workDir?: string;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** Items the 'drop' policy set aside: the data set has to be prepared again without them. */
export interface DroppedImages {
  /** External ids of the items without a usable image. */
  dropped: string[];
  reportFile?: string;
  summary: string[];
}

export interface PreparedImageTower {
  image: Partial<NativeImageTowerConfig>;
  items: ItemStore;
  /** The image store the items' pixels are memory-mapped from. */
  store: ImageStore;
  /** Weights file to load with Model.loadEncoderWeights, for pretrained encoders. */
  weights?: string;
  pretrained: boolean;
  /** e.g. 'resnet-mini(scratch)', 'resnet50(pretrained)'. */
  label: string;
  /** Lines for the load summary: the encoder and the image store. */
  summary: string[];
}

const NORMALIZE = {
  paper: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
};

const IMAGE_TOWER_OPTIONS = ['encoder', 'arch', 'size', 'normalize', 'finetuneTopStages', 'freezeBatchNorm', 'cacheFrozen', 'channelsLast', 'gradientCheckpointing', 'missingImage', 'resize', 'workDir', 'onProgress', 'signal', 'log'];

/**
 * The image tower of a data set. Under missingImage 'drop' with items that have no usable image, no tower can
 * be built on this item set (their rows would be silent zeros): prepareImageTower refuses, and
 * imageTowerOrDropped returns their ids for the caller to prepare the data set without them.
 */
export async function prepareImageTower(data: Dataset, options: ImageTowerOptions = {}): Promise<PreparedImageTower> {
  const r = await imageTowerOrDropped(data, options);
  if ('dropped' in r)
    throw new MorecError(
      'EINVAL',
      `${r.dropped.length} items have no usable image (see ${r.reportFile}) and policy 'drop' removes them, which changes the data set: ` +
        `prepare it with dropItems (trainRun and morec train do), remove them from its files, or use missingImage 'blank'`,
    );
  return r;
}

/** mean and std of a normalize option ('paper' by default). */
export function normalization(name: 'paper' | 'imagenet' | undefined): { mean: number[]; std: number[] } {
  const norm = NORMALIZE[name ?? 'paper'];
  if (!norm) throw new MorecError('EINVAL', `Expected 'paper' or 'imagenet' for normalize but received ${JSON.stringify(name)}`);
  return norm;
}

/**
 * The data set's image store at `size` pixels (prepared once per data set, size, policy and resize rule, beside
 * the data set's cache), or the items that policy 'drop' sets aside.
 */
export async function itemImages(
  data: Dataset,
  options: Pick<ImageTowerOptions, 'missingImage' | 'resize' | 'workDir' | 'onProgress' | 'signal' | 'log'> & { size: number },
): Promise<{ store: ImageStore } | DroppedImages> {
  const paths = data.image;
  if (!paths || paths.every((p) => p === null || p === undefined))
    throw new MorecError('EINVAL', `data set ${data.name} has no item images: image MoRec needs an image per item (an images/ folder, or an image column in the items file)`);
  const policy = options.missingImage ?? 'error';
  const resize = options.resize ?? 'pil-bilinear';
  const key = createHash('sha256').update(JSON.stringify([data.fingerprint, options.size, policy, resize])).digest('hex').slice(0, 16);
  const dir = path.join(options.workDir ?? data.cacheDir ?? path.join(os.tmpdir(), 'morec'), `images-${key}`);
  const store = await prepareImageStore(paths, dir, { size: options.size, policy, resize, onProgress: options.onProgress, signal: options.signal, log: options.log });
  const dropped = droppedItems(store);
  if (dropped.length) return { dropped: dropped.map((i) => data.itemIds[i - 1]), reportFile: store.report.reportFile, summary: [formatImageStoreReport(store)] };
  return { store };
}

export async function imageTowerOrDropped(data: Dataset, options: ImageTowerOptions = {}): Promise<PreparedImageTower | DroppedImages> {
  knownKeys(options, IMAGE_TOWER_OPTIONS, 'image tower');
  const spec = resolveImageEncoder(options.encoder ?? 'resnet-mini', options.arch);
  const pretrained = spec.weights !== undefined;
  const size = options.size ?? spec.config.imageSize;
  const prepared = await itemImages(data, { ...options, size });
  if ('dropped' in prepared) return prepared;
  const { store } = prepared;
  const resize = options.resize ?? 'pil-bilinear';
  const norm = normalization(options.normalize);
  const image: Partial<NativeImageTowerConfig> = { ...spec.config, imageSize: size, mean: norm.mean, std: norm.std };
  if (options.finetuneTopStages !== undefined) image.finetuneTopStages = options.finetuneTopStages;
  if (options.freezeBatchNorm !== undefined) image.freezeBatchNorm = options.freezeBatchNorm;
  if (options.cacheFrozen !== undefined) image.cacheFrozen = options.cacheFrozen;
  if (options.channelsLast !== undefined) image.channelsLast = options.channelsLast;
  if (options.gradientCheckpointing !== undefined) image.gradientCheckpointing = options.gradientCheckpointing;
  const items = ItemStore.fromPixelFile({ numItems: store.numItems, height: store.height, width: store.width, file: store.file }, { imageStore: store.fingerprint, size, resize });
  const label = `${pretrained ? path.basename(spec.name).replace(/\.(pth|bin|safetensors)$/, '') : spec.name}(${pretrained ? 'pretrained' : 'scratch'})`;
  const summary = [
    `image tower ${label}: ${spec.config.arch} (${spec.config.arch === 'resnet' ? `${spec.config.block} blocks ` : ''}depths ${spec.config.depths.join(',')}, width ${spec.config.width}), ${size}x${size} pixels, normalized with mean ${norm.mean.join('/')} std ${norm.std.join('/')}${spec.guessed ? `; ${spec.guessed}` : ''}`,
    formatImageStoreReport(store),
  ];
  return { image, items, store, weights: spec.weights, pretrained, label, summary };
}
