import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { RxrnnError } from '../../src/errors.js'
import {
  bfloat16ToNumber,
  float16ToNumber,
  readSafetensors,
  type TensorToWrite,
  writeSafetensors,
} from '../../src/safetensors.js'
import { referenceDir } from '../helpers/reference.js'

/** Assembles a file from a header (an object, or raw JSON text) and a data buffer, unpadded. */
function buildFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header))
  return assemble(json, data, headerLength)
}

function assemble(headerBytes: Uint8Array, data: Uint8Array, headerLength?: bigint): Uint8Array {
  const out = new Uint8Array(8 + headerBytes.length + data.length)
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(headerBytes.length), true)
  out.set(headerBytes, 8)
  out.set(data, 8 + headerBytes.length)
  return out
}

function u16le(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2)
  const view = new DataView(out.buffer)
  for (const [i, v] of values.entries()) view.setUint16(2 * i, v, true)
  return out
}

function f32le(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4)
  const view = new DataView(out.buffer)
  for (const [i, v] of values.entries()) view.setFloat32(4 * i, v, true)
  return out
}

/** The problems readSafetensors reports for `bytes`; fails the test when it does not throw. */
function problemsOf(bytes: Uint8Array): readonly string[] {
  try {
    readSafetensors(bytes)
  } catch (e) {
    expect(e).toBeInstanceOf(RxrnnError)
    const error = e as RxrnnError
    expect(error.code).toBe('bad_safetensors')
    expect(error.message).toMatch(/^Cannot read safetensors file/)
    return error.problems
  }
  throw new Error('expected readSafetensors to throw')
}

function writeProblemsOf(write: () => unknown): readonly string[] {
  try {
    write()
  } catch (e) {
    expect(e).toBeInstanceOf(RxrnnError)
    expect((e as RxrnnError).code).toBe('bad_safetensors')
    return (e as RxrnnError).problems
  }
  throw new Error('expected writeSafetensors to throw')
}

function headerText(bytes: Uint8Array): string {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true))
  return new TextDecoder().decode(bytes.subarray(8, 8 + n))
}

const F32_TENSOR = { dtype: 'F32', shape: [2], data_offsets: [0, 8] }

describe('writeSafetensors / readSafetensors round trip', () => {
  const tensors: TensorToWrite[] = [
    { name: 'rnn.weight_ih_l0', shape: [2, 3], data: [0.1, -0.2, 0.3, 1e-3, -1e5, 7] },
    { name: 'b', shape: [3], data: new Float32Array([1.5, -2.25, 0]) },
    { name: '10', shape: [1, 1, 2], data: [Number.POSITIVE_INFINITY, -0] },
    { name: '2', shape: [], data: [42] },
    { name: 'empty', shape: [0, 4], data: [] },
    { name: 'a', shape: [2], data: [Number.NaN, 2 ** -140] },
  ]
  const metadata = { format: 'pt', note: 'ünïcødé ✓', '10': 'ten' }

  it('keeps F64 values, shapes, metadata and order exactly', () => {
    const file = readSafetensors(writeSafetensors(tensors, 'F64', metadata))
    expect([...file.tensors.keys()]).toEqual(tensors.map((t) => t.name))
    expect(file.metadata).toEqual(metadata)
    for (const t of tensors) {
      const read = file.tensors.get(t.name)!
      expect(read.dtype).toBe('F64')
      expect(read.shape).toEqual(t.shape)
      expect(Array.from(read.data)).toEqual(Array.from(t.data))
    }
  })

  it('keeps F32 values as their float32 rounding, plus shapes, metadata and order', () => {
    const file = readSafetensors(writeSafetensors(tensors, 'F32', metadata))
    expect([...file.tensors.keys()]).toEqual(tensors.map((t) => t.name))
    expect(file.metadata).toEqual(metadata)
    for (const t of tensors) {
      const read = file.tensors.get(t.name)!
      expect(read.dtype).toBe('F32')
      expect(read.shape).toEqual(t.shape)
      expect(Array.from(read.data)).toEqual(Array.from(t.data, Math.fround))
    }
    expect(file.tensors.get('rnn.weight_ih_l0')!.data[0]).not.toBe(0.1)
  })

  it('reads back an empty metadata map when none is written', () => {
    const bytes = writeSafetensors([{ name: 'x', shape: [1], data: [1] }], 'F32')
    expect(headerText(bytes)).not.toContain('__metadata__')
    expect(readSafetensors(bytes).metadata).toEqual({})
    expect(readSafetensors(writeSafetensors([], 'F64')).tensors.size).toBe(0)
  })

  it('round-trips any float64 arrays exactly (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.double(), { maxLength: 20 }), { maxLength: 5 }),
        fc.dictionary(fc.string(), fc.string()),
        (arrays, meta) => {
          const input = arrays.map((data, i) => ({ name: `t${i}`, shape: [data.length], data }))
          const file = readSafetensors(writeSafetensors(input, 'F64', meta))
          expect(file.metadata).toEqual(meta)
          expect([...file.tensors.values()].map((t) => Array.from(t.data))).toEqual(arrays)
        },
      ),
    )
  })
})

describe('writeSafetensors layout', () => {
  it('pads the header with spaces to a multiple of 8 and lays tensors out contiguously', () => {
    const paddings = new Set<number>()
    for (let nameLength = 1; nameLength <= 16; nameLength++) {
      const bytes = writeSafetensors(
        [
          { name: 'n'.repeat(nameLength), shape: [2], data: [1, 2] },
          { name: 'second', shape: [3], data: [3, 4, 5] },
        ],
        'F32',
      )
      const view = new DataView(bytes.buffer, bytes.byteOffset)
      const n = Number(view.getBigUint64(0, true))
      expect(n % 8).toBe(0)
      const text = headerText(bytes)
      const json = text.trimEnd()
      expect(text.slice(json.length)).toMatch(/^ {0,7}$/)
      paddings.add(text.length - json.length)
      expect(JSON.parse(json)).toEqual({
        ['n'.repeat(nameLength)]: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        second: { dtype: 'F32', shape: [3], data_offsets: [8, 20] },
      })
      expect(bytes.length).toBe(8 + n + 20)
      expect(view.getFloat32(8 + n + 8, true)).toBe(3)
    }
    expect(paddings.size).toBe(8)
  })

  it('writes the header like the Python library: compact JSON, metadata first', () => {
    const bytes = writeSafetensors([{ name: 'w', shape: [1, 2], data: [1, 2] }], 'F64', { format: 'pt' })
    expect(headerText(bytes).trimEnd()).toBe(
      '{"__metadata__":{"format":"pt"},"w":{"dtype":"F64","shape":[1,2],"data_offsets":[0,16]}}',
    )
  })
})

describe('reading the PyTorch reference file', () => {
  const cases = JSON.parse(readFileSync(new URL('cases.json', referenceDir), 'utf8')) as {
    cases: { name: string; params: Record<string, number[][] | number[]> }[]
  }
  const fwdLstm = cases.cases.find((c) => c.name === 'fwd_lstm')!
  const bytes = readFileSync(new URL('fwd_lstm.safetensors', referenceDir))

  it('decodes rnn.weight_ih_l0 to the weights in cases.json', () => {
    const file = readSafetensors(bytes)
    const w = file.tensors.get('rnn.weight_ih_l0')!
    expect(w.dtype).toBe('F32')
    expect(w.shape).toEqual([20, 3])
    const expected = fwdLstm.params['rnn.weight_ih_l0'] as number[][]
    expect(Array.from(w.data.subarray(0, 3))).toEqual(expected[0])
    expect(Array.from(w.data)).toEqual(expected.flat())
  })

  it('decodes every tensor to the same shapes and values as cases.json', () => {
    const file = readSafetensors(bytes)
    expect([...file.tensors.keys()].sort()).toEqual(Object.keys(fwdLstm.params).sort())
    for (const [name, param] of Object.entries(fwdLstm.params)) {
      const t = file.tensors.get(name)!
      const rows = param as unknown[]
      const shape = Array.isArray(rows[0]) ? [rows.length, (rows[0] as number[]).length] : [rows.length]
      expect(t.shape).toEqual(shape)
      expect(Array.from(t.data)).toEqual(param.flat())
    }
  })

  it('reads a Node Buffer slice at an odd offset of a bigger buffer', () => {
    const padded = Buffer.concat([Buffer.from([9, 9, 9, 9, 9]), bytes, Buffer.from([7, 7, 7])])
    const slice = padded.subarray(5, 5 + bytes.length)
    expect(slice.byteOffset % 4).not.toBe(0)
    const w = readSafetensors(slice).tensors.get('rnn.weight_ih_l0')!
    expect(Array.from(w.data.subarray(0, 3))).toEqual((fwdLstm.params['rnn.weight_ih_l0'] as number[][])[0])
  })
})

describe('F16 and BF16', () => {
  // [bits, value]: normal, negative, largest finite, subnormals, infinities, signed zero.
  const f16Cases: [number, number][] = [
    [0x3c00, 1],
    [0xc100, -2.5],
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x3555, 0.333251953125],
    [0x7c00, Number.POSITIVE_INFINITY],
    [0xfc00, Number.NEGATIVE_INFINITY],
    [0x8000, -0],
    [0x0000, 0],
  ]
  const bf16Cases: [number, number][] = [
    [0x3f80, 1],
    [0xc020, -2.5],
    [0x477f, 65280],
    [0x7f7f, 3.3895313892515355e38],
    [0x0001, 2 ** -133],
    [0x007f, 127 * 2 ** -133],
    [0x7f80, Number.POSITIVE_INFINITY],
    [0xff80, Number.NEGATIVE_INFINITY],
    [0x8000, -0],
  ]

  it('decodes a hand-built F16 file exactly', () => {
    const bits = [...f16Cases.map(([b]) => b), 0x7e00, 0xfe01]
    const bytes = buildFile(
      {
        __metadata__: { by: 'hand' },
        h: { dtype: 'F16', shape: [bits.length], data_offsets: [0, 2 * bits.length] },
      },
      u16le(bits),
    )
    const t = readSafetensors(bytes).tensors.get('h')!
    expect(t.dtype).toBe('F16')
    expect(Array.from(t.data)).toEqual([...f16Cases.map(([, v]) => v), Number.NaN, Number.NaN])
  })

  it('decodes a hand-built BF16 file exactly', () => {
    const bits = [...bf16Cases.map(([b]) => b), 0x7fc0, 0xff81]
    const bytes = buildFile(
      { b: { dtype: 'BF16', shape: [1, bits.length], data_offsets: [0, 2 * bits.length] } },
      u16le(bits),
    )
    const t = readSafetensors(bytes).tensors.get('b')!
    expect(t.dtype).toBe('BF16')
    expect(t.shape).toEqual([1, bits.length])
    expect(Array.from(t.data)).toEqual([...bf16Cases.map(([, v]) => v), Number.NaN, Number.NaN])
  })

  it('float16ToNumber is right on all 65536 bit patterns', () => {
    for (const [bits, value] of f16Cases) expect(float16ToNumber(bits)).toBe(value)
    // Collected rather than asserted one by one, to keep 65536 checks fast.
    const wrong: string[] = []
    let previous = -1
    for (let bits = 0; bits <= 0x7fff; bits++) {
      const v = float16ToNumber(bits)
      const negative = float16ToNumber(bits | 0x8000)
      if (bits > 0x7c00) {
        if (!Number.isNaN(v) || !Number.isNaN(negative)) wrong.push(`${bits}: not NaN`)
        continue
      }
      if (!Object.is(negative, -v)) wrong.push(`${bits}: sign bit does not negate`)
      if (bits === 0x7c00) continue
      // Finite halves are multiples of 2^-24; the spacing is 2^-24 through the subnormals and the
      // first binade, then doubles with each binade.
      if (!Number.isInteger(v * 2 ** 24)) wrong.push(`${bits}: not a multiple of 2^-24`)
      if (bits > 0 && v - previous !== 2 ** (Math.max((bits - 1) >> 10, 1) - 25)) {
        wrong.push(`${bits}: step ${v - previous} from the previous value`)
      }
      previous = v
    }
    expect(wrong).toEqual([])
  })

  it('bfloat16ToNumber matches the top half of a float32 on all 65536 bit patterns', () => {
    for (const [bits, value] of bf16Cases) expect(bfloat16ToNumber(bits)).toBe(value)
    const u32 = new Uint32Array(1)
    const f32 = new Float32Array(u32.buffer)
    const wrong: number[] = []
    for (let bits = 0; bits <= 0xffff; bits++) {
      u32[0] = bits << 16
      if (!Object.is(bfloat16ToNumber(bits), f32[0])) wrong.push(bits)
    }
    expect(wrong).toEqual([])
  })

  it('rejects bits that are not a 16-bit integer', () => {
    for (const bad of [-1, 0x10000, 1.5, Number.NaN]) {
      expect(() => float16ToNumber(bad)).toThrow(RxrnnError)
      expect(() => bfloat16ToNumber(bad)).toThrow(/0 to 65535/)
    }
  })
})

describe('alignment', () => {
  it('reads a file copied to byteOffset 3 of a larger buffer', () => {
    const file = writeSafetensors(
      [
        { name: 'x', shape: [3], data: [0.125, -3, 1e300] },
        { name: 'y', shape: [2, 1], data: [5, 6] },
      ],
      'F64',
      { k: 'v' },
    )
    const big = new Uint8Array(new ArrayBuffer(file.length + 11)).fill(0xff)
    const view = big.subarray(3, 3 + file.length)
    view.set(file)
    expect(view.byteOffset).toBe(3)
    const read = readSafetensors(view)
    expect(Array.from(read.tensors.get('x')!.data)).toEqual([0.125, -3, 1e300])
    expect(Array.from(read.tensors.get('y')!.data)).toEqual([5, 6])
    expect(read.metadata).toEqual({ k: 'v' })
  })

  it('reads only the bytes of the view, not the rest of the underlying buffer', () => {
    const file = buildFile({ x: F32_TENSOR }, f32le([1, 2]))
    const big = new Uint8Array(file.length + 16)
    big.set(file, 1)
    // Cut the data short: the missing bytes lie in the ArrayBuffer but outside the view.
    expect(problemsOf(big.subarray(1, 1 + file.length - 4))).toEqual([
      expect.stringMatching(
        /tensor "x": data_offsets \[0, 8\] run past the end of the data buffer \(4 bytes\)/,
      ),
    ])
  })
})

describe('readSafetensors rejects broken files, listing every problem', () => {
  const only = (bytes: Uint8Array, pattern: RegExp) => {
    const problems = problemsOf(bytes)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(pattern)
  }

  it('file shorter than 8 bytes', () => {
    only(new Uint8Array(5), /file is 5 bytes, shorter than the 8-byte header length/)
    only(new Uint8Array(0), /file is 0 bytes/)
  })

  it('header length past the end of the file', () => {
    only(
      buildFile({}, new Uint8Array(0), 100n),
      /header length 100 runs past the end of the file .*truncated/,
    )
  })

  it('absurd header length', () => {
    only(buildFile({}, new Uint8Array(0), 2n ** 63n), /header length \d+ is over the 100000000-byte limit/)
    only(buildFile({}, new Uint8Array(0), 100_000_001n), /over the 100000000-byte limit/)
  })

  it('header not valid UTF-8', () => {
    only(assemble(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), new Uint8Array(0)), /header is not valid UTF-8/)
  })

  it('header not valid JSON', () => {
    only(buildFile('{"x": {'), /header is not valid JSON/)
    only(buildFile(''), /header is not valid JSON/)
  })

  it('header not a JSON object', () => {
    only(buildFile('[1, 2]'), /header is an array, not a JSON object/)
    only(buildFile('null'), /header is null, not a JSON object/)
    only(buildFile('"x"'), /header is the string "x", not a JSON object/)
  })

  it('entry that is not an object', () => {
    only(buildFile({ w: 3 }), /tensor "w": entry is a number \(3\), not an object/)
    only(buildFile({ w: [1] }), /tensor "w": entry is an array, not an object/)
  })

  it('entry missing dtype, shape or data_offsets', () => {
    only(buildFile({ w: { shape: [0], data_offsets: [0, 0] } }), /tensor "w": missing dtype;/)
    only(buildFile({ w: { dtype: 'F32' } }), /tensor "w": missing shape, data_offsets;/)
  })

  it('unsupported dtype, naming the supported ones', () => {
    only(
      buildFile({ idx: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor "idx": dtype "I64" is not supported; supported dtypes are F32, F64, F16, BF16/,
    )
    only(
      buildFile({ w: { dtype: 4, shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /dtype 4 is not/,
    )
  })

  it('shape not an array of non-negative integers', () => {
    for (const shape of [[-1], [1.5], '2', [2, '3'], null]) {
      only(
        buildFile({ w: { dtype: 'F32', shape, data_offsets: [0, 8] } }, new Uint8Array(8)),
        /tensor "w": shape .* is not an array of non-negative integers/,
      )
    }
  })

  it('data_offsets not two integers with begin <= end', () => {
    for (const offsets of [[0], [0, 4, 8], [8, 0], [-4, 0], [0, 4.5], 'x']) {
      only(
        buildFile({ w: { dtype: 'F32', shape: [1], data_offsets: offsets } }, new Uint8Array(8)),
        /tensor "w": data_offsets .* must be two non-negative integers \[begin, end\] with begin <= end/,
      )
    }
  })

  it('byte length that does not match the shape and dtype', () => {
    only(
      buildFile({ w: { dtype: 'F64', shape: [2, 3], data_offsets: [0, 24] } }, new Uint8Array(48)),
      /tensor "w": data_offsets \[0, 24\] span 24 bytes, but shape \[2,3\] of F64 needs 48/,
    )
  })

  it('offsets past the end of the data buffer', () => {
    only(
      buildFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(12)),
      /tensor "w": data_offsets \[0, 16\] run past the end of the data buffer \(12 bytes\); the file is truncated/,
    )
  })

  it('two tensors whose byte ranges overlap', () => {
    only(
      buildFile(
        {
          a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
          b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
        },
        new Uint8Array(16),
      ),
      /tensors "a" \[0, 16\] and "b" \[8, 16\] overlap/,
    )
  })

  it('does not count empty or merely adjacent tensors as overlapping', () => {
    const file = readSafetensors(
      buildFile(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
          b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
        },
        f32le([1, 2, 3, 4]),
      ),
    )
    expect([...file.tensors.keys()]).toEqual(['a', 'e', 'b'])
    expect(Array.from(file.tensors.get('b')!.data)).toEqual([3, 4])
    expect(file.tensors.get('e')!.data.length).toBe(0)
  })

  it('__metadata__ that is not a string-to-string map', () => {
    only(
      buildFile({ __metadata__: { epoch: 3 } }),
      /__metadata__ must map strings to strings, but "epoch" is a number/,
    )
    only(
      buildFile({ __metadata__: ['x'] }),
      /__metadata__ is an array, not an object mapping strings to strings/,
    )
  })

  it('lists both problems of a file with two', () => {
    const problems = problemsOf(
      buildFile(
        {
          idx: { dtype: 'I64', shape: [1], data_offsets: [0, 8] },
          w: { dtype: 'F32', shape: [3], data_offsets: [8, 20] },
        },
        new Uint8Array(16),
      ),
    )
    expect(problems).toHaveLength(2)
    expect(problems).toContainEqual(expect.stringMatching(/tensor "idx": dtype "I64" is not supported/))
    expect(problems).toContainEqual(
      expect.stringMatching(/tensor "w": data_offsets \[8, 20\] run past the end/),
    )
  })

  it('lists every problem across many entries in one error', () => {
    let caught: unknown
    try {
      readSafetensors(
        buildFile(
          {
            __metadata__: { n: 1 },
            a: 'x',
            b: { dtype: 'U8', shape: [-1], data_offsets: [4, 0] },
            c: { dtype: 'F16', shape: [3], data_offsets: [0, 8] },
            d: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          },
          new Uint8Array(8),
        ),
      )
    } catch (e) {
      caught = e
    }
    const error = caught as RxrnnError
    expect(error.problems.map((p) => p.replace(/[:;].*/s, ''))).toEqual([
      '__metadata__ must map strings to strings, but "n" is a number (1)',
      'tensor "a"',
      'tensor "b"',
      'tensor "b"',
      'tensor "b"',
      'tensor "c"',
      'tensors "d" [0, 4] and "c" [0, 8] overlap in the data buffer',
    ])
    expect(error.message).toContain('\n  - tensor "b": dtype "U8" is not supported')
  })

  it('rejects something that is not a Uint8Array', () => {
    expect(problemsOf([1, 2, 3] as unknown as Uint8Array)).toEqual([
      expect.stringMatching(/expected .* Uint8Array/),
    ])
  })
})

describe('writeSafetensors rejects bad input, listing every problem', () => {
  it('reports names, shapes, lengths and metadata all at once', () => {
    const problems = writeProblemsOf(() =>
      writeSafetensors(
        [
          { name: 'w', shape: [2], data: [1, 2] },
          { name: 'w', shape: [1], data: [1] },
          { name: '', shape: [1], data: [1] },
          { name: '__metadata__', shape: [1], data: [1] },
          { name: 'bad_shape', shape: [-2], data: [] },
          { name: 'short', shape: [2, 2], data: [1, 2, 3] },
        ],
        'F64',
        { epoch: 3 as unknown as string },
      ),
    )
    expect(problems).toEqual([
      expect.stringMatching(/metadata "epoch" is a number .*convert it to a string/),
      expect.stringMatching(/tensor 1 \("w"\): the name is used twice/),
      expect.stringMatching(/tensor 2 \(""\): name must be a non-empty string/),
      expect.stringMatching(/tensor 3 \("__metadata__"\): the name __metadata__ is reserved/),
      expect.stringMatching(
        /tensor 4 \("bad_shape"\): shape \[-2\] is not an array of non-negative integers/,
      ),
      expect.stringMatching(/tensor 5 \("short"\): data has 3 values, but shape \[2,2\] needs 4/),
    ])
  })

  it('refuses values that would overflow float32 to Infinity', () => {
    const tensors = [{ name: 'big', shape: [3], data: [1, 1e39, Number.POSITIVE_INFINITY] }]
    expect(writeProblemsOf(() => writeSafetensors(tensors, 'F32'))).toEqual([
      expect.stringMatching(
        /tensor 0 \("big"\): value 1e\+39 at index 1 is beyond the float32 range.*write F64/,
      ),
    ])
    expect(Array.from(readSafetensors(writeSafetensors(tensors, 'F64')).tensors.get('big')!.data)).toEqual([
      1,
      1e39,
      Number.POSITIVE_INFINITY,
    ])
  })

  it('refuses a dtype it cannot write', () => {
    expect(writeProblemsOf(() => writeSafetensors([], 'F16' as 'F32'))).toEqual([
      expect.stringMatching(/dtype "F16" cannot be written; use F32 or F64/),
    ])
  })
})
