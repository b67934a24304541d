/**
 * A small ONNX model builder: nodes, float32/int64 initializers (raw_data, little-endian), graph inputs and
 * outputs with symbolic or fixed dimensions, serialized as ModelProto (ir_version 8, default-domain opset 17)
 * with lib/onnx/protobuf.ts. Field numbers are onnx/onnx.proto's.
 */
import * as os from 'node:os';
import { MorecError } from '../errors';
import { Writer } from './protobuf';

export const IR_VERSION = 8;
export const OPSET = 17;

/** TensorProto.DataType */
export const enum DataType {
  FLOAT = 1,
  INT64 = 7,
}

/** AttributeProto.AttributeType */
const enum AttributeType {
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  FLOATS = 6,
  INTS = 7,
}

// Field numbers of onnx.proto.
const MODEL = { irVersion: 1, producerName: 2, producerVersion: 3, docString: 6, graph: 7, opsetImport: 8 };
const OPSET_ID = { domain: 1, version: 2 };
const GRAPH = { node: 1, name: 2, initializer: 5, docString: 10, input: 11, output: 12 };
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 };
const ATTRIBUTE = { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, type: 20 };
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9 };
const VALUE_INFO = { name: 1, type: 2 };
const TYPE = { tensorType: 1 };
const TYPE_TENSOR = { elemType: 1, shape: 2 };
const SHAPE = { dim: 1 };
const DIMENSION = { dimValue: 1, dimParam: 2 };

/** A constant tensor (an initializer or a TENSOR attribute). */
export interface TensorData {
  dims: number[];
  type: DataType;
  /** float32 or int64 values in row-major order */
  data: Float32Array | BigInt64Array;
}

export type AttributeValue =
  | { f: number }
  | { i: number }
  | { s: string }
  | { t: TensorData }
  | { floats: number[] }
  | { ints: number[] };

/** Attribute helpers: `{ axis: int(-1), epsilon: float(1e-12), perm: ints([0, 2, 1, 3]) }`. */
export const int = (i: number): AttributeValue => ({ i });
export const float = (f: number): AttributeValue => ({ f });
export const ints = (v: number[]): AttributeValue => ({ ints: v });
export const floats = (v: number[]): AttributeValue => ({ floats: v });
export const str = (s: string): AttributeValue => ({ s });

/** A dimension of a graph input or output: a fixed size or a symbolic name ('batch'). */
export type Dim = number | string;

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** The bytes of a typed array as little-endian raw_data (a view on little-endian hosts, no copy). */
function rawBytes(data: Float32Array | BigInt64Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(4 * i, v, true));
  else data.forEach((v, i) => view.setBigInt64(8 * i, v, true));
  return out;
}

function tensorProto(name: string, t: TensorData): Writer {
  const w = new Writer();
  w.repeatedVarints(TENSOR.dims, t.dims);
  w.int(TENSOR.dataType, t.type);
  if (name) w.string(TENSOR.name, name);
  w.bytes(TENSOR.rawData, rawBytes(t.data));
  return w;
}

function valueInfo(name: string, type: DataType, dims: Dim[]): Writer {
  const shape = new Writer();
  for (const d of dims) {
    const dim = new Writer();
    if (typeof d === 'number') dim.int(DIMENSION.dimValue, d);
    else dim.string(DIMENSION.dimParam, d);
    shape.message(SHAPE.dim, dim);
  }
  const tensor = new Writer().int(TYPE_TENSOR.elemType, type).message(TYPE_TENSOR.shape, shape);
  const typeProto = new Writer().message(TYPE.tensorType, tensor);
  return new Writer().string(VALUE_INFO.name, name).message(VALUE_INFO.type, typeProto);
}

function attribute(name: string, value: AttributeValue): Writer {
  const w = new Writer().string(ATTRIBUTE.name, name);
  if ('f' in value) w.float(ATTRIBUTE.f, value.f).int(ATTRIBUTE.type, AttributeType.FLOAT);
  else if ('i' in value) w.int(ATTRIBUTE.i, value.i).int(ATTRIBUTE.type, AttributeType.INT);
  else if ('s' in value) w.string(ATTRIBUTE.s, value.s).int(ATTRIBUTE.type, AttributeType.STRING);
  else if ('t' in value) w.message(ATTRIBUTE.t, tensorProto('', value.t)).int(ATTRIBUTE.type, AttributeType.TENSOR);
  else if ('floats' in value) w.repeatedFloats(ATTRIBUTE.floats, value.floats).int(ATTRIBUTE.type, AttributeType.FLOATS);
  else w.repeatedVarints(ATTRIBUTE.ints, value.ints).int(ATTRIBUTE.type, AttributeType.INTS);
  return w;
}

/**
 * Builds one graph. `node()` returns its output names (fresh ones unless given), so a graph reads as code:
 * `const y = g.op('Relu', [g.op('Add', [a, b])])`.
 */
export class GraphBuilder {
  private nodes = new Writer();
  private initializers = new Writer();
  private inputs = new Writer();
  private outputs = new Writer();
  private names = new Set<string>();
  private counter = 0;
  private constants = new Map<string, string>();
  readonly inputNames: string[] = [];
  readonly outputNames: string[] = [];
  nodeCount = 0;
  initializerBytes = 0;

  constructor(readonly name: string) {}

  /** A value name with this prefix not used yet (claimed by whatever defines it). */
  fresh(prefix: string): string {
    let n = `${prefix}_${this.counter++}`;
    while (this.names.has(n)) n = `${prefix}_${this.counter++}`;
    return n;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`onnx graph: the name '${name}' is used twice`);
    this.names.add(name);
    return name;
  }

  input(name: string, type: DataType, dims: Dim[]): string {
    this.inputs.message(GRAPH.input, valueInfo(this.claim(name), type, dims));
    this.inputNames.push(name);
    return name;
  }

  /** Declares `value` (an existing value name) as a graph output named `name` (an Identity if they differ). */
  output(value: string, name: string, type: DataType, dims: Dim[]): void {
    if (value !== name) this.node('Identity', [value], {}, [name]);
    this.outputs.message(GRAPH.output, valueInfo(name, type, dims));
    this.outputNames.push(name);
  }

  /** A float32 initializer; returns its name. */
  float(name: string, dims: number[], data: Float32Array): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (data.length !== count) throw new Error(`onnx graph: ${name} has ${data.length} values for dims [${dims}]`);
    this.initializers.message(GRAPH.initializer, tensorProto(this.claim(name), { dims, type: DataType.FLOAT, data }));
    this.initializerBytes += data.byteLength;
    return name;
  }

  /** An int64 initializer; returns its name. */
  int64(name: string, dims: number[], values: ArrayLike<number>): string {
    const data = BigInt64Array.from(Array.from(values, (v) => BigInt(v)));
    this.initializers.message(GRAPH.initializer, tensorProto(this.claim(name), { dims, type: DataType.INT64, data }));
    this.initializerBytes += data.byteLength;
    return name;
  }

  /** A shared small constant (int64 1-D or scalar, float scalar), created once per value. */
  constInt64(values: number[] | number): string {
    const scalar = typeof values === 'number';
    const list = scalar ? [values] : values;
    const key = `i64:${scalar ? 's' : 'v'}:${list.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.int64(this.fresh(scalar ? 'const_scalar' : 'const_ints'), scalar ? [] : [list.length], list);
      this.constants.set(key, name);
    }
    return name;
  }

  constFloat(value: number): string {
    const key = `f32:${value}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.float(this.fresh('const_float'), [], Float32Array.of(value));
      this.constants.set(key, name);
    }
    return name;
  }

  /** Adds a node; returns its output names (`outputs`: names, or a count of fresh ones; default 1). */
  node(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, outputs: string[] | number = 1): string[] {
    const outs = (typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase())) : outputs).map((o) => this.claim(o));
    const w = new Writer();
    for (const i of inputs) w.string(NODE.input, i);
    for (const o of outs) w.string(NODE.output, o);
    w.string(NODE.name, `${opType}_${this.nodeCount}`);
    w.string(NODE.opType, opType);
    for (const [name, value] of Object.entries(attributes)) w.message(NODE.attribute, attribute(name, value));
    w.string(NODE.domain, '');
    this.nodes.message(GRAPH.node, w);
    this.nodeCount++;
    return outs;
  }

  /** A node with one output. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, output?: string): string {
    return this.node(opType, inputs, attributes, output === undefined ? 1 : [output])[0];
  }

  /** The GraphProto (fields in onnx.proto's order: node, name, initializer, doc_string, input, output). */
  graph(docString?: string): Writer {
    const g = new Writer().append(this.nodes).string(GRAPH.name, this.name).append(this.initializers);
    if (docString) g.string(GRAPH.docString, docString);
    return g.append(this.inputs).append(this.outputs);
  }

  /** The ModelProto: ir_version 8, the default domain at opset 17, this graph. */
  model(options: { producerName?: string; producerVersion?: string; docString?: string } = {}): Writer {
    const m = new Writer().int(MODEL.irVersion, IR_VERSION);
    if (options.producerName) m.string(MODEL.producerName, options.producerName);
    if (options.producerVersion) m.string(MODEL.producerVersion, options.producerVersion);
    if (options.docString) m.string(MODEL.docString, options.docString);
    m.message(MODEL.graph, this.graph());
    m.message(MODEL.opsetImport, new Writer().string(OPSET_ID.domain, '').int(OPSET_ID.version, OPSET));
    return m;
  }
}

/** A model's named tensors under one prefix, fetched with their expected shapes checked. */
export class Params {
  constructor(
    private readonly tensors: Record<string, { shape: number[]; data: Float32Array }>,
    private readonly prefix: string,
  ) {}

  get(name: string, shape: number[]): Float32Array {
    const t = this.tensors[this.prefix + name];
    if (!t) throw new MorecError('EMISMATCH', `ONNX export: the model has no tensor ${this.prefix}${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new MorecError('EMISMATCH', `ONNX export: ${this.prefix}${name} is [${t.shape}], expected [${shape}]`);
    return t.data;
  }
}

/** The transpose of a row-major [rows, cols] matrix (a Linear weight [out, in] -> a MatMul operand [in, out]), times `scale`. */
export function transpose(data: Float32Array, rows: number, cols: number, scale = 1): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c] * scale;
  return out;
}
