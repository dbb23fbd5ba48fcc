import type { FloatArray } from './dtype.js'
import type { LayerMasks, RecurrentLayer } from './layer.js'

/**
 * One time step through a stack of layers, the forward pass every caller runs (the model's
 * step, the trainer's training step, TBPTT's window recompute): layer l reads the new state of
 * layer l − 1 (x for layer 0) and its own previous state.
 *
 * Outputs: statesOut[l] [stateSize] (may be statesIn[l]: a state stepped in place), caches[l]
 * [cacheSize] (may all be one scratch when nothing reads them back). Inputs: x [inputSize],
 * statesIn[l] [stateSize], masks[l] (null: no masks). Returns the top layer's new state.
 */
export function forwardStack(
  layers: readonly RecurrentLayer[],
  statesOut: readonly FloatArray[],
  caches: readonly FloatArray[],
  x: FloatArray,
  statesIn: readonly FloatArray[],
  masks: readonly (LayerMasks | null)[] | null,
): FloatArray {
  let input = x
  for (let l = 0; l < layers.length; l++) {
    const out = statesOut[l]!
    layers[l]!.forward(out, caches[l]!, input, statesIn[l]!, masks ? masks[l]! : null)
    input = out
  }
  return input
}
