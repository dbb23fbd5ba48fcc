import { describe, expect, it } from 'vitest'
import { createCell } from '../../src/cells/index.js'
import type { CellKind, FloatArray, Model, RecurrentState } from '../../src/index.js'
import { createModel, Rng, RxrnnError } from '../../src/index.js'
import { jsKernels } from '../../src/kernels.js'
import { gemvAdd } from '../../src/linalg.js'
import { StagedWasmKernels } from '../../src/wasm/backend.js'
import { WasmKernels, wasmSimdSupported } from '../../src/wasm/kernels.js'

// Batched inference: the GEMM kernel (Y = b·1ᵀ + W·X over batch-minor X [cols, batch]), the
// transpose and batched pointwise kernels, and model.stepBatch against one model.step per key.

const U = 2 ** -24
const SIZES = [1, 3, 4, 5, 8, 13, 17, 64, 67]
const BATCHES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 64, 67]
const cells: CellKind[] = ['rnn_tanh', 'rnn_relu', 'lstm', 'gru']

function randoms(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = rng.range(lo, hi)
  return a
}

/** Column k of a batch-minor [rows, batch] array. */
function column(a: ArrayLike<number>, rows: number, batch: number, k: number): Float64Array {
  return Float64Array.from({ length: rows }, (_, r) => a[r * batch + k]!)
}

let shared: WasmKernels | null = null
/** One instance shared until it fills (each WebAssembly memory reserves a large address range). */
function wasm(bytes = 1 << 20): WasmKernels {
  if (!shared || shared.bytesFree < bytes) shared = new WasmKernels(Math.max(bytes, 32 << 20))
  return shared
}

/** A copy of `data` inside the memory at byte offset ≡ 4·misalign (mod 16). */
function place(k: WasmKernels, data: ArrayLike<number>, misalign = 0): Float32Array {
  const view = k.alloc(data.length + 3).subarray(misalign, misalign + data.length)
  view.set(data)
  return view
}

describe.skipIf(!wasmSimdSupported())('gemmBias kernel (WebAssembly)', () => {
  it('Y = b·1ᵀ + W·X against a float64 reference, sizes and batches not multiples of 4, misaligned', () => {
    const rng = new Rng(1)
    let worst = 0
    for (const rows of SIZES) {
      for (const cols of [0, ...SIZES]) {
        for (const batch of BATCHES) {
          const k = wasm()
          const mis = (rows + cols + batch) & 3
          const w = randoms(rng, rows * cols, -1, 1)
          const x = randoms(rng, cols * batch, -2, 2)
          const b = randoms(rng, rows, -1, 1)
          // Guard floats around y: the kernel writes exactly rows·batch floats.
          const yBlock = place(k, new Float32Array(rows * batch + 8).fill(7), mis)
          const y = yBlock.subarray(4, 4 + rows * batch)
          k.gemmBias(
            y,
            place(k, w, (mis + 1) & 3),
            place(k, x, (mis + 2) & 3),
            place(k, b, (mis + 3) & 3),
            rows,
            cols,
            batch,
          )
          expect(Array.from(yBlock.subarray(0, 4))).toEqual([7, 7, 7, 7])
          expect(Array.from(yBlock.subarray(4 + rows * batch))).toEqual([7, 7, 7, 7])
          const gamma = ((cols + 1) * U) / (1 - (cols + 1) * U)
          for (let c = 0; c < batch; c++) {
            const want = Float64Array.from(b)
            gemvAdd(want, Float64Array.from(w), column(x, cols, batch, c), rows, cols)
            const mag = Float64Array.from(b, Math.abs)
            gemvAdd(mag, Float64Array.from(w, Math.abs), column(x, cols, batch, c).map(Math.abs), rows, cols)
            for (let r = 0; r < rows; r++) {
              const err = Math.abs(y[r * batch + c]! - want[r]!)
              if (!(err <= gamma * mag[r]!)) {
                expect.fail(
                  `rows ${rows} cols ${cols} batch ${batch}: y[${r}, ${c}] = ${y[r * batch + c]}, want ${want[r]}`,
                )
              }
              worst = Math.max(worst, mag[r]! > 0 ? err / mag[r]! : 0)
            }
          }
        }
      }
    }
    expect(worst).toBeLessThan(1e-6)
  })

  it('a column does not depend on the batch around it: every key gets the same bits at any batch size or position', () => {
    const rng = new Rng(2)
    const rows = 19
    const cols = 23
    const k = wasm()
    const w = place(k, randoms(rng, rows * cols, -1, 1))
    const b = place(k, randoms(rng, rows, -1, 1))
    const keys = Array.from({ length: 40 }, () => randoms(rng, cols, -2, 2))
    const results = new Map<number, Float64Array>()
    for (const batch of [1, 3, 4, 6, 8, 11, 17, 40]) {
      for (const start of [0, 40 - batch]) {
        const x = k.alloc(cols * batch)
        for (let c = 0; c < batch; c++) for (let j = 0; j < cols; j++) x[j * batch + c] = keys[start + c]![j]!
        const y = k.alloc(rows * batch)
        k.gemmBias(y, w, x, b, rows, cols, batch)
        for (let c = 0; c < batch; c++) {
          const got = column(y, rows, batch, c)
          const seen = results.get(start + c)
          if (seen) expect(Array.from(got), `key ${start + c} at batch ${batch}`).toEqual(Array.from(seen))
          else results.set(start + c, got)
        }
      }
    }
  })

  it('checks its arrays: too short, or outside the memory', () => {
    const k = wasm()
    const w = k.alloc(12)
    const b = k.alloc(4)
    const x = k.alloc(3 * 5)
    const y = k.alloc(4 * 5)
    expect(() => k.gemmBias(y, w, x, b, 4, 3, 6)).toThrow(/needs 24/)
    expect(() => k.gemmBias(y, w, new Float32Array(15), b, 4, 3, 5)).toThrow(/outside its memory/)
  })

  it('transpose: y = xᵀ exactly, all shapes', () => {
    const rng = new Rng(3)
    for (const rows of [1, 2, 3, 4, 5, 7, 8, 9, 13, 64, 67]) {
      for (const cols of [1, 2, 3, 4, 5, 6, 9, 16, 26, 128]) {
        const k = wasm()
        const x = place(k, randoms(rng, rows * cols, -5, 5), (rows + cols) & 3)
        const yBlock = place(k, new Float32Array(rows * cols + 8).fill(7), rows & 3)
        const y = yBlock.subarray(4, 4 + rows * cols)
        k.transpose(y, x, rows, cols)
        const want = new Float32Array(rows * cols)
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) want[j * rows + i] = x[i * cols + j]!
        expect(Array.from(y)).toEqual(Array.from(want))
        expect(Array.from(yBlock.subarray(0, 4))).toEqual([7, 7, 7, 7])
        expect(Array.from(yBlock.subarray(4 + rows * cols))).toEqual([7, 7, 7, 7])
      }
    }
  })

  it('cellForwardBatch equals cellForward on each column, bit for bit (the same kernel over H·batch)', () => {
    const rng = new Rng(4)
    for (const kind of cells) {
      for (const H of [1, 3, 8, 13]) {
        for (const batch of [1, 3, 8, 17]) {
          const k = wasm()
          const cell = createCell(kind, H)
          const rows = cell.gates * H
          const S = cell.stateSize
          const gIh = place(k, randoms(rng, rows * batch, -4, 4))
          const gHh = place(k, randoms(rng, rows * batch, -4, 4))
          const st = place(k, randoms(rng, S * batch, -2, 2))
          const cand = k.alloc(S * batch)
          const cache = k.alloc(cell.cacheSize * batch)
          k.cellForwardBatch(cell, cand, cache, gIh, gHh, st, batch)
          for (let c = 0; c < batch; c++) {
            const one = (a: Float32Array, n: number) => place(k, column(a, n, batch, c))
            const cand1 = k.alloc(S)
            const cache1 = k.alloc(cell.cacheSize)
            k.cellForward(cell, cand1, cache1, one(gIh, rows), one(gHh, rows), one(st, S))
            expect(Array.from(column(cand, S, batch, c))).toEqual(Array.from(cand1))
            expect(Array.from(column(cache, cell.cacheSize, batch, c))).toEqual(Array.from(cache1))
          }
        }
      }
    }
  })
})

describe('gemmBias, transpose and cellForwardBatch on the JS kernels', () => {
  it('gemmBias gives, bit for bit, one gemvBias per column (float64 and float32)', () => {
    const rng = new Rng(5)
    for (const ArrayType of [Float64Array, Float32Array]) {
      const js = jsKernels(ArrayType)
      for (const rows of [1, 3, 5, 16]) {
        for (const cols of [0, 1, 3, 4, 7, 17]) {
          for (const batch of [1, 2, 3, 5, 8]) {
            const w = ArrayType.from(randoms(rng, rows * cols, -1, 1))
            const x = ArrayType.from(randoms(rng, cols * batch, -2, 2))
            const b = ArrayType.from(randoms(rng, rows, -1, 1))
            const y = new ArrayType(rows * batch)
            js.gemmBias(y, w, x, b, rows, cols, batch)
            for (let c = 0; c < batch; c++) {
              const yc = new ArrayType(rows)
              js.gemvBias(yc, w, ArrayType.from(column(x, cols, batch, c)), b, rows, cols)
              expect(Array.from(column(y, rows, batch, c))).toEqual(Array.from(yc))
            }
          }
        }
      }
    }
  })

  it('transpose and cellForwardBatch (a wide cell per batch size) per column', () => {
    const rng = new Rng(6)
    const js = jsKernels(Float64Array)
    const x = Float64Array.from(randoms(rng, 5 * 7, -1, 1))
    const y = new Float64Array(35)
    js.transpose(y, x, 5, 7)
    for (let i = 0; i < 5; i++) for (let j = 0; j < 7; j++) expect(y[j * 5 + i]).toBe(x[i * 7 + j])
    for (const kind of cells) {
      const cell = createCell(kind, 6)
      const batch = 4
      const rows = cell.gates * 6
      const gIh = Float64Array.from(randoms(rng, rows * batch, -3, 3))
      const gHh = Float64Array.from(randoms(rng, rows * batch, -3, 3))
      const st = Float64Array.from(randoms(rng, cell.stateSize * batch, -1, 1))
      const cand = new Float64Array(cell.stateSize * batch)
      const cache = new Float64Array(cell.cacheSize * batch)
      js.cellForwardBatch(cell, cand, cache, gIh, gHh, st, batch)
      for (let c = 0; c < batch; c++) {
        const cand1 = new Float64Array(cell.stateSize)
        const cache1 = new Float64Array(cell.cacheSize)
        cell.forward(
          cand1,
          cache1,
          column(gIh, rows, batch, c),
          column(gHh, rows, batch, c),
          column(st, cell.stateSize, batch, c),
        )
        expect(Array.from(column(cand, cell.stateSize, batch, c))).toEqual(Array.from(cand1))
        expect(Array.from(column(cache, cell.cacheSize, batch, c))).toEqual(Array.from(cache1))
      }
    }
  })
})

describe.skipIf(!wasmSimdSupported())(
  'StagedWasmKernels: batch room and arrays from outside the memory',
  () => {
    it('allocBatch hands out zeroed, 16-byte aligned views of the room, then falls back to alloc', () => {
      const k = new StagedWasmKernels(1000, 10, 100)
      expect(k.batchFloatsFree).toBe(100)
      const a = k.allocBatch(30)
      const b = k.allocBatch(30)
      expect(b.byteOffset - a.byteOffset).toBe(32 * 4)
      expect(k.batchFloatsFree).toBe(100 - 62)
      expect(Array.from(b).every((v) => v === 0)).toBe(true)
      const c = k.allocBatch(50) // past the room: an ordinary alloc, still in the memory
      expect(c.buffer).toBe(a.buffer)
      expect(k.batchFloatsFree).toBe(38)
    })

    it('gemmBias and cellForwardBatch on plain arrays go one key at a time and agree with the fast path', () => {
      const rng = new Rng(7)
      const rows = 12
      const cols = 5
      const batch = 6
      const k = new StagedWasmKernels(10_000, 3 * 4 * 8)
      const w = k.alloc(rows * cols)
      w.set(randoms(rng, rows * cols, -1, 1))
      const b = k.alloc(rows)
      b.set(randoms(rng, rows, -1, 1))
      const x = randoms(rng, cols * batch, -2, 2)
      const yPlain = new Float32Array(rows * batch)
      k.gemmBias(yPlain, w, x, b, rows, cols, batch)
      const xIn = k.allocBatch(cols * batch)
      xIn.set(x)
      const yIn = k.allocBatch(rows * batch)
      k.gemmBias(yIn, w, xIn, b, rows, cols, batch)
      for (let i = 0; i < yIn.length; i++) expect(yPlain[i]).toBeCloseTo(yIn[i]!, 5)

      const cell = createCell('gru', 4)
      const st = randoms(rng, 4 * batch, -1, 1)
      const candPlain = new Float32Array(4 * batch)
      const cachePlain = new Float32Array(16 * batch)
      k.cellForwardBatch(cell, candPlain, cachePlain, yPlain, yPlain, st, batch)
      const stIn = k.allocBatch(4 * batch)
      stIn.set(st)
      const candIn = k.allocBatch(4 * batch)
      const cacheIn = k.allocBatch(16 * batch)
      const g = k.allocBatch(rows * batch)
      g.set(yPlain)
      k.cellForwardBatch(cell, candIn, cacheIn, g, g, stIn, batch)
      expect(Array.from(candPlain)).toEqual(Array.from(candIn))
      expect(Array.from(cachePlain)).toEqual(Array.from(cacheIn))
    })
  },
)

const backends = wasmSimdSupported() ? (['js', 'wasm'] as const) : (['js'] as const)

function model(
  cell: CellKind,
  numLayers: number,
  backend: 'js' | 'wasm',
  extra: { zoneout?: number } = {},
): Model {
  return createModel(
    { cell, inputSize: 5, hiddenSize: 13, numLayers, outputSize: 3, seed: 11, ...extra },
    { backend },
  )
}

/** maxᵢ |a − b| / max(1, |b|). */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)))
  return worst
}

/**
 * `steps` time steps of `batch` keys, once by stepBatch and once by model.step per key, from
 * states that start apart (each key has seen its own prefix); returns the largest difference in
 * outputs and states.
 */
function compare(m: Model, batch: number, steps: number, seed: number): { y: number; state: number } {
  const rng = new Rng(seed)
  const I = m.config.inputSize
  const O = m.config.outputSize
  const viaStep = Array.from({ length: batch }, () => m.initialState())
  const viaBatch = Array.from({ length: batch }, () => m.initialState())
  // Different starting states: key k has seen k % 5 inputs.
  for (let k = 0; k < batch; k++) {
    for (let t = 0; t < k % 5; t++) m.step(randoms(rng, I, -1, 1), viaStep[k]!)
    viaBatch[k]!.copyFrom(viaStep[k]!)
  }
  let y = 0
  let state = 0
  const xs = new Float32Array(batch * I)
  const out = m.dtype === 'float64' ? new Float64Array(batch * O) : new Float32Array(batch * O)
  for (let t = 0; t < steps; t++) {
    xs.set(randoms(rng, batch * I, -2, 2))
    out.fill(Number.NaN)
    m.stepBatch(xs, viaBatch, out, batch)
    for (let k = 0; k < batch; k++) {
      const yk = m.step(xs.subarray(k * I, (k + 1) * I), viaStep[k]!)
      y = Math.max(y, maxDiff(out.subarray(k * O, (k + 1) * O), yk))
      state = Math.max(state, maxDiff(viaBatch[k]!.data, viaStep[k]!.data))
    }
  }
  return { y, state }
}

describe('model.stepBatch equals one model.step per key', () => {
  for (const backend of backends) {
    for (const cell of cells) {
      for (const numLayers of [1, 2]) {
        it(`${backend}: ${cell} × ${numLayers}, batches of 1, 3, 17, 64 and 200`, () => {
          const m = model(cell, numLayers, backend)
          for (const batch of [1, 3, 17, 64, 200]) {
            const { y, state } = compare(m, batch, 4, batch)
            // JS: the same sums in the same order, bit for bit. WebAssembly: the GEMM sums in
            // another order than the gemv, so float32 rounding (~1e-7 here) apart.
            const bound = backend === 'js' ? 0 : 1e-5
            expect(y, `batch ${batch}: outputs`).toBeLessThanOrEqual(bound)
            expect(state, `batch ${batch}: states`).toBeLessThanOrEqual(bound)
          }
        })
      }
    }
  }

  for (const backend of backends) {
    it(`${backend}: zoneout (inference mixes the state with the constant p), 2 layers`, () => {
      const m = model('lstm', 2, backend, { zoneout: 0.25 })
      const { y, state } = compare(m, 23, 5, 9)
      expect(Math.max(y, state)).toBeLessThanOrEqual(backend === 'js' ? 0 : 1e-5)
    })
  }

  it('js: batches past 256 keys run in chunks (300 keys, float64, bit for bit)', () => {
    const m = createModel({
      cell: 'gru',
      inputSize: 4,
      hiddenSize: 6,
      outputSize: 2,
      dtype: 'float64',
      seed: 3,
    })
    const { y, state } = compare(m, 300, 3, 4)
    expect(Math.max(y, state)).toBe(0)
  })

  it.skipIf(!wasmSimdSupported())(
    'wasm: a batch past the room its memory holds runs in equal chunks (LSTM 8→64→1, 1000 keys)',
    () => {
      const m = createModel(
        { cell: 'lstm', inputSize: 8, hiddenSize: 64, outputSize: 1, seed: 1 },
        { backend: 'wasm' },
      )
      // The real kernel, watched: the head's product (1 row) runs once per chunk.
      const chunks: number[] = []
      const gemm = m.kernels.gemmBias.bind(m.kernels)
      m.kernels.gemmBias = (y, w, x, b, rows, cols, batch) => {
        if (rows === 1) chunks.push(batch)
        gemm(y, w, x, b, rows, cols, batch)
      }
      const { y, state } = compare(m, 1000, 2, 5)
      expect(Math.max(y, state)).toBeLessThan(1e-5)
      // The room holds 9·maxDim floats per key for 64 keys (maxDim = 5H = 320); the staging takes
      // 1225 per key here, so 144 keys fit: 1000 keys = 7 chunks, as equal as can be, per step.
      const perStep = [143, 143, 143, 143, 143, 143, 142]
      expect(chunks).toEqual([...perStep, ...perStep])
    },
  )

  it('batch 0 does nothing; float64 inputs into a float32 model are rounded as step rounds them', () => {
    const m = model('gru', 1, wasmSimdSupported() ? 'wasm' : 'js')
    const s = m.initialState()
    m.stepBatch(new Float32Array(0), [], new Float32Array(0), 0)
    const xs = Float64Array.from({ length: 5 * 9 }, (_, i) => Math.sin(i) * 1.000000001)
    const states = Array.from({ length: 9 }, () => m.initialState())
    const out = new Float32Array(9 * 3)
    m.stepBatch(xs, states, out, 9)
    const y = m.step(Array.from(xs.subarray(0, 5)), s)
    expect(maxDiff(out.subarray(0, 3), y)).toBeLessThan(1e-5)
  })
})

describe('model.stepBatch refuses a bad batch before touching any state', () => {
  const m = createModel({ cell: 'lstm', inputSize: 2, hiddenSize: 4, outputSize: 1, seed: 1 })
  const fresh = (n: number) => Array.from({ length: n }, () => m.initialState())
  const untouched = (states: RecurrentState[]) => states.every((s) => s.data.every((v) => v === 0))
  const refuses = (
    xs: FloatArray,
    states: RecurrentState[],
    out: FloatArray,
    batch: number,
    message: RegExp,
  ) => {
    let error: unknown
    try {
      m.stepBatch(xs, states, out, batch)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(RxrnnError)
    expect((error as RxrnnError).code).toBe('bad_input')
    expect((error as RxrnnError).message).toMatch(message)
    expect(untouched(states)).toBe(true)
  }

  it('sizes, states of another shape, a state twice, non-finite and out-of-range values', () => {
    const s = fresh(9)
    refuses(new Float32Array(16), s, new Float32Array(8), 8.5, /batch is 8.5/)
    refuses(new Float32Array(15), s, new Float32Array(8), 8, /xs has 15 values; 8 keys × inputSize 2 need 16/)
    refuses(new Float32Array(16), s, new Float32Array(7), 8, /out has 7 values/)
    refuses(new Float32Array(20), s, new Float32Array(10), 10, /states has 9 states for 10 keys/)
    const other = createModel({ cell: 'lstm', inputSize: 2, hiddenSize: 5, outputSize: 1 }).initialState()
    refuses(
      new Float32Array(16),
      [...s.slice(0, 7), other],
      new Float32Array(8),
      8,
      /states\[7\] is not a state of this model/,
    )
    refuses(
      new Float32Array(16),
      [...s.slice(0, 7), s[2]!],
      new Float32Array(8),
      8,
      /states\[7\] comes twice/,
    )
    const nan = new Float32Array(16)
    nan[13] = Number.NaN
    refuses(nan, s, new Float32Array(8), 8, /xs\[13\] \(key 6, x\[1\]\) is NaN/)
    const big = new Float64Array(16)
    big[3] = 1e39
    refuses(big, s, new Float32Array(8), 8, /xs\[3\] \(key 1, x\[1\]\) is 1e\+39; .*float32 range/)
    // Only the first `batch` entries count.
    m.stepBatch(new Float32Array(20), [...s.slice(0, 8), s[0]!], new Float32Array(10), 8)
    expect(untouched(s.slice(0, 8))).toBe(false)
  })
})
