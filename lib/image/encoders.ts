/**
 * Image encoders for the image item tower: the architecture presets in models/ (`model_type: 'morec-image'`:
 * torchvision's ResNet and Swin shapes, no weights), torchvision / timm state-dict files (.pth, .safetensors)
 * with the preset that describes them, and Hugging Face Swin folders (config.json + weights). All become the
 * native tower's `image` config; weights load in the core (Model.loadEncoderWeights).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from '../errors';
import { NativeImageTowerConfig } from '../native';
import { MODELS_DIR, readJsonObject as readJson } from '../text/encoder';

export type ImageEncoderConfig = Pick<NativeImageTowerConfig, 'arch' | 'block' | 'depths' | 'width' | 'heads' | 'windowSize' | 'patchSize' | 'mlpRatio' | 'layerNormEps' | 'imageSize'> &
  Partial<Pick<NativeImageTowerConfig, 'widthPerGroup'>>;

export interface ImageEncoderSpec {
  /** Preset name, file or folder. */
  name: string;
  config: ImageEncoderConfig;
  /** The weights file (undefined for presets: trained from scratch). */
  weights?: string;
  /** How the architecture of a bare weights file was chosen, when it was guessed from the file name. */
  guessed?: string;
}


/** Names of the image presets in models/. */
export function imageEncoderPresets(): string[] {
  if (!fs.existsSync(MODELS_DIR)) return [];
  return fs
    .readdirSync(MODELS_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .filter((name) => readJson(path.join(MODELS_DIR, `${name}.json`)).model_type === 'morec-image')
    .sort();
}

function presetConfig(name: string): ImageEncoderConfig {
  const file = path.join(MODELS_DIR, `${name}.json`);
  const j = readJson(file);
  if (j.model_type !== 'morec-image') throw new MorecError('EINVAL', `${file}: not an image encoder preset (model_type '${String(j.model_type)}')`);
  const { _morec: _d, model_type: _t, ...config } = j;
  return { block: 'bottleneck', heads: [3, 6, 12, 24], windowSize: 7, patchSize: 4, mlpRatio: 4, layerNormEps: 1e-5, imageSize: 224, ...config } as ImageEncoderConfig;
}

/** Maps a Hugging Face SwinConfig JSON (model_type 'swin') onto the native config; refuses what it cannot run. */
export function imageConfigFromHf(hf: Record<string, unknown>, file: string): ImageEncoderConfig {
  if (hf.model_type !== 'swin')
    throw new MorecError('EINVAL', `${file}: model_type '${String(hf.model_type)}' is not supported for images (expected 'swin'; ResNets load from torchvision/timm state dicts with a preset: resnet18, resnet34, resnet50)`);
  const int = (key: string, def?: number): number => {
    const v = hf[key] ?? def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new MorecError('EINVAL', `${file}: expected a positive integer for ${key} but found ${JSON.stringify(v)}`);
    return v;
  };
  const ints = (key: string): number[] => {
    const v = hf[key];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) throw new MorecError('EINVAL', `${file}: expected an array of positive integers for ${key} but found ${JSON.stringify(v)}`);
    return v as number[];
  };
  const act = hf.hidden_act ?? 'gelu';
  if (act !== 'gelu') throw new MorecError('EINVAL', `${file}: hidden_act '${String(act)}' is not supported (expected 'gelu')`);
  if (hf.use_absolute_embeddings === true) throw new MorecError('EINVAL', `${file}: use_absolute_embeddings is not supported (torchvision's Swin has none)`);
  return {
    arch: 'swin',
    block: 'bottleneck',
    depths: ints('depths'),
    width: int('embed_dim'),
    heads: ints('num_heads'),
    windowSize: int('window_size', 7),
    patchSize: int('patch_size', 4),
    mlpRatio: typeof hf.mlp_ratio === 'number' ? hf.mlp_ratio : 4,
    layerNormEps: typeof hf.layer_norm_eps === 'number' ? hf.layer_norm_eps : 1e-5,
    imageSize: int('image_size', 224),
  };
}

const GUESSES: Array<[RegExp, string]> = [
  [/resnet-?18/i, 'resnet18'],
  [/resnet-?34/i, 'resnet34'],
  [/resnet-?50/i, 'resnet50'],
  [/swin[-_]?(t|tiny)\b|swin[-_]tiny|swin_t/i, 'swin-t'],
  [/swin[-_]?(b|base)\b|swin[-_]base|swin_b/i, 'swin-b'],
];

/**
 * A preset name from models/ (architecture only: trained from scratch), a state-dict file (.pth, .bin,
 * .safetensors) whose architecture is `arch` (a preset name) or guessed from the file name (said so in
 * `guessed`), or a Hugging Face Swin folder (config.json + model.safetensors | pytorch_model.bin).
 */
export function resolveImageEncoder(nameOrPath: string, arch?: string): ImageEncoderSpec {
  const presets = imageEncoderPresets();
  if (typeof nameOrPath !== 'string' || nameOrPath.length === 0)
    throw new MorecError('EINVAL', `Expected a preset name (${presets.join(', ')}), a weights file or a Hugging Face Swin folder for the image encoder but received ${JSON.stringify(nameOrPath)}`);
  if (arch !== undefined && !presets.includes(arch))
    throw new MorecError('EINVAL', `Expected one of ${presets.join(', ')} for the image encoder's architecture but received ${JSON.stringify(arch)}`);
  if (!nameOrPath.includes('/') && presets.includes(nameOrPath)) return { name: nameOrPath, config: presetConfig(nameOrPath) };
  const p = path.resolve(nameOrPath);
  if (!fs.existsSync(p))
    throw new MorecError('EINVAL', `Expected a preset name (${presets.join(', ')}), a weights file or a Hugging Face Swin folder for the image encoder but '${nameOrPath}' is none of them`);
  if (fs.statSync(p).isDirectory()) {
    const configFile = path.join(p, 'config.json');
    const weights = ['model.safetensors', 'pytorch_model.bin'].map((f) => path.join(p, f)).find((f) => fs.existsSync(f));
    if (!fs.existsSync(configFile) || !weights)
      throw new MorecError('EINVAL', `${p}: a Hugging Face image encoder folder needs config.json and model.safetensors or pytorch_model.bin`);
    return { name: p, config: imageConfigFromHf(readJson(configFile), configFile), weights };
  }
  let preset = arch;
  let guessed: string | undefined;
  if (!preset) {
    const hit = GUESSES.find(([re]) => re.test(path.basename(p)));
    if (!hit)
      throw new MorecError('EINVAL', `${p}: cannot tell the architecture of these weights from the file name; pass the preset (${presets.join(', ')}) with --image-arch / options.arch`);
    preset = hit[1];
    guessed = `architecture ${preset} guessed from the file name ${path.basename(p)}`;
  }
  return { name: p, config: presetConfig(preset), weights: p, guessed };
}
