import { RxrnnError } from '../errors.js'
import type { Model } from '../model.js'
import type { RecurrentState } from '../state.js'

/**
 * Recursive roll-out: forecasts H steps on from a one-step model whose output is its next
 * input, by feeding each forecast back in as the next input, on a copy of the state (the key's
 * own state is untouched). Row 0 is the one-step forecast the model already made.
 *
 * Compared with the direct multi-horizon head (`horizon` on the trainer): no extra outputs and
 * no delayed targets, but errors compound along the roll-out and it costs H − 1 extra forward
 * steps per tick (the direct head costs one step and H·O head outputs). bench/sections/horizon.ts
 * compares the two.
 *
 * Cost: H − 1 forward steps per tick; memory one state and H·O floats, allocated once.
 *
 * @example
 * const rollout = new RecursiveRollout(model, 6)
 * const ahead = rollout.run(trainer.state, prediction)   // 6 rows of outputSize
 */
export class RecursiveRollout {
  readonly ahead: Float64Array
  private readonly state: RecurrentState
  private readonly input: Float64Array

  constructor(
    readonly model: Model,
    readonly horizon: number,
  ) {
    const c = model.config
    if (c.outputSize !== c.inputSize)
      throw new RxrnnError(
        'bad_config',
        `A recursive roll-out feeds each forecast back as the next input, so it needs outputSize ` +
          `(${c.outputSize}) = inputSize (${c.inputSize}); use the direct multi-horizon head (horizon) instead.`,
      )
    if (!Number.isInteger(horizon) || horizon < 1)
      throw new RxrnnError('bad_config', `horizon is ${JSON.stringify(horizon)}; it must be an integer >= 1`)
    this.ahead = new Float64Array(horizon * c.outputSize)
    this.state = model.initialState()
    this.input = new Float64Array(c.inputSize)
  }

  /** The H rows from `state` (after the step that made `prediction`, the one-step forecast). Reused by the next call. */
  run(state: RecurrentState, prediction: ArrayLike<number>): Float64Array {
    const O = this.model.config.outputSize
    this.state.copyFrom(state)
    for (let o = 0; o < O; o++) this.ahead[o] = prediction[o]!
    for (let h = 1; h < this.horizon; h++) {
      for (let o = 0; o < O; o++) this.input[o] = this.ahead[(h - 1) * O + o]!
      const y = this.model.step(this.input, this.state)
      for (let o = 0; o < O; o++) this.ahead[h * O + o] = y[o]!
    }
    return this.ahead
  }
}
