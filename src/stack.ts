import type { FloatArray } from './dtype.js'
import type { LayerMasks, LayerWindowGrads, RecurrentLayer } from './layer.js'

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

/** backwardStack's scratch, allocated once by its caller: carry and dOut per layer [stateSize], dX [hiddenSize]. */
export interface BackwardScratch {
  readonly carry: readonly FloatArray[]
  readonly dOut: readonly FloatArray[]
  readonly dX: FloatArray
}

/**
 * One time step back down a stack of layers, the backward pass TBPTT and the gradient-flow probe
 * share: layer l takes the gradient reaching its new state, dOut[l], and leaves in carry[l] the
 * gradient for its previous state (what the step before receives); the gradient for its input
 * goes to the layer below, added to what that layer's state carries from the step after.
 *
 * Outputs: carry[l] [stateSize] (overwritten), dOut[l] for l below the top (overwritten), dX
 * [hiddenSize] scratch. Inputs: dOut[top] (set by the caller: its carry plus the head's
 * gradient), x [inputSize], states[l] (this step's new states) and caches[l] as forward left
 * them, statesIn[l] (the step's previous states), masks[l] (null: no masks). With `records`,
 * each layer records its gate gradients at row `step` for the window's weight products.
 */
export function backwardStack(
  layers: readonly RecurrentLayer[],
  scratch: BackwardScratch,
  step: { readonly x: FloatArray; readonly masks: readonly (LayerMasks | null)[] },
  activations: { readonly states: readonly FloatArray[]; readonly caches: readonly FloatArray[] },
  statesIn: readonly FloatArray[],
  records: readonly LayerWindowGrads[] | null,
  row: number,
): void {
  const { carry, dOut, dX } = scratch
  const H = dX.length
  for (let l = layers.length - 1; l >= 0; l--) {
    const x = l === 0 ? step.x : activations.states[l - 1]!
    layers[l]!.backward(
      l > 0 ? dX : null,
      carry[l]!,
      dOut[l]!,
      x,
      statesIn[l]!,
      activations.caches[l]!,
      step.masks[l] ?? null,
      records ? records[l]! : null,
      row,
    )
    if (l > 0) {
      const below = dOut[l - 1]!
      below.set(carry[l - 1]!)
      for (let k = 0; k < H; k++) below[k] = below[k]! + dX[k]!
    }
  }
}
