import type { FloatArray } from '../dtype.js'
import type { Loss } from '../losses.js'
import type { Model } from '../model.js'
import type { Rng } from '../rng.js'
import type { ResolvedTrainerOptions } from '../trainer-options.js'
import type { GradientAlgorithm } from './algorithm.js'
import { Tbptt } from './tbptt.js'

export type { AlgorithmName, GradientAlgorithm, WindowLoss } from './algorithm.js'
export { ALGORITHM_NAMES } from './algorithm.js'

/** The gradient algorithm the options name, for this model and loss. */
export function createGradientAlgorithm(
  o: ResolvedTrainerOptions,
  model: Model,
  loss: Loss,
  _rng: Rng,
  alloc: (n: number) => FloatArray,
  updatesSeen: () => number,
): GradientAlgorithm {
  switch (o.algorithm) {
    case 'tbptt':
      return new Tbptt(model, loss, o.k1, o.k2, alloc, updatesSeen)
    default:
      throw new Error(`algorithm ${o.algorithm} not yet`)
  }
}
