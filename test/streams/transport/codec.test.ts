import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import {
  type DecodeResult,
  decodeClientFrame,
  decodeFrame,
  encodeFrame,
  type FrameEncoding,
} from '../../../streams/transport/codec.js'
import { type Frame, PROTOCOL_VERSION } from '../../../streams/transport/protocol.js'

function decoded(result: DecodeResult): unknown {
  if (!result.ok)
    throw new Error(`expected a decoded value, got ${result.error.code}: ${result.error.message}`)
  return result.value
}

function failed(result: DecodeResult) {
  if (result.ok) throw new Error(`expected a decode error, got ${JSON.stringify(result.value)}`)
  return result.error
}

function roundTrip(frame: object, encoding: FrameEncoding): unknown {
  const data = encodeFrame(frame, encoding)
  return decoded(decodeFrame(data, encoding === 'msgpack'))
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
}

/** The same class and the same bits, NaN payloads and the sign of zero included. */
function expectIdentical(actual: unknown, original: Float32Array | Float64Array): void {
  expect(Object.getPrototypeOf(actual)).toBe(Object.getPrototypeOf(original))
  const [a, b] = [bytesOf(actual as ArrayBufferView), bytesOf(original)]
  // Buffer.compare, because a deep equality over half a megabyte of bytes takes seconds.
  if (a.length > 64) expect(Buffer.compare(a, b)).toBe(0)
  else expect(a).toEqual(b)
}

/** A frame as JSON carries it: typed arrays become number arrays. */
function asJson(frame: object): unknown {
  return JSON.parse(
    JSON.stringify(frame, (_key, value) =>
      ArrayBuffer.isView(value) ? Array.from(value as Float64Array) : value,
    ),
  )
}

const f32Specials = new Float32Array([
  -0,
  0,
  1,
  -1.5,
  2 ** -149, // smallest subnormal
  2 ** -126 - 2 ** -149, // largest subnormal
  2 ** -126, // smallest normal
  3.4028234663852886e38, // largest float32
  -3.4028234663852886e38,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
  0.1,
])
const f64Specials = new Float64Array([
  -0,
  0,
  Number.MIN_VALUE, // smallest subnormal
  2.225073858507201e-308, // largest subnormal
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MAX_SAFE_INTEGER,
  Number.EPSILON,
  Number.POSITIVE_INFINITY,
  Number.NaN,
  0.1,
])
// A NaN with a payload: engines may canonicalise NaNs they touch, a byte copy must not.
new Uint32Array(f32Specials.buffer)[11] = 0x7fc00abc

const everyFrame: Frame[] = [
  { type: 'tick', key: 'sensor-1', x: [0.5, -1, 2], y: 1, id: 7 },
  { type: 'tick', key: 'sensor-2', x: new Float32Array([0.25, -0.5]), y: [0.1, 0.2] },
  { type: 'tick', key: 'sensor-3', x: new Float64Array([1e-300, 3]), y: new Float64Array([1]), id: 0.5 },
  { type: 'subscribe', channels: ['predictions', 'updates', 'metrics'], keys: ['a', 'b'], id: 1 },
  { type: 'unsubscribe' },
  { type: 'reset', key: 'sensor-1' },
  { type: 'hello', id: 2 },
  { type: 'prediction', key: 'sensor-1', id: 7, y: [0.1, 0.9] },
  { type: 'prediction', key: 'sensor-2', y: [3.5] },
  {
    type: 'update',
    key: 'sensor-1',
    step: 12,
    update: 3,
    loss: 0.25,
    gradNorm: 1.5,
    clippedGradNorm: 1,
    clipped: true,
    skipped: false,
    rolledBack: false,
    clipRate: 0.5,
  },
  { type: 'hidden', key: 'sensor-1', h: [0.5, -0.25] },
  {
    type: 'metrics',
    t: 1_700_000_000_000,
    events: 1000,
    eventsPerSecond: 250.5,
    loss: 0.4,
    gradNorm: null,
    clipRate: 0,
    skippedUpdates: 1,
    rejected: 2,
    dropped: 0,
    producers: 1,
    subscribers: 2,
    keys: 3,
    perKey: { 'sensor-1': { events: 10, step: 9, loss: null, lastSeen: 1_700_000_000_000 } },
    queueDepth: 4,
  },
  { type: 'subscribed', channels: ['metrics'], keys: ['a'] },
  { type: 'subscribed', channels: [] },
  {
    type: 'welcome',
    version: PROTOCOL_VERSION,
    model: { cell: 'lstm', inputSize: 3, hiddenSize: 8, numLayers: 1, outputSize: 2, task: 'classification' },
  },
  { type: 'error', id: 7, code: 'bad_input', message: 'x[3] is NaN' },
  { type: 'error', code: 'bad_frame', message: 'not msgpack' },
]

describe('encodeFrame / decodeFrame round trips', () => {
  it.each(everyFrame.map((frame) => [frame.type, frame] as const))(
    '%s in msgpack, typed arrays kept',
    (_type, frame) => {
      const back = roundTrip(frame, 'msgpack')
      expect(back).toStrictEqual(frame)
      expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
    },
  )

  it.each(everyFrame.map((frame) => [frame.type, frame] as const))(
    '%s in JSON, typed arrays as arrays',
    (_type, frame) => {
      const text = encodeFrame(frame, 'json')
      expect(typeof text).toBe('string')
      expect(decoded(decodeFrame(text, false))).toStrictEqual(asJson(frame))
      expect(decoded(decodeFrame(Buffer.from(text), false))).toStrictEqual(asJson(frame))
    },
  )

  it('writes typed arrays as plain number arrays in JSON', () => {
    const text = encodeFrame(
      { type: 'tick', key: 'k', x: new Float32Array([0.5, 2]), y: new Float64Array([1]) },
      'json',
    )
    expect(text).toBe('{"type":"tick","key":"k","x":[0.5,2],"y":[1]}')
  })

  it('leaves out undefined fields in both encodings', () => {
    const frame = { type: 'prediction', key: 'k', id: undefined, y: [1] }
    expect(roundTrip(frame, 'msgpack')).toStrictEqual({ type: 'prediction', key: 'k', y: [1] })
    expect(roundTrip(frame, 'json')).toStrictEqual({ type: 'prediction', key: 'k', y: [1] })
  })

  it('writes a prediction as standard msgpack any client can read (fixmap, fixstr, float64, no extensions)', () => {
    const bytes = encodeFrame({ type: 'prediction', key: 'k', id: 7, y: [0.25, 0.75] }, 'msgpack')
    const str = (s: string) => [0xa0 | s.length, ...Buffer.from(s)]
    const float64 = (v: number) => {
      const b = Buffer.alloc(8)
      b.writeDoubleBE(v)
      return [0xcb, ...b]
    }
    const expected = [
      0x84,
      ...str('type'),
      ...str('prediction'),
      ...str('key'),
      ...str('k'),
      ...str('id'),
      0x07,
      ...str('y'),
      0x92,
      ...float64(0.25),
      ...float64(0.75),
    ]
    expect([...bytes]).toEqual(expected)
  })

  it('reads a tick written by another msgpack library (map16, float32, float64, uint64, nil)', () => {
    const str = (s: string) => [0xa0 | s.length, ...Buffer.from(s)]
    const float32 = (v: number) => {
      const b = Buffer.alloc(4)
      b.writeFloatBE(v)
      return [0xca, ...b]
    }
    const bytes = Buffer.from([
      0xde,
      0x00,
      0x05,
      ...str('type'),
      ...str('tick'),
      ...str('key'),
      ...str('s'),
      ...str('x'),
      0x93,
      ...float32(0.5),
      0xcb,
      ...Buffer.from('3ff8000000000000', 'hex'), // 1.5
      0xd0,
      0xfe, // int8 -2
      ...str('y'),
      0xc0, // nil
      ...str('id'),
      0xcf,
      ...Buffer.from('0000000000000009', 'hex'), // uint64 9
    ])
    const value = decoded(decodeFrame(bytes, true))
    expect(value).toStrictEqual({ type: 'tick', key: 's', x: [0.5, 1.5, -2], y: null, id: 9 })
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    const result = decodeClientFrame(bytes, true, { inputSize: 3 })
    expect(result).toStrictEqual({
      ok: true,
      encoding: 'msgpack',
      frame: { type: 'tick', key: 's', x: [0.5, 1.5, -2], id: 9 },
    })
  })

  it('reads a 64-bit integer beyond 2^53 as a bigint, which validation rejects by name', () => {
    const str = (text: string) => [0xa0 | text.length, ...Buffer.from(text)]
    const uint64Max = [0xcf, ...Array(8).fill(0xff)]
    const bytes = Buffer.from([0x82, ...str('type'), ...str('hello'), ...str('id'), ...uint64Max])
    expect(decoded(decodeFrame(bytes, true))).toStrictEqual({ type: 'hello', id: 2n ** 64n - 1n })
    const result = decodeClientFrame(bytes, true)
    expect(result.ok).toBe(false)
    if (!result.ok)
      expect(result.error.message).toMatch(/^id is a 64-bit integer, beyond what a number holds exactly/)
  })

  it('refuses an integer wider than 64 bits (msgpack ext 0x42) unread, in any field, in well under a millisecond per kilobyte', () => {
    const str = (text: string) => Buffer.from([0xa0 | text.length, ...Buffer.from(text)])
    const wide = Buffer.alloc(6 + (1 << 20), 0x7f)
    wide[0] = 0xc9
    wide.writeUInt32BE(1 << 20, 1)
    wide[5] = 0x42
    for (const field of ['id', 'key', 'y']) {
      const bytes = Buffer.concat([Buffer.from([0x82]), str('type'), str('tick'), str(field), wide])
      const result = decodeClientFrame(bytes, true, { maxBytes: 2 << 20 })
      expect(result.ok).toBe(false)
      if (!result.ok) {
        expect(result.error.code).toBe('bad_frame')
        expect(result.error.message).toMatch(/integer wider than 64 bits/)
      }
    }
  })

  it('refuses a frame of many tiny containers before decoding it (maxValues), in msgpack and JSON', () => {
    const arrays = Buffer.concat([Buffer.from([0xdd, 0, 0x0f, 0xff, 0xff]), Buffer.alloc(0x0fffff, 0x90)])
    const json = `[${'{},'.repeat(300_000)}{}]`
    for (const [data, binary] of [
      [arrays, true],
      [json, false],
    ] as const) {
      const result = decodeClientFrame(data, binary, { maxBytes: 4 << 20, maxValues: 10_000 })
      expect(result.ok).toBe(false)
      if (!result.ok) expect(result.error).toMatchObject({ code: 'payload_too_large' })
    }
    // A tick well under the cap is read as usual.
    const tick = { type: 'tick', key: 'a', x: [1, 2, 3] }
    expect(decodeClientFrame(encodeFrame(tick, 'msgpack'), true, { maxValues: 10 }).ok).toBe(true)
    expect(decodeClientFrame(encodeFrame(tick, 'msgpack'), true, { maxValues: 9 }).ok).toBe(false)
    expect(decodeClientFrame(JSON.stringify(tick), false, { maxValues: 10 }).ok).toBe(true)
  })

  it('keeps NaN and Infinity in msgpack plain arrays, but writes -0 as the integer 0', () => {
    const back = roundTrip({ x: [Number.NaN, Number.POSITIVE_INFINITY, -0] }, 'msgpack') as { x: number[] }
    expect(back.x[0]).toBeNaN()
    expect(back.x[1]).toBe(Number.POSITIVE_INFINITY)
    expect(Object.is(back.x[2], 0)).toBe(true)
  })

  it('writes NaN as null in JSON, which validation then rejects by index', () => {
    const text = encodeFrame({ type: 'tick', key: 'k', x: new Float64Array([1, Number.NaN]) }, 'json')
    expect(text).toBe('{"type":"tick","key":"k","x":[1,null]}')
    const result = decodeClientFrame(text, false)
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.encoding).toBe('json')
      expect(result.error.code).toBe('bad_input')
      expect(result.error.message).toMatch(/^x\[1\] is null, not a number/)
    }
  })

  it('throws RxrnnError(internal) for a frame that cannot be encoded', () => {
    expect(() => encodeFrame({ type: 'update', step: 1n }, 'json')).toThrow(
      /could not encode a update frame as json/,
    )
  })
})

describe('typed arrays in msgpack', () => {
  it('pins what a default msgpackr Packr does: raw bytes back as a Buffer, not a Float32Array', () => {
    const plain = new Packr()
    const x = new Float32Array([1.5, -0])
    const bytes = plain.pack(x)
    expect(bytes[0]).toBe(0xc4) // msgpack bin 8, not an array of floats
    const back = plain.unpack(bytes)
    expect(back).toBeInstanceOf(Uint8Array)
    expect(back).not.toBeInstanceOf(Float32Array)
    expect([...back]).toEqual([...bytesOf(x)])
    expect(back.buffer).toBe(bytes.buffer) // a view into the received bytes, not even a copy
  })

  it('writes the typed-array extension 0x74 with the class code, and reads back the same class', () => {
    const bytes = encodeFrame(new Float32Array([1.5]) as unknown as object, 'msgpack')
    expect([...bytes]).toEqual([0xc7, 5, 0x74, 7, ...bytesOf(new Float32Array([1.5]))])
    const f64 = encodeFrame(new Float64Array([1.5]) as unknown as object, 'msgpack')
    expect([...f64.subarray(0, 4)]).toEqual([0xc7, 9, 0x74, 8])
  })

  it('keeps special values bit for bit: -0, subnormals, extremes, infinities, NaN payloads', () => {
    for (const original of [f32Specials, f64Specials]) {
      const back = roundTrip({ type: 'tick', key: 'k', x: original }, 'msgpack') as { x: unknown }
      expectIdentical(back.x, original)
    }
  })

  it('keeps arrays of every size class: empty, ext8, ext16 and ext32 payloads', () => {
    for (const length of [0, 1, 63, 64, 16_383, 16_384, 70_000]) {
      const f32 = Float32Array.from({ length }, (_, i) => Math.fround(Math.sin(i) * 1e3))
      const f64 = Float64Array.from({ length }, (_, i) => Math.cos(i) / 7)
      const back = roundTrip({ f32, f64 }, 'msgpack') as { f32: unknown; f64: unknown }
      expectIdentical(back.f32, f32)
      expectIdentical(back.f64, f64)
    }
  })

  it('round-trips arbitrary Float32Array and Float64Array exactly (property)', () => {
    fc.assert(
      fc.property(fc.float32Array(), fc.float64Array(), (f32, f64) => {
        const back = roundTrip({ type: 'tick', key: 'k', x: f32, y: f64 }, 'msgpack') as {
          x: unknown
          y: unknown
        }
        expectIdentical(back.x, f32)
        expectIdentical(back.y, f64)
      }),
    )
  })

  it('encodes a typed array that is itself a view at an offset', () => {
    const backing = new Float64Array([9, 1, 2, 3, 9])
    const view = backing.subarray(1, 4)
    const back = roundTrip({ x: view }, 'msgpack') as { x: Float64Array }
    expectIdentical(back.x, new Float64Array([1, 2, 3]))
  })

  it('decodes from a Buffer at an odd byteOffset into an aligned copy', () => {
    const x = Float64Array.from([1.25, -0, Number.MIN_VALUE, 7])
    const y = Float32Array.from([0.5, 2 ** -149])
    const encoded = encodeFrame({ type: 'tick', key: 'k', x, y, id: 1 }, 'msgpack')
    for (const offset of [1, 3, 5, 7]) {
      const pool = Buffer.alloc(encoded.length + 16)
      pool.set(encoded, offset)
      const received = pool.subarray(offset, offset + encoded.length)
      expect(received.byteOffset % 8).not.toBe(0)
      const value = decoded(decodeFrame(received, true)) as { x: Float64Array; y: Float32Array }
      expectIdentical(value.x, x)
      expectIdentical(value.y, y)
      expect(value.x.byteOffset % Float64Array.BYTES_PER_ELEMENT).toBe(0)
      expect(value.y.byteOffset % Float32Array.BYTES_PER_ELEMENT).toBe(0)
      expect(value.x.buffer).not.toBe(pool.buffer)
      // A copy: reusing the received memory must not change what was decoded.
      pool.fill(0xff)
      expectIdentical(value.x, x)
      expect(Object.keys(received)).toHaveLength(received.length) // no expando left on the caller's Buffer
    }
  })

  it('decodes a Buffer from Node’s shared pool (Buffer.from of a small array)', () => {
    const x = new Float32Array([1, 2, 3])
    const pooled = Buffer.from([...encodeFrame({ type: 'tick', key: 'k', x }, 'msgpack')])
    const value = decoded(decodeFrame(pooled, true)) as { x: Float32Array }
    expectIdentical(value.x, x)
  })
})

describe('decodeFrame inputs', () => {
  const frame = { type: 'tick', key: 'k', x: new Float32Array([1, 2]), id: 3 }
  const encoded = encodeFrame(frame, 'msgpack')

  it('takes a Buffer, a Uint8Array, an ArrayBuffer, and fragment lists', () => {
    const arrayBuffer = new ArrayBuffer(encoded.length)
    new Uint8Array(arrayBuffer).set(encoded)
    expect(decoded(decodeFrame(arrayBuffer, true))).toStrictEqual(frame)
    expect(decoded(decodeFrame(new Uint8Array(encoded), true))).toStrictEqual(frame)
    expect(decoded(decodeFrame([Buffer.from(encoded)], true))).toStrictEqual(frame)
    for (let cut = 1; cut < encoded.length; cut++) {
      const fragments = [encoded.subarray(0, cut), encoded.subarray(cut, cut + 3), encoded.subarray(cut + 3)]
      expect(decoded(decodeFrame(fragments, true))).toStrictEqual(frame)
    }
    const text = encodeFrame(frame, 'json')
    expect(
      decoded(decodeFrame([Buffer.from(text.slice(0, 9)), Buffer.from(text.slice(9))], false)),
    ).toStrictEqual(asJson(frame))
  })

  it('reports the encoding, on failure too', () => {
    expect(decodeFrame(encoded, true)).toMatchObject({ ok: true, encoding: 'msgpack' })
    expect(decodeFrame('{}', false)).toMatchObject({ ok: true, encoding: 'json' })
    expect(decodeFrame('{}', true)).toMatchObject({ ok: true, encoding: 'json' }) // a string is text
    expect(decodeFrame(Buffer.from('{'), false)).toMatchObject({ ok: false, encoding: 'json' })
    expect(decodeFrame(Buffer.from([0x92]), true)).toMatchObject({ ok: false, encoding: 'msgpack' })
  })

  const undecodable: [string, Parameters<typeof decodeFrame>, RegExp][] = [
    ['empty binary frame', [Buffer.alloc(0), true], /^the binary frame is not valid msgpack: /],
    ['truncated msgpack', [encoded.subarray(0, encoded.length - 2), true], /not valid msgpack/],
    [
      'trailing bytes',
      [Buffer.concat([encoded, Buffer.from([1])]), true],
      /not valid msgpack: .*end of buffer not reached/,
    ],
    ['the reserved byte 0xc1', [Buffer.from([0xc1]), true], /0xc1 is a reserved byte/],
    ['a bad typed-array payload', [Buffer.from([0xc7, 3, 0x74, 7, 0, 0]), true], /not valid msgpack/],
    [
      'JSON sent as a binary frame',
      [Buffer.from('{"type":"hello"}'), true],
      /it looks like JSON: send JSON as a text frame/,
    ],
    ['invalid JSON', ['{"type":', false], /^the text frame is not valid JSON: /],
    ['an empty text frame', ['', false], /not valid JSON/],
    ['invalid UTF-8', [Buffer.from([0x22, 0xff, 0x22]), false], /^the text frame is not valid UTF-8/],
    ['deep nesting', [Buffer.alloc(100_000, 0x91), true], /not valid msgpack/],
    ['a fragment that is not bytes', [[1, 2] as unknown as Buffer[], true], /^the frame could not be read/],
  ]
  it.each(undecodable)('%s is a bad_frame error', (_name, args, message) => {
    const error = failed(decodeFrame(...args))
    expect(error).toMatchObject({ type: 'error', code: 'bad_frame' })
    expect(error.message).toMatch(message)
    // The shared decoder is left in a good state.
    expect(decoded(decodeFrame(encoded, true))).toStrictEqual(frame)
  })

  it('refuses frames over maxBytes with payload_too_large, before decoding', () => {
    const limit = { maxBytes: encoded.length - 1 }
    expect(failed(decodeFrame(encoded, true, limit))).toMatchObject({
      code: 'payload_too_large',
      message: `the frame is ${encoded.length} bytes; the limit is ${encoded.length - 1} bytes`,
    })
    expect(failed(decodeFrame([encoded.subarray(0, 4), encoded.subarray(4)], true, limit)).code).toBe(
      'payload_too_large',
    )
    expect(decodeFrame(encoded, true, { maxBytes: encoded.length }).ok).toBe(true)
    // Counted in UTF-8 bytes, not characters.
    expect(failed(decodeFrame('"ééé"', false, { maxBytes: 7 })).code).toBe('payload_too_large')
    expect(decodeFrame('"ééé"', false, { maxBytes: 8 }).ok).toBe(true)
  })
})

describe('decodeFrame properties', () => {
  it('never throws on arbitrary bytes: a value, or a bad_frame error with a message', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.boolean(),
        fc.nat({ max: 7 }),
        (bytes, isBinary, offset) => {
          const pool = Buffer.alloc(bytes.length + offset)
          pool.set(bytes, offset)
          const result = decodeFrame(pool.subarray(offset), isBinary)
          if (!result.ok) {
            expect(result.error.type).toBe('error')
            expect(result.error.code).toBe('bad_frame')
            expect(typeof result.error.message).toBe('string')
            expect(result.error.message.length).toBeGreaterThan(0)
          }
          expect(result.encoding).toBe(isBinary ? 'msgpack' : 'json')
        },
      ),
      { numRuns: 5000 },
    )
    expect(decoded(decodeFrame(encodeFrame({ type: 'hello' }, 'msgpack'), true))).toStrictEqual({
      type: 'hello',
    })
  })

  it('never throws on msgpack-shaped garbage either (valid headers, random bodies)', () => {
    const prefix = fc.constantFrom(
      [0xc7],
      [0xc8],
      [0xd4, 0x74],
      [0xd5, 0x65],
      [0xc7, 0x02, 0x78],
      [0xd6, 0x69],
      [0xd4, 0x72],
      [0xde],
      [0xdd],
      [0x81],
    )
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 32 }), (head, body) => {
        const result = decodeFrame(Buffer.from([...head, ...body]), true)
        if (!result.ok) expect(result.error.code).toBe('bad_frame')
      }),
      { numRuns: 3000 },
    )
  })

  it('round-trips arbitrary ticks through both encodings', () => {
    const finite = fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => (Object.is(v, -0) ? 0 : v))
    const tick = fc.record(
      {
        type: fc.constant('tick'),
        key: fc.string({ minLength: 1, maxLength: 30 }),
        x: fc.oneof(
          fc.array(finite, { minLength: 1 }),
          fc.float32Array({ minLength: 1 }),
          fc.float64Array({ minLength: 1 }),
        ),
        y: fc.oneof(finite, fc.array(finite, { minLength: 1 })),
        id: finite,
      },
      { requiredKeys: ['type', 'key', 'x'] },
    )
    fc.assert(
      fc.property(tick, (frame) => {
        const binary = roundTrip(frame, 'msgpack') as typeof frame
        expect(Object.keys(binary)).toEqual(Object.keys(frame))
        if (ArrayBuffer.isView(frame.x)) expectIdentical(binary.x, frame.x)
        else expect(binary.x).toStrictEqual(frame.x)
        expect(roundTrip(frame, 'json')).toStrictEqual(asJson(frame))
      }),
      { numRuns: 500 },
    )
  })
})
