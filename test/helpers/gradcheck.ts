import type { CellKind, LossName, Model, ModelConfig } from '../../src/index.js'
import { createModel, Rng } from '../../src/index.js'
import type { LayerMasks } from '../../src/layer.js'

/** Deterministic test data: `steps` rows of `size` values uniform in [low, high). */
export function uniformRows(rng: Rng, steps: number, size: number, low = -1, high = 1): number[][] {
  return Array.from({ length: steps }, () => Array.from({ length: size }, () => rng.range(low, high)))
}

/** Targets of the right form for a loss: vectors for mse/huber, probabilities for bce, class indices for cross_entropy. */
export function targetsFor(
  loss: LossName,
  rng: Rng,
  steps: number,
  outputSize: number,
): (number[] | number)[] {
  switch (loss) {
    case 'cross_entropy':
      return Array.from({ length: steps }, () => Math.floor(rng.uniform() * outputSize))
    case 'bce':
      return uniformRows(rng, steps, outputSize, 0, 1)
    default:
      return uniformRows(rng, steps, outputSize, -1.5, 1.5)
  }
}

/**
 * One step's loss summed over outputs, written from the PyTorch definitions (independently of src/losses.ts):
 * MSE (y − t)², Huber ½d² or δ(|d| − ½δ), BCE-with-logits, cross-entropy logsumexp(y) − y[class].
 */
export function referenceStepLoss(
  loss: LossName,
  y: ArrayLike<number>,
  t: number[] | number,
  delta = 1,
): number {
  let sum = 0
  if (loss === 'cross_entropy') {
    let max = Number.NEGATIVE_INFINITY
    for (let o = 0; o < y.length; o++) max = Math.max(max, y[o]!)
    let s = 0
    for (let o = 0; o < y.length; o++) s += Math.exp(y[o]! - max)
    return max + Math.log(s) - y[t as number]!
  }
  const target = t as number[]
  for (let o = 0; o < y.length; o++) {
    const z = y[o]!
    const d = z - target[o]!
    if (loss === 'mse') sum += d * d
    else if (loss === 'huber') sum += Math.abs(d) < delta ? 0.5 * d * d : delta * (Math.abs(d) - 0.5 * delta)
    else sum += Math.log1p(Math.exp(-z)) + (1 - target[o]!) * z
  }
  return sum
}

/** Elements one step adds to PyTorch's reduction='mean': outputs, or 1 for cross-entropy. */
export function elementsPerStep(loss: LossName, outputSize: number): number {
  return loss === 'cross_entropy' ? 1 : outputSize
}

/** A twin of `model` (same config, same weights) to perturb by finite differences. */
export { sameModel as twin } from './models.js'

export interface SequenceLossSpec {
  loss: LossName
  xs: number[][]
  /** One per step; null = no target at that step. */
  targets: (number[] | number | null)[]
  /** Steps [from, xs.length) carry the loss; earlier steps only advance the state. Default 0. */
  lossFrom?: number
  /** The state entering step 0 (flat, numLayers × stateSize); zeros by default. */
  initialState?: ArrayLike<number>
  /** Per step, per layer: the training masks to run with (the layer API, not `model.step`). */
  masks?: (LayerMasks | null)[][]
  huberDelta?: number
}

/**
 * The mean loss of a sequence under the model's current weights, recomputed from scratch:
 * with `model.step` when there are no masks, else layer by layer with the given masks.
 * Mean as PyTorch's reduction='mean': over the loss steps that have a target × elementsPerStep.
 */
export function sequenceLoss(model: Model, spec: SequenceLossSpec): number {
  const c = model.config
  const state = model.initialState()
  if (spec.initialState) state.data.set(spec.initialState)
  const y = new Float64Array(c.outputSize)
  const cache = new Float64Array(model.cell.cacheSize)
  const from = spec.lossFrom ?? 0
  let sum = 0
  let counted = 0
  spec.xs.forEach((x, t) => {
    let out: ArrayLike<number>
    const stepMasks = spec.masks?.[t]
    if (stepMasks) {
      let input: Float64Array = Float64Array.from(x)
      for (let l = 0; l < c.numLayers; l++) {
        const s = state.layers[l]! as Float64Array
        model.layers[l]!.forward(s, cache, input, s, stepMasks[l] ?? null)
        input = s
      }
      model.head.forward(y, input)
      out = y
    } else out = model.step(x, state)
    const target = spec.targets[t]
    if (t >= from && target !== null && target !== undefined) {
      sum += referenceStepLoss(spec.loss, out, target, spec.huberDelta)
      counted++
    }
  })
  return sum / (counted * elementsPerStep(spec.loss, c.outputSize))
}

/** Central differences of f with respect to every entry of `values` (restored afterwards). */
export function finiteDifferences(
  values: Float64Array | Float32Array,
  f: () => number,
  eps = 1e-6,
): Float64Array {
  const grad = new Float64Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    values[i] = v + eps
    const plus = f()
    values[i] = v - eps
    const minus = f()
    values[i] = v
    grad[i] = (plus - minus) / (2 * eps)
  }
  return grad
}

/**
 * The worst |a − n| / max(|a|, |n|, floor) over all entries, and where it is. The floor turns the
 * check into an absolute one for gradients too small for central differences to resolve relatively
 * (with eps 1e-6 their error is about eps² + 1e-16·L/eps ≈ 1e-10 absolute).
 */
export function worstRelativeError(
  analytic: ArrayLike<number>,
  numeric: ArrayLike<number>,
  floor = 1e-3,
): { error: number; index: number } {
  let error = 0
  let index = -1
  for (let i = 0; i < numeric.length; i++) {
    const a = analytic[i]!
    const n = numeric[i]!
    const e = Math.abs(a - n) / Math.max(Math.abs(a), Math.abs(n), floor)
    if (!(e <= error)) {
      error = e
      index = i
    }
  }
  return { error, index }
}

/** The PyTorch name of the parameter holding flat index i. */
export function parameterAt(model: Model, i: number): string {
  const spec = model.params.specs.find((s) => i >= s.offset && i < s.offset + s.size)
  return spec ? `${spec.name}[${i - spec.offset}]` : `#${i}`
}

/**
 * The smallest |pre-activation| of a ReLU RNN over a sequence (with optional masks), computed
 * directly from the weights: how far the run stays from the kink at 0 where the gradient is undefined.
 */
export function minReluPreActivation(
  model: Model,
  xs: number[][],
  masks?: (LayerMasks | null)[][],
  initialState?: ArrayLike<number>,
): number {
  const c = model.config
  const H = c.hiddenSize
  const states = Array.from({ length: c.numLayers }, (_, l) =>
    initialState ? Array.from(initialState).slice(l * H, (l + 1) * H) : new Array<number>(H).fill(0),
  )
  let closest = Number.POSITIVE_INFINITY
  xs.forEach((x, t) => {
    let input = x
    for (let l = 0; l < c.numLayers; l++) {
      const m = masks?.[t]?.[l] ?? null
      const wIh = model.getParameter(`rnn.weight_ih_l${l}`)
      const wHh = model.getParameter(`rnn.weight_hh_l${l}`)
      const bIh = model.getParameter(`rnn.bias_ih_l${l}`)
      const bHh = model.getParameter(`rnn.bias_hh_l${l}`)
      const I = input.length
      const prev = states[l]!
      const next = new Array<number>(H)
      for (let k = 0; k < H; k++) {
        let pre = bIh[k]! + bHh[k]!
        for (let j = 0; j < I; j++) pre += wIh[k * I + j]! * input[j]! * (m?.x ? m.x[j]! : 1)
        for (let j = 0; j < H; j++) pre += wHh[k * H + j]! * prev[j]! * (m?.h ? m.h[j]! : 1)
        closest = Math.min(closest, Math.abs(pre))
        const z = m?.zone ? m.zone[k]! : 0
        next[k] = z * prev[k]! + (1 - z) * Math.max(pre, 0)
      }
      states[l] = next
      input = next
    }
  })
  return closest
}

export const SMALL: Omit<ModelConfig, 'cell'> = {
  inputSize: 3,
  hiddenSize: 4,
  outputSize: 2,
  dtype: 'float64',
}

/**
 * A small float64 model. For rnn_relu the recurrent biases are raised by 0.25 so that, at this tiny
 * size, most units are alive (a dead unit has an all-zero gradient and would make the check vacuous).
 */
export function smallModel(
  cell: CellKind,
  numLayers: number,
  seed: number,
  extra: Partial<ModelConfig> = {},
) {
  const model = createModel({ ...SMALL, cell, numLayers, seed, ...extra })
  if (cell === 'rnn_relu') {
    for (let l = 0; l < numLayers; l++) {
      const b = model.getParameter(`rnn.bias_ih_l${l}`)
      for (let i = 0; i < b.length; i++) b[i] = b[i]! + 0.25
    }
  }
  return model
}

export { Rng }
