import type { FloatArray } from '../dtype.js'
import { arrayTypeOf } from '../dtype.js'
import type { Loss } from '../losses.js'
import type { Model } from '../model.js'
import type { Rng } from '../rng.js'
import type { SequenceWindow, Slot } from '../window.js'
import { ForwardModeAlgorithm } from './forward-mode.js'

/** Keeps the rescaling factors finite when a norm is zero (as in Tallec & Ollivier). */
const EPS = 1e-7

/**
 * UORO, unbiased online recurrent optimization (Tallec & Ollivier, 2017): RTRL's sensitivity
 * J = ∂s/∂θ [n, P] (s: every layer's state, n = layers × S) replaced by a rank-one estimate
 * s̃ θ̃ᵀ with E[s̃ θ̃ᵀ] = J. Each step, with random signs ν [n]:
 *
 *   s̃ ← ρ₀ (∂s_t/∂s_t−1) s̃ + ρ₁ ν,   θ̃ ← θ̃ / ρ₀ + (νᵀ ∂s_t/∂θ) / ρ₁,
 *
 * one forward (tangent) and one backward (vector–Jacobian) product through the step, O(P), with
 * ρ₀, ρ₁ chosen to balance the norms (which minimises the variance). The gradient estimate
 * (∂L_t/∂s_t · s̃) θ̃ is unbiased but noisy: what it gives up is variance, not bias, so it needs
 * smaller learning rates than RTRL. The signs come from the trainer's generator (its `seed`).
 */
export class Uoro extends ForwardModeAlgorithm {
  readonly name = 'uoro'
  /** Where s̃ [layers × S] and θ̃ [recurrent P] start in the carried buffer. */
  private readonly stateAt: number
  private readonly paramsAt: number
  private readonly tangent: FloatArray
  private readonly signs: FloatArray
  private readonly vjp: FloatArray
  private readonly uH: FloatArray
  private readonly uI: FloatArray
  private readonly delta: FloatArray
  private readonly dGIh: FloatArray
  private readonly dGHh: FloatArray

  constructor(
    model: Model,
    loss: Loss,
    private readonly rng: Rng,
  ) {
    const n = model.layers.length * model.stateSize
    const recurrentP = model.params.spec(`rnn.bias_hh_l${model.layers.length - 1}`)!
    super(model, loss, n + recurrentP.offset + recurrentP.size)
    this.stateAt = this.P
    this.paramsAt = this.P + n
    const A = arrayTypeOf(model.config.dtype)
    this.tangent = new A(n)
    this.signs = new A(n)
    this.vjp = new A(this.recurrentP)
    const rows = model.layers[0]!.rows
    this.uH = new A(rows)
    this.uI = new A(rows)
    this.delta = new A(model.stateSize)
    this.dGIh = new A(rows)
    this.dGHh = new A(rows)
  }

  protected carry(seq: SequenceWindow, slot: Slot, prev: Slot): void {
    const carried = seq.carried
    const S = this.model.stateSize
    const L = this.blocks.length
    const n = L * S
    const tangent = this.tangent
    // Forward: the tangent (∂s_t/∂s_t−1)·s̃, bottom up (a layer's input is the new state below).
    for (let l = 0; l < L; l++) {
      const { H, Q, G, I, rows, layer } = this.blocks[l]!
      const jac = this.jacobians[l]!
      const v = this.stateAt + l * S
      const uH = this.uH
      const uI = this.uI
      for (let r = 0; r < rows; r++) {
        let a = 0
        for (let c = 0; c < H; c++) a += layer.wHh[r * H + c]! * carried[v + c]!
        uH[r] = a
        if (l > 0) {
          let b = 0
          for (let c = 0; c < I; c++) b += layer.wIh[r * I + c]! * tangent[(l - 1) * S + c]!
          uI[r] = b
        }
      }
      for (let q = 0; q < Q; q++) {
        const direct = jac.direct[q]!
        const dHh = jac.dHh[q]!
        const dIh = jac.dIh[q]!
        for (let k = 0; k < H; k++) {
          let t = 0
          for (let q2 = 0; q2 < Q; q2++) t += direct[q2 * H + k]! * carried[v + q2 * H + k]!
          for (let g = 0; g < G; g++) {
            const r = g * H + k
            t += dHh[r]! * uH[r]!
            if (l > 0) t += dIh[r]! * uI[r]!
          }
          tangent[l * S + q * H + k] = t
        }
      }
    }
    const signs = this.signs
    for (let i = 0; i < n; i++) signs[i] = this.rng.uniform() < 0.5 ? -1 : 1
    // Backward: νᵀ ∂s_t/∂θ, top down (ν of a layer plus what reaches it from the layers above).
    const vjp = this.vjp
    vjp.fill(0)
    const delta = this.delta
    for (let i = 0; i < S; i++) delta[i] = signs[(L - 1) * S + i]!
    for (let l = L - 1; l >= 0; l--) {
      const { H, I, rows, oWih, oWhh, oBih, oBhh, layer } = this.blocks[l]!
      this.jacobians[l]!.gateGradients(this.dGIh, this.dGHh, delta)
      const x = this.input(slot, l)
      const hPrev = prev.states[l]!
      for (let r = 0; r < rows; r++) {
        const a = this.dGIh[r]!
        const d = this.dGHh[r]!
        vjp[oBih + r] = a
        vjp[oBhh + r] = d
        for (let c = 0; c < I; c++) vjp[oWih + r * I + c] = a * x[c]!
        for (let c = 0; c < H; c++) vjp[oWhh + r * H + c] = d * hPrev[c]!
      }
      if (l === 0) continue
      for (let i = 0; i < S; i++) delta[i] = signs[(l - 1) * S + i]!
      for (let r = 0; r < rows; r++) {
        const a = this.dGIh[r]!
        for (let c = 0; c < I; c++) delta[c] = delta[c]! + a * layer.wIh[r * I + c]!
      }
    }
    // Rescale so the two factors have balanced norms (the variance-minimising choice).
    const thetaNorm = norm(carried, this.paramsAt, this.recurrentP)
    const tangentNorm = norm(tangent, 0, n)
    const vjpNorm = norm(vjp, 0, this.recurrentP)
    const rho0 = Math.sqrt(thetaNorm / (tangentNorm + EPS)) + EPS
    const rho1 = Math.sqrt(vjpNorm / (Math.sqrt(n) + EPS)) + EPS
    for (let i = 0; i < n; i++) carried[this.stateAt + i] = rho0 * tangent[i]! + rho1 * signs[i]!
    for (let p = 0; p < this.recurrentP; p++) {
      const at = this.paramsAt + p
      carried[at] = carried[at]! / rho0 + vjp[p]! / rho1
    }
  }

  protected accumulate(seq: SequenceWindow): void {
    const carried = seq.carried
    const S = this.model.stateSize
    const H = this.model.config.hiddenSize
    const top = this.stateAt + (this.blocks.length - 1) * S
    let c = 0
    for (let i = 0; i < H; i++) c += this.dTop[i]! * carried[top + i]!
    if (c === 0) return
    for (let p = 0; p < this.recurrentP; p++) carried[p] = carried[p]! + c * carried[this.paramsAt + p]!
  }
}

function norm(values: FloatArray, from: number, n: number): number {
  let s = 0
  for (let i = from; i < from + n; i++) s += values[i]! * values[i]!
  return Math.sqrt(s)
}
