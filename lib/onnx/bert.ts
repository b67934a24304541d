/**
 * BERT / RoBERTa text encoder (native/encoders/bert.cc) as an ONNX graph, eval mode (no dropout):
 *   inputs  input_ids [batch, sequence] int64, attention_mask [batch, sequence] int64
 *   output  last_hidden_state [batch, sequence, hidden] float
 * Embeddings: word + position + token type 0 (a constant row), LayerNorm. Positions: BERT 0..T-1; RoBERTa
 * cumsum(mask) * mask + padTokenId (Hugging Face's rule: padTokenId + 1 + index for the tokens, padTokenId for
 * padding; the same as the native encoder's for left-aligned tokens). Layers: post-LN, self-attention with
 * 1/sqrt(head size) folded into the query projection and -1e9 added on masked keys (as the native keyMask),
 * FFN with the erf GELU. Opset 17 (LayerNormalization); no custom-domain ops.
 */
import type { NativeTextTowerConfig } from '../native';
import { DataType, float, GraphBuilder, int, ints, Params, transpose } from './graph';

/** Adds the text encoder to `g`; the graph's inputs and output are declared here. */
export function buildBert(g: GraphBuilder, c: NativeTextTowerConfig, p: Params): void {
  const H = c.hidden;
  const heads = c.heads;
  const dk = H / heads;
  if (!Number.isInteger(dk)) throw new Error(`onnx export: hidden ${H} is not a multiple of heads ${heads}`);
  const I = c.intermediate;

  const ids = g.input('input_ids', DataType.INT64, ['batch', 'sequence']);
  const mask = g.input('attention_mask', DataType.INT64, ['batch', 'sequence']);

  // Embeddings.
  const wordTable = g.float('embeddings.word_embeddings.weight', [c.vocabSize, H], p.get('embeddings.word_embeddings.weight', [c.vocabSize, H]));
  const posTable = g.float('embeddings.position_embeddings.weight', [c.maxPositions, H], p.get('embeddings.position_embeddings.weight', [c.maxPositions, H]));
  const typeTable = p.get('embeddings.token_type_embeddings.weight', [c.typeVocabSize, H]);
  const typeRow = g.float('embeddings.token_type_embeddings.row0', [H], typeTable.slice(0, H));
  const word = g.op('Gather', [wordTable, ids], { axis: int(0) });
  let position: string;
  if (c.kind === 'roberta') {
    const cumsum = g.op('CumSum', [mask, g.constInt64(1)]);
    const ordinal = g.op('Mul', [cumsum, mask]);
    const positionIds = g.op('Add', [ordinal, g.constInt64(c.padTokenId)]);
    position = g.op('Gather', [posTable, positionIds], { axis: int(0) }); // [B, T, H]
  } else {
    const length = g.op('Shape', [ids], { start: int(1), end: int(2) }); // [T]
    position = g.op('Slice', [posTable, g.constInt64([0]), length, g.constInt64([0])]); // [T, H]
  }
  const summed = g.op('Add', [g.op('Add', [word, position]), typeRow]);
  let x = layerNorm(g, summed, p, 'embeddings.LayerNorm', H, c.layerNormEps);

  // Additive key mask [B, 1, 1, T]: 0 for tokens, -1e9 for padding.
  const maskF = g.op('Cast', [mask], { to: int(DataType.FLOAT) });
  const keyMask = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [maskF, g.constFloat(1)]), g.constFloat(1e9)]), g.constInt64([1, 2])]);

  const splitHeads = g.constInt64([0, 0, heads, dk]);
  const mergeHeads = g.constInt64([0, 0, H]);
  const scale = 1 / Math.sqrt(dk);
  for (let i = 0; i < c.layers; i++) {
    const L = `encoder.layer.${i}.`;
    const linear = (input: string, name: string, inF: number, outF: number, s = 1): string => {
      const w = g.float(`${L}${name}.weight_t`, [inF, outF], transpose(p.get(`${L}${name}.weight`, [outF, inF]), outF, inF, s));
      const bias = p.get(`${L}${name}.bias`, [outF]);
      const b = g.float(`${L}${name}.bias`, [outF], s === 1 ? bias : bias.map((v) => v * s));
      return g.op('Add', [g.op('MatMul', [input, w]), b]);
    };
    const heads4 = (t: string, perm: number[]) => g.op('Transpose', [g.op('Reshape', [t, splitHeads])], { perm: ints(perm) });
    const q = heads4(linear(x, 'attention.self.query', H, H, scale), [0, 2, 1, 3]); // [B, h, T, dk]
    const k = heads4(linear(x, 'attention.self.key', H, H), [0, 2, 3, 1]); // [B, h, dk, T]
    const v = heads4(linear(x, 'attention.self.value', H, H), [0, 2, 1, 3]); // [B, h, T, dk]
    const scores = g.op('Add', [g.op('MatMul', [q, k]), keyMask]);
    const probs = g.op('Softmax', [scores], { axis: int(-1) });
    const context = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: ints([0, 2, 1, 3]) }), mergeHeads]);
    const attended = linear(context, 'attention.output.dense', H, H);
    const h = layerNorm(g, g.op('Add', [attended, x]), p, `${L}attention.output.LayerNorm`, H, c.layerNormEps);
    const inner = gelu(g, linear(h, 'intermediate.dense', H, I));
    const out = linear(inner, 'output.dense', I, H);
    x = layerNorm(g, g.op('Add', [out, h]), p, `${L}output.LayerNorm`, H, c.layerNormEps);
  }
  g.output(x, 'last_hidden_state', DataType.FLOAT, ['batch', 'sequence', H]);
}

function layerNorm(g: GraphBuilder, x: string, p: Params, name: string, H: number, eps: number): string {
  const gamma = g.float(`${name}.weight`, [H], p.get(`${name}.weight`, [H]));
  const beta = g.float(`${name}.bias`, [H], p.get(`${name}.bias`, [H]));
  return g.op('LayerNormalization', [x, gamma, beta], { axis: int(-1), epsilon: float(eps) });
}

/** GELU with erf, as torch.nn.functional.gelu: x * 0.5 * (1 + erf(x / sqrt 2)). */
export function gelu(g: GraphBuilder, x: string): string {
  const e = g.op('Erf', [g.op('Mul', [x, g.constFloat(Math.SQRT1_2)])]);
  return g.op('Mul', [g.op('Mul', [x, g.constFloat(0.5)]), g.op('Add', [e, g.constFloat(1)])]);
}
