import { RxrnnError } from './errors.js'

/**
 * Element types this reader understands. The writer produces `F32` or `F64` only.
 *
 * @example
 * const dtype: SafetensorsDtype = 'BF16'
 */
export type SafetensorsDtype = 'F32' | 'F64' | 'F16' | 'BF16'

/**
 * One tensor read from a safetensors file. `data` holds the values row-major, decoded to float64,
 * which is exact for all four dtypes.
 *
 * @example
 * const w = readSafetensors(bytes).tensors.get('rnn.weight_ih_l0')
 * if (w) console.log(w.dtype, w.shape, w.data[0])
 */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype
  shape: number[]
  data: Float64Array
}

/**
 * A decoded safetensors file. `tensors` iterates in the order the tensors lie in the data buffer
 * (for files written by {@link writeSafetensors}, the order they were given in); `metadata` is the
 * `__metadata__` map, empty when the file has none.
 *
 * @example
 * const { tensors, metadata } = readSafetensors(bytes)
 * for (const [name, t] of tensors) console.log(name, t.shape)
 * console.log(metadata.format)
 */
export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>
  metadata: Record<string, string>
}

/**
 * One tensor for {@link writeSafetensors}: `data` is row-major and holds product(shape) values.
 *
 * @example
 * const bias: TensorToWrite = { name: 'head.bias', shape: [2], data: [0.5, -0.25] }
 */
export interface TensorToWrite {
  name: string
  shape: readonly number[]
  data: ArrayLike<number>
}

const DTYPE_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 }
const SUPPORTED_DTYPES = Object.keys(DTYPE_SIZE).join(', ')
/** The Python library refuses headers over 100 MB too; a bigger length means this is not safetensors. */
const MAX_HEADER_BYTES = 100_000_000
const METADATA_KEY = '__metadata__'

// Shared by bfloat16ToNumber so that decoding allocates nothing per value.
const bf16Scratch = new DataView(new ArrayBuffer(4))

/**
 * Decodes IEEE 754 half-precision bits (an integer 0..65535) to a number, exactly: normals,
 * subnormals, signed zeros, ±Infinity and NaN.
 *
 * @example
 * float16ToNumber(0x3c00) // 1
 * float16ToNumber(0x7bff) // 65504
 * float16ToNumber(0x0001) // 2 ** -24
 */
export function float16ToNumber(bits: number): number {
  if ((bits & 0xffff) !== bits) {
    throw new RxrnnError('bad_input', `float16 bits must be an integer from 0 to 65535, got ${bits}`)
  }
  const sign = bits & 0x8000 ? -1 : 1
  const exponent = (bits >> 10) & 0x1f
  const fraction = bits & 0x3ff
  if (exponent === 0) return sign * fraction * 2 ** -24
  if (exponent === 0x1f) return fraction === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN
  return sign * (1024 + fraction) * 2 ** (exponent - 25)
}

/**
 * Decodes bfloat16 bits (an integer 0..65535, the top half of a float32) to a number, exactly.
 *
 * @example
 * bfloat16ToNumber(0x3f80) // 1
 * bfloat16ToNumber(0xc020) // -2.5
 */
export function bfloat16ToNumber(bits: number): number {
  if ((bits & 0xffff) !== bits) {
    throw new RxrnnError('bad_input', `bfloat16 bits must be an integer from 0 to 65535, got ${bits}`)
  }
  bf16Scratch.setUint32(0, bits * 0x10000)
  return bf16Scratch.getFloat32(0)
}

interface ValidEntry {
  name: string
  dtype: SafetensorsDtype
  shape: number[]
  begin: number
  end: number
}

interface Range {
  name: string
  begin: number
  end: number
}

/**
 * Reads a safetensors file: an 8-byte little-endian header length N, N bytes of JSON header, then
 * the data buffer. `bytes` may be any view (a Node `Buffer` slice, a `subarray` at an odd offset);
 * only its own bytes are read. Every problem found is reported at once.
 *
 * @throws RxrnnError `bad_safetensors`, with one entry in `problems` per thing wrong.
 * @example
 * const file = readSafetensors(new Uint8Array(await (await fetch(url)).arrayBuffer()))
 * const w = file.tensors.get('head.weight') // { dtype: 'F32', shape: [2, 5], data: Float64Array(10) }
 */
export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  const fail = (problems: string[]): never => {
    throw new RxrnnError('bad_safetensors', 'Cannot read safetensors file', problems)
  }
  if (!(bytes instanceof Uint8Array)) {
    fail([`expected the file as a Uint8Array, got ${describe(bytes)}`])
  }
  if (bytes.byteLength < 8) {
    fail([
      `file is ${bytes.byteLength} bytes, shorter than the 8-byte header length that starts every safetensors file; it is truncated or not safetensors`,
    ])
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = view.getBigUint64(0, true)
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail([
      `header length ${headerLength} is over the ${MAX_HEADER_BYTES}-byte limit; this is not a safetensors file`,
    ])
  }
  const dataStart = 8 + Number(headerLength)
  if (dataStart > bytes.byteLength) {
    fail([
      `header length ${headerLength} runs past the end of the file (8 + ${headerLength} > ${bytes.byteLength} bytes); the file is truncated or not safetensors`,
    ])
  }

  const header = parseHeader(bytes.subarray(8, dataStart), fail)
  const dataLength = bytes.byteLength - dataStart
  const problems: string[] = []
  const valid: ValidEntry[] = []
  const ranges: Range[] = []
  let metadata: Record<string, string> = {}
  for (const [name, entry] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = checkMetadata(entry, problems)
    else checkEntry(name, entry, dataLength, problems, valid, ranges)
  }
  checkOverlaps(ranges, problems)
  if (problems.length > 0) fail(problems)

  // JSON.parse moves integer-like names first, so order by position in the data buffer instead.
  valid.sort((a, b) => a.begin - b.begin || a.end - b.end)
  const tensors = new Map<string, SafetensorsTensor>()
  for (const entry of valid) {
    tensors.set(entry.name, {
      dtype: entry.dtype,
      shape: entry.shape,
      data: decode(view, dataStart + entry.begin, product(entry.shape), entry.dtype),
    })
  }
  return { tensors, metadata }
}

function parseHeader(headerBytes: Uint8Array, fail: (problems: string[]) => never): Record<string, unknown> {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes)
  } catch {
    return fail(['header is not valid UTF-8; the file is corrupt or not safetensors'])
  }
  let header: unknown
  try {
    header = JSON.parse(text)
  } catch (e) {
    return fail([
      `header is not valid JSON (${e instanceof Error ? e.message : String(e)}); the file is corrupt or not safetensors`,
    ])
  }
  if (!isPlainObject(header)) {
    return fail([
      `header is ${describe(header)}, not a JSON object mapping tensor names to { dtype, shape, data_offsets }`,
    ])
  }
  return header
}

function checkMetadata(entry: unknown, problems: string[]): Record<string, string> {
  if (!isPlainObject(entry)) {
    problems.push(`${METADATA_KEY} is ${describe(entry)}, not an object mapping strings to strings`)
    return {}
  }
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') {
      problems.push(
        `${METADATA_KEY} must map strings to strings, but ${JSON.stringify(key)} is ${describe(value)}; store it as a string`,
      )
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays a key.
  return Object.fromEntries(Object.entries(entry)) as Record<string, string>
}

function checkEntry(
  name: string,
  entry: unknown,
  dataLength: number,
  problems: string[],
  valid: ValidEntry[],
  ranges: Range[],
): void {
  const where = `tensor ${JSON.stringify(name)}`
  if (!isPlainObject(entry)) {
    problems.push(`${where}: entry is ${describe(entry)}, not an object with dtype, shape and data_offsets`)
    return
  }
  const missing = ['dtype', 'shape', 'data_offsets'].filter((key) => !Object.hasOwn(entry, key))
  if (missing.length > 0) {
    problems.push(`${where}: missing ${missing.join(', ')}; every tensor needs dtype, shape and data_offsets`)
  }

  let dtype: SafetensorsDtype | undefined
  if (Object.hasOwn(entry, 'dtype')) {
    const raw = entry.dtype
    if (typeof raw === 'string' && Object.hasOwn(DTYPE_SIZE, raw)) dtype = raw as SafetensorsDtype
    else {
      problems.push(
        `${where}: dtype ${JSON.stringify(raw)} is not supported; supported dtypes are ${SUPPORTED_DTYPES} (convert the tensor to one of them before saving)`,
      )
    }
  }

  let shape: number[] | undefined
  if (Object.hasOwn(entry, 'shape')) {
    const raw = entry.shape
    if (Array.isArray(raw) && raw.every(isNonNegativeInteger)) shape = raw.slice()
    else problems.push(`${where}: shape ${JSON.stringify(raw)} is not an array of non-negative integers`)
  }

  let begin: number | undefined
  let end: number | undefined
  if (Object.hasOwn(entry, 'data_offsets')) {
    const raw = entry.data_offsets
    if (
      Array.isArray(raw) &&
      raw.length === 2 &&
      isNonNegativeInteger(raw[0]) &&
      isNonNegativeInteger(raw[1]) &&
      raw[0] <= raw[1]
    ) {
      begin = raw[0]
      end = raw[1]
    } else {
      problems.push(
        `${where}: data_offsets ${JSON.stringify(raw)} must be two non-negative integers [begin, end] with begin <= end`,
      )
    }
  }
  if (begin === undefined || end === undefined) return

  ranges.push({ name, begin, end })
  let ok = true
  if (end > dataLength) {
    problems.push(
      `${where}: data_offsets [${begin}, ${end}] run past the end of the data buffer (${dataLength} bytes); the file is truncated`,
    )
    ok = false
  }
  if (dtype === undefined || shape === undefined) return
  const needed = product(shape) * DTYPE_SIZE[dtype]
  if (end - begin !== needed) {
    problems.push(
      `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but shape ${JSON.stringify(shape)} of ${dtype} needs ${needed}; the header does not match the data`,
    )
    ok = false
  }
  if (ok) valid.push({ name, dtype, shape, begin, end })
}

function checkOverlaps(ranges: Range[], problems: string[]): void {
  // Empty tensors occupy no bytes, so they cannot collide with anything.
  const sorted = ranges.filter((r) => r.end > r.begin).sort((a, b) => a.begin - b.begin || a.end - b.end)
  let furthest: Range | undefined
  for (const range of sorted) {
    if (furthest !== undefined && range.begin < furthest.end) {
      problems.push(
        `tensors ${JSON.stringify(furthest.name)} [${furthest.begin}, ${furthest.end}] and ${JSON.stringify(range.name)} [${range.begin}, ${range.end}] overlap in the data buffer; each tensor needs its own byte range`,
      )
    }
    if (furthest === undefined || range.end > furthest.end) furthest = range
  }
}

function decode(view: DataView, start: number, count: number, dtype: SafetensorsDtype): Float64Array {
  const out = new Float64Array(count)
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(start + 4 * i, true)
      break
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(start + 8 * i, true)
      break
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = float16ToNumber(view.getUint16(start + 2 * i, true))
      break
    case 'BF16':
      for (let i = 0; i < count; i++) out[i] = bfloat16ToNumber(view.getUint16(start + 2 * i, true))
      break
  }
  return out
}

/**
 * Writes tensors as a safetensors file, laid out contiguously in the given order, every value
 * stored as `dtype`. The header is padded with spaces to a multiple of 8 bytes, as the Python
 * library does, so the data buffer starts 8-byte aligned. PyTorch reads the result with
 * `safetensors.torch.load_file`.
 *
 * @throws RxrnnError `bad_safetensors` listing every bad name, shape, length or value.
 * @example
 * const bytes = writeSafetensors(
 *   [{ name: 'head.weight', shape: [1, 2], data: [0.5, -1] }, { name: 'head.bias', shape: [1], data: [0] }],
 *   'F32',
 *   { format: 'pt' },
 * )
 * readSafetensors(bytes).tensors.get('head.weight')?.data // Float64Array [0.5, -1]
 */
export function writeSafetensors(
  tensors: readonly TensorToWrite[],
  dtype: 'F32' | 'F64',
  metadata?: Record<string, string>,
): Uint8Array {
  const problems = checkTensorsToWrite(tensors, dtype, metadata)
  if (problems.length > 0) throw new RxrnnError('bad_safetensors', 'Cannot write safetensors file', problems)

  const size = DTYPE_SIZE[dtype]
  // Built by hand: a JS object would move integer-like names ahead of the others.
  const parts: string[] = []
  if (metadata !== undefined) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`)
  let offset = 0
  for (const t of tensors) {
    const end = offset + t.data.length * size
    parts.push(
      `${JSON.stringify(t.name)}:${JSON.stringify({ dtype, shape: t.shape, data_offsets: [offset, end] })}`,
    )
    offset = end
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`)
  const headerLength = Math.ceil(json.length / 8) * 8

  const out = new Uint8Array(8 + headerLength + offset)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(headerLength), true)
  out.set(json, 8)
  out.fill(0x20, 8 + json.length, 8 + headerLength)
  let at = 8 + headerLength
  for (const t of tensors) {
    const { data } = t
    if (dtype === 'F32') {
      for (let i = 0; i < data.length; i++, at += 4) view.setFloat32(at, data[i] as number, true)
    } else {
      for (let i = 0; i < data.length; i++, at += 8) view.setFloat64(at, data[i] as number, true)
    }
  }
  return out
}

function checkTensorsToWrite(
  tensors: readonly TensorToWrite[],
  dtype: string,
  metadata: Record<string, string> | undefined,
): string[] {
  const problems: string[] = []
  if (dtype !== 'F32' && dtype !== 'F64') {
    problems.push(`dtype ${JSON.stringify(dtype)} cannot be written; use F32 or F64`)
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) problems.push(`metadata is ${describe(metadata)}, not a string→string map`)
    else {
      for (const [key, value] of Object.entries(metadata)) {
        if (typeof value !== 'string') {
          problems.push(`metadata ${JSON.stringify(key)} is ${describe(value)}; convert it to a string`)
        }
      }
    }
  }
  const seen = new Set<string>()
  tensors.forEach((t, index) => {
    const where = `tensor ${index} (${JSON.stringify(t.name)})`
    if (typeof t.name !== 'string' || t.name === '')
      problems.push(`${where}: name must be a non-empty string`)
    else if (t.name === METADATA_KEY)
      problems.push(`${where}: the name ${METADATA_KEY} is reserved; rename it`)
    else if (seen.has(t.name)) problems.push(`${where}: the name is used twice; names must be unique`)
    else seen.add(t.name)
    if (!Array.isArray(t.shape) || !t.shape.every(isNonNegativeInteger)) {
      problems.push(`${where}: shape ${JSON.stringify(t.shape)} is not an array of non-negative integers`)
      return
    }
    const expected = product(t.shape)
    if (t.data.length !== expected) {
      problems.push(
        `${where}: data has ${t.data.length} values, but shape ${JSON.stringify(t.shape)} needs ${expected}`,
      )
      return
    }
    if (dtype === 'F32') {
      for (let i = 0; i < t.data.length; i++) {
        const v = t.data[i] as number
        if (Number.isFinite(v) && !Number.isFinite(Math.fround(v))) {
          problems.push(
            `${where}: value ${v} at index ${i} is beyond the float32 range and would become Infinity; write F64 instead`,
          )
          break
        }
      }
    }
  })
  return problems
}

function product(shape: readonly number[]): number {
  let n = 1
  for (const d of shape) n *= d
  return n
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`
  if (typeof value === 'object') return 'an object'
  return `a ${typeof value} (${String(value)})`
}
