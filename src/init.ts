import type { ResolvedModelConfig, WeightInit } from './config.js'
import { gateCount } from './config.js'
import type { FloatArray } from './dtype.js'
import type { ParameterSet } from './params.js'
import { Rng } from './rng.js'

/**
 * Fills every parameter from the config's init schemes and seed. Fans are taken per gate
 * block, so an LSTM's four H×I blocks each get the scale a single H×I layer would.
 *
 * The draw order is fixed (layers in order, W_ih, W_hh, b_ih, b_hh, then the head), so the
 * same config and seed give bit-identical weights.
 */
export function initializeParameters(params: ParameterSet, config: ResolvedModelConfig): void {
  const rng = new Rng(config.seed)
  const H = config.hiddenSize
  const G = gateCount(config.cell)
  const { init } = config
  const pytorchBound = 1 / Math.sqrt(H)
  for (let l = 0; l < config.numLayers; l++) {
    const I = l === 0 ? config.inputSize : H
    const n = (what: string) => `rnn.${what}_l${l}`
    fillMatrixBlocks(params.value(n('weight_ih')), G, H, I, init.input, init.gain, pytorchBound, rng)
    fillMatrixBlocks(params.value(n('weight_hh')), G, H, H, init.recurrent, init.gain, pytorchBound, rng)
    for (const b of [params.value(n('bias_ih')), params.value(n('bias_hh'))]) {
      if (init.bias === 'zeros') b.fill(0)
      else for (let i = 0; i < b.length; i++) b[i] = rng.range(-pytorchBound, pytorchBound)
    }
    if (init.forgetBias !== undefined) {
      // Gate order i, f, g, o: the forget block is rows [H, 2H). The sum b_ih + b_hh is what acts.
      params.value(n('bias_ih')).fill(init.forgetBias, H, 2 * H)
      params.value(n('bias_hh')).fill(0, H, 2 * H)
    }
  }
  const O = config.outputSize
  fillMatrixBlocks(params.value('head.weight'), 1, O, H, init.head, init.gain, pytorchBound, rng)
  const headBias = params.value('head.bias')
  if (init.bias === 'zeros') headBias.fill(0)
  else for (let i = 0; i < O; i++) headBias[i] = rng.range(-pytorchBound, pytorchBound)
}

/** Fills a [blocks·rows, cols] matrix block by block. */
function fillMatrixBlocks(
  w: FloatArray,
  blocks: number,
  rows: number,
  cols: number,
  scheme: WeightInit,
  gain: number,
  pytorchBound: number,
  rng: Rng,
): void {
  for (let b = 0; b < blocks; b++) {
    const block = w.subarray(b * rows * cols, (b + 1) * rows * cols)
    fillMatrix(block, rows, cols, scheme, gain, pytorchBound, rng)
  }
}

function fillMatrix(
  w: FloatArray,
  rows: number,
  cols: number,
  scheme: WeightInit,
  gain: number,
  pytorchBound: number,
  rng: Rng,
): void {
  const uniform = (bound: number) => {
    for (let i = 0; i < w.length; i++) w[i] = rng.range(-bound, bound)
  }
  const normal = (std: number) => {
    for (let i = 0; i < w.length; i++) w[i] = std * rng.normal()
  }
  switch (scheme) {
    case 'pytorch':
      uniform(pytorchBound)
      return
    case 'xavier_uniform':
      uniform(gain * Math.sqrt(6 / (rows + cols)))
      return
    case 'xavier_normal':
      normal(gain * Math.sqrt(2 / (rows + cols)))
      return
    case 'kaiming_uniform':
      uniform(gain * Math.sqrt(6 / cols))
      return
    case 'kaiming_normal':
      normal(gain * Math.sqrt(2 / cols))
      return
    case 'orthogonal':
      orthogonal(w, rows, cols, gain, rng)
      return
    case 'identity':
      w.fill(0)
      for (let i = 0; i < Math.min(rows, cols); i++) w[i * cols + i] = gain
      return
  }
}

/**
 * A (semi-)orthogonal matrix: Gram–Schmidt on a Gaussian matrix, as torch.nn.init.orthogonal_
 * does with QR. Its singular values are all 1, so repeated products neither shrink nor blow up.
 */
export function orthogonal(w: FloatArray, rows: number, cols: number, gain: number, rng: Rng): void {
  // Orthonormalise the longer side's vectors: rows when rows <= cols, columns otherwise.
  const transposed = rows > cols
  const n = transposed ? cols : rows
  const m = transposed ? rows : cols
  const q = new Float64Array(n * m)
  for (let i = 0; i < q.length; i++) q[i] = rng.normal()
  for (let i = 0; i < n; i++) {
    const vi = i * m
    // Two passes of modified Gram–Schmidt keep the result orthogonal to rounding.
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < i; j++) {
        const vj = j * m
        let dot = 0
        for (let k = 0; k < m; k++) dot += q[vi + k]! * q[vj + k]!
        for (let k = 0; k < m; k++) q[vi + k] = q[vi + k]! - dot * q[vj + k]!
      }
    }
    let norm = 0
    for (let k = 0; k < m; k++) norm += q[vi + k]! * q[vi + k]!
    norm = Math.sqrt(norm)
    for (let k = 0; k < m; k++) q[vi + k] = q[vi + k]! / norm
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      w[r * cols + c] = gain * (transposed ? q[c * m + r]! : q[r * m + c]!)
    }
  }
}
