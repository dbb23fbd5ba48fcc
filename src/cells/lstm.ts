import { sigmoid } from '../linalg.js'
import type { Cell } from './cell.js'

/**
 * LSTM as nn.LSTM, gates in PyTorch order i, f, g, o:
 *   i = σ(·), f = σ(·), g = tanh(·), o = σ(·);  c = f⊙c_prev + i⊙g;  h = o⊙tanh(c).
 * State [h | c]; cache [5H] = i, f, g, o, tanh(c).
 * The additive path c_prev → c (gradient f, no squashing) is what lets gradients survive many steps.
 */
export function lstmCell(hiddenSize: number): Cell {
  const H = hiddenSize
  return {
    kind: 'lstm',
    gates: 4,
    hiddenSize: H,
    stateSize: 2 * H,
    cacheSize: 5 * H,
    separateHiddenGrad: false,
    forward(cand, cache, gIh, gHh, stateIn) {
      for (let k = 0; k < H; k++) {
        const i = sigmoid(gIh[k]! + gHh[k]!)
        const f = sigmoid(gIh[H + k]! + gHh[H + k]!)
        const g = Math.tanh(gIh[2 * H + k]! + gHh[2 * H + k]!)
        const o = sigmoid(gIh[3 * H + k]! + gHh[3 * H + k]!)
        const c = f * stateIn[H + k]! + i * g
        const tc = Math.tanh(c)
        cache[k] = i
        cache[H + k] = f
        cache[2 * H + k] = g
        cache[3 * H + k] = o
        cache[4 * H + k] = tc
        cand[k] = o * tc
        cand[H + k] = c
      }
    },
    backward(dG, _dGHh, dStateDirect, dCand, cache, stateIn) {
      for (let k = 0; k < H; k++) {
        const i = cache[k]!
        const f = cache[H + k]!
        const g = cache[2 * H + k]!
        const o = cache[3 * H + k]!
        const tc = cache[4 * H + k]!
        const dh = dCand[k]!
        const dc = dCand[H + k]! + dh * o * (1 - tc * tc)
        dG[k] = dc * g * i * (1 - i)
        dG[H + k] = dc * stateIn[H + k]! * f * (1 - f)
        dG[2 * H + k] = dc * i * (1 - g * g)
        dG[3 * H + k] = dh * tc * o * (1 - o)
        dStateDirect[k] = 0
        dStateDirect[H + k] = dc * f
      }
    },
  }
}
