import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { GENERATED_PATH, renderGenerated, WAT_PATH, watSha256 } from '../../scripts/build-wasm.js'
import { gruCell } from '../../src/cells/gru.js'
import { lstmCell } from '../../src/cells/lstm.js'
import { rnnCell } from '../../src/cells/rnn.js'
import { clipByGlobalNorm } from '../../src/clip.js'
import { RxrnnError } from '../../src/errors.js'
import { jsKernels } from '../../src/kernels.js'
import { gemvAdd, gemvTransAdd, gerAdd } from '../../src/linalg.js'
import { createOptimizer } from '../../src/optimizers.js'
import { Rng } from '../../src/rng.js'
import { KERNELS_WAT_SHA256 } from '../../src/wasm/kernels.generated.js'
import { compileKernels, precompileKernels, WasmKernels, wasmSimdSupported } from '../../src/wasm/kernels.js'

// Every kernel against the JS implementation (src/linalg.ts, src/cells/*.ts, src/optimizers.ts,
// src/clip.ts) run in float64 on the same float32 inputs, at sizes that are and are not multiples
// of 4 and at 16-byte aligned and merely 4-byte aligned addresses.
//
// Error bounds, u = 2^-24 (the float32 unit roundoff):
// - Sums (gemv, gemvᵀ, ger): any summation order of N terms (products included) is within
//   γ_N·Σ|terms|, γ_N = N·u/(1 − N·u) (Higham, Accuracy and Stability, §3.1). For cols ≤ 67 that is
//   ≤ 4.2e-6 of the magnitude Σ|terms|, inside the 1e-5 the kernels were asked for.
// - Pointwise backward: products of ≤ 5 factors and one sum, ≤ 8 roundings each: 16u·magnitude,
//   where magnitude is the same formula on absolute values. 1 − t² is formed as (1 − t)(1 + t), so
//   this holds even where t → ±1 (a naive 1 − t·t in float32 would not; the cases below include it).
// - Pointwise forward: every activation is within ACT = 2e-7 absolute (tested on its own below) and
//   has slope ≤ 1; the products and sums around it add a few u of their magnitudes. The bounds are
//   that budget summed along each output's formula (see each test).

const U = 2 ** -24
const ACT = 2e-7
const SIZES = [1, 3, 5, 8, 17, 64, 67]
/** Offsets in floats from a 16-byte aligned start: byte offset % 16 = 0, 4, 12. */
const MISALIGN = [0, 1, 3]

/** The largest error (divided by the check's scale) per check, printed with RXRNN_KERNEL_REPORT=1. */
const measured = new Map<string, number>()
function record(name: string, value: number): void {
  measured.set(name, Math.max(measured.get(name) ?? 0, value))
}
afterAll(() => {
  if (process.env.RXRNN_KERNEL_REPORT) {
    for (const [name, v] of measured) console.log(`${name.padEnd(44)} ${v.toExponential(2)}`)
  }
})

let shared: WasmKernels | null = null
/**
 * An instance with at least `bytes` free. Cases share one until it fills up: every WebAssembly
 * memory reserves gigabytes of address space for its guard region, so one per case adds up.
 */
function kernels(bytes = 1 << 20): WasmKernels {
  if (!shared || shared.bytesFree < bytes) shared = new WasmKernels(Math.max(bytes, 32 << 20))
  return shared
}

/** A copy of `data` inside the kernels' memory at byte offset ≡ 4·misalign (mod 16). */
function place(k: WasmKernels, data: ArrayLike<number>, misalign = 0): Float32Array {
  const block = k.alloc(data.length + 3)
  const view = block.subarray(misalign, misalign + data.length)
  view.set(data)
  return view
}

function randoms(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = rng.range(lo, hi)
  return a
}

const f64 = (a: ArrayLike<number>) => Float64Array.from(a)
const abs64 = (a: ArrayLike<number>) => Float64Array.from(a, Math.abs)

/** Asserts |got − want| ≤ bound elementwise; records max |got − want| / scale under `name`. */
function expectWithin(
  name: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  bound: (i: number) => number,
  scale: (i: number) => number = () => 1,
): void {
  expect(got.length).toBe(want.length)
  let worst = -1
  let worstExcess = 0
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!)
    if (!(err <= bound(i))) {
      const excess = err / bound(i)
      if (!(excess <= worstExcess)) {
        worst = i
        worstExcess = excess
      }
    }
    const s = scale(i)
    record(name, s > 0 ? err / s : err)
  }
  if (worst >= 0) {
    expect.fail(
      `${name}: element ${worst} is ${got[worst]}, the reference ${want[worst]} (bound ${bound(worst)})`,
    )
  }
}

describe('WasmKernels: memory and views', () => {
  it('runs here (Node 20 has WebAssembly SIMD) and compiles the module once', async () => {
    expect(wasmSimdSupported()).toBe(true)
    expect(compileKernels()).toBe(compileKernels())
    expect(await precompileKernels()).toBe(compileKernels())
  })

  it('allocates zeroed, aligned views inside a memory that cannot grow', () => {
    const k = new WasmKernels(100_000)
    expect(k.name).toBe('wasm')
    expect(k.memory.buffer.byteLength).toBe(2 * 65536)
    expect(() => k.memory.grow(1)).toThrow(RangeError)
    const a = k.alloc(3)
    const b = k.alloc(5)
    const c = k.alloc(2, false)
    expect([k.ptr(a), k.ptr(b), k.ptr(c)]).toEqual([0, 16, 36])
    expect(b.buffer).toBe(k.memory.buffer)
    expect(Array.from(b)).toEqual([0, 0, 0, 0, 0])
    expect(k.bytesUsed).toBe(44)
    expect(k.ptr(b.subarray(1))).toBe(20)
    expect(WasmKernels.bytesFor([3, 5, 4])).toBe(16 + 32 + 16)
  })

  it('throws RxrnnError when full, for views of other memories and for short views', () => {
    const k = new WasmKernels(65536)
    k.alloc(16000)
    expect(() => k.alloc(1000)).toThrow(RxrnnError)
    expect(() => k.alloc(1000)).toThrow(/memory is full.*bytesFor/)
    const other = new WasmKernels(65536)
    const y = k.alloc(4)
    const w = k.alloc(8)
    const x = k.alloc(2)
    expect(() => k.ptr(new Float32Array(4))).toThrow(/outside its memory/)
    expect(() => k.gemvBias(y, w, other.alloc(2), y, 4, 2)).toThrow(/outside its memory/)
    expect(() => k.gemvBias(y, w, x, y, 4, 3)).toThrow(/of 8 floats where it needs 12/)
    // A checked view keeps its cached offset, and a wrong length is still caught afterwards.
    k.gemvBias(y, w, x, y, 4, 2)
    expect(() => k.gemvBias(y, w, x, y, 5, 2)).toThrow(RxrnnError)
  })
})

describe('dense kernels', () => {
  it('gemvBias: y = b + W·x', () => {
    const rng = new Rng(1)
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        for (const mis of MISALIGN) {
          const k = kernels()
          const w = randoms(rng, rows * cols, -1, 1)
          const x = randoms(rng, cols, -2, 2)
          const b = randoms(rng, rows, -1, 1)
          const y = place(k, new Float32Array(rows), mis)
          k.gemvBias(y, place(k, w, (mis + 1) & 3), place(k, x, mis), place(k, b, (mis + 2) & 3), rows, cols)
          const want = f64(b)
          gemvAdd(want, f64(w), f64(x), rows, cols)
          const mag = abs64(b)
          gemvAdd(mag, abs64(w), abs64(x), rows, cols)
          const gamma = ((cols + 1) * U) / (1 - (cols + 1) * U)
          expect(gamma).toBeLessThan(1e-5)
          expectWithin(
            'gemv_bias / Σ|terms|',
            y,
            want,
            (i) => gamma * mag[i]!,
            (i) => mag[i]!,
          )
        }
      }
    }
  })

  it('gemvAcc: y += W·x, and gemvBias with b = y', () => {
    const rng = new Rng(2)
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        const mis = (rows + cols) & 3
        const k = kernels()
        const w = randoms(rng, rows * cols, -1, 1)
        const x = randoms(rng, cols, -2, 2)
        const y0 = randoms(rng, rows, -3, 3)
        const y = place(k, y0, mis)
        const y2 = place(k, y0, 3 - mis)
        const wv = place(k, w, 1)
        const xv = place(k, x, 2)
        k.gemvAcc(y, wv, xv, rows, cols)
        k.gemvBias(y2, wv, xv, y2, rows, cols)
        const want = f64(y0)
        gemvAdd(want, f64(w), f64(x), rows, cols)
        const mag = abs64(y0)
        gemvAdd(mag, abs64(w), abs64(x), rows, cols)
        const gamma = ((cols + 1) * U) / (1 - (cols + 1) * U)
        expectWithin(
          'gemv_acc / Σ|terms|',
          y,
          want,
          (i) => gamma * mag[i]!,
          (i) => mag[i]!,
        )
        expect(Array.from(y2)).toEqual(Array.from(y))
      }
    }
  })

  it('gemvTransAcc: y += Wᵀ·v, with zero entries and zero blocks of v', () => {
    const rng = new Rng(3)
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        for (const mis of MISALIGN) {
          const k = kernels()
          const w = randoms(rng, rows * cols, -1, 1)
          const v = randoms(rng, rows, -2, 2)
          for (let r = 0; r < rows; r++) if (r % 3 === 1 || (r >= 4 && r < 8)) v[r] = 0
          const y0 = randoms(rng, cols, -3, 3)
          const y = place(k, y0, mis)
          k.gemvTransAcc(y, place(k, w, (mis + 3) & 3), place(k, v, (mis + 1) & 3), rows, cols)
          const want = f64(y0)
          gemvTransAdd(want, f64(w), f64(v), rows, cols)
          const mag = abs64(y0)
          gemvTransAdd(mag, abs64(w), abs64(v), rows, cols)
          const gamma = ((rows + 1) * U) / (1 - (rows + 1) * U)
          expectWithin(
            'gemv_t_acc / Σ|terms|',
            y,
            want,
            (i) => gamma * mag[i]!,
            (i) => mag[i]!,
          )
        }
      }
    }
  })

  it('gerAcc: G += v·xᵀ, skipping rows with v = 0', () => {
    const rng = new Rng(4)
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        for (const mis of MISALIGN) {
          const k = kernels()
          const g0 = randoms(rng, rows * cols, -1, 1)
          const v = randoms(rng, rows, -2, 2)
          for (let r = 0; r < rows; r += 3) v[r] = 0
          const x = randoms(rng, cols, -2, 2)
          const g = place(k, g0, mis)
          k.gerAcc(g, place(k, v, (mis + 2) & 3), place(k, x, (mis + 1) & 3), rows, cols)
          const want = f64(g0)
          gerAdd(want, f64(v), f64(x), rows, cols)
          const mag = abs64(g0)
          gerAdd(mag, abs64(v), abs64(x), rows, cols)
          const gamma = (2 * U) / (1 - 2 * U)
          expectWithin(
            'ger_acc / (|g| + |v x|)',
            g,
            want,
            (i) => gamma * mag[i]!,
            (i) => mag[i]!,
          )
          for (let r = 0; r < rows; r += 3) {
            expect(g.subarray(r * cols, (r + 1) * cols)).toEqual(g0.subarray(r * cols, (r + 1) * cols))
          }
        }
      }
    }
  })
})

describe('window gradient kernels', () => {
  const STEPS = [0, 1, 5, 16, 17]
  /** A view of `data` with 5 guard floats on each side, filled with a value no kernel writes. */
  function guarded(k: WasmKernels, data: ArrayLike<number>, misalign: number) {
    const block = k.alloc(data.length + 10 + misalign)
    block.fill(-7.25)
    const view = block.subarray(5 + misalign, 5 + misalign + data.length)
    view.set(data)
    const guardsIntact = () =>
      block.subarray(0, 5 + misalign).every((v) => v === -7.25) &&
      block.subarray(5 + misalign + data.length).every((v) => v === -7.25)
    return { view, guardsIntact }
  }

  it('gerStepsAcc: G += Vᵀ·X over the steps, to float32 rounding of the sum, nothing outside G written', () => {
    const rng = new Rng(11)
    for (const steps of STEPS) {
      for (const rows of SIZES) {
        for (const cols of SIZES) {
          const mis = (rows + cols + steps) % 4
          const k = kernels(4 << 20)
          const g0 = randoms(rng, rows * cols, -1, 1)
          const v = randoms(rng, steps * rows, -2, 2)
          const x = randoms(rng, steps * cols, -2, 2)
          const g = guarded(k, g0, mis)
          k.gerStepsAcc(g.view, place(k, v, (mis + 1) & 3), place(k, x, (mis + 2) & 3), rows, cols, steps)
          expect(g.guardsIntact()).toBe(true)
          const want = f64(g0)
          const mag = abs64(g0)
          for (let t = 0; t < steps; t++) {
            gerAdd(
              want,
              f64(v.subarray(t * rows, (t + 1) * rows)),
              f64(x.subarray(t * cols, (t + 1) * cols)),
              rows,
              cols,
            )
            gerAdd(
              mag,
              abs64(v.subarray(t * rows, (t + 1) * rows)),
              abs64(x.subarray(t * cols, (t + 1) * cols)),
              rows,
              cols,
            )
          }
          const n = steps + 1
          const gamma = (n * U) / (1 - n * U)
          expectWithin(
            'ger_steps_acc / (|g| + Σ|v x|)',
            g.view,
            want,
            (i) => gamma * mag[i]!,
            (i) => mag[i]!,
          )
          if (steps === 0) expect(g.view).toEqual(g0)
        }
      }
    }
  })

  it('sumStepsAcc: b += Σ_t V[t, :], nothing outside b written', () => {
    const rng = new Rng(12)
    for (const steps of STEPS) {
      for (const rows of SIZES) {
        const mis = (rows + steps) % 4
        const k = kernels()
        const b0 = randoms(rng, rows, -1, 1)
        const v = randoms(rng, steps * rows, -2, 2)
        const b = guarded(k, b0, mis)
        k.sumStepsAcc(b.view, place(k, v, (mis + 3) & 3), rows, steps)
        expect(b.guardsIntact()).toBe(true)
        const want = f64(b0)
        const mag = abs64(b0)
        for (let t = 0; t < steps; t++) {
          for (let r = 0; r < rows; r++) {
            want[r] = want[r]! + v[t * rows + r]!
            mag[r] = mag[r]! + Math.abs(v[t * rows + r]!)
          }
        }
        const gamma = (steps * U) / (1 - steps * U)
        expectWithin(
          'sum_steps_acc / Σ|v|',
          b.view,
          want,
          (i) => gamma * mag[i]!,
          (i) => mag[i]!,
        )
      }
    }
  })

  it('the JS kernels are, in float64, exactly one gerAcc per step and a running sum', () => {
    const rng = new Rng(13)
    const js = jsKernels(Float64Array)
    const rows = 7
    const cols = 5
    const steps = 6
    const v = f64(randoms(rng, steps * rows, -2, 2))
    const x = f64(randoms(rng, steps * cols, -2, 2))
    const g = f64(randoms(rng, rows * cols, -1, 1))
    const want = g.slice()
    js.gerStepsAcc(g, v, x, rows, cols, steps)
    for (let t = 0; t < steps; t++)
      gerAdd(want, v.subarray(t * rows, (t + 1) * rows), x.subarray(t * cols, (t + 1) * cols), rows, cols)
    expect(g).toEqual(want)
    const b = new Float64Array(rows)
    js.sumStepsAcc(b, v, rows, steps)
    for (let r = 0; r < rows; r++) {
      let sum = 0
      for (let t = 0; t < steps; t++) sum += v[t * rows + r]!
      expect(b[r]).toBe(sum)
    }
  })
})

describe('activations', () => {
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))
  const tiny = [0, -0, 1e-45, -1e-45, 1e-40, 1e-38, -1e-38, 1e-30, -1e-20, 1e-10, -1e-7, 1e-5, -1e-3]

  function run(name: 'tanh' | 'sigmoid' | 'exp', xs: Float32Array): Float32Array {
    const k = kernels(WasmKernels.bytesFor([xs.length + 3, xs.length + 3]))
    const x = place(k, xs, 1)
    const y = place(k, new Float32Array(xs.length), 3)
    k[name](y, x)
    return y
  }

  it('tanh and sigmoid are within 2e-7 of the float64 functions on [−20, 20] and tiny values', () => {
    const n = 400_001
    const xs = new Float32Array(n + tiny.length)
    for (let i = 0; i < n; i++) xs[i] = -20 + (40 * i) / (n - 1)
    xs.set(tiny, n)
    for (const [name, f] of [
      ['tanh', Math.tanh],
      ['sigmoid', sigmoid],
    ] as const) {
      const y = run(name, xs)
      const want = Float64Array.from(xs, f)
      expectWithin(`${name} abs. error`, y, want, () => ACT)
    }
  })

  it('tanh is accurate relative to its value near 0, odd, and saturates to exactly ±1', () => {
    const xs: number[] = [...tiny]
    for (let e = -126; e <= -1; e += 0.01) xs.push(2 ** e, -(2 ** e))
    const y = run('tanh', Float32Array.from(xs))
    const want = Float64Array.from(Float32Array.from(xs), Math.tanh)
    expectWithin(
      'tanh rel. error, |x| ≤ 0.5',
      y,
      want,
      (i) => ACT * Math.abs(want[i]!),
      (i) => Math.abs(want[i]!),
    )
    expect(Object.is(run('tanh', Float32Array.of(-0))[0], -0)).toBe(true)
    const big = run('tanh', Float32Array.of(9.2, -9.2, 15, -40, 1e30, Infinity, -Infinity, Number.NaN))
    expect(Array.from(big)).toEqual([1, -1, 1, -1, 1, 1, -1, Number.NaN])
  })

  it('sigmoid is 0.5 at 0, reaches 1 and 0 at the ends, and propagates NaN', () => {
    const y = run('sigmoid', Float32Array.of(0, 1e-30, 17, 100, Infinity, -100, -Infinity, Number.NaN))
    expect(Array.from(y.subarray(0, 5))).toEqual([0.5, 0.5, 1, 1, 1])
    expect(y[5]).toBeLessThan(1e-38)
    expect(y[6]).toBeLessThan(1e-38)
    expect(y[7]).toBeNaN()
  })

  it('exp is within 2e-7 relative on [−87, 88]', () => {
    const n = 200_001
    const xs = new Float32Array(n)
    for (let i = 0; i < n; i++) xs[i] = -87 + (175 * i) / (n - 1)
    const y = run('exp', xs)
    const want = Float64Array.from(xs, Math.exp)
    expectWithin(
      'exp rel. error',
      y,
      want,
      (i) => ACT * want[i]!,
      (i) => want[i]!,
    )
  })
})

describe('cells', () => {
  const HS = [1, 2, 3, 4, 5, 8, 17, 64, 67]

  /** Cell inputs: gates pre-activations in [−8, 8], states in [−3, 3]. */
  function gates(rng: Rng, n: number): Float32Array {
    return randoms(rng, n, -8, 8)
  }

  it('lstmForward matches lstmCell.forward, also with cand = stateIn', () => {
    const rng = new Rng(11)
    for (const H of HS) {
      for (const mis of MISALIGN) {
        const k = kernels()
        const gIh = gates(rng, 4 * H)
        const gHh = gates(rng, 4 * H)
        const st = randoms(rng, 2 * H, -3, 3)
        const cand = place(k, new Float32Array(2 * H), mis)
        const cache = place(k, new Float32Array(5 * H), (mis + 1) & 3)
        const gi = place(k, gIh, (mis + 2) & 3)
        const gh = place(k, gHh, (mis + 3) & 3)
        const stIn = place(k, st, mis)
        k.lstmForward(cand, cache, gi, gh, stIn, H)
        const wantCand = new Float64Array(2 * H)
        const wantCache = new Float64Array(5 * H)
        lstmCell(H).forward(wantCand, wantCache, f64(gIh), f64(gHh), f64(st))
        // i, f, g, o: ACT (+ the rounding of the pre-activation sum, ≤ 0.25 u |pre| σ'). c = f c' + i g:
        // ACT (|c'| + 2) + 3u (|c'| + 1). tanh(c), h = o tanh(c): + ACT each. All ≤ 1e-6 (1 + |c'|).
        const cPrev = (j: number) => Math.abs(st[H + (j % H)]!)
        expectWithin(
          'lstm_fwd cand / (1 + |c_prev|)',
          cand,
          wantCand,
          (j) => 1e-6 * (1 + cPrev(j)),
          (j) => 1 + cPrev(j),
        )
        expectWithin(
          'lstm_fwd cache / (1 + |c_prev|)',
          cache,
          wantCache,
          (j) => 1e-6 * (1 + cPrev(j)),
          (j) => 1 + cPrev(j),
        )
        // In place, as the model runs it: the same numbers.
        k.lstmForward(stIn, cache, gi, gh, stIn, H)
        expect(Array.from(stIn)).toEqual(Array.from(cand))
      }
    }
  })

  it('gruForward matches gruCell.forward, also with cand = stateIn', () => {
    const rng = new Rng(12)
    for (const H of HS) {
      for (const mis of MISALIGN) {
        const k = kernels()
        const gIh = gates(rng, 3 * H)
        const gHh = gates(rng, 3 * H)
        const st = randoms(rng, H, -3, 3)
        const cand = place(k, new Float32Array(H), mis)
        const cache = place(k, new Float32Array(4 * H), (mis + 1) & 3)
        const gi = place(k, gIh, (mis + 2) & 3)
        const gh = place(k, gHh, (mis + 3) & 3)
        const stIn = place(k, st, (mis + 1) & 3)
        k.gruForward(cand, cache, gi, gh, stIn, H)
        const wantCand = new Float64Array(H)
        const wantCache = new Float64Array(4 * H)
        gruCell(H).forward(wantCand, wantCache, f64(gIh), f64(gHh), f64(st))
        // r, z: ACT. n = tanh(x_n + r hn): ACT + ACT |hn| + 2u (|x_n| + |hn|). h = (1 − z) n + z h':
        // ACT (1 + |h'|) + err(n) + 3u (1 + |h'|). All ≤ 1e-6 (1 + |x_n| + |hn| + |h'|).
        const scale = (j: number) =>
          1 + Math.abs(gIh[2 * H + (j % H)]!) + Math.abs(gHh[2 * H + (j % H)]!) + Math.abs(st[j % H]!)
        expectWithin('gru_fwd cand / scale', cand, wantCand, (j) => 1e-6 * scale(j), scale)
        expectWithin('gru_fwd cache / scale', cache, wantCache, (j) => 1e-6 * scale(j), scale)
        k.gruForward(stIn, cache, gi, gh, stIn, H)
        expect(Array.from(stIn)).toEqual(Array.from(cand))
      }
    }
  })

  it('rnnTanhForward and rnnReluForward match rnnCell.forward (ReLU bit for bit)', () => {
    const rng = new Rng(13)
    for (const H of HS) {
      const k = kernels()
      const gIh = gates(rng, H)
      const gHh = gates(rng, H)
      if (H > 2) {
        gIh[0] = 1
        gHh[0] = -1 // pre = +0
        gIh[1] = -0
        gHh[1] = -0 // pre = −0: ReLU gives +0 like Math.max(−0, 0)
      }
      const gi = place(k, gIh, 1)
      const gh = place(k, gHh, 2)
      const cand = place(k, new Float32Array(H), 3)
      const cache = place(k, new Float32Array(H), 0)
      k.rnnTanhForward(cand, cache, gi, gh, H)
      const want = new Float64Array(H)
      rnnCell(H, 'tanh').forward(want, new Float64Array(H), f64(gIh), f64(gHh), new Float64Array(H))
      expectWithin('rnn_tanh_fwd abs. error', cand, want, () => 1e-6)
      expect(Array.from(cache)).toEqual(Array.from(cand))
      k.rnnReluForward(cand, cache, gi, gh, H)
      const relu = new Float32Array(H)
      rnnCell(H, 'relu').forward(relu, new Float32Array(H), gIh, gHh, new Float32Array(H))
      expect(Array.from(cand)).toEqual(Array.from(relu))
      expect(Array.from(cache)).toEqual(Array.from(relu))
      if (H > 2) expect(Object.is(cand[1], 0)).toBe(true)
    }
  })

  it('cellForward and cellBackward dispatch on the cell kind', () => {
    const rng = new Rng(17)
    const H = 5
    for (const cell of [lstmCell(H), gruCell(H), rnnCell(H, 'tanh'), rnnCell(H, 'relu')]) {
      const k = kernels()
      const G = cell.gates * H
      const S = cell.stateSize
      const C = cell.cacheSize
      const gi = place(k, gates(rng, G))
      const gh = place(k, gates(rng, G))
      const st = place(k, randoms(rng, S, -2, 2))
      const [cand, cache, cand2, cache2] = [S, C, S, C].map((n) => k.alloc(n)) as Float32Array[]
      k.cellForward(cell, cand!, cache!, gi, gh, st)
      if (cell.kind === 'lstm') k.lstmForward(cand2!, cache2!, gi, gh, st, H)
      else if (cell.kind === 'gru') k.gruForward(cand2!, cache2!, gi, gh, st, H)
      else if (cell.kind === 'rnn_tanh') k.rnnTanhForward(cand2!, cache2!, gi, gh, H)
      else k.rnnReluForward(cand2!, cache2!, gi, gh, H)
      expect(Array.from(cand!)).toEqual(Array.from(cand2!))
      expect(Array.from(cache!)).toEqual(Array.from(cache2!))
      const dCand = place(k, randoms(rng, S, -1, 1))
      const [dGIh, dGHh, dS] = [G, G, S].map((n) => k.alloc(n)) as Float32Array[]
      k.cellBackward(cell, dGIh!, cell.separateHiddenGrad ? dGHh! : dGIh!, dS!, dCand, cache!, st)
      const wantIh = new Float64Array(G)
      const wantHh = cell.separateHiddenGrad ? new Float64Array(G) : wantIh
      const wantS = new Float64Array(S)
      cell.backward(wantIh, wantHh, wantS, f64(dCand), f64(cache!), f64(st))
      expectWithin(`${cell.kind} cellBackward dGIh`, dGIh!, wantIh, (j) => 1e-6 * (1 + Math.abs(wantIh[j]!)))
      expectWithin(`${cell.kind} cellBackward dState`, dS!, wantS, (j) => 1e-6 * (1 + Math.abs(wantS[j]!)))
      if (cell.separateHiddenGrad) {
        expectWithin('gru cellBackward dGHh', dGHh!, wantHh, (j) => 1e-6 * (1 + Math.abs(wantHh[j]!)))
      }
    }
  })

  /** A unit-interval gate value, including some at the ends of the range float32 can hold. */
  function unit(rng: Rng, n: number): Float32Array {
    const a = randoms(rng, n, 0, 1)
    for (let i = 0; i < n; i += 7) a[i] = i % 2 ? 1 - 2 ** -24 : 2 ** -20
    return a
  }
  /**
   * Values in (−1, 1), a fifth of them 1 to 65536 ulps from ±1, where 1 − t² computed as 1 − t·t
   * in float32 would lose up to k·2^-25 of its value to cancellation (k ulps from 1).
   */
  function signedUnit(rng: Rng, n: number): Float32Array {
    const a = randoms(rng, n, -1, 1)
    for (let i = 3; i < n; i += 5) a[i] = (i % 2 ? 1 : -1) * (1 - 2 ** -24 * (1 + ((i * 7919) % 65536)))
    return a
  }

  it('lstmBackward matches lstmCell.backward to 16u of the magnitude', () => {
    const rng = new Rng(14)
    for (const H of HS) {
      for (const mis of MISALIGN) {
        const k = kernels()
        const i = unit(rng, H)
        const f = unit(rng, H)
        const g = signedUnit(rng, H)
        const o = unit(rng, H)
        const tc = signedUnit(rng, H)
        const cacheData = new Float32Array(5 * H)
        for (const [b, a] of [i, f, g, o, tc].entries()) cacheData.set(a, b * H)
        const st = randoms(rng, 2 * H, -3, 3)
        const dCand = randoms(rng, 2 * H, -1, 1)
        const dG = place(k, new Float32Array(4 * H).fill(7), mis)
        const dState = place(k, new Float32Array(2 * H).fill(7), (mis + 1) & 3)
        k.lstmBackward(
          dG,
          dState,
          place(k, dCand, (mis + 2) & 3),
          place(k, cacheData, (mis + 3) & 3),
          place(k, st, mis),
          H,
        )
        const wantG = new Float64Array(4 * H)
        const wantS = new Float64Array(2 * H)
        lstmCell(H).backward(wantG, wantG, wantS, f64(dCand), f64(cacheData), f64(st))
        const magG = new Float64Array(4 * H)
        const magS = new Float64Array(2 * H)
        for (let j = 0; j < H; j++) {
          const [ij, fj, gj, oj, tj] = [i[j]!, f[j]!, g[j]!, o[j]!, tc[j]!]
          const dh = Math.abs(dCand[j]!)
          const dc = Math.abs(dCand[H + j]!) + dh * oj * (1 - tj * tj)
          magG[j] = dc * Math.abs(gj) * ij * (1 - ij)
          magG[H + j] = dc * Math.abs(st[H + j]!) * fj * (1 - fj)
          magG[2 * H + j] = dc * ij * (1 - gj * gj)
          magG[3 * H + j] = dh * Math.abs(tj) * oj * (1 - oj)
          magS[H + j] = dc * fj
        }
        expectWithin(
          'lstm_bwd dG / magnitude',
          dG,
          wantG,
          (j) => 16 * U * magG[j]!,
          (j) => magG[j]!,
        )
        expectWithin(
          'lstm_bwd dState / magnitude',
          dState,
          wantS,
          (j) => 16 * U * magS[j]!,
          (j) => magS[j]!,
        )
        expect(Array.from(dState.subarray(0, H))).toEqual(new Array(H).fill(0))
      }
    }
  })

  it('gruBackward matches gruCell.backward to 16u of the magnitude', () => {
    const rng = new Rng(15)
    for (const H of HS) {
      for (const mis of MISALIGN) {
        const k = kernels()
        const r = unit(rng, H)
        const z = unit(rng, H)
        const n = signedUnit(rng, H)
        const hn = randoms(rng, H, -3, 3)
        const cacheData = new Float32Array(4 * H)
        for (const [b, a] of [r, z, n, hn].entries()) cacheData.set(a, b * H)
        const st = randoms(rng, H, -3, 3)
        const dCand = randoms(rng, H, -1, 1)
        const dGIh = place(k, new Float32Array(3 * H).fill(7), mis)
        const dGHh = place(k, new Float32Array(3 * H).fill(7), (mis + 1) & 3)
        const dState = place(k, new Float32Array(H).fill(7), (mis + 2) & 3)
        k.gruBackward(
          dGIh,
          dGHh,
          dState,
          place(k, dCand, 3 - mis),
          place(k, cacheData, mis),
          place(k, st, 1),
          H,
        )
        const wantIh = new Float64Array(3 * H)
        const wantHh = new Float64Array(3 * H)
        const wantS = new Float64Array(H)
        gruCell(H).backward(wantIh, wantHh, wantS, f64(dCand), f64(cacheData), f64(st))
        const magIh = new Float64Array(3 * H)
        const magHh = new Float64Array(3 * H)
        const magS = new Float64Array(H)
        for (let j = 0; j < H; j++) {
          const dh = Math.abs(dCand[j]!)
          const an = dh * (1 - z[j]!) * (1 - n[j]! * n[j]!)
          const ar = an * Math.abs(hn[j]!) * r[j]! * (1 - r[j]!)
          const az = dh * (Math.abs(st[j]!) + Math.abs(n[j]!)) * z[j]! * (1 - z[j]!)
          magIh[j] = magHh[j] = ar
          magIh[H + j] = magHh[H + j] = az
          magIh[2 * H + j] = an
          magHh[2 * H + j] = an * r[j]!
          magS[j] = dh * z[j]!
        }
        expectWithin(
          'gru_bwd dGIh / magnitude',
          dGIh,
          wantIh,
          (j) => 16 * U * magIh[j]!,
          (j) => magIh[j]!,
        )
        expectWithin(
          'gru_bwd dGHh / magnitude',
          dGHh,
          wantHh,
          (j) => 16 * U * magHh[j]!,
          (j) => magHh[j]!,
        )
        expectWithin(
          'gru_bwd dState / magnitude',
          dState,
          wantS,
          (j) => 16 * U * magS[j]!,
          (j) => magS[j]!,
        )
      }
    }
  })

  it('rnnTanhBackward and rnnReluBackward match rnnCell.backward (ReLU bit for bit)', () => {
    const rng = new Rng(16)
    for (const H of HS) {
      const k = kernels()
      const h = signedUnit(rng, H)
      const dCand = randoms(rng, H, -1, 1)
      const dG = place(k, new Float32Array(H).fill(7), 1)
      const dState = place(k, new Float32Array(H).fill(7), 2)
      const dc = place(k, dCand, 3)
      const cache = place(k, h, 0)
      k.rnnTanhBackward(dG, dState, dc, cache, H)
      const want = new Float64Array(H)
      rnnCell(H, 'tanh').backward(want, want, new Float64Array(H), f64(dCand), f64(h), new Float64Array(H))
      const mag = (j: number) => Math.abs(dCand[j]!) * (1 - h[j]! * h[j]!)
      expectWithin('rnn_tanh_bwd dG / magnitude', dG, want, (j) => 8 * U * mag(j), mag)
      expect(Array.from(dState)).toEqual(new Array(H).fill(0))

      // ReLU: h ≥ 0 from the forward, with exact zeros (and a −0) among them.
      const hr = Float32Array.from(h, (v, j) => (j % 4 === 0 ? 0 : j % 4 === 1 ? -0 : Math.abs(v)))
      cache.set(hr)
      dState.fill(7)
      k.rnnReluBackward(dG, dState, dc, cache, H)
      const wantRelu = new Float32Array(H)
      rnnCell(H, 'relu').backward(wantRelu, wantRelu, new Float32Array(H), dCand, hr, new Float32Array(H))
      expect(Array.from(dG)).toEqual(Array.from(wantRelu))
      expect(Array.from(dState)).toEqual(new Array(H).fill(0))
    }
  })
})

describe('optimizer kernels', () => {
  it('sumSquares is the float64 sum of squares, to 1e-12 relative, up to 1e6 floats', () => {
    const rng = new Rng(21)
    for (const n of [1, 2, 3, 5, 17, 1000, 1_000_003]) {
      const k = kernels(WasmKernels.bytesFor([n + 3]))
      const p = place(k, new Float32Array(n), n & 3)
      for (let i = 0; i < n; i++) p[i] = rng.normal() * 10 ** rng.range(-3, 3)
      let want = 0
      for (let i = 0; i < n; i++) want += p[i]! * p[i]!
      const got = k.sumSquares(p)
      record('sum_squares rel. error', Math.abs(got - want) / want)
      expect(Math.abs(got - want) / want).toBeLessThan(1e-12)
    }
  })

  it('scale multiplies bit for bit as clipByGlobalNorm does', () => {
    const rng = new Rng(22)
    for (const n of [1, 3, 4, 7, 1001]) {
      const k = kernels()
      const g = randoms(rng, n, -5, 5)
      const p = place(k, g, n & 3)
      const js = Float32Array.from(g)
      const norm = Math.sqrt(k.sumSquares(p))
      const factor = clipByGlobalNorm(js, norm, norm / 3)
      expect(factor).toBeLessThan(1)
      k.scale(p, factor)
      expect(Array.from(p)).toEqual(Array.from(js))
    }
  })

  it('adam and adamw match the JS optimizer step by step within float32 rounding', () => {
    const rng = new Rng(23)
    for (const type of ['adam', 'adamw'] as const) {
      for (const n of [1, 3, 5, 64, 1001]) {
        const config = { type, lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 }
        const { lr, beta1, beta2, eps, weightDecay } = config
        const decoupled = type === 'adamw'
        const decay = decoupled ? 1 - lr * weightDecay : 1
        const l2 = decoupled ? 0 : weightDecay
        const js = randoms(rng, n, -2, 2)
        const opt = createOptimizer(config, js)
        const mJs = opt.state.expAvg!
        const vJs = opt.state.expAvgSq!
        const k = kernels()
        const p = place(k, js, n & 3)
        const m = place(k, new Float32Array(n), (n + 1) & 3)
        const v = place(k, new Float32Array(n), (n + 2) & 3)
        const g = place(k, new Float32Array(n), (n + 3) & 3)
        for (let t = 1; t <= 3; t++) {
          const grads = randoms(rng, n, -1, 1)
          if (t === 2) grads[0] = 0
          // Each step from the state the JS optimizer holds, so that each step is checked on its own.
          p.set(js)
          m.set(mJs)
          v.set(vJs)
          const pPrev = Float64Array.from(js)
          const mPrev = Float64Array.from(mJs)
          const vPrev = Float64Array.from(vJs)
          opt.step(js, grads)
          g.set(grads)
          const bc2 = Math.sqrt(1 - beta2 ** t)
          const stepSize = lr / (1 - beta1 ** t)
          k.adam(p, g, m, v, stepSize, beta1, beta2, eps, bc2, decay, l2)
          // Float32 evaluation of the same formulas: g' = g + l2 p carries u (|g| + l2 |p|) (it may
          // cancel); m and v then 8u of their terms' magnitudes; p = p decay − c m / (√v + e) with
          // c = stepSize bc2, e = eps bc2: 1 ulp of p, plus what the errors of m and v move the step.
          const gMag = (i: number) => Math.abs(grads[i]!) + l2 * Math.abs(pPrev[i]!)
          const mBound = (i: number) => 8 * U * (beta1 * Math.abs(mPrev[i]!) + (1 - beta1) * gMag(i))
          const vBound = (i: number) => 8 * U * (beta2 * vPrev[i]! + (1 - beta2) * gMag(i) ** 2)
          const pBound = (i: number) => {
            const den = Math.sqrt(vJs[i]!) + eps * bc2
            const step = (stepSize * bc2 * Math.abs(mJs[i]!)) / den
            const vRel = vJs[i]! > 0 ? vBound(i) / (2 * vJs[i]!) : 0
            return (
              2 ** -23 * Math.abs(js[i]!) +
              2 ** -24 * Math.abs(pPrev[i]!) +
              (stepSize * bc2 * mBound(i)) / den +
              step * (vRel + 8 * U)
            )
          }
          expectWithin(`${type} m / bound`, m, mJs, mBound, mBound)
          expectWithin(`${type} v / bound`, v, vJs, vBound, vBound)
          expectWithin(`${type} p / bound`, p, js, pBound, pBound)
        }
      }
    }
  })
})

describe('generated module', () => {
  it('src/wasm/kernels.generated.ts is kernels.wat assembled (else run: npx tsx scripts/build-wasm.ts)', async () => {
    const wat = readFileSync(WAT_PATH, 'utf8')
    expect(KERNELS_WAT_SHA256).toBe(watSha256(wat))
    expect(readFileSync(GENERATED_PATH, 'utf8')).toBe(await renderGenerated(wat))
  })
})
