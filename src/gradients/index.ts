import type { FloatArray } from '../dtype.js'
import type { Loss } from '../losses.js'
import type { Model } from '../model.js'
import type { Rng } from '../rng.js'
import type { ResolvedTrainerOptions } from '../trainer-options.js'
import type { GradientAlgorithm } from './algorithm.js'
import { ForwardModeAlgorithm } from './forward-mode.js'
import { Rtrl } from './rtrl.js'
import { Snap1 } from './snap1.js'
import { Tbptt } from './tbptt.js'
import { Uoro } from './uoro.js'

export type { AlgorithmName, GradientAlgorithm, WindowLoss } from './algorithm.js'
export { ALGORITHM_NAMES } from './algorithm.js'
export type { RtrlCost } from './rtrl.js'
export { rtrlCost } from './rtrl.js'

/** The gradient algorithm the options name, for this model and loss. */
export function createGradientAlgorithm(
  o: ResolvedTrainerOptions,
  model: Model,
  loss: Loss,
  rng: Rng,
  alloc: (n: number) => FloatArray,
  updatesSeen: () => number,
): GradientAlgorithm {
  switch (o.algorithm) {
    case 'tbptt':
      return new Tbptt(model, loss, o.k1, o.k2, alloc, updatesSeen, o.horizon)
    case 'rtrl':
      ForwardModeAlgorithm.checkSupported(o.algorithm, model)
      return new Rtrl(model, loss, o.rtrlBudget)
    case 'snap1':
      ForwardModeAlgorithm.checkSupported(o.algorithm, model)
      return new Snap1(model, loss)
    case 'uoro':
      ForwardModeAlgorithm.checkSupported(o.algorithm, model)
      return new Uoro(model, loss, rng)
  }
}
