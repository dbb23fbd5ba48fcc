import type { FloatArray } from './dtype.js'
import type { Kernels } from './kernels.js'
import type { ParameterSet } from './params.js'

/** The linear read-out y = W_hy·h + b_y, as nn.Linear(H, O) named `head`. */
export class LinearHead {
  readonly weight: FloatArray
  readonly bias: FloatArray
  readonly dWeight: FloatArray
  readonly dBias: FloatArray

  constructor(
    params: ParameterSet,
    readonly inputSize: number,
    readonly outputSize: number,
    private readonly kernels: Kernels,
  ) {
    this.weight = params.value('head.weight')
    this.bias = params.value('head.bias')
    this.dWeight = params.grad('head.weight')
    this.dBias = params.grad('head.bias')
  }

  /** y [O] ← W·h + b; h [H] (only the first H entries are read, so an LSTM state [h | c] works as is). */
  forward(y: FloatArray, h: FloatArray): void {
    this.kernels.gemvBias(y, this.weight, h, this.bias, this.outputSize, this.inputSize)
  }

  /** Adds ∂L/∂W, ∂L/∂b into the grads and ∂L/∂h = Wᵀ·dY into dH [H]. */
  backward(dH: FloatArray, dY: FloatArray, h: FloatArray): void {
    const O = this.outputSize
    const dBias = this.dBias
    for (let o = 0; o < O; o++) dBias[o] = dBias[o]! + dY[o]!
    this.kernels.gerAcc(this.dWeight, dY, h, O, this.inputSize)
    this.kernels.gemvTransAcc(dH, this.weight, dY, O, this.inputSize)
  }
}
