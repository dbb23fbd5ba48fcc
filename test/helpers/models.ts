import type { Model } from '../../src/index.js'
import { createModel } from '../../src/index.js'

/** A model with the same config and weights as `model` (learning in one leaves the other alone). */
export function sameModel(model: Model): Model {
  const copy = createModel({ ...model.config })
  copy.copyWeightsFrom(model)
  return copy
}
