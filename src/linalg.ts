import type { FloatArray } from './dtype.js'

// Dense kernels over row-major matrices. Four independent accumulators let the CPU overlap
// the multiply-adds instead of waiting on one dependency chain.

/** y[r] += Σ_j W[r, j] · x[j] for W of shape [rows, cols]. */
export function gemvAdd(y: FloatArray, w: FloatArray, x: FloatArray, rows: number, cols: number): void {
  const cols4 = cols - (cols & 3)
  for (let r = 0, base = 0; r < rows; r++, base += cols) {
    let a0 = 0
    let a1 = 0
    let a2 = 0
    let a3 = 0
    let j = 0
    for (; j < cols4; j += 4) {
      a0 += w[base + j]! * x[j]!
      a1 += w[base + j + 1]! * x[j + 1]!
      a2 += w[base + j + 2]! * x[j + 2]!
      a3 += w[base + j + 3]! * x[j + 3]!
    }
    for (; j < cols; j++) a0 += w[base + j]! * x[j]!
    y[r] = y[r]! + (a0 + a1 + (a2 + a3))
  }
}

/** y[j] += Σ_r W[r, j] · v[r] for W of shape [rows, cols] (the transposed product). */
export function gemvTransAdd(y: FloatArray, w: FloatArray, v: FloatArray, rows: number, cols: number): void {
  for (let r = 0, base = 0; r < rows; r++, base += cols) {
    const vr = v[r]!
    if (vr === 0) continue
    for (let j = 0; j < cols; j++) y[j] = y[j]! + w[base + j]! * vr
  }
}

/** G[r, j] += v[r] · x[j]: the outer product that accumulates a weight gradient. */
export function gerAdd(g: FloatArray, v: FloatArray, x: FloatArray, rows: number, cols: number): void {
  for (let r = 0, base = 0; r < rows; r++, base += cols) {
    const vr = v[r]!
    if (vr === 0) continue
    for (let j = 0; j < cols; j++) g[base + j] = g[base + j]! + vr * x[j]!
  }
}

/**
 * G[r, j] += Σ_t V[t, r] · X[t, j] over `steps` rows of V [steps, rows] and X [steps, cols]:
 * a truncation window's weight gradient as one product instead of an outer product per step.
 */
export function gerStepsAdd(
  g: FloatArray,
  v: FloatArray,
  x: FloatArray,
  rows: number,
  cols: number,
  steps: number,
): void {
  for (let t = 0; t < steps; t++) {
    const vt = t * rows
    const xt = t * cols
    for (let r = 0, base = 0; r < rows; r++, base += cols) {
      const vr = v[vt + r]!
      if (vr === 0) continue
      for (let j = 0; j < cols; j++) g[base + j] = g[base + j]! + vr * x[xt + j]!
    }
  }
}

/** b[r] += Σ_t V[t, r] over `steps` rows of V [steps, rows]. */
export function sumStepsAdd(b: FloatArray, v: FloatArray, rows: number, steps: number): void {
  for (let t = 0, vt = 0; t < steps; t++, vt += rows) {
    for (let r = 0; r < rows; r++) b[r] = b[r]! + v[vt + r]!
  }
}

/** y[i] += x[i] */
export function addInto(y: FloatArray, x: FloatArray): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + x[i]!
}

export function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v))
}
