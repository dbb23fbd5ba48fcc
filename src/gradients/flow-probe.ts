import type { FloatArray } from '../dtype.js'
import type { Model } from '../model.js'
import { type BackwardScratch, backwardStack } from '../stack.js'
import type { Slot } from '../window.js'

/**
 * The gradient-flow diagnostic: follows ∂L_t/∂s (the newest step's loss, s the top layer's
 * state) back through a TBPTT window and records its norm at each step back, taking no
 * parameter gradient. Its norms, and the slope of their logarithm, say whether gradients
 * vanish or explode over the window.
 */
export class GradientFlowProbe {
  constructor(
    private readonly model: Model,
    /** Scratch shared with the backward pass (the probe runs after it). */
    private readonly stack: BackwardScratch,
  ) {}

  /**
   * norms[k] = ‖∂L_(n−1)/∂s_(n−1−k)‖ for k < n, with dYNewest = ∂L_(n−1)/∂y as the loss pass
   * scaled it. `trajectory` holds the steps, `activations` what forward computed for them.
   */
  run(
    entering: Slot,
    trajectory: readonly Slot[],
    activations: readonly Slot[],
    n: number,
    dYNewest: FloatArray,
    norms: number[],
  ): void {
    const model = this.model
    const layers = model.layers
    const top = layers.length - 1
    const H = model.config.hiddenSize
    const O = model.config.outputSize
    norms.length = n
    const { carry, dOut } = this.stack
    for (const c of carry) c.fill(0)
    for (let i = n - 1; i >= 0; i--) {
      const s = activations[i]!
      const src = trajectory[i]!
      const prevStates = i === 0 ? entering.states : activations[i - 1]!.states
      const dTop = dOut[top]!
      dTop.set(carry[top]!)
      if (i === n - 1) headBackwardInput(dTop, model.head.weight, dYNewest, O, H)
      let sq = 0
      for (let k = 0; k < dTop.length; k++) sq += dTop[k]! * dTop[k]!
      norms[n - 1 - i] = Math.sqrt(sq)
      backwardStack(layers, this.stack, src, s, prevStates, null, i)
    }
  }
}

/** dH[0:H] += Wᵀ·dY without touching the head's gradients. */
function headBackwardInput(
  dH: FloatArray,
  w: FloatArray,
  dY: FloatArray,
  outputSize: number,
  H: number,
): void {
  for (let o = 0; o < outputSize; o++) {
    const d = dY[o]!
    for (let k = 0; k < H; k++) dH[k] = dH[k]! + w[o * H + k]! * d
  }
}
