/**
 * ONNX export of a model's item-tower encoder, written by hand (lib/onnx/protobuf.ts, lib/onnx/graph.ts): no
 * Python, no protobuf package. The file is what the two-stage feature extractor runs with ONNX Runtime:
 *   text  (BERT / RoBERTa): input_ids, attention_mask int64 [batch, sequence] -> last_hidden_state float
 *         [batch, sequence, hidden] (pool it as config.text.pooling says: cls = row 0, mean = masked mean)
 *   image (ResNet, Swin):   pixel_values float [batch, 3, height, width], normalized -> pooler_output float
 *         [batch, features] (Swin: height = width = config.image.imageSize, fixed dimensions)
 * Eval-mode math of the native encoders (no dropout; BatchNorm with running statistics), default-domain ops
 * of opset 17, ir_version 8, float32 initializers as raw_data. Written atomically (temp file + rename).
 */
import { MorecError } from '../errors';
import { writeAtomic } from '../io/safetensors';
import type { Model } from '../model';
import { buildBert } from './bert';
import { GraphBuilder, IR_VERSION, OPSET, Params } from './graph';
import { buildResNet } from './resnet';
import { buildSwin } from './swin';

export { buildBert } from './bert';
export { buildResNet } from './resnet';
export { buildSwin } from './swin';
export { GraphBuilder, Params, IR_VERSION, OPSET } from './graph';

export interface OnnxExportReport {
  file: string;
  kind: 'text' | 'image';
  inputs: string[];
  outputs: string[];
  bytes: number;
  nodes: number;
}

const ENCODER_PREFIX = 'item_tower.encoder.';
/** A protobuf message cannot exceed 2 GiB; weights beyond that would need ONNX external data. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;
const SUPPORTED = "itemTower 'text' (BERT, RoBERTa) and itemTower 'image' (image.arch 'resnet' or 'swin')";

/**
 * Writes the item tower's encoder of `model` as an ONNX file (text: BERT/RoBERTa; image: ResNet, Swin).
 * Refuses (EINVAL) an ID tower and any other encoder.
 */
export function exportEncoderOnnx(model: Model, file: string): OnnxExportReport {
  if (typeof file !== 'string' || file.length === 0)
    throw new MorecError('EINVAL', `Expected an .onnx file path for file but received ${file === '' ? "''" : typeof file}`);
  const config = model.config;
  let kind: 'text' | 'image';
  let g: GraphBuilder;
  // Fusion towers hold the modality tower (and its encoder) as item_tower.modality.
  const prefix = config.fusion !== undefined && config.fusion !== 'none' ? 'item_tower.modality.encoder.' : ENCODER_PREFIX;
  const params = () => new Params(model.parameters(), prefix);
  if (config.itemTower === 'text' && config.text) {
    kind = 'text';
    g = new GraphBuilder(`morec-${config.text.kind}`);
    buildBert(g, config.text, params());
  } else if (config.itemTower === 'image' && config.image) {
    kind = 'image';
    if (config.image.arch === 'resnet') {
      g = new GraphBuilder('morec-resnet');
      buildResNet(g, config.image, params());
    } else if (config.image.arch === 'swin') {
      g = new GraphBuilder('morec-swin');
      buildSwin(g, config.image, params());
    } else {
      throw new MorecError('EINVAL', `ONNX export does not support image.arch '${config.image.arch}' (supported: ${SUPPORTED})`);
    }
  } else {
    throw new MorecError('EINVAL', `ONNX export needs an encoder item tower but this model has itemTower '${config.itemTower}' (supported: ${SUPPORTED})`);
  }
  const proto = g.model({ producerName: 'morec', docString: `morec ${kind} encoder (${kind === 'text' ? config.text!.kind : config.image!.arch}), ir_version ${IR_VERSION}, opset ${OPSET}` });
  if (proto.length > PROTOBUF_LIMIT)
    throw new MorecError('EINVAL', `ONNX export: the encoder needs ${proto.length} bytes, more than protobuf's 2 GiB limit for one file (external data is not supported)`);
  const written = writeAtomic(file, proto.chunks());
  return { file, kind, inputs: [...g.inputNames], outputs: [...g.outputNames], bytes: written.bytes, nodes: g.nodeCount };
}
