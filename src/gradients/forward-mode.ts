import type { FloatArray, FloatArrayConstructor } from '../dtype.js'
import { arrayTypeOf } from '../dtype.js'
import { RxrnnError } from '../errors.js'
import type { RecurrentLayer } from '../layer.js'
import type { Loss } from '../losses.js'
import type { Model } from '../model.js'
import type { SequenceWindow, Slot } from '../window.js'
import type { AlgorithmName, GradientAlgorithm, WindowLoss } from './algorithm.js'

/**
 * Where one layer's weights sit in the model's flat parameter vector, and its sizes. A layer's
 * four tensors are contiguous, [W_ih | W_hh | b_ih | b_hh], and the layers follow each other, so
 * the parameters that layer l's state depends on (its own and those below) are the prefix
 * [0, end) of the vector.
 */
export interface LayerBlock {
  readonly layer: RecurrentLayer
  /** Input size (x for layer 0, H above), hidden size, state size (H, or 2H for the LSTM). */
  readonly I: number
  readonly H: number
  readonly S: number
  /** State planes: 1 ([h]), or 2 for the LSTM ([h | c]). */
  readonly Q: number
  /** Gate blocks G and W_ih's rows G·H. */
  readonly G: number
  readonly rows: number
  readonly oWih: number
  readonly oWhh: number
  readonly oBih: number
  readonly oBhh: number
  /** One past the layer's last parameter. */
  readonly end: number
}

export function layerBlocks(model: Model): LayerBlock[] {
  return model.layers.map((layer, l) => {
    const offset = (what: string) => model.params.spec(`rnn.${what}_l${l}`)!.offset
    const H = layer.hiddenSize
    return {
      layer,
      I: layer.inputSize,
      H,
      S: layer.stateSize,
      Q: layer.stateSize / H,
      G: layer.cell.gates,
      rows: layer.rows,
      oWih: offset('weight_ih'),
      oWhh: offset('weight_hh'),
      oBih: offset('bias_ih'),
      oBhh: offset('bias_hh'),
      end: offset('bias_hh') + layer.rows,
    }
  })
}

/**
 * The derivatives of one step of a layer's pointwise cell, per state plane q (h, and c for the
 * LSTM). A cell is pointwise: unit k of the new state depends only on gate rows g·H + k of
 * gIh = W_ih·x + b_ih and gHh = W_hh·h + b_hh, and on unit k of the old state. So one backward
 * through the cell with ∂L/∂cand = 1 on plane q (0 elsewhere) gives, with no cross-talk between
 * units, every derivative of plane q:
 * - dIh[q][g·H + k] = ∂s_q,k / ∂gIh[g·H + k], dHh[q][…] the same for gHh (one array unless the
 *   cell tells them apart: the GRU),
 * - direct[q][q'·H + k] = ∂s_q,k / ∂s_prev q',k along the path that bypasses W_hh.
 */
export class CellJacobian {
  readonly dIh: FloatArray[]
  readonly dHh: FloatArray[]
  readonly direct: FloatArray[]
  private readonly ones: FloatArray[]

  constructor(
    readonly block: LayerBlock,
    ArrayType: FloatArrayConstructor,
  ) {
    const { Q, S, H, rows, layer } = block
    this.dIh = Array.from({ length: Q }, () => new ArrayType(rows))
    this.dHh = layer.cell.separateHiddenGrad ? Array.from({ length: Q }, () => new ArrayType(rows)) : this.dIh
    this.direct = Array.from({ length: Q }, () => new ArrayType(S))
    this.ones = Array.from({ length: Q }, (_, q) => new ArrayType(S).fill(1, q * H, (q + 1) * H))
  }

  /** The derivatives of the step whose activations are `cache`, from state `stateIn`. */
  compute(cache: FloatArray, stateIn: FloatArray): void {
    const cell = this.block.layer.cell
    for (let q = 0; q < this.block.Q; q++)
      cell.backward(this.dIh[q]!, this.dHh[q]!, this.direct[q]!, this.ones[q]!, cache, stateIn)
  }

  /**
   * Backpropagates δ = ∂L/∂s (this step's new state, [S]) to the gates: dGIh[r] = Σ_q δ_q,k·dIh[q][r],
   * dGHh likewise (r = g·H + k).
   */
  gateGradients(dGIh: FloatArray, dGHh: FloatArray, delta: FloatArray): void {
    const { Q, G, H } = this.block
    for (let g = 0; g < G; g++) {
      for (let k = 0; k < H; k++) {
        const r = g * H + k
        let a = 0
        let b = 0
        for (let q = 0; q < Q; q++) {
          const d = delta[q * H + k]!
          a += d * this.dIh[q]![r]!
          b += d * this.dHh[q]![r]!
        }
        dGIh[r] = a
        dGHh[r] = b
      }
    }
  }
}

/**
 * What RTRL, SnAp-1 and UORO share: each step, the cell's derivatives per layer, the algorithm's
 * sensitivity update, and, on a step with a target, that step's loss and gradient summed into
 * the sequence's carried buffer (its first P floats: one slot per parameter, head included).
 * The update then reads the sum: the mean over the steps with a target, as TBPTT's loss.
 *
 * Dropout and zoneout are refused: their masks are drawn per TBPTT window and per step, and the
 * sensitivities would have to follow them; TBPTT supports both.
 */
export abstract class ForwardModeAlgorithm implements GradientAlgorithm {
  abstract readonly name: AlgorithmName
  readonly carriedFloats: number
  protected readonly blocks: LayerBlock[]
  protected readonly jacobians: CellJacobian[]
  /** Parameters of the whole model, and of the recurrent layers (the head's follow). */
  protected readonly P: number
  protected readonly recurrentP: number
  private readonly headWeight: number
  private readonly headBias: number
  /** ∂L_t/∂y and ∂L_t/∂s of the top layer (h part; 0 on the LSTM's c). */
  private readonly dY: FloatArray
  protected readonly dTop: FloatArray

  constructor(
    protected readonly model: Model,
    private readonly loss: Loss,
    /** Floats the subclass carries per sequence after the summed gradient. */
    sensitivityFloats: number,
  ) {
    const c = model.config
    this.blocks = layerBlocks(model)
    const A = arrayTypeOf(c.dtype)
    this.jacobians = this.blocks.map((b) => new CellJacobian(b, A))
    this.P = model.params.size
    this.recurrentP = this.blocks[this.blocks.length - 1]!.end
    this.headWeight = model.params.spec('head.weight')!.offset
    this.headBias = model.params.spec('head.bias')!.offset
    this.carriedFloats = this.P + sensitivityFloats
    this.dY = new A(c.outputSize)
    this.dTop = new A(model.stateSize)
  }

  /** Refuses what the forward-mode algorithms do not support, saying what to do instead. */
  static checkSupported(name: AlgorithmName, model: Model): void {
    if (model.config.zoneout > 0) {
      throw new RxrnnError(
        'bad_config',
        `algorithm '${name}' does not support zoneout (the model has zoneout ${model.config.zoneout}); use algorithm 'tbptt', or a model without zoneout`,
      )
    }
  }

  afterStep(seq: SequenceWindow, slot: Slot, prev: Slot, caches: readonly FloatArray[], y: FloatArray): void {
    for (let l = 0; l < this.blocks.length; l++) this.jacobians[l]!.compute(caches[l]!, prev.states[l]!)
    this.carry(seq, slot, prev)
    if (!slot.hasTarget) return
    seq.carriedLoss += this.loss.lossAndGrad(this.dY, y, slot.target, 1)
    seq.carriedLossSteps++
    // The head's gradient is immediate; the state's sensitivities carry the rest back in time.
    const sum = seq.carried
    const O = this.model.config.outputSize
    const H = this.model.config.hiddenSize
    const top = slot.states[this.blocks.length - 1]!
    const w = this.model.head.weight
    const dTop = this.dTop
    dTop.fill(0)
    for (let o = 0; o < O; o++) {
      const d = this.dY[o]!
      sum[this.headBias + o] = sum[this.headBias + o]! + d
      const row = this.headWeight + o * H
      for (let j = 0; j < H; j++) {
        sum[row + j] = sum[row + j]! + d * top[j]!
        dTop[j] = dTop[j]! + d * w[o * H + j]!
      }
    }
    this.accumulate(seq, slot)
  }

  windowLoss(seq: SequenceWindow, out: WindowLoss): boolean {
    const lossSteps = seq.carriedLossSteps
    if (lossSteps === 0) return false
    const scale = 1 / (lossSteps * this.loss.elementsPerStep)
    out.loss = seq.carriedLoss * scale
    out.lossSteps = lossSteps
    out.windowSteps = seq.filled
    out.scale = scale
    return true
  }

  gradient(seq: SequenceWindow, loss: WindowLoss): void {
    const grads = this.model.params.grads
    const sum = seq.carried
    const scale = loss.scale
    for (let p = 0; p < this.P; p++) {
      grads[p] = grads[p]! + sum[p]! * scale
      sum[p] = 0
    }
    seq.carriedLoss = 0
    seq.carriedLossSteps = 0
  }

  probeGradientFlow(): boolean {
    return false
  }

  /** Advances the sequence's sensitivities over the step just taken (the jacobians hold its cell derivatives). */
  protected abstract carry(seq: SequenceWindow, slot: Slot, prev: Slot): void
  /** Adds ∂L_t/∂θ of the recurrent weights to the summed gradient, from dTop = ∂L_t/∂s_top. */
  protected abstract accumulate(seq: SequenceWindow, slot: Slot): void

  /** The layer's input at this step: x for layer 0, the new state of the layer below (its h) above. */
  protected input(slot: Slot, l: number): FloatArray {
    return l === 0 ? slot.x : slot.states[l - 1]!
  }
}
