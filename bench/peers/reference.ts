import type { StepModel } from './peer.js'
import { type LstmWeights, referenceLstmStep, toPlainLstm, zeroPlainState } from './weights.js'

/**
 * The "plain JS loop" baseline as a harness peer: {@link referenceLstmStep} on plain arrays.
 *
 * @example
 * const peer = createReferenceLstm(randomLstmWeights(8, 64, 4, 42))
 * const y = peer.step(new Float32Array(8))
 */
export function createReferenceLstm(weights: LstmWeights): StepModel<Float32Array> {
  const model = toPlainLstm(weights)
  const state = zeroPlainState(weights.hiddenSize)
  return {
    available: true,
    name: 'plain JS loop',
    step: (x) => Float32Array.from(referenceLstmStep(model, state, x)),
    dispose: () => {},
  }
}
