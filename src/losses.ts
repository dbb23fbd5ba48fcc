import type { FloatArray } from './dtype.js'
import { RxrnnError } from './errors.js'
import { float32Problem } from './validate.js'

/** Loss names as the trainer options spell them. */
export type LossName = 'mse' | 'cross_entropy' | 'bce' | 'huber'

export const LOSS_NAMES: readonly LossName[] = ['mse', 'cross_entropy', 'bce', 'huber']

/**
 * A loss over the head's outputs y [O] for one step, averaged the way PyTorch's reduction='mean'
 * averages: MSE, BCE and Huber over steps × outputs, cross-entropy over steps.
 */
export interface Loss {
  readonly name: LossName
  /** Floats a stored target takes: O, or 1 (the class index) for cross-entropy. */
  readonly targetSize: number
  /** Elements one step contributes to the mean: O, or 1 for cross-entropy. */
  readonly elementsPerStep: number
  /**
   * Returns the step's summed (not yet averaged) loss and writes dY [O] = scale · ∂(sum)/∂y.
   * The trainer passes scale = 1 / (steps × elementsPerStep).
   */
  lossAndGrad(dY: FloatArray, y: FloatArray, target: FloatArray, scale: number): number
  /** Copies a user target into `out` [targetSize], or returns what is wrong with it (nothing is written then). */
  readTarget(out: FloatArray, target: unknown): string | null
}

export function createLoss(name: LossName, outputSize: number, huberDelta = 1): Loss {
  const O = outputSize
  switch (name) {
    case 'mse':
      return {
        name,
        targetSize: O,
        elementsPerStep: O,
        lossAndGrad(dY, y, t, scale) {
          let sum = 0
          for (let o = 0; o < O; o++) {
            const d = y[o]! - t[o]!
            sum += d * d
            dY[o] = 2 * d * scale
          }
          return sum
        },
        readTarget: (out, target) => readVectorTarget(out, target, O),
      }
    case 'huber':
      return {
        name,
        targetSize: O,
        elementsPerStep: O,
        lossAndGrad(dY, y, t, scale) {
          let sum = 0
          for (let o = 0; o < O; o++) {
            const d = y[o]! - t[o]!
            const a = Math.abs(d)
            if (a < huberDelta) {
              sum += 0.5 * d * d
              dY[o] = d * scale
            } else {
              sum += huberDelta * (a - 0.5 * huberDelta)
              dY[o] = (d > 0 ? huberDelta : -huberDelta) * scale
            }
          }
          return sum
        },
        readTarget: (out, target) => readVectorTarget(out, target, O),
      }
    case 'bce':
      return {
        name,
        targetSize: O,
        elementsPerStep: O,
        lossAndGrad(dY, y, t, scale) {
          let sum = 0
          for (let o = 0; o < O; o++) {
            const z = y[o]!
            const target = t[o]!
            // log(1 + e^−|z|) keeps BCE-with-logits finite for any logit, as PyTorch does.
            sum += Math.max(z, 0) - z * target + Math.log1p(Math.exp(-Math.abs(z)))
            dY[o] = (1 / (1 + Math.exp(-z)) - target) * scale
          }
          return sum
        },
        readTarget(out, target) {
          const problem = readVectorTarget(out, target, O)
          if (problem) return problem
          for (let o = 0; o < O; o++) {
            if (out[o]! < 0 || out[o]! > 1)
              return `target[${o}] is ${out[o]}; bce needs probabilities in [0, 1]`
          }
          return null
        },
      }
    case 'cross_entropy':
      return {
        name,
        targetSize: 1,
        elementsPerStep: 1,
        lossAndGrad(dY, y, t, scale) {
          const cls = t[0]!
          let max = Number.NEGATIVE_INFINITY
          for (let o = 0; o < O; o++) if (y[o]! > max) max = y[o]!
          let sumExp = 0
          for (let o = 0; o < O; o++) sumExp += Math.exp(y[o]! - max)
          const logSumExp = max + Math.log(sumExp)
          for (let o = 0; o < O; o++) dY[o] = (Math.exp(y[o]! - logSumExp) - (o === cls ? 1 : 0)) * scale
          return logSumExp - y[cls]!
        },
        readTarget(out, target) {
          const value =
            Array.isArray(target) || ArrayBuffer.isView(target) ? (target as ArrayLike<unknown>)[0] : target
          if (
            (Array.isArray(target) || ArrayBuffer.isView(target)) &&
            (target as ArrayLike<unknown>).length !== 1
          ) {
            return `cross_entropy takes one class index per step, got ${(target as ArrayLike<unknown>).length} values`
          }
          if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= O) {
            return `target is ${JSON.stringify(value)}; cross_entropy needs a class index, an integer in [0, ${O - 1}]`
          }
          out[0] = value
          return null
        },
      }
    default:
      throw new RxrnnError(
        'bad_config',
        `Unknown loss ${JSON.stringify(name)}; use one of ${LOSS_NAMES.join(', ')}`,
      )
  }
}

function readVectorTarget(out: FloatArray, target: unknown, size: number): string | null {
  if (typeof target === 'number') {
    if (size !== 1) return `target is one number but the model has ${size} outputs; send an array of ${size}`
    if (!Number.isFinite(target)) return `target is ${target}; targets must be finite`
    const overflow = float32Problem(out, [target], 'target')
    if (overflow) return overflow
    out[0] = target
    return null
  }
  if (!Array.isArray(target) && !ArrayBuffer.isView(target))
    return `target must be a number or an array of ${size} numbers`
  const t = target as ArrayLike<unknown>
  if (t.length !== size) return `target has ${t.length} values but the model has ${size} outputs (outputSize)`
  for (let i = 0; i < size; i++) {
    const v = t[i]
    if (typeof v !== 'number') return `target[${i}] is ${v === null ? 'null' : typeof v}, not a number`
    if (!Number.isFinite(v)) return `target[${i}] is ${v}; targets must be finite`
  }
  const overflow = float32Problem(out, t as ArrayLike<number>, 'target')
  if (overflow) return overflow
  for (let i = 0; i < size; i++) out[i] = t[i] as number
  return null
}
