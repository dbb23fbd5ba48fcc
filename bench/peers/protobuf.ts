/**
 * The few protobuf wire-format pieces needed to write an ONNX model: varints, 32-bit floats and
 * length-delimited fields. Messages are built bottom-up: a child is finished to bytes, then written
 * into its parent as one length-delimited field.
 */
export class ProtoWriter {
  private readonly parts: Uint8Array[] = []
  private length = 0

  /** A varint field (wire type 0): int32, int64, enum. Negative values take 10 bytes, as in protobuf. */
  varint(field: number, value: number | bigint): this {
    this.tag(field, 0)
    this.rawVarint(value)
    return this
  }

  /** A 32-bit float field (wire type 5). */
  float(field: number, value: number): this {
    this.tag(field, 5)
    const bytes = new Uint8Array(4)
    new DataView(bytes.buffer).setFloat32(0, value, true)
    this.push(bytes)
    return this
  }

  /** A bytes field (wire type 2). */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2)
    this.rawVarint(value.length)
    this.push(value)
    return this
  }

  /** A UTF-8 string field (wire type 2). */
  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value))
  }

  /** An embedded message field (wire type 2). */
  message(field: number, value: ProtoWriter): this {
    return this.bytes(field, value.finish())
  }

  /** A packed repeated varint field: one length-delimited run of varints. */
  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoWriter()
    for (const v of values) inner.rawVarint(v)
    return this.bytes(field, inner.finish())
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length)
    let offset = 0
    for (const part of this.parts) {
      out.set(part, offset)
      offset += part.length
    }
    return out
  }

  private tag(field: number, wireType: number): void {
    this.rawVarint(field * 8 + wireType)
  }

  private rawVarint(value: number | bigint): void {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw new RangeError(`varint needs a safe integer, got ${value}`)
    }
    let v = BigInt.asUintN(64, BigInt(value))
    const bytes: number[] = []
    while (v > 0x7fn) {
      bytes.push(Number(v & 0x7fn) | 0x80)
      v >>= 7n
    }
    bytes.push(Number(v))
    this.push(Uint8Array.from(bytes))
  }

  private push(bytes: Uint8Array): void {
    this.parts.push(bytes)
    this.length += bytes.length
  }
}
