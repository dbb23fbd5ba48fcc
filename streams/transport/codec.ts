/**
 * Frames on the wire: binary WebSocket frames carry msgpack, text frames carry JSON.
 *
 * msgpack maps are written as standard maps and read back as plain objects (no msgpackr
 * records, which clients in other languages cannot read), so any msgpack library can talk to
 * the server; numbers are written as msgpack ints or float64.
 *
 * Typed arrays. What msgpackr 2.1 does with a Float32Array, checked by hand and pinned in
 * test/streams/codec.test.ts: a default `Packr` does not write it element by element; it
 * writes the array's raw memory as one msgpack `bin` (4 bytes a value, in the machine's byte
 * order), and `unpack` returns that as a Node Buffer of the raw bytes: a view into the received
 * frame, neither a Float32Array nor a list of numbers (`Array.from` gives bytes). With
 * `moreTypes: true` it writes msgpackr's typed-array extension instead, ext type 0x74 ('t')
 * whose payload is one byte naming the class (7 = Float32Array, 8 = Float64Array) followed by
 * the raw values in the machine's byte order (little-endian on x64 and arm64, so in practice
 * little-endian), and `unpack` rebuilds the same class from a fresh copy of the
 * bytes, so the result is aligned whatever the byteOffset of the received Buffer and keeps
 * every bit (-0, NaN payloads, subnormals). Every msgpackr `Unpackr` decodes that extension,
 * `moreTypes` or not. A producer in another language can send it too (Python:
 * `msgpack.ExtType(0x74, b'\x07' + np.asarray(x, '<f4').tobytes())`), or just a msgpack array.
 *
 * JSON has neither typed arrays, -0, NaN nor Infinity: typed arrays are written as number
 * arrays, -0 as 0, and non-finite numbers as null (which validation then rejects in a tick).
 * msgpack keeps NaN and Infinity, but a plain-array -0 is written as the integer 0.
 */
import { C1, type Options, Packr } from 'msgpackr'
import { RxrnnError } from '../../src/errors.js'
import { jsonValueBound, msgpackValueCount, WIDE_INTEGER } from './element-count.js'
import {
  type ClientFrame,
  type ErrorFrame,
  errorFrame,
  type FrameExpectations,
  validateClientFrame,
} from './protocol.js'

export type FrameEncoding = 'msgpack' | 'json'

/**
 * What `ws` hands to a 'message' listener, whatever its binaryType (a Buffer, an ArrayBuffer or a list
 * of fragments), what a browser `WebSocket` hands over (an ArrayBuffer or a string), or a string.
 * Typed without Node's `Buffer` (a Uint8Array) so the published types need no @types/node.
 */
export type FrameData = Uint8Array | ArrayBuffer | readonly Uint8Array[] | string

export interface DecodeOptions {
  /** Larger frames are refused with `payload_too_large` before decoding. Default: no limit. */
  maxBytes?: number
  /**
   * Frames holding more values than this (array elements, map keys and values, nested or not)
   * are refused with `payload_too_large` before decoding, so that no frame costs more than a
   * few milliseconds to decode. Default: no limit.
   */
  maxValues?: number
}

/** `encoding` is set on failure too: the error frame goes back in the sender's encoding. */
export type DecodeResult =
  | { ok: true; value: unknown; encoding: FrameEncoding }
  | { ok: false; error: ErrorFrame; encoding: FrameEncoding }

export type ClientFrameDecodeResult =
  | { ok: true; frame: ClientFrame; encoding: FrameEncoding }
  | { ok: false; error: ErrorFrame; encoding: FrameEncoding }

// msgpackr's typings lag its options: 'auto' and skipValues exist in 2.1 (see its README).
interface PackrOptions extends Omit<Options, 'int64AsType'> {
  int64AsType?: Options['int64AsType'] | 'auto'
  skipValues?: unknown[]
}

const packrOptions: PackrOptions = {
  useRecords: false,
  mapsAsObjects: true,
  moreTypes: true,
  // Untrusted input must not reach the reference/pointer extensions (0x69, 0x70).
  structuredClone: false,
  // A 64-bit integer from another language stays a number when it fits, a bigint (which
  // validation rejects by name) when it does not.
  int64AsType: 'auto',
  // An absent optional field (an id of undefined) is left out, as JSON does, instead of being
  // written as msgpackr's undefined extension, which other languages do not know.
  skipValues: [undefined],
  // fixmap for small maps, like other encoders, and no 65535-key ceiling.
  variableMapSize: true,
}

/** The one msgpack encoder and decoder (a Packr is also an Unpackr); it holds no per-peer state. */
const packr = new Packr(packrOptions as Options)

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Encodes a frame for a connection: bytes (a Buffer in Node) for a binary msgpack frame, a string
 * for a JSON text frame. Typed arrays survive msgpack exactly and as their own class; JSON writes
 * them as number arrays. The returned bytes are never overwritten by later calls.
 *
 * @throws RxrnnError('internal') when the frame cannot be encoded (a cycle, a bigint in JSON).
 * @example
 * ws.send(encodeFrame({ type: 'prediction', key: 'a', id: 3, y: [0.2, 0.8] }, 'msgpack'))
 * ws.send(encodeFrame({ type: 'subscribed', channels: ['metrics'] }, 'json'))
 */
export function encodeFrame(frame: object, encoding: 'msgpack'): Uint8Array
export function encodeFrame(frame: object, encoding: 'json'): string
export function encodeFrame(frame: object, encoding: FrameEncoding): Uint8Array | string
export function encodeFrame(frame: object, encoding: FrameEncoding): Uint8Array | string {
  try {
    return encoding === 'json' ? JSON.stringify(frame, typedArraysAsArrays) : packr.pack(frame)
  } catch (cause) {
    const type = (frame as { type?: unknown }).type
    throw new RxrnnError(
      'internal',
      `could not encode a ${String(type)} frame as ${encoding}: ${cause instanceof Error ? cause.message : cause}`,
    )
  }
}

function typedArraysAsArrays(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) && !(value instanceof DataView)
    ? Array.from(value as unknown as ArrayLike<unknown>)
    : value
}

/**
 * Decodes one WebSocket message: msgpack when `isBinary`, JSON text otherwise (a string is
 * always JSON). Never throws: bytes that do not decode give a `bad_frame` error frame that
 * names the problem. Typed arrays in the result are fresh, aligned copies; checking the value
 * is `validateClientFrame`'s job.
 *
 * @example
 * wss.on('connection', (ws) => ws.on('message', (data, isBinary) => {
 *   const decoded = decodeFrame(data, isBinary, { maxBytes: 1 << 20 })
 *   if (!decoded.ok) ws.send(encodeFrame(decoded.error, decoded.encoding))
 * }))
 */
export function decodeFrame(data: FrameData, isBinary: boolean, options: DecodeOptions = {}): DecodeResult {
  const encoding: FrameEncoding = isBinary && typeof data !== 'string' ? 'msgpack' : 'json'
  try {
    const tooLarge = sizeProblem(data, options.maxBytes)
    if (tooLarge) return { ok: false, error: errorFrame('payload_too_large', tooLarge), encoding }
    const maxValues = options.maxValues
    if (typeof data === 'string') return parseJson(data, maxValues)
    const bytes = asBytes(data)
    if (encoding === 'msgpack') {
      const values = msgpackValueCount(bytes, maxValues ?? Number.POSITIVE_INFINITY)
      if (values === WIDE_INTEGER) {
        const message =
          'the frame holds an integer wider than 64 bits (msgpack extension 0x42); no field takes one: send numbers'
        return { ok: false, error: errorFrame('bad_frame', message), encoding }
      }
      if (maxValues !== undefined && values > maxValues) {
        return { ok: false, error: tooManyValues(maxValues), encoding }
      }
      return unpackMsgpack(bytes)
    }
    const text = decodeUtf8(bytes)
    if (text === undefined) {
      const message =
        'the text frame is not valid UTF-8; send JSON as UTF-8 text, or msgpack as a binary frame'
      return { ok: false, error: errorFrame('bad_frame', message), encoding }
    }
    return parseJson(text, maxValues)
  } catch (cause) {
    // The helpers catch what they expect; this is a last resort (e.g. a fragment list holding
    // something that is not a Buffer).
    return {
      ok: false,
      error: errorFrame('bad_frame', `the frame could not be read: ${reason(cause)}`),
      encoding,
    }
  }
}

/**
 * `decodeFrame` then `validateClientFrame`: the usual first step for every message a server
 * receives.
 *
 * @example
 * const r = decodeClientFrame(data, isBinary, { inputSize: 3, outputSize: 1, maxBytes: 1 << 20 })
 * if (!r.ok) return ws.send(encodeFrame(r.error, r.encoding))
 */
export function decodeClientFrame(
  data: FrameData,
  isBinary: boolean,
  expect: FrameExpectations & DecodeOptions = {},
): ClientFrameDecodeResult {
  const decoded = decodeFrame(data, isBinary, expect)
  if (!decoded.ok) return decoded
  const checked = validateClientFrame(decoded.value, expect)
  return checked.ok
    ? { ok: true, frame: checked.frame, encoding: decoded.encoding }
    : { ok: false, error: checked.error, encoding: decoded.encoding }
}

function sizeProblem(data: FrameData, maxBytes: number | undefined): string | undefined {
  if (maxBytes === undefined) return undefined
  let size: number
  if (typeof data === 'string') {
    // UTF-16 length ≤ UTF-8 length ≤ 3 × UTF-16 length: count bytes only when it matters.
    size = data.length * 3 <= maxBytes ? data.length : utf8Length(data)
  } else if (isFragments(data)) {
    size = 0
    for (const fragment of data) size += fragment.byteLength
  } else size = data.byteLength
  return size > maxBytes ? `the frame is ${size} bytes; the limit is ${maxBytes} bytes` : undefined
}

/**
 * A fresh byte view of the message. msgpackr caches a DataView as an expando property on the
 * array it decodes; on a view of our own that costs what the DataView costs anyway, and the
 * caller's Buffer is left untouched.
 */
function asBytes(data: ArrayBuffer | readonly Uint8Array[] | Uint8Array): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  const bytes = data instanceof Uint8Array ? data : data.length === 1 ? data[0]! : concat(data)
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

// Array.isArray does not narrow a readonly array type.
function isFragments(data: FrameData): data is readonly Uint8Array[] {
  return Array.isArray(data)
}

function concat(fragments: readonly Uint8Array[]): Uint8Array {
  let length = 0
  for (const fragment of fragments) {
    if (!(fragment instanceof Uint8Array)) throw new TypeError('a fragment of the message is not bytes')
    length += fragment.byteLength
  }
  const out = new Uint8Array(length)
  let offset = 0
  for (const fragment of fragments) {
    out.set(fragment, offset)
    offset += fragment.byteLength
  }
  return out
}

const utf8Encoder = new TextEncoder()

/** Bytes of `text` in UTF-8, without Node's Buffer so the codec runs in browsers too. */
function utf8Length(text: string): number {
  return utf8Encoder.encode(text).byteLength
}

function unpackMsgpack(bytes: Uint8Array): DecodeResult {
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch (cause) {
    const hint =
      bytes[0] === 0x7b ? ' (it looks like JSON: send JSON as a text frame, msgpack as a binary frame)' : ''
    return {
      ok: false,
      error: errorFrame('bad_frame', `the binary frame is not valid msgpack: ${reason(cause)}${hint}`),
      encoding: 'msgpack',
    }
  }
  // 0xc1 is reserved by the msgpack spec; msgpackr returns a marker object for it.
  if (value === C1) {
    return {
      ok: false,
      error: errorFrame('bad_frame', 'the binary frame is not valid msgpack: 0xc1 is a reserved byte'),
      encoding: 'msgpack',
    }
  }
  return { ok: true, value, encoding: 'msgpack' }
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

function tooManyValues(maxValues: number): ErrorFrame {
  return errorFrame(
    'payload_too_large',
    `the frame holds more than ${maxValues} values (array elements, map keys and values); a frame this server reads holds fewer`,
  )
}

function parseJson(text: string, maxValues: number | undefined): DecodeResult {
  if (maxValues !== undefined && jsonValueBound(text, maxValues) > maxValues) {
    return { ok: false, error: tooManyValues(maxValues), encoding: 'json' }
  }
  try {
    return { ok: true, value: JSON.parse(text), encoding: 'json' }
  } catch (cause) {
    return {
      ok: false,
      error: errorFrame('bad_frame', `the text frame is not valid JSON: ${reason(cause)}`),
      encoding: 'json',
    }
  }
}

function reason(cause: unknown): string {
  const message = cause instanceof Error ? cause.message : String(cause)
  return message.length > 160 ? `${message.slice(0, 160)}…` : message
}
