import type { CellKind } from '../config.js'
import type { FloatArray } from '../dtype.js'

/**
 * The pointwise part of a recurrent cell: everything after the two affine maps
 *   gIh = W_ih·x + b_ih   and   gHh = W_hh·h + b_hh   (both [G·H], computed by the layer),
 * in PyTorch's gate order. Keeping the matrix products out of the cell lets every cell share
 * one set of dense kernels and lets the layer add dropout masks and zoneout around them.
 *
 * State layout per layer: [h] for the RNN and GRU, [h | c] for the LSTM.
 */
export interface Cell {
  readonly kind: CellKind
  /** G: how many H-row gate blocks W_ih and W_hh have. */
  readonly gates: number
  readonly hiddenSize: number
  /** Floats of state per layer: H, or 2H for the LSTM. */
  readonly stateSize: number
  /** Floats a training step keeps for backward. */
  readonly cacheSize: number
  /** True when ∂L/∂gHh differs from ∂L/∂gIh (the GRU, whose r gates W_hn·h + b_hn only). */
  readonly separateHiddenGrad: boolean
  /**
   * Outputs first: cand [stateSize] (the new state), cache [cacheSize] (what backward reads).
   * Inputs: gIh, gHh [G·H], stateIn [stateSize]. cand may alias stateIn.
   */
  forward(cand: FloatArray, cache: FloatArray, gIh: FloatArray, gHh: FloatArray, stateIn: FloatArray): void
  /**
   * Outputs first: dGIh, dGHh [G·H] (overwritten; the same array when !separateHiddenGrad),
   * dStateDirect [stateSize] (overwritten: the part of ∂L/∂stateIn that bypasses W_hh).
   * Inputs: dCand [stateSize] = ∂L/∂cand, cache and stateIn as forward left them.
   */
  backward(
    dGIh: FloatArray,
    dGHh: FloatArray,
    dStateDirect: FloatArray,
    dCand: FloatArray,
    cache: FloatArray,
    stateIn: FloatArray,
  ): void
}
