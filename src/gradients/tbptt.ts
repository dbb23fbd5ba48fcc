import type { FloatArray } from '../dtype.js'
import { arrayTypeOf } from '../dtype.js'
import { LayerWindowGrads } from '../layer.js'
import type { Loss } from '../losses.js'
import type { Model } from '../model.js'
import { type BackwardScratch, backwardStack, forwardStack } from '../stack.js'
import type { Slot } from '../window.js'
import { SequenceWindow } from '../window.js'
import type { GradientAlgorithm, WindowLoss } from './algorithm.js'
import { GradientFlowProbe } from './flow-probe.js'

/**
 * Truncated backpropagation through time, TBPTT(k1, k2): the loss of the last k1 steps is
 * backpropagated through the last k2 steps of the sequence's window; the state entering the
 * window is a constant (detached), which is what bounds the memory and what the forward-mode
 * algorithms lift.
 */
export class Tbptt implements GradientAlgorithm {
  readonly name = 'tbptt'
  readonly carriedFloats = 0
  /** The window's steps, oldest first, and the activations backward reads (stored or recomputed). */
  private readonly trajectory: Slot[]
  private readonly activations: Slot[]
  private entering: Slot | null = null
  /** Recomputed activations, when k2 > k1 or a sequence does not store its own. */
  private readonly workspace: Slot[]
  /** Per layer: the window's gate gradients and inputs, step by step, for one product per weight matrix. */
  private readonly windowGrads: LayerWindowGrads[]
  /** ∂L/∂y of each step of the window [k2][outputSize], computed once by the loss pass. */
  private readonly dYRows: FloatArray[]
  // Backward scratch: the gradient carried to the previous step, and entering each layer's output.
  /** Backward's per-step scratch (carry: ∂L/∂ the previous state; dOut: ∂L/∂ each new state). */
  private readonly stack: BackwardScratch
  private readonly probe: GradientFlowProbe

  constructor(
    private readonly model: Model,
    private readonly loss: Loss,
    private readonly k1: number,
    private readonly k2: number,
    alloc: (n: number) => FloatArray,
    /** The trainer's updates so far: whether the weights may have changed under the window. */
    private readonly updatesSeen: () => number,
    /**
     * A multi-horizon head's H (see HorizonTargets): a step's loss is complete H − 1 steps after
     * it, so the loss covers the k1 steps that ended H − 1 steps ago (k2 >= k1 + H − 1).
     */
    private readonly horizon = 1,
  ) {
    const c = model.config
    const ws = new SequenceWindow(
      {
        k2,
        inputSize: c.inputSize,
        hiddenSize: c.hiddenSize,
        numLayers: c.numLayers,
        stateSize: model.stateSize,
        layerInputSizes: model.layers.map((l) => l.inputSize),
        cacheSize: model.cell.cacheSize,
        outputSize: c.outputSize,
        targetSize: loss.targetSize,
        storeActivations: true,
        inputDropout: false,
        recurrentDropout: false,
        zoneout: false,
      },
      arrayTypeOf(c.dtype),
      alloc,
    )
    this.workspace = [...ws.slots]
    this.windowGrads = model.layers.map((layer) => new LayerWindowGrads(layer, k2, alloc))
    this.trajectory = new Array<Slot>(k2)
    this.activations = new Array<Slot>(k2)
    this.dYRows = Array.from({ length: k2 }, () => alloc(c.outputSize))
    this.stack = {
      carry: model.layers.map(() => alloc(model.stateSize)),
      dOut: model.layers.map(() => alloc(model.stateSize)),
      dX: alloc(c.hiddenSize),
    }
    this.probe = new GradientFlowProbe(model, this.stack)
  }

  afterStep(): void {}

  windowLoss(seq: SequenceWindow, out: WindowLoss): boolean {
    const k1 = this.k1
    const n = seq.filled
    const trajectory = this.trajectory
    for (let i = 0; i < n; i++) trajectory[i] = seq.slotBack(n - 1 - i)
    const entering = seq.slotBack(n)
    this.entering = entering
    // The loss covers the last k1 steps, or fewer in a sequence's first, shortened window; with a
    // horizon H, the k1 steps that ended H − 1 steps ago (the newer ones await targets).
    const lossStart = Math.max(0, n - k1 - this.horizon + 1)
    let lossSteps = 0
    for (let i = lossStart; i < n; i++) if (trajectory[i]!.hasTarget) lossSteps++
    if (lossSteps === 0) return false
    // With k2 > k1 the window's older steps ran on older weights: re-run it with the current
    // ones so the gradient is exactly that of the window's loss.
    const recompute = !seq.layout.storeActivations || (n > k1 && this.updatesSeen() > 0 && this.k2 > k1)
    const act = this.activations
    if (recompute) this.recomputeWindow(entering, n)
    else for (let i = 0; i < n; i++) act[i] = trajectory[i]!
    const scale = 1 / (lossSteps * this.loss.elementsPerStep)
    let lossSum = 0
    for (let i = lossStart; i < n; i++) {
      const s = trajectory[i]!
      if (s.hasTarget) lossSum += this.loss.lossAndGrad(this.dYRows[i]!, act[i]!.y, s.target, scale)
    }
    out.loss = lossSum * scale
    out.lossSteps = lossSteps
    out.windowSteps = n
    out.scale = scale
    return true
  }

  /** Backpropagates the window's loss through its n steps, newest first, into the parameter gradients. */
  gradient(_seq: SequenceWindow, loss: WindowLoss): void {
    const n = loss.windowSteps
    const model = this.model
    const layers = model.layers
    const top = layers.length - 1
    const act = this.activations
    const entering = this.entering!
    const firstLossStep = n - this.k1 - this.horizon + 1
    const { carry, dOut } = this.stack
    for (const c of carry) c.fill(0)
    for (let i = n - 1; i >= 0; i--) {
      const s = act[i]!
      const src = this.trajectory[i]!
      const prevStates = i === 0 ? entering.states : act[i - 1]!.states
      const dTop = dOut[top]!
      dTop.set(carry[top]!)
      if (i >= firstLossStep && src.hasTarget) model.head.backward(dTop, this.dYRows[i]!, s.states[top]!)
      backwardStack(layers, this.stack, src, s, prevStates, this.windowGrads, i)
    }
    for (let l = 0; l <= top; l++) layers[l]!.accumulateWindow(this.windowGrads[l]!, n)
  }

  probeGradientFlow(_seq: SequenceWindow, loss: WindowLoss, norms: number[]): boolean {
    // From the newest step whose loss is complete: with a horizon H, the one H − 1 steps back.
    const n = loss.windowSteps - this.horizon + 1
    if (n <= 0) return false
    const newest = this.trajectory[n - 1]!
    if (!newest.hasTarget) return false
    this.probe.run(this.entering!, this.trajectory, this.activations, n, this.dYRows[n - 1]!, norms)
    return true
  }

  /** Re-runs the forward pass of the last n steps from the entering state into the workspace. */
  private recomputeWindow(entering: Slot, n: number): void {
    const layers = this.model.layers
    const act = this.activations
    for (let i = 0; i < n; i++) {
      const src = this.trajectory[i]!
      const dst = this.workspace[i]!
      const prevStates = i === 0 ? entering.states : this.workspace[i - 1]!.states
      const top = forwardStack(layers, dst.states, dst.caches, src.x, prevStates, src.masks)
      this.model.head.forward(dst.y, top)
      act[i] = dst
    }
  }
}
