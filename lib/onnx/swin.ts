/**
 * Swin Transformer v1 image encoder (native/encoders/swin.cc, torchvision 0.14's SwinTransformer without its
 * head) as an ONNX graph, eval mode, for the config's image size (the window layout of every block is fixed
 * by the feature-map size, so height and width are fixed dimensions):
 *   input   pixel_values [batch, 3, imageSize, imageSize] float (already normalized)
 *   output  pooler_output [batch, width * 2^(stages-1)] float
 * Tokens travel as [batch, H*W, C]. Each block's padding to window multiples, cyclic shift and window
 * partition is one Gather of token rows (a zero row appended stands for padding tokens, as torchvision pads
 * after norm1 with zeros) and one Gather back, with indices computed here exactly as the native
 * SwinWindowGeometry; the relative position bias (and the shifted-window mask, -100 between regions) is a
 * constant added to the scores. PatchMerging pads odd maps, interleaves 2x2 neighbours in torchvision's order
 * (x0, x1, x2, x3 = [0::2, 0::2], [1::2, 0::2], [0::2, 1::2], [1::2, 1::2]), LayerNorm, Linear without bias.
 */
import type { NativeImageTowerConfig } from '../native';
import { gelu } from './bert';
import { DataType, float, GraphBuilder, int, ints, Params, transpose } from './graph';

interface Geometry {
  identity: boolean;
  padded: boolean;
  numWindows: number;
  /** [numWindows * N]: each windowed token's row in the unpadded map, or H * W for a padding token */
  toWindows: number[];
  /** [H * W]: each token's row in the windowed layout */
  fromWindows: number[];
  /** [numWindows, N, N] 0 / -100, or null without shift */
  mask: Float32Array | null;
  /** [N * N] rows of the relative position bias table */
  relativeIndex: number[];
}

function pythonSlice(n: number, start: number | null, stop: number | null): [number, number] {
  const resolve = (v: number | null, open: number) => (v === null ? open : Math.min(Math.max(v < 0 ? v + n : v, 0), n));
  return [resolve(start, 0), resolve(stop, n)];
}

/** The native SwinGeometryCache::get, in TypeScript. */
export function swinGeometry(H: number, W: number, ws: number, shift: number): Geometry {
  const N = ws * ws;
  const padH = Math.ceil(H / ws) * ws;
  const padW = Math.ceil(W / ws) * ws;
  const padded = padH !== H || padW !== W;
  const shiftH = ws >= padH ? 0 : shift;
  const shiftW = ws >= padW ? 0 : shift;
  const nWh = padH / ws;
  const nWw = padW / ws;
  const numWindows = nWh * nWw;
  const identity = !padded && numWindows === 1 && shiftH === 0 && shiftW === 0;
  const toWindows = new Array<number>(numWindows * N);
  const fromWindows = new Array<number>(H * W);
  for (let wy = 0; wy < nWh; wy++)
    for (let wx = 0; wx < nWw; wx++)
      for (let ty = 0; ty < ws; ty++)
        for (let tx = 0; tx < ws; tx++) {
          const i = ((wy * nWw + wx) * ws + ty) * ws + tx;
          const y = (wy * ws + ty + shiftH) % padH;
          const x = (wx * ws + tx + shiftW) % padW;
          if (y < H && x < W) {
            toWindows[i] = y * W + x;
            fromWindows[y * W + x] = i;
          } else toWindows[i] = H * W;
        }
  let mask: Float32Array | null = null;
  if (shiftH > 0 || shiftW > 0) {
    const label = new Int32Array(padH * padW);
    let count = 0;
    const slices = (n: number, s: number) => [pythonSlice(n, 0, -ws), pythonSlice(n, -ws, -s), pythonSlice(n, -s, null)];
    for (const [h0, h1] of slices(padH, shiftH))
      for (const [w0, w1] of slices(padW, shiftW)) {
        for (let y = h0; y < h1; y++) for (let x = w0; x < w1; x++) label[y * padW + x] = count;
        count++;
      }
    mask = new Float32Array(numWindows * N * N);
    const windowLabel = new Int32Array(N);
    for (let wy = 0; wy < nWh; wy++)
      for (let wx = 0; wx < nWw; wx++) {
        for (let ty = 0; ty < ws; ty++) for (let tx = 0; tx < ws; tx++) windowLabel[ty * ws + tx] = label[(wy * ws + ty) * padW + wx * ws + tx];
        const base = (wy * nWw + wx) * N * N;
        for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) mask[base + i * N + j] = windowLabel[i] !== windowLabel[j] ? -100 : 0;
      }
  }
  const relativeIndex = new Array<number>(N * N);
  for (let i = 0; i < N; i++)
    for (let j = 0; j < N; j++)
      relativeIndex[i * N + j] = (Math.floor(i / ws) - Math.floor(j / ws) + ws - 1) * (2 * ws - 1) + ((i % ws) - (j % ws) + ws - 1);
  return { identity, padded, numWindows, toWindows, fromWindows, mask, relativeIndex };
}

export function swinFeatures(c: NativeImageTowerConfig): number {
  return c.width << (c.depths.length - 1);
}

export function buildSwin(g: GraphBuilder, c: NativeImageTowerConfig, p: Params): void {
  const P = c.patchSize;
  const ws = c.windowSize;
  const N = ws * ws;
  const eps = c.layerNormEps;
  if (c.imageSize % P !== 0) throw new Error(`onnx export: image size ${c.imageSize} is not a multiple of patch size ${P}`);
  const pixels = g.input('pixel_values', DataType.FLOAT, ['batch', 3, c.imageSize, c.imageSize]);

  const layerNorm = (x: string, name: string, C: number) => {
    const gamma = g.float(`${name}.weight`, [C], p.get(`${name}.weight`, [C]));
    const beta = g.float(`${name}.bias`, [C], p.get(`${name}.bias`, [C]));
    return g.op('LayerNormalization', [x, gamma, beta], { axis: int(-1), epsilon: float(eps) });
  };
  const linear = (x: string, name: string, inF: number, outF: number, bias = true) => {
    const w = g.float(`${name}.weight_t`, [inF, outF], transpose(p.get(`${name}.weight`, [outF, inF]), outF, inF));
    const y = g.op('MatMul', [x, w]);
    return bias ? g.op('Add', [y, g.float(`${name}.bias`, [outF], p.get(`${name}.bias`, [outF]))]) : y;
  };

  // Patch embedding: conv P x P / P -> [B, Hp, Wp, C] -> [B, Hp * Wp, C] -> LayerNorm.
  let C = c.width;
  let H = c.imageSize / P;
  let W = H;
  const convW = g.float('features.0.0.weight', [C, 3, P, P], p.get('features.0.0.weight', [C, 3, P, P]));
  const convB = g.float('features.0.0.bias', [C], p.get('features.0.0.bias', [C]));
  const patches = g.op('Conv', [pixels, convW, convB], { kernel_shape: ints([P, P]), strides: ints([P, P]), pads: ints([0, 0, 0, 0]) });
  let x = g.op('Reshape', [g.op('Transpose', [patches], { perm: ints([0, 2, 3, 1]) }), g.constInt64([0, H * W, C])]);
  x = layerNorm(x, 'features.0.2', C);

  c.depths.forEach((depth, s) => {
    if (s >= 1) {
      // PatchMerging (features.{2s}): [B, H, W, C] (odd sides padded) -> [B, H2, W2, 4C] -> LayerNorm -> Linear(4C -> 2C).
      const M = `features.${2 * s}`;
      let m = g.op('Reshape', [x, g.constInt64([0, H, W, C])]);
      if (H % 2 || W % 2) m = g.op('Pad', [m, g.constInt64([0, 0, 0, 0, 0, H % 2, W % 2, 0])]);
      const H2 = Math.ceil(H / 2);
      const W2 = Math.ceil(W / 2);
      m = g.op('Reshape', [m, g.constInt64([0, H2, 2, W2, 2, C])]);
      m = g.op('Transpose', [m], { perm: ints([0, 1, 3, 4, 2, 5]) });
      m = g.op('Reshape', [m, g.constInt64([0, H2 * W2, 4 * C])]);
      x = linear(layerNorm(m, `${M}.norm`, 4 * C), `${M}.reduction`, 4 * C, 2 * C, false);
      H = H2;
      W = W2;
      C *= 2;
    }
    const heads = c.heads[s];
    const dh = C / heads;
    const hidden = Math.floor(C * c.mlpRatio);
    for (let b = 0; b < depth; b++) {
      const B = `features.${2 * s + 1}.${b}.`;
      const geo = swinGeometry(H, W, ws, b % 2 ? Math.floor(ws / 2) : 0);
      const nW = geo.numWindows;
      let h = layerNorm(x, `${B}norm1`, C); // [B, HW, C]
      if (!geo.identity) {
        if (geo.padded) h = g.op('Pad', [h, g.constInt64([0, 0, 0, 0, 1, 0])]); // row H*W: zeros
        h = g.op('Gather', [h, g.int64(g.fresh(`${B}to_windows`), [nW * N], geo.toWindows)], { axis: int(1) });
      }
      const rows = g.op('Reshape', [h, g.constInt64([-1, N, C])]); // [B * nW, N, C]

      // Q, K, V from the fused qkv Linear (rows [q; k; v]); 1 / sqrt(dh) folded into Q.
      const qkvW = p.get(`${B}attn.qkv.weight`, [3 * C, C]);
      const qkvB = p.get(`${B}attn.qkv.bias`, [3 * C]);
      const scale = 1 / Math.sqrt(dh);
      const project = (part: number, perm: number[], name: string) => {
        const s_ = part === 0 ? scale : 1;
        const w = g.float(`${B}attn.qkv.${name}.weight_t`, [C, C], transpose(qkvW.subarray(part * C * C, (part + 1) * C * C), C, C, s_));
        const bias = g.float(`${B}attn.qkv.${name}.bias`, [C], qkvB.slice(part * C, (part + 1) * C).map((v) => v * s_));
        const y = g.op('Add', [g.op('MatMul', [rows, w]), bias]);
        return g.op('Transpose', [g.op('Reshape', [y, g.constInt64([0, 0, heads, dh])])], { perm: ints(perm) });
      };
      const q = project(0, [0, 2, 1, 3], 'q'); // [Bw, h, N, dh]
      const k = project(1, [0, 2, 3, 1], 'k'); // [Bw, h, dh, N]
      const v = project(2, [0, 2, 1, 3], 'v'); // [Bw, h, N, dh]
      let scores = g.op('MatMul', [q, k]); // [Bw, h, N, N]

      // Relative position bias [h, N, N] (+ the shift mask per window: [nW, h, N, N]).
      const table = p.get(`${B}attn.relative_position_bias_table`, [(2 * ws - 1) * (2 * ws - 1), heads]);
      const bias = new Float32Array(heads * N * N);
      for (let hd = 0; hd < heads; hd++) for (let ij = 0; ij < N * N; ij++) bias[hd * N * N + ij] = table[geo.relativeIndex[ij] * heads + hd];
      if (geo.mask) {
        const full = new Float32Array(nW * heads * N * N);
        for (let w = 0; w < nW; w++)
          for (let hd = 0; hd < heads; hd++)
            for (let ij = 0; ij < N * N; ij++) full[(w * heads + hd) * N * N + ij] = bias[hd * N * N + ij] + geo.mask[w * N * N + ij];
        const shifted = g.op('Reshape', [scores, g.constInt64([-1, nW, heads, N, N])]);
        scores = g.op('Add', [shifted, g.float(`${B}attn.bias_and_mask`, [nW, heads, N, N], full)]);
      } else {
        scores = g.op('Add', [scores, g.float(`${B}attn.bias`, [heads, N, N], bias)]);
      }
      let probs = g.op('Softmax', [scores], { axis: int(-1) });
      if (geo.mask) probs = g.op('Reshape', [probs, g.constInt64([-1, heads, N, N])]);
      const context = g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: ints([0, 2, 1, 3]) }); // [Bw, N, h, dh]
      let attended = linear(g.op('Reshape', [context, g.constInt64([-1, nW * N, C])]), `${B}attn.proj`, C, C); // [B, nW*N, C]
      if (!geo.identity) attended = g.op('Gather', [attended, g.int64(g.fresh(`${B}from_windows`), [H * W], geo.fromWindows)], { axis: int(1) });
      const y = g.op('Add', [x, attended]);
      const mlp = linear(gelu(g, linear(layerNorm(y, `${B}norm2`, C), `${B}mlp.0`, C, hidden)), `${B}mlp.3`, hidden, C);
      x = g.op('Add', [y, mlp]);
    }
  });
  const pooled = g.op('ReduceMean', [layerNorm(x, 'norm', C)], { axes: ints([1]), keepdims: int(0) });
  g.output(pooled, 'pooler_output', DataType.FLOAT, ['batch', C]);
}
