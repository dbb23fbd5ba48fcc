import type { FloatArray } from '../dtype.js'
import type { Cell } from './cell.js'

/**
 * Elman RNN as nn.RNN: h = act(W_ih·x + b_ih + W_hh·h_prev + b_hh), act = tanh or ReLU.
 * cache [H] = h (both derivatives are functions of the output).
 */
export function rnnCell(hiddenSize: number, activation: 'tanh' | 'relu'): Cell {
  const H = hiddenSize
  const relu = activation === 'relu'
  return {
    kind: relu ? 'rnn_relu' : 'rnn_tanh',
    gates: 1,
    hiddenSize: H,
    stateSize: H,
    cacheSize: H,
    separateHiddenGrad: false,
    forward(cand, cache, gIh, gHh) {
      for (let k = 0; k < H; k++) {
        const pre = gIh[k]! + gHh[k]!
        const h = relu ? Math.max(pre, 0) : Math.tanh(pre)
        cand[k] = h
        cache[k] = h
      }
    },
    backward(dGIh: FloatArray, _dGHh, dStateDirect, dCand, cache) {
      for (let k = 0; k < H; k++) {
        const h = cache[k]!
        dGIh[k] = relu ? (h > 0 ? dCand[k]! : 0) : dCand[k]! * (1 - h * h)
        dStateDirect[k] = 0
      }
    },
  }
}
