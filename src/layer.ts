import type { Cell } from './cells/cell.js'
import type { FloatArray } from './dtype.js'
import type { Kernels } from './kernels.js'
import type { ParameterSet } from './params.js'

/**
 * Per-step regularisation masks of one layer, all optional (null = not used):
 * - `x` [inputSize], `h` [H]: variational (locked) dropout masks, already scaled by 1/(1 − p),
 *   applied to the input and to the h that enters W_hh; the trainer holds them fixed for a whole
 *   truncation window so the same units are dropped at every step.
 * - `zone` [stateSize]: zoneout weights m, new state = m⊙state_prev + (1 − m)⊙cand
 *   (0/1 while training; the constant p when predicting).
 */
export interface LayerMasks {
  x: FloatArray | null
  h: FloatArray | null
  zone: FloatArray | null
}

/**
 * What a layer's backward keeps of each step of a truncation window, one row per step (the
 * window's position of the step), so that once the window is done its weight gradients are one
 * product per matrix (Kernels.gerStepsAcc: dW_hh += Σ_t dg_t h̃_(t−1)ᵀ) instead of an outer product
 * per step, which reads and writes all of dW_hh at every step. Allocated once per trainer.
 */
export class LayerWindowGrads {
  /** Gate gradients [steps, rows]: ∂L/∂(W_ih x̃ + b_ih), and ∂L/∂(W_hh h̃ + b_hh) (the same buffer unless the cell tells them apart). */
  readonly dGIh: FloatArray
  readonly dGHh: FloatArray
  /** The masked inputs forward used: x̃ [steps, inputSize], h̃ [steps, H]. */
  readonly x: FloatArray
  readonly h: FloatArray
  // Views of each step's row, made once (subarray allocates).
  readonly dGIhRows: readonly FloatArray[]
  readonly dGHhRows: readonly FloatArray[]
  readonly xRows: readonly FloatArray[]
  readonly hRows: readonly FloatArray[]

  constructor(
    layer: RecurrentLayer,
    readonly steps: number,
    alloc: (n: number) => FloatArray,
  ) {
    const rows = layer.rows
    const I = layer.inputSize
    const H = layer.hiddenSize
    this.dGIh = alloc(steps * rows)
    this.dGHh = layer.cell.separateHiddenGrad ? alloc(steps * rows) : this.dGIh
    this.x = alloc(steps * I)
    this.h = alloc(steps * H)
    const rowsOf = (a: FloatArray, n: number) =>
      Array.from({ length: steps }, (_, t) => a.subarray(t * n, (t + 1) * n))
    this.dGIhRows = rowsOf(this.dGIh, rows)
    this.dGHhRows = this.dGHh === this.dGIh ? this.dGIhRows : rowsOf(this.dGHh, rows)
    this.xRows = rowsOf(this.x, I)
    this.hRows = rowsOf(this.h, H)
  }
}

/**
 * One recurrent layer: the affine maps W_ih·x + b_ih and W_hh·h + b_hh around a pointwise
 * cell, with views into the model's flat parameter and gradient buffers.
 */
export class RecurrentLayer {
  readonly inputSize: number
  readonly hiddenSize: number
  readonly stateSize: number
  readonly rows: number
  readonly wIh: FloatArray
  readonly wHh: FloatArray
  readonly bIh: FloatArray
  readonly bHh: FloatArray
  readonly dWih: FloatArray
  readonly dWhh: FloatArray
  readonly dBih: FloatArray
  readonly dBhh: FloatArray
  // Scratch, allocated once: the per-step path allocates nothing.
  private readonly gIh: FloatArray
  private readonly gHh: FloatArray
  private readonly dGIh: FloatArray
  private readonly dGHh: FloatArray
  private readonly cand: FloatArray
  private readonly dCand: FloatArray
  private readonly xUsed: FloatArray
  private readonly hUsed: FloatArray
  private readonly dHRec: FloatArray
  private readonly dXRaw: FloatArray

  constructor(
    readonly cell: Cell,
    inputSize: number,
    params: ParameterSet,
    layerIndex: number,
    private readonly kernels: Kernels,
  ) {
    const H = cell.hiddenSize
    this.inputSize = inputSize
    this.hiddenSize = H
    this.stateSize = cell.stateSize
    this.rows = cell.gates * H
    const n = (what: string) => `rnn.${what}_l${layerIndex}`
    this.wIh = params.value(n('weight_ih'))
    this.wHh = params.value(n('weight_hh'))
    this.bIh = params.value(n('bias_ih'))
    this.bHh = params.value(n('bias_hh'))
    this.dWih = params.grad(n('weight_ih'))
    this.dWhh = params.grad(n('weight_hh'))
    this.dBih = params.grad(n('bias_ih'))
    this.dBhh = params.grad(n('bias_hh'))
    const alloc = (n: number) => kernels.alloc(n)
    this.gIh = alloc(this.rows)
    this.gHh = alloc(this.rows)
    this.dGIh = alloc(this.rows)
    this.dGHh = cell.separateHiddenGrad ? alloc(this.rows) : this.dGIh
    this.cand = alloc(this.stateSize)
    this.dCand = alloc(this.stateSize)
    this.xUsed = alloc(inputSize)
    this.hUsed = alloc(H)
    this.dHRec = alloc(H)
    this.dXRaw = alloc(inputSize)
  }

  /**
   * Outputs: stateOut [stateSize] (may alias stateIn), cache [cell.cacheSize].
   * Inputs: x [inputSize] (only the first inputSize entries are read), stateIn [stateSize], masks.
   */
  forward(
    stateOut: FloatArray,
    cache: FloatArray,
    x: FloatArray,
    stateIn: FloatArray,
    masks: LayerMasks | null,
  ): void {
    const I = this.inputSize
    const H = this.hiddenSize
    const xUsed = masks?.x ? multiplyInto(this.xUsed, x, masks.x, I) : x
    const hUsed = masks?.h ? multiplyInto(this.hUsed, stateIn, masks.h, H) : stateIn
    const k = this.kernels
    const gIh = this.gIh
    const gHh = this.gHh
    k.gemvBias(gIh, this.wIh, xUsed, this.bIh, this.rows, I)
    k.gemvBias(gHh, this.wHh, hUsed, this.bHh, this.rows, H)
    const zone = masks?.zone
    if (!zone) {
      k.cellForward(this.cell, stateOut, cache, gIh, gHh, stateIn)
      return
    }
    const cand = this.cand
    k.cellForward(this.cell, cand, cache, gIh, gHh, stateIn)
    for (let k = 0; k < this.stateSize; k++) {
      const m = zone[k]!
      stateOut[k] = m * stateIn[k]! + (1 - m) * cand[k]!
    }
  }

  /**
   * forward (inference, no dropout) for `batch` keys at once, every array batch-minor
   * ([dim, batch], column k = key k; see Kernels.gemmBias). Outputs: stateOut [stateSize, batch],
   * cache [cacheSize, batch], and the scratch gIh, gHh [rows, batch]. Inputs: x [inputSize, batch],
   * stateIn [stateSize, batch], zone (zoneout weights [stateSize]) or null.
   * x may be stateOut (x is read before stateOut is written); stateOut must not alias stateIn
   * when zone is set.
   */
  forwardBatch(
    stateOut: FloatArray,
    cache: FloatArray,
    gIh: FloatArray,
    gHh: FloatArray,
    x: FloatArray,
    stateIn: FloatArray,
    batch: number,
    zone: FloatArray | null,
  ): void {
    const k = this.kernels
    k.gemmBias(gIh, this.wIh, x, this.bIh, this.rows, this.inputSize, batch)
    k.gemmBias(gHh, this.wHh, stateIn, this.bHh, this.rows, this.hiddenSize, batch)
    k.cellForwardBatch(this.cell, stateOut, cache, gIh, gHh, stateIn, batch)
    if (!zone) return
    for (let s = 0, i = 0; s < this.stateSize; s++) {
      const m = zone[s]!
      for (const end = i + batch; i < end; i++) stateOut[i] = m * stateIn[i]! + (1 - m) * stateOut[i]!
    }
  }

  /**
   * Outputs first: dX [inputSize] or null (overwritten with ∂L/∂x), dStateIn [stateSize]
   * (overwritten with ∂L/∂stateIn). Inputs: dStateOut [stateSize] = ∂L/∂stateOut, and x,
   * stateIn, cache, masks as in forward. With `record`, the step's gate gradients and masked
   * inputs go to row `step` of it, for `accumulateWindow` to turn into parameter gradients once
   * the window is done; without (a diagnostic probe that only follows ∂L/∂h back in time), no
   * parameter gradient is taken.
   */
  backward(
    dX: FloatArray | null,
    dStateIn: FloatArray,
    dStateOut: FloatArray,
    x: FloatArray,
    stateIn: FloatArray,
    cache: FloatArray,
    masks: LayerMasks | null,
    record: LayerWindowGrads | null,
    step: number,
  ): void {
    const I = this.inputSize
    const H = this.hiddenSize
    const S = this.stateSize
    const rows = this.rows
    const zone = masks?.zone
    let dCand = dStateOut
    if (zone) {
      dCand = this.dCand
      for (let k = 0; k < S; k++) dCand[k] = dStateOut[k]! * (1 - zone[k]!)
    }
    const dGIh = record ? record.dGIhRows[step]! : this.dGIh
    const dGHh = record ? record.dGHhRows[step]! : this.dGHh
    const k = this.kernels
    k.cellBackward(this.cell, dGIh, dGHh, dStateIn, dCand, cache, stateIn)
    if (zone) for (let k = 0; k < S; k++) dStateIn[k] = dStateIn[k]! + dStateOut[k]! * zone[k]!
    if (record) {
      copyMasked(record.xRows[step]!, x, masks?.x ?? null, I)
      copyMasked(record.hRows[step]!, stateIn, masks?.h ?? null, H)
    }

    if (masks?.h) {
      const dHRec = this.dHRec
      dHRec.fill(0)
      k.gemvTransAcc(dHRec, this.wHh, dGHh, rows, H)
      const mh = masks.h
      for (let k = 0; k < H; k++) dStateIn[k] = dStateIn[k]! + dHRec[k]! * mh[k]!
    } else {
      k.gemvTransAcc(dStateIn, this.wHh, dGHh, rows, H)
    }
    if (dX) {
      if (masks?.x) {
        const dXRaw = this.dXRaw
        dXRaw.fill(0)
        k.gemvTransAcc(dXRaw, this.wIh, dGIh, rows, I)
        const mx = masks.x
        for (let j = 0; j < I; j++) dX[j] = dXRaw[j]! * mx[j]!
      } else {
        dX.fill(0, 0, I)
        k.gemvTransAcc(dX, this.wIh, dGIh, rows, I)
      }
    }
  }

  /**
   * Adds the parameter gradients of the first `steps` rows `backward` recorded: dB += Σ_t dg_t,
   * dW_ih += Σ_t dg_t x̃_tᵀ, dW_hh += Σ_t dg_t h̃_(t−1)ᵀ, one product per matrix.
   */
  accumulateWindow(record: LayerWindowGrads, steps: number): void {
    const k = this.kernels
    const rows = this.rows
    k.sumStepsAcc(this.dBih, record.dGIh, rows, steps)
    k.sumStepsAcc(this.dBhh, record.dGHh, rows, steps)
    k.gerStepsAcc(this.dWih, record.dGIh, record.x, rows, this.inputSize, steps)
    k.gerStepsAcc(this.dWhh, record.dGHh, record.h, rows, this.hiddenSize, steps)
  }
}

/** out[i] = a[i]·mask[i] (or a[i] without a mask) for i < n. */
function copyMasked(out: FloatArray, a: FloatArray, mask: FloatArray | null, n: number): void {
  if (mask) for (let i = 0; i < n; i++) out[i] = a[i]! * mask[i]!
  else for (let i = 0; i < n; i++) out[i] = a[i]!
}

function multiplyInto(out: FloatArray, a: FloatArray, b: FloatArray, n: number): FloatArray {
  for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!
  return out
}
