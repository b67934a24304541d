/**
 * A minimal protobuf wire-format writer (encoding only): varints, length-delimited fields (strings, bytes,
 * nested messages), packed and unpacked repeated scalars, fixed32/fixed64. Enough to write ONNX files without
 * a protobuf package.
 *
 * A Writer keeps a list of chunks instead of one growing buffer: bytes fields (tensor data) are referenced,
 * not copied, and a nested message is its child's chunks after a tag and a length. `chunks()` hands the list
 * to a file writer (writeAtomic), so a model of hundreds of megabytes is never concatenated in memory.
 */

/** Wire types of the protobuf encoding. */
export const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  Fixed32 = 5,
}

export class Writer {
  private parts: Uint8Array[] = [];
  private scratch = new Uint8Array(256);
  private used = 0; // bytes of `scratch` holding pending small values
  private total = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.total;
  }

  private flushScratch(): void {
    if (this.used === 0) return;
    this.parts.push(this.scratch.subarray(0, this.used));
    this.scratch = new Uint8Array(256);
    this.used = 0;
  }

  private reserve(n: number): void {
    if (this.used + n > this.scratch.length) this.flushScratch();
    if (n > this.scratch.length) this.scratch = new Uint8Array(n);
  }

  private byte(b: number): void {
    this.reserve(1);
    this.scratch[this.used++] = b;
    this.total++;
  }

  /** Appends bytes as they are (referenced, not copied, when large). */
  raw(bytes: Uint8Array): this {
    if (bytes.length <= 64) {
      this.reserve(bytes.length);
      this.scratch.set(bytes, this.used);
      this.used += bytes.length;
    } else {
      this.flushScratch();
      this.parts.push(bytes);
    }
    this.total += bytes.length;
    return this;
  }

  /**
   * An unsigned varint of a non-negative safe integer, or a negative integer as protobuf writes int64/int32
   * (two's complement over 64 bits: ten bytes). Accepts bigint for the full int64 range.
   */
  varint(value: number | bigint): this {
    if (typeof value === 'bigint') {
      let v = BigInt.asUintN(64, value);
      while (v >= 0x80n) {
        this.byte(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
      }
      this.byte(Number(v));
      return this;
    }
    if (!Number.isSafeInteger(value)) throw new RangeError(`protobuf varint: ${value} is not a safe integer`);
    if (value < 0) return this.varint(BigInt(value));
    let v = value;
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
    return this;
  }

  /** A field key: (field number << 3) | wire type. */
  tag(field: number, wire: WireType): this {
    return this.varint(field * 8 + wire);
  }

  /** Field of type int32/int64/uint32/uint64/enum/bool (varint). */
  int(field: number, value: number | bigint | boolean): this {
    return this.tag(field, WireType.Varint).varint(typeof value === 'boolean' ? (value ? 1 : 0) : value);
  }

  /** Field of type float (fixed32, little-endian IEEE 754). */
  float(field: number, value: number): this {
    this.tag(field, WireType.Fixed32);
    return this.fixed32Value(new DataView(new ArrayBuffer(4)), value, 'float');
  }

  /** Field of type fixed32 (unsigned). */
  fixed32(field: number, value: number): this {
    this.tag(field, WireType.Fixed32);
    return this.fixed32Value(new DataView(new ArrayBuffer(4)), value, 'uint');
  }

  /** Field of type double (fixed64). */
  double(field: number, value: number): this {
    this.tag(field, WireType.Fixed64);
    const v = new DataView(new ArrayBuffer(8));
    v.setFloat64(0, value, true);
    return this.raw(new Uint8Array(v.buffer));
  }

  /** Field of type fixed64/sfixed64. */
  fixed64(field: number, value: number | bigint): this {
    this.tag(field, WireType.Fixed64);
    const v = new DataView(new ArrayBuffer(8));
    v.setBigUint64(0, BigInt.asUintN(64, BigInt(value)), true);
    return this.raw(new Uint8Array(v.buffer));
  }

  private fixed32Value(v: DataView, value: number, kind: 'float' | 'uint'): this {
    if (kind === 'float') v.setFloat32(0, value, true);
    else v.setUint32(0, value >>> 0, true);
    return this.raw(new Uint8Array(v.buffer));
  }

  /** Field of type string (UTF-8, length-delimited). */
  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  /** Field of type bytes (length-delimited); the bytes are referenced, not copied. */
  bytes(field: number, value: Uint8Array): this {
    return this.tag(field, WireType.LengthDelimited).varint(value.length).raw(value);
  }

  /** A nested message field: the child's bytes after a tag and a length. */
  message(field: number, child: Writer): this {
    child.flushScratch();
    this.tag(field, WireType.LengthDelimited).varint(child.total);
    this.flushScratch();
    for (const p of child.parts) this.parts.push(p);
    this.total += child.total;
    return this;
  }

  /** Appends another writer's fields as they are (the concatenation of two messages merges them). */
  append(other: Writer): this {
    other.flushScratch();
    this.flushScratch();
    for (const p of other.parts) this.parts.push(p);
    this.total += other.total;
    return this;
  }

  /** A packed repeated varint field (proto3 default; `[packed = true]` in proto2). */
  packedVarints(field: number, values: ArrayLike<number | bigint>): this {
    const body = new Writer();
    for (let i = 0; i < values.length; i++) body.varint(values[i]);
    return this.message(field, body);
  }

  /** A packed repeated float field. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    const data = new DataView(new ArrayBuffer(4 * values.length));
    for (let i = 0; i < values.length; i++) data.setFloat32(4 * i, values[i], true);
    return this.bytes(field, new Uint8Array(data.buffer));
  }

  /** An unpacked repeated varint field (proto2 default): one key per value. */
  repeatedVarints(field: number, values: ArrayLike<number | bigint>): this {
    for (let i = 0; i < values.length; i++) this.int(field, values[i]);
    return this;
  }

  /** An unpacked repeated float field. */
  repeatedFloats(field: number, values: ArrayLike<number>): this {
    for (let i = 0; i < values.length; i++) this.float(field, values[i]);
    return this;
  }

  /** The encoded message as a list of chunks (for a file writer), in order. */
  chunks(): Uint8Array[] {
    this.flushScratch();
    return this.parts.slice();
  }

  /** The encoded message in one buffer (copies; for small messages and tests). */
  finish(): Uint8Array {
    return Buffer.concat(this.chunks());
  }
}
