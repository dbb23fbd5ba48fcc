import type { FloatArray } from '../dtype.js'
import { arrayTypeOf } from '../dtype.js'
import { RxrnnError } from '../errors.js'
import type { Loss } from '../losses.js'
import type { Model } from '../model.js'
import type { SequenceWindow, Slot } from '../window.js'
import type { LayerBlock } from './forward-mode.js'
import { ForwardModeAlgorithm, layerBlocks } from './forward-mode.js'

/** What RTRL would carry and compute per sequence for a model. */
export interface RtrlCost {
  /** Sensitivities Σ_l S·P_l (P_l: the parameters of layers 0..l), and their bytes. */
  floats: number
  bytes: number
  /** Multiply-adds one step takes to update them (the S²·P_l products dominate). */
  multiplyAddsPerStep: number
}

/**
 * What RTRL would hold and compute per sequence (per key of a KeyedTrainer) for this model: what
 * `rtrlBudget` is checked against.
 *
 * @example
 * const { bytes, multiplyAddsPerStep } = rtrlCost(createModel({ cell: 'gru', inputSize: 1, hiddenSize: 32, outputSize: 1 }))
 */
export function rtrlCost(model: Model): RtrlCost {
  const blocks = layerBlocks(model)
  let floats = 0
  let multiplyAdds = 0
  blocks.forEach((b, l) => {
    floats += b.S * b.end
    multiplyAdds += b.S * b.S * b.end + b.S * b.rows * (b.I + b.H + 2)
    if (l > 0) multiplyAdds += b.S * b.H * blocks[l - 1]!.end
  })
  return {
    floats,
    bytes: floats * (model.config.dtype === 'float64' ? 8 : 4),
    multiplyAddsPerStep: multiplyAdds,
  }
}

/**
 * Real-time recurrent learning (Williams & Zipser, 1989): exact forward-mode gradients. Each
 * sequence carries, per layer l, the sensitivity J_l = ∂s_l,t/∂θ [S, P_l] of its state to every
 * parameter it depends on (its own layer's and those below), updated at every step by the chain
 * rule through one step:
 *
 *   J_l,t = (∂s_l,t/∂s_l,t−1) J_l,t−1 + (∂s_l,t/∂x_l,t) J_l−1,t[h] + ∂s_l,t/∂θ_l (immediate),
 *
 * so ∂L_t/∂θ = (∂L_t/∂s_top,t) J_top,t reaches back to the start of the sequence, with nothing
 * stored but J. From a zero state and J = 0, the sum over k1 steps is exactly TBPTT(k1, k1)'s
 * gradient; later, J carries what earlier windows did (computed with the weights of their time).
 * It costs O(S²·P) per step and S·P floats per sequence: for small models.
 */
export class Rtrl extends ForwardModeAlgorithm {
  readonly name = 'rtrl'
  /** Where layer l's J starts in the sequence's carried buffer. */
  private readonly jOffsets: number[]
  /** J_l,t being built [S, P_l], and the one-step state Jacobians M = ∂s_t/∂s_t−1 [S, S], N = ∂s_t/∂x_t [S, I]. */
  private readonly jNext: FloatArray
  private readonly m: FloatArray
  private readonly n: FloatArray

  constructor(model: Model, loss: Loss, budget: { maxBytes: number; maxMultiplyAddsPerStep: number }) {
    const cost = rtrlCost(model)
    if (cost.bytes > budget.maxBytes || cost.multiplyAddsPerStep > budget.maxMultiplyAddsPerStep) {
      throw new RxrnnError(
        'bad_config',
        `algorithm 'rtrl' is over its budget for ${model.describe()}: its sensitivities take ${formatBytes(cost.bytes)} per sequence (${cost.floats.toLocaleString('en-US')} floats; budget ${formatBytes(budget.maxBytes)}) and ${cost.multiplyAddsPerStep.toExponential(2)} multiply-adds per step (budget ${budget.maxMultiplyAddsPerStep.toExponential(2)}). Use algorithm 'snap1' or 'uoro' (O(P) per step, P = ${model.params.size.toLocaleString('en-US')}), a smaller model, or raise rtrlBudget`,
      )
    }
    super(model, loss, cost.floats)
    const A = arrayTypeOf(model.config.dtype)
    this.jOffsets = []
    let offset = this.P
    for (const b of this.blocks) {
      this.jOffsets.push(offset)
      offset += b.S * b.end
    }
    const top = this.blocks[this.blocks.length - 1]!
    const S = top.S
    this.jNext = new A(S * top.end)
    this.m = new A(S * S)
    this.n = new A(S * top.H)
  }

  protected carry(seq: SequenceWindow, slot: Slot, prev: Slot): void {
    const carried = seq.carried
    for (let l = 0; l < this.blocks.length; l++) {
      const b = this.blocks[l]!
      const { S, end: P } = b
      // J_old is carried[j + i·P + p] (offsets, not views: a view would allocate every step).
      const j = this.jOffsets[l]!
      const jNew = this.jNext
      this.stateJacobians(b, l)
      // Temporal: J_new = M·J_old, four rows of J_old per pass over J_new's row (a quarter of
      // the loads and stores of one axpy per row; this product is RTRL's O(S²·P)).
      const m = this.m
      for (let i = 0; i < S; i++) {
        const row = i * P
        jNew.fill(0, row, row + P)
        combineRows(jNew, row, m, i * S, S, carried, j, P)
      }
      // Spatial: through this step's input, the new state of the layer below, J_l−1,t (rows h).
      if (l > 0) {
        const below = this.blocks[l - 1]!
        const Pb = below.end
        const jb = this.jOffsets[l - 1]!
        const n = this.n
        const I = b.I
        for (let i = 0; i < S; i++) combineRows(jNew, i * P, n, i * I, I, carried, jb, Pb)
      }
      this.addImmediate(b, l, jNew, P, this.input(slot, l), prev.states[l]!)
      for (let p = 0, end = S * P; p < end; p++) carried[j + p] = jNew[p]!
    }
  }

  protected accumulate(seq: SequenceWindow): void {
    const l = this.blocks.length - 1
    const b = this.blocks[l]!
    const P = b.end
    const j = this.jOffsets[l]!
    const sum = seq.carried
    const dTop = this.dTop
    // ∂L_t/∂θ = Σ_i ∂L_t/∂s_i · J[i, :], over the h rows (the loss reads h only).
    for (let i = 0; i < b.H; i++) {
      const d = dTop[i]!
      if (d === 0) continue
      const row = j + i * P
      for (let p = 0; p < P; p++) sum[p] = sum[p]! + d * sum[row + p]!
    }
  }

  /**
   * M = ∂s_t/∂s_t−1 [S, S] and, above layer 0, N = ∂s_t/∂x_t [S, I], from the cell's derivatives:
   * M[(q,k), (q',k)] = direct, plus M[(q,k), j < H] += Σ_g ∂s_q,k/∂gHh[gH+k] · W_hh[gH+k, j];
   * N[(q,k), j] = Σ_g ∂s_q,k/∂gIh[gH+k] · W_ih[gH+k, j].
   */
  private stateJacobians(b: LayerBlock, l: number): void {
    const { S, H, Q, G, I } = b
    const jac = this.jacobians[l]!
    const wHh = b.layer.wHh
    const wIh = b.layer.wIh
    const m = this.m
    const n = this.n
    m.fill(0, 0, S * S)
    for (let q = 0; q < Q; q++) {
      const dHh = jac.dHh[q]!
      const dIh = jac.dIh[q]!
      const direct = jac.direct[q]!
      for (let k = 0; k < H; k++) {
        const i = q * H + k
        const mRow = i * S
        for (let q2 = 0; q2 < Q; q2++) m[mRow + q2 * H + k] = direct[q2 * H + k]!
        for (let g = 0; g < G; g++) {
          const r = g * H + k
          const d = dHh[r]!
          if (d === 0) continue
          const w = r * H
          for (let c = 0; c < H; c++) m[mRow + c] = m[mRow + c]! + d * wHh[w + c]!
        }
        if (l === 0) continue
        const nRow = i * I
        n.fill(0, nRow, nRow + I)
        for (let g = 0; g < G; g++) {
          const r = g * H + k
          const d = dIh[r]!
          if (d === 0) continue
          const w = r * I
          for (let c = 0; c < I; c++) n[nRow + c] = n[nRow + c]! + d * wIh[w + c]!
        }
      }
    }
  }

  /** The immediate term ∂s_t/∂θ_l: row (q,k) gets ∂s_q,k/∂g_r · x̃ in W_ih row r, · h_t−1 in W_hh row r, and the biases. */
  private addImmediate(
    b: LayerBlock,
    l: number,
    jNew: FloatArray,
    P: number,
    x: FloatArray,
    hPrev: FloatArray,
  ): void {
    const { H, Q, G, I, oWih, oWhh, oBih, oBhh } = b
    const jac = this.jacobians[l]!
    for (let q = 0; q < Q; q++) {
      const dIh = jac.dIh[q]!
      const dHh = jac.dHh[q]!
      for (let k = 0; k < H; k++) {
        const row = (q * H + k) * P
        for (let g = 0; g < G; g++) {
          const r = g * H + k
          const a = dIh[r]!
          if (a !== 0) {
            const w = row + oWih + r * I
            for (let c = 0; c < I; c++) jNew[w + c] = jNew[w + c]! + a * x[c]!
            jNew[row + oBih + r] = jNew[row + oBih + r]! + a
          }
          const d = dHh[r]!
          if (d !== 0) {
            const w = row + oWhh + r * H
            for (let c = 0; c < H; c++) jNew[w + c] = jNew[w + c]! + d * hPrev[c]!
            jNew[row + oBhh + r] = jNew[row + oBhh + r]! + d
          }
        }
      }
    }
  }
}

/**
 * out[at .. at + P) += Σ_k coef[c0 + k] · rows[from + k·P .. + P) for k < K (a row of a matrix
 * product), skipping zero coefficients (dead ReLU units, unused gates), four rows per pass.
 */
function combineRows(
  out: FloatArray,
  at: number,
  coef: FloatArray,
  c0: number,
  K: number,
  rows: FloatArray,
  from: number,
  P: number,
): void {
  let k = 0
  for (; k + 4 <= K; k += 4) {
    const a = coef[c0 + k]!
    const b = coef[c0 + k + 1]!
    const c = coef[c0 + k + 2]!
    const d = coef[c0 + k + 3]!
    if (a === 0 && b === 0 && c === 0 && d === 0) continue
    const ra = from + k * P
    const rb = ra + P
    const rc = rb + P
    const rd = rc + P
    for (let p = 0; p < P; p++)
      out[at + p] =
        out[at + p]! + a * rows[ra + p]! + b * rows[rb + p]! + c * rows[rc + p]! + d * rows[rd + p]!
  }
  for (; k < K; k++) {
    const a = coef[c0 + k]!
    if (a === 0) continue
    const ra = from + k * P
    for (let p = 0; p < P; p++) out[at + p] = out[at + p]! + a * rows[ra + p]!
  }
}

function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`
  return `${(bytes / 2 ** 10).toFixed(1)} KiB`
}
