import type { FloatArray } from './dtype.js'
import type { Kernels } from './kernels.js'

/** Σ g² over a flat buffer, accumulated in float64. */
export function sumOfSquares(grads: FloatArray): number {
  let s0 = 0
  let s1 = 0
  const n = grads.length
  const even = n - (n & 1)
  for (let i = 0; i < even; i += 2) {
    const a = grads[i]!
    const b = grads[i + 1]!
    s0 += a * a
    s1 += b * b
  }
  if (even < n) s0 += grads[n - 1]! * grads[n - 1]!
  return s0 + s1
}

/** The global L2 norm of a flat gradient buffer, accumulated in float64. */
export function globalNorm(grads: FloatArray): number {
  return Math.sqrt(sumOfSquares(grads))
}

/**
 * Scales the gradients as torch.nn.utils.clip_grad_norm_ does: by maxNorm / (norm + 1e-6)
 * when that is below 1. Returns the factor applied (1 when nothing was clipped).
 * Clipping bounds the step an exploding gradient can take while keeping its direction.
 * `kernels`, when given, does the scaling (the trainer passes its model's, so WebAssembly
 * scales the gradients it holds in place).
 *
 * @example
 * const clipped = clipByGlobalNorm(grads, globalNorm(grads), 1) < 1
 */
export function clipByGlobalNorm(
  grads: FloatArray,
  norm: number,
  maxNorm: number,
  kernels?: Pick<Kernels, 'scale'>,
): number {
  const factor = maxNorm / (norm + 1e-6)
  if (factor >= 1) return 1
  if (kernels) kernels.scale(grads, factor)
  else for (let i = 0; i < grads.length; i++) grads[i] = grads[i]! * factor
  return factor
}

/** Clamps every gradient to [−clipValue, clipValue] (torch.nn.utils.clip_grad_value_); returns how many were clamped. */
export function clipByValue(grads: FloatArray, clipValue: number): number {
  let clamped = 0
  for (let i = 0; i < grads.length; i++) {
    const g = grads[i]!
    if (g > clipValue) {
      grads[i] = clipValue
      clamped++
    } else if (g < -clipValue) {
      grads[i] = -clipValue
      clamped++
    }
  }
  return clamped
}
