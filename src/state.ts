import type { FloatArray } from './dtype.js'

/**
 * The recurrent state h(t−1) (and c(t−1) for an LSTM) of every layer, carried from one
 * event to the next: one flat buffer, with a view per layer laid out [h] or [h | c].
 */
export class RecurrentState {
  readonly data: FloatArray
  readonly layers: readonly FloatArray[]

  constructor(
    data: FloatArray,
    readonly numLayers: number,
    readonly hiddenSize: number,
  ) {
    this.data = data
    const stateSize = data.length / numLayers
    this.layers = Array.from({ length: numLayers }, (_, l) =>
      data.subarray(l * stateSize, (l + 1) * stateSize),
    )
  }

  /** The hidden state h of a layer (default: the top one), as a live view. */
  hidden(layer = this.numLayers - 1): FloatArray {
    return this.layers[layer]!.subarray(0, this.hiddenSize)
  }

  /** Back to zeros: a sequence boundary. */
  reset(): void {
    this.data.fill(0)
  }

  copyFrom(other: RecurrentState): void {
    this.data.set(other.data)
  }
}
