import type { FloatArray } from '../dtype.js'
import { arrayTypeOf } from '../dtype.js'
import type { Loss } from '../losses.js'
import type { Model } from '../model.js'
import type { SequenceWindow, Slot } from '../window.js'
import { ForwardModeAlgorithm } from './forward-mode.js'

/**
 * SnAp-1 (Menick et al., 2020): RTRL with the sensitivities kept only where one step makes them
 * non-zero. Unit k of a layer's state depends directly only on the weights of its own gate rows
 * (g·H + k of W_ih, W_hh, b_ih, b_hh), so each state entry keeps G·(I + H + 2) sensitivities,
 * O(P) per layer, and the step's Jacobian enters only through the entries that map this pattern
 * onto itself (the unit's own h→h, and for the LSTM the 2×2 block of h and c):
 *
 *   J̃_t = (∂s_t/∂s_t−1 restricted to each unit) J̃_t−1 + ∂s_t/∂θ (immediate).
 *
 * What it gives up: the influence of a weight on a unit through other units over time (unit j's
 * weights reach unit k only via W_hh[k, j] at a later step). With one hidden unit nothing is
 * dropped and it is RTRL. Stacked layers: each layer keeps its own J̃; the loss reaches the
 * layers below through this step's inputs (backpropagated down the stack at the same step).
 */
export class Snap1 extends ForwardModeAlgorithm {
  readonly name = 'snap1'
  /** Where layer l's J̃ [S, G, I + H + 2] starts in the carried buffer. */
  private readonly offsets: number[]
  private readonly deltas: FloatArray[]
  private readonly dGIh: FloatArray
  private readonly dGHh: FloatArray

  constructor(model: Model, loss: Loss) {
    let floats = 0
    const sizes = model.layers.map((layer) => {
      const n = layer.stateSize * layer.cell.gates * (layer.inputSize + layer.hiddenSize + 2)
      floats += n
      return n
    })
    super(model, loss, floats)
    this.offsets = []
    let offset = this.P
    for (const n of sizes) {
      this.offsets.push(offset)
      offset += n
    }
    const A = arrayTypeOf(model.config.dtype)
    this.deltas = model.layers.map(() => new A(model.stateSize))
    const rows = model.layers[0]!.rows
    this.dGIh = new A(rows)
    this.dGHh = new A(rows)
  }

  protected carry(seq: SequenceWindow, slot: Slot, prev: Slot): void {
    const J = seq.carried
    for (let l = 0; l < this.blocks.length; l++) {
      const { H, Q, G, I, layer } = this.blocks[l]!
      const E = I + H + 2
      const W = G * E
      const base = this.offsets[l]!
      const jac = this.jacobians[l]!
      const wHh = layer.wHh
      const x = this.input(slot, l)
      const hPrev = prev.states[l]!
      for (let k = 0; k < H; k++) {
        // The unit's own block of ∂s_t/∂s_t−1: direct, plus through W_hh[g·H + k, k].
        let m00 = jac.direct[0]![k]!
        for (let g = 0; g < G; g++) m00 += jac.dHh[0]![g * H + k]! * wHh[(g * H + k) * H + k]!
        const h = base + k * W
        if (Q === 1) {
          for (let e = 0; e < W; e++) J[h + e] = m00 * J[h + e]!
        } else {
          // The LSTM: h_k and c_k feed each other (c_t−1 → h_t directly, h_t−1 → c_t through the gates).
          const m01 = jac.direct[0]![H + k]!
          let m10 = jac.direct[1]![k]!
          for (let g = 0; g < G; g++) m10 += jac.dHh[1]![g * H + k]! * wHh[(g * H + k) * H + k]!
          const m11 = jac.direct[1]![H + k]!
          const c = base + (H + k) * W
          for (let e = 0; e < W; e++) {
            const jh = J[h + e]!
            const jc = J[c + e]!
            J[h + e] = m00 * jh + m01 * jc
            J[c + e] = m10 * jh + m11 * jc
          }
        }
        for (let q = 0; q < Q; q++) {
          const row = base + (q * H + k) * W
          const dIh = jac.dIh[q]!
          const dHh = jac.dHh[q]!
          for (let g = 0; g < G; g++) {
            const r = g * H + k
            const at = row + g * E
            const a = dIh[r]!
            if (a !== 0) {
              for (let c = 0; c < I; c++) J[at + c] = J[at + c]! + a * x[c]!
              J[at + I + H] = J[at + I + H]! + a
            }
            const d = dHh[r]!
            if (d !== 0) {
              for (let c = 0; c < H; c++) J[at + I + c] = J[at + I + c]! + d * hPrev[c]!
              J[at + I + H + 1] = J[at + I + H + 1]! + d
            }
          }
        }
      }
    }
  }

  protected accumulate(seq: SequenceWindow): void {
    const J = seq.carried
    const top = this.blocks.length - 1
    this.deltas[top]!.set(this.dTop)
    for (let l = top; l >= 0; l--) {
      const { H, S, G, I, oWih, oWhh, oBih, oBhh, layer } = this.blocks[l]!
      const E = I + H + 2
      const W = G * E
      const base = this.offsets[l]!
      const delta = this.deltas[l]!
      for (let i = 0; i < S; i++) {
        const d = delta[i]!
        if (d === 0) continue
        const k = i % H
        for (let g = 0; g < G; g++) {
          const r = g * H + k
          const at = base + i * W + g * E
          const wi = oWih + r * I
          for (let c = 0; c < I; c++) J[wi + c] = J[wi + c]! + d * J[at + c]!
          const wh = oWhh + r * H
          for (let c = 0; c < H; c++) J[wh + c] = J[wh + c]! + d * J[at + I + c]!
          J[oBih + r] = J[oBih + r]! + d * J[at + I + H]!
          J[oBhh + r] = J[oBhh + r]! + d * J[at + I + H + 1]!
        }
      }
      if (l === 0) continue
      // The loss reaches the layer below through this step's input: δ_below[h] = W_ihᵀ·(gate gradients).
      this.jacobians[l]!.gateGradients(this.dGIh, this.dGHh, delta)
      const below = this.deltas[l - 1]!
      below.fill(0)
      const wIh = layer.wIh
      for (let r = 0; r < layer.rows; r++) {
        const d = this.dGIh[r]!
        if (d === 0) continue
        for (let c = 0; c < I; c++) below[c] = below[c]! + d * wIh[r * I + c]!
      }
    }
  }
}
