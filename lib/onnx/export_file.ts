/**
 * `morec export-onnx`: an encoder as the E2E towers take it (a Hugging Face BERT/RoBERTa/Swin folder, a
 * torchvision/timm weights file, or a preset with the seeded initial weights) written as ONNX, with no data set:
 * the encoder is built natively around a one-item store, its weights loaded, and the graph written by lib/onnx.
 */
import * as path from 'node:path';
import { MorecError } from '../errors';
import { resolveImageEncoder } from '../image/encoders';
import { ItemStore } from '../item_store';
import { Model } from '../model';
import { resolveTextEncoder } from '../text/encoder';
import { exportEncoderOnnx, OnnxExportReport } from './index';

export function exportEncoderFile(encoder: string, out: string, options: { arch?: string; size?: number; seed?: number } = {}): OnnxExportReport & { encoder: string; weights: string | null } {
  if (typeof out !== 'string' || !out.endsWith('.onnx')) throw new MorecError('EINVAL', `Expected an .onnx file for out but received ${JSON.stringify(out)}`);
  let model: Model;
  let weights: string | undefined;
  let text: ReturnType<typeof resolveTextEncoder> | undefined;
  try {
    text = resolveTextEncoder(encoder);
  } catch {
    text = undefined;
  }
  if (text) {
    // One item of two tokens: [CLS] [SEP] of either tokenizer family stay below any vocabulary size.
    const items = new ItemStore({ numItems: 1, maxTokens: 2, tokens: new Int32Array([0, 0, 0, 0]), lengths: new Int32Array([0, 2]) });
    model = Model.create({ backbone: 'sasrec', numItems: 1, itemTower: 'text', text: text.config as never, seed: options.seed ?? 42 }, { items });
    weights = text.weights;
  } else {
    const spec = resolveImageEncoder(encoder, options.arch);
    const size = options.size ?? spec.config.imageSize;
    const items = ItemStore.fromPixels({ numItems: 1, height: size, width: size, pixels: new Uint8Array(2 * 3 * size * size) });
    model = Model.create({ backbone: 'sasrec', numItems: 1, itemTower: 'image', image: { ...spec.config, imageSize: size } as never, seed: options.seed ?? 42 }, { items });
    weights = spec.weights;
  }
  if (weights) model.loadEncoderWeights(weights);
  const report = exportEncoderOnnx(model, path.resolve(out));
  return { ...report, encoder, weights: weights ?? null };
}
