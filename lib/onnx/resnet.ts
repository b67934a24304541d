/**
 * ResNet image encoder (native/encoders/resnet.cc, torchvision's ResNet without fc) as an ONNX graph, eval mode:
 *   input   pixel_values [batch, 3, height, width] float (already normalized)
 *   output  pooler_output [batch, features] float
 * Every BatchNorm (running statistics, eps 1e-5) is folded into the convolution before it (computed in
 * float64): conv(x, w * s) + (beta - mean * s), s = gamma / sqrt(var + eps). Stem conv 7x7/2 pad 3 + ReLU +
 * max-pool 3x3/2 pad 1; BasicBlock (3x3 with the stride, 3x3) or Bottleneck v1.5 (1x1, 3x3 with the stride,
 * 1x1 x4); downsample 1x1 with the stride; ReLU after the residual add; global average pool, flatten.
 */
import type { NativeImageTowerConfig } from '../native';
import { DataType, GraphBuilder, int, ints, Params } from './graph';

const BATCH_NORM_EPS = 1e-5; // torchvision's nn.BatchNorm2d default, as native/encoders/resnet.cc

/** The feature count of a ResNet config (width * 2^(stages-1), times 4 for bottlenecks). */
export function resnetFeatures(c: NativeImageTowerConfig): number {
  return (c.width << (c.depths.length - 1)) * (c.block === 'bottleneck' ? 4 : 1);
}

export function buildResNet(g: GraphBuilder, c: NativeImageTowerConfig, p: Params): void {
  const bottleneck = c.block === 'bottleneck';
  const pixels = g.input('pixel_values', DataType.FLOAT, ['batch', 3, 'height', 'width']);

  // conv (no bias) + BatchNorm folded; returns the output value.
  const convBn = (x: string, conv: string, bn: string, inC: number, outC: number, k: number, stride: number, pad: number): string => {
    const w = p.get(`${conv}.weight`, [outC, inC, k, k]);
    const gamma = p.get(`${bn}.weight`, [outC]);
    const beta = p.get(`${bn}.bias`, [outC]);
    const mean = p.get(`${bn}.running_mean`, [outC]);
    const variance = p.get(`${bn}.running_var`, [outC]);
    const per = inC * k * k;
    const wf = new Float32Array(w.length);
    const bf = new Float32Array(outC);
    for (let o = 0; o < outC; o++) {
      const s = gamma[o] / Math.sqrt(variance[o] + BATCH_NORM_EPS);
      for (let j = 0; j < per; j++) wf[o * per + j] = w[o * per + j] * s;
      bf[o] = beta[o] - mean[o] * s;
    }
    const wn = g.float(`${conv}.weight+${bn}`, [outC, inC, k, k], wf);
    const bn_ = g.float(`${conv}.bias+${bn}`, [outC], bf);
    return g.op('Conv', [x, wn, bn_], {
      kernel_shape: ints([k, k]),
      strides: ints([stride, stride]),
      pads: ints([pad, pad, pad, pad]),
      dilations: ints([1, 1]),
      group: int(1),
    });
  };
  const relu = (x: string) => g.op('Relu', [x]);

  let h = relu(convBn(pixels, 'conv1', 'bn1', 3, c.width, 7, 2, 3));
  h = g.op('MaxPool', [h], { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) });
  let inPlanes = c.width;
  c.depths.forEach((depth, s) => {
    const planes = c.width << s;
    for (let b = 0; b < depth; b++) {
      const stride = b === 0 && s > 0 ? 2 : 1;
      const B = `layer${s + 1}.${b}.`;
      const outPlanes = planes * (bottleneck ? 4 : 1);
      let out: string;
      if (bottleneck) {
        const width = Math.floor(planes * (c.widthPerGroup / 64));
        out = relu(convBn(h, `${B}conv1`, `${B}bn1`, inPlanes, width, 1, 1, 0));
        out = relu(convBn(out, `${B}conv2`, `${B}bn2`, width, width, 3, stride, 1));
        out = convBn(out, `${B}conv3`, `${B}bn3`, width, outPlanes, 1, 1, 0);
      } else {
        out = relu(convBn(h, `${B}conv1`, `${B}bn1`, inPlanes, planes, 3, stride, 1));
        out = convBn(out, `${B}conv2`, `${B}bn2`, planes, planes, 3, 1, 1);
      }
      const identity = stride !== 1 || inPlanes !== outPlanes ? convBn(h, `${B}downsample.0`, `${B}downsample.1`, inPlanes, outPlanes, 1, stride, 0) : h;
      h = relu(g.op('Add', [out, identity]));
      inPlanes = outPlanes;
    }
  });
  const pooled = g.op('Flatten', [g.op('GlobalAveragePool', [h])], { axis: int(1) });
  g.output(pooled, 'pooler_output', DataType.FLOAT, ['batch', inPlanes]);
}
