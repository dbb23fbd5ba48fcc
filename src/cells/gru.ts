import { sigmoid } from '../linalg.js'
import type { Cell } from './cell.js'

/**
 * GRU as nn.GRU, gates in PyTorch order r, z, n:
 *   r = σ(·), z = σ(·), n = tanh(W_in·x + b_in + r⊙(W_hn·h_prev + b_hn)),  h = (1 − z)⊙n + z⊙h_prev.
 * Note PyTorch puts r inside around (W_hn·h + b_hn), which is why b_hn is not merged with b_in.
 * cache [4H] = r, z, n, W_hn·h_prev + b_hn.
 */
export function gruCell(hiddenSize: number): Cell {
  const H = hiddenSize
  return {
    kind: 'gru',
    gates: 3,
    hiddenSize: H,
    stateSize: H,
    cacheSize: 4 * H,
    separateHiddenGrad: true,
    forward(cand, cache, gIh, gHh, stateIn) {
      for (let k = 0; k < H; k++) {
        const r = sigmoid(gIh[k]! + gHh[k]!)
        const z = sigmoid(gIh[H + k]! + gHh[H + k]!)
        const hn = gHh[2 * H + k]!
        const n = Math.tanh(gIh[2 * H + k]! + r * hn)
        cache[k] = r
        cache[H + k] = z
        cache[2 * H + k] = n
        cache[3 * H + k] = hn
        cand[k] = (1 - z) * n + z * stateIn[k]!
      }
    },
    backward(dGIh, dGHh, dStateDirect, dCand, cache, stateIn) {
      for (let k = 0; k < H; k++) {
        const r = cache[k]!
        const z = cache[H + k]!
        const n = cache[2 * H + k]!
        const hn = cache[3 * H + k]!
        const dh = dCand[k]!
        const dAn = dh * (1 - z) * (1 - n * n)
        const dAr = dAn * hn * r * (1 - r)
        const dAz = dh * (stateIn[k]! - n) * z * (1 - z)
        dGIh[k] = dAr
        dGHh[k] = dAr
        dGIh[H + k] = dAz
        dGHh[H + k] = dAz
        dGIh[2 * H + k] = dAn
        dGHh[2 * H + k] = dAn * r
        dStateDirect[k] = dh * z
      }
    },
  }
}
