import type { Cell } from './cells/cell.js'
import { sumOfSquares } from './clip.js'
import type { FloatArray, FloatArrayConstructor } from './dtype.js'
import { gemvAdd, gemvTransAdd, gerAdd } from './linalg.js'

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
  /** The cell's pointwise forward (see Cell.forward). */
  cellForward(
    cell: Cell,
    cand: FloatArray,
    cache: FloatArray,
    gIh: FloatArray,
    gHh: FloatArray,
    stateIn: FloatArray,
  ): void
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
    cellForward: (cell, cand, cache, gIh, gHh, stateIn) => cell.forward(cand, cache, gIh, gHh, stateIn),
    cellBackward: (cell, dGIh, dGHh, dStateDirect, dCand, cache, stateIn) =>
      cell.backward(dGIh, dGHh, dStateDirect, dCand, cache, stateIn),
    sumSquares: sumOfSquares,
    scale(values, factor) {
      for (let i = 0; i < values.length; i++) values[i] = values[i]! * factor
    },
    adam: () => false,
  }
}
