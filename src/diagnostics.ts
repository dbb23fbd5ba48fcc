import type { FloatArray } from './dtype.js'
import type { Kernels } from './kernels.js'

/**
 * Estimates the spectral radius ρ(W) of an H×H matrix by power iteration: ρ = lim ‖Wᵏv‖^(1/k).
 * Backpropagation through time multiplies by (roughly) Wᵀ once per step, so ρ < 1 foretells
 * vanishing gradients and ρ > 1 exploding ones. `v`, `next` and `zeros` are H-float scratch
 * buffers the kernels can reach; nothing is allocated.
 */
export function spectralRadius(
  block: FloatArray,
  hiddenSize: number,
  kernels: Pick<Kernels, 'gemvBias'>,
  scratch: { v: FloatArray; next: FloatArray; zeros: FloatArray },
  iterations = 24,
): number {
  const H = hiddenSize
  let v = scratch.v
  let next = scratch.next
  // A fixed, non-special start vector keeps the estimate deterministic.
  for (let i = 0; i < H; i++) v[i] = 1 + ((i * 0.618034) % 1)
  normalize(v)
  let logGrowth = 0
  let counted = 0
  for (let k = 0; k < iterations; k++) {
    kernels.gemvBias(next, block, v, scratch.zeros, H, H)
    const norm = normalize(next)
    if (norm === 0) return 0
    // The first iterations mostly rotate v towards the dominant direction; average the rest.
    if (k >= iterations / 2) {
      logGrowth += Math.log(norm)
      counted++
    }
    const t = v
    v = next
    next = t
  }
  return Math.exp(logGrowth / counted)
}

function normalize(v: FloatArray): number {
  let s = 0
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!
  const n = Math.sqrt(s)
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] = v[i]! / n
  return n
}

/**
 * The least-squares slope of ln‖∂L/∂h‖ against steps back in time: the log of the per-step
 * gain of the backward pass. Below 0 the gradient vanishes (×e^slope per step), above 0 it explodes.
 * `norms[k]` is the norm k steps back; zero norms are left out. NaN when fewer than two are usable.
 */
export function fitLogGain(norms: ArrayLike<number>, count = norms.length): number {
  let n = 0
  let sx = 0
  let sy = 0
  let sxx = 0
  let sxy = 0
  for (let k = 0; k < count; k++) {
    const v = norms[k]!
    if (!(v > 0) || !Number.isFinite(v)) continue
    const y = Math.log(v)
    n++
    sx += k
    sy += y
    sxx += k * k
    sxy += k * y
  }
  const d = n * sxx - sx * sx
  return n < 2 || d === 0 ? Number.NaN : (n * sxy - sx * sy) / d
}
