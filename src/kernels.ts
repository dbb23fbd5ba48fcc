import type { Cell } from './cells/cell.js'
import { createCell } from './cells/index.js'
import { sumOfSquares } from './clip.js'
import type { FloatArray, FloatArrayConstructor } from './dtype.js'
import { gemvAdd, gemvTransAdd, gerAdd, gerStepsAdd, sumStepsAdd } from './linalg.js'

/**
 * The numeric kernels a model runs on, and the memory they work in. The pure-TypeScript
 * kernels work on any typed arrays; the WebAssembly SIMD kernels (float32 only) are several
 * times faster and need the parameters and scratch buffers inside their memory, which is why
 * every buffer a model owns is allocated through `alloc`. Both are tested against each other.
 */
export interface Kernels {
  readonly name: 'js' | 'wasm'
  /** A zeroed buffer of `n` floats where these kernels reach it fastest. */
  alloc(n: number): FloatArray
  /** y = b + W·x, W [rows, cols]. */
  gemvBias(y: FloatArray, w: FloatArray, x: FloatArray, b: FloatArray, rows: number, cols: number): void
  /** y += W·x */
  gemvAcc(y: FloatArray, w: FloatArray, x: FloatArray, rows: number, cols: number): void
  /** y += Wᵀ·v */
  gemvTransAcc(y: FloatArray, w: FloatArray, v: FloatArray, rows: number, cols: number): void
  /** G += v·xᵀ */
  gerAcc(g: FloatArray, v: FloatArray, x: FloatArray, rows: number, cols: number): void
  /**
   * G [rows, cols] += Vᵀ·X = Σ_t V[t, :]ᵀ X[t, :], V [steps, rows] and X [steps, cols] step-major:
   * the weight gradient of a whole truncation window in one product. G must not overlap V or X.
   */
  gerStepsAcc(g: FloatArray, v: FloatArray, x: FloatArray, rows: number, cols: number, steps: number): void
  /** b [rows] += Σ_t V[t, :] over `steps` rows of V [steps, rows]. */
  sumStepsAcc(b: FloatArray, v: FloatArray, rows: number, steps: number): void
  /**
   * Y = b·1ᵀ + W·X for `batch` keys at once: W [rows, cols] row-major, b [rows]; X [cols, batch]
   * and Y [rows, batch] batch-minor, element (j, k) at j·batch + k, so column k is key k's
   * vector. Column k equals gemvBias on column k (to float32 rounding; the JS kernels bit for
   * bit). y must not overlap w, x or b.
   */
  gemmBias(
    y: FloatArray,
    w: FloatArray,
    x: FloatArray,
    b: FloatArray,
    rows: number,
    cols: number,
    batch: number,
  ): void
  /** The cell's pointwise forward (see Cell.forward). */
  cellForward(
    cell: Cell,
    cand: FloatArray,
    cache: FloatArray,
    gIh: FloatArray,
    gHh: FloatArray,
    stateIn: FloatArray,
  ): void
  /** y [cols, rows] = xᵀ for x [rows, cols] row-major; y must not overlap x. */
  transpose(y: FloatArray, x: FloatArray, rows: number, cols: number): void
  /**
   * The cell's pointwise forward for `batch` keys at once, every array batch-minor: cand and
   * stateIn [stateSize, batch], cache [cacheSize, batch], gIh and gHh [G·H, batch]. Column k
   * equals cellForward on column k exactly. cand may alias stateIn.
   */
  cellForwardBatch(
    cell: Cell,
    cand: FloatArray,
    cache: FloatArray,
    gIh: FloatArray,
    gHh: FloatArray,
    stateIn: FloatArray,
    batch: number,
  ): void
  /**
   * Floats that `allocBatch` can still place where these kernels reach them fastest: Infinity
   * for the JS kernels; for the WebAssembly ones what is left of the room their fixed memory
   * set aside for batches.
   */
  readonly batchFloatsFree: number
  /** A zeroed buffer of `n` floats for batched work (model.stepBatch's staging). */
  allocBatch(n: number): FloatArray
  /** The cell's pointwise backward (see Cell.backward). */
  cellBackward(
    cell: Cell,
    dGIh: FloatArray,
    dGHh: FloatArray,
    dStateDirect: FloatArray,
    dCand: FloatArray,
    cache: FloatArray,
    stateIn: FloatArray,
  ): void
  /** Σ v² in float64. */
  sumSquares(values: FloatArray): number
  /** v *= factor */
  scale(values: FloatArray, factor: number): void
  /**
   * One Adam/AdamW step over p, g, m, v (see src/optimizers.ts) when these kernels can do it;
   * false leaves it to the portable loop.
   */
  adam(
    p: FloatArray,
    g: FloatArray,
    m: FloatArray,
    v: FloatArray,
    lrOverBc1: number,
    beta1: number,
    beta2: number,
    eps: number,
    bc2Sqrt: number,
    decay: number,
    l2: number,
  ): boolean
}

/** The portable kernels: plain loops over typed arrays of either float type. */
export function jsKernels(ArrayType: FloatArrayConstructor): Kernels {
  // cellForwardBatch: a cell of hidden size H·batch is the batch-minor layout's pointwise math.
  const wideCells = new WeakMap<Cell, Map<number, Cell>>()
  const wide = (cell: Cell, batch: number): Cell => {
    if (batch === 1) return cell
    let byBatch = wideCells.get(cell)
    if (!byBatch) {
      byBatch = new Map()
      wideCells.set(cell, byBatch)
    }
    let w = byBatch.get(batch)
    if (!w) {
      w = createCell(cell.kind, cell.hiddenSize * batch)
      byBatch.set(batch, w)
    }
    return w
  }
  return {
    name: 'js',
    alloc: (n) => new ArrayType(n),
    gemvBias(y, w, x, b, rows, cols) {
      y.set(b)
      gemvAdd(y, w, x, rows, cols)
    },
    gemvAcc: gemvAdd,
    gemvTransAcc: gemvTransAdd,
    gerAcc: gerAdd,
    gerStepsAcc: gerStepsAdd,
    sumStepsAcc: sumStepsAdd,
    gemmBias: gemmBiasAdd,
    transpose: transposeInto,
    cellForward: (cell, cand, cache, gIh, gHh, stateIn) => cell.forward(cand, cache, gIh, gHh, stateIn),
    cellForwardBatch: (cell, cand, cache, gIh, gHh, stateIn, batch) =>
      wide(cell, batch).forward(cand, cache, gIh, gHh, stateIn),
    batchFloatsFree: Number.POSITIVE_INFINITY,
    allocBatch: (n) => new ArrayType(n),
    cellBackward: (cell, dGIh, dGHh, dStateDirect, dCand, cache, stateIn) =>
      cell.backward(dGIh, dGHh, dStateDirect, dCand, cache, stateIn),
    sumSquares: sumOfSquares,
    scale(values, factor) {
      for (let i = 0; i < values.length; i++) values[i] = values[i]! * factor
    },
    adam: () => false,
  }
}

/**
 * Y [rows, batch] = b·1ᵀ + W·X, X [cols, batch] batch-minor (see Kernels.gemmBias). Each column
 * is summed exactly as gemvAdd sums one vector after gemvBias's y.set(b): four accumulators over
 * the columns mod 4, then b + ((a0 + a1) + (a2 + a3)); so a batch gives, bit for bit, what one
 * gemvBias per key gives. Two keys at a time share each load of W (1.5x faster than one; four
 * are no faster than two).
 */
function gemmBiasAdd(
  y: FloatArray,
  w: FloatArray,
  x: FloatArray,
  b: FloatArray,
  rows: number,
  cols: number,
  batch: number,
): void {
  const cols4 = cols - (cols & 3)
  const step = 4 * batch
  for (let r = 0, base = 0; r < rows; r++, base += cols) {
    const br = b[r]!
    const out = r * batch
    let k = 0
    for (; k + 1 < batch; k += 2) {
      let a0 = 0
      let a1 = 0
      let a2 = 0
      let a3 = 0
      let c0 = 0
      let c1 = 0
      let c2 = 0
      let c3 = 0
      let j = 0
      let i = k
      for (; j < cols4; j += 4, i += step) {
        const w0 = w[base + j]!
        const w1 = w[base + j + 1]!
        const w2 = w[base + j + 2]!
        const w3 = w[base + j + 3]!
        a0 += w0 * x[i]!
        c0 += w0 * x[i + 1]!
        a1 += w1 * x[i + batch]!
        c1 += w1 * x[i + batch + 1]!
        a2 += w2 * x[i + 2 * batch]!
        c2 += w2 * x[i + 2 * batch + 1]!
        a3 += w3 * x[i + 3 * batch]!
        c3 += w3 * x[i + 3 * batch + 1]!
      }
      for (; j < cols; j++, i += batch) {
        const wj = w[base + j]!
        a0 += wj * x[i]!
        c0 += wj * x[i + 1]!
      }
      y[out + k] = br + (a0 + a1 + (a2 + a3))
      y[out + k + 1] = br + (c0 + c1 + (c2 + c3))
    }
    if (k < batch) {
      let a0 = 0
      let a1 = 0
      let a2 = 0
      let a3 = 0
      let j = 0
      let i = k
      for (; j < cols4; j += 4, i += step) {
        a0 += w[base + j]! * x[i]!
        a1 += w[base + j + 1]! * x[i + batch]!
        a2 += w[base + j + 2]! * x[i + 2 * batch]!
        a3 += w[base + j + 3]! * x[i + 3 * batch]!
      }
      for (; j < cols; j++, i += batch) a0 += w[base + j]! * x[i]!
      y[out + k] = br + (a0 + a1 + (a2 + a3))
    }
  }
}

/** y [cols, rows] = xᵀ for x [rows, cols] row-major. */
export function transposeInto(y: FloatArray, x: FloatArray, rows: number, cols: number): void {
  for (let i = 0, src = 0; i < rows; i++) {
    for (let j = 0, dst = i; j < cols; j++, dst += rows) y[dst] = x[src++]!
  }
}
