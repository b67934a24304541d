/**
 * Text encoders for the text item tower: Hugging Face folders (config.json + model.safetensors or
 * pytorch_model.bin + tokenizer files) and the architecture presets in models/ (the public config.json of
 * each encoder, no weights). Both become the native tower's encoder config; weights load in the core.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from '../errors';
import { NativeTextTowerConfig } from '../native';

export const MODELS_DIR = path.resolve(__dirname, '..', '..', '..', 'models');

/** An encoder's architecture and, for a checkpoint folder, where its weights and tokenizer are. */
export interface TextEncoderSpec {
  /** Preset name or folder. */
  name: string;
  config: Pick<NativeTextTowerConfig, 'kind' | 'vocabSize' | 'hidden' | 'layers' | 'heads' | 'intermediate' | 'maxPositions' | 'typeVocabSize' | 'padTokenId' | 'layerNormEps' | 'hiddenDropout' | 'attentionDropout'>;
  /** model.safetensors or pytorch_model.bin of a checkpoint folder; undefined for presets (trained from scratch). */
  weights?: string;
  /** The folder to read the tokenizer from, if it has one. */
  tokenizerDir?: string;
}

/** A JSON object from a file, or ENOENT / EFORMAT naming it. */
export function readJsonObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new MorecError('ENOENT', `${file}: cannot be read (${(e as Error).message})`);
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v;
  } catch (e) {
    throw new MorecError('EFORMAT', `${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** Maps a Hugging Face BertConfig/RobertaConfig JSON onto the native encoder config; refuses what it cannot run. */
export function encoderConfigFromHf(hf: Record<string, unknown>, file: string): TextEncoderSpec['config'] {
  const type = hf.model_type;
  if (type !== 'bert' && type !== 'roberta')
    throw new MorecError('EINVAL', `${file}: model_type '${String(type)}' is not supported (expected 'bert' or 'roberta')`);
  const int = (key: string, def?: number): number => {
    const v = hf[key] ?? def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new MorecError('EINVAL', `${file}: expected a non-negative integer for ${key} but found ${JSON.stringify(v)}`);
    return v;
  };
  const num = (key: string, def: number): number => {
    const v = hf[key] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new MorecError('EINVAL', `${file}: expected a number for ${key} but found ${JSON.stringify(v)}`);
    return v;
  };
  const act = hf.hidden_act ?? 'gelu';
  if (act !== 'gelu') throw new MorecError('EINVAL', `${file}: hidden_act '${String(act)}' is not supported (expected 'gelu', the exact erf GELU)`);
  const pos = hf.position_embedding_type ?? 'absolute';
  if (pos !== 'absolute') throw new MorecError('EINVAL', `${file}: position_embedding_type '${String(pos)}' is not supported (expected 'absolute')`);
  return {
    kind: type,
    vocabSize: int('vocab_size'),
    hidden: int('hidden_size'),
    layers: int('num_hidden_layers'),
    heads: int('num_attention_heads'),
    intermediate: int('intermediate_size'),
    maxPositions: int('max_position_embeddings'),
    typeVocabSize: int('type_vocab_size', 2),
    padTokenId: int('pad_token_id', type === 'roberta' ? 1 : 0),
    layerNormEps: num('layer_norm_eps', 1e-12),
    hiddenDropout: num('hidden_dropout_prob', 0.1),
    attentionDropout: num('attention_probs_dropout_prob', 0.1),
  };
}

/** Names of the presets in models/ (each `<name>.json` is a Hugging Face config.json). */
export function textEncoderPresets(): string[] {
  if (!fs.existsSync(MODELS_DIR)) return [];
  return fs
    .readdirSync(MODELS_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .filter((name) => {
      const t = readJsonObject(path.join(MODELS_DIR, `${name}.json`)).model_type;
      return t === 'bert' || t === 'roberta';
    })
    .sort();
}

/**
 * A preset name from models/ (architecture only: trained from scratch) or a Hugging Face checkpoint folder
 * (config.json + model.safetensors | pytorch_model.bin, and its tokenizer files).
 */
export function resolveTextEncoder(nameOrFolder: string): TextEncoderSpec {
  if (typeof nameOrFolder !== 'string' || nameOrFolder.length === 0)
    throw new MorecError('EINVAL', `Expected a preset name (${textEncoderPresets().join(', ')}) or a checkpoint folder for the text encoder but received ${JSON.stringify(nameOrFolder)}`);
  const preset = path.join(MODELS_DIR, `${nameOrFolder}.json`);
  if (!nameOrFolder.includes('/') && fs.existsSync(preset)) return { name: nameOrFolder, config: encoderConfigFromHf(readJsonObject(preset), preset) };
  const dir = path.resolve(nameOrFolder);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new MorecError('EINVAL', `Expected a preset name (${textEncoderPresets().join(', ')}) or a checkpoint folder for the text encoder but '${nameOrFolder}' is neither`);
  const configFile = path.join(dir, 'config.json');
  if (!fs.existsSync(configFile)) throw new MorecError('EINVAL', `${dir}: no config.json (a Hugging Face checkpoint folder has config.json and model.safetensors or pytorch_model.bin)`);
  const weights = ['model.safetensors', 'pytorch_model.bin'].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  if (!weights) throw new MorecError('EINVAL', `${dir}: no model.safetensors or pytorch_model.bin beside config.json`);
  return { name: dir, config: encoderConfigFromHf(readJsonObject(configFile), configFile), weights, tokenizerDir: dir };
}

/**
 * Parameters of a BERT/RoBERTa encoder as morec builds it (embeddings with their LayerNorm, then per layer
 * Q/K/V/out with biases, a LayerNorm, the FFN and a LayerNorm; no pooler): the x axis of the report's
 * encoder-size figure. Checked against the model's own parameter list in test/text_encoder.test.ts.
 */
export function encoderParameterCount(c: Pick<NativeTextTowerConfig, 'vocabSize' | 'hidden' | 'layers' | 'intermediate' | 'maxPositions' | 'typeVocabSize'>): number {
  const H = c.hidden;
  const I = c.intermediate;
  const embeddings = (c.vocabSize + c.maxPositions + c.typeVocabSize) * H + 2 * H;
  const layer = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H;
  return embeddings + c.layers * layer;
}
