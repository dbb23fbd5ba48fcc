/**
 * One set of weights every peer loads, laid out exactly as PyTorch's `nn.LSTM` (one layer) followed by
 * `nn.Linear`: gate blocks in the order i, f, g, o; matrices row-major. Each peer converts from this
 * layout itself, so that a wrong conversion shows up as a disagreement with {@link referenceLstmStep}.
 */
export type LstmWeights = {
  readonly inputSize: number
  readonly hiddenSize: number
  readonly outputSize: number
  /** `weight_ih_l0`, shape [4H, I]. */
  readonly wIh: Float32Array
  /** `weight_hh_l0`, shape [4H, H]. */
  readonly wHh: Float32Array
  /** `bias_ih_l0`, shape [4H]. */
  readonly bIh: Float32Array
  /** `bias_hh_l0`, shape [4H]. */
  readonly bHh: Float32Array
  /** Head `weight`, shape [O, H]. */
  readonly headW: Float32Array
  /** Head `bias`, shape [O]. */
  readonly headB: Float32Array
}

/** Mulberry32: a tiny seeded generator, so every peer and every run sees the same weights. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Weights drawn as PyTorch initialises them: every LSTM and head parameter uniform in
 * [-1/sqrt(H), 1/sqrt(H)] (the head's fan-in is H too).
 *
 * @example
 * const w = randomLstmWeights(8, 64, 4, 42)
 */
export function randomLstmWeights(
  inputSize: number,
  hiddenSize: number,
  outputSize: number,
  seed: number,
): LstmWeights {
  const random = seededRandom(seed)
  const bound = 1 / Math.sqrt(hiddenSize)
  const uniform = (n: number): Float32Array => {
    const a = new Float32Array(n)
    for (let i = 0; i < n; i++) a[i] = (random() * 2 - 1) * bound
    return a
  }
  const gates = 4 * hiddenSize
  return {
    inputSize,
    hiddenSize,
    outputSize,
    wIh: uniform(gates * inputSize),
    wHh: uniform(gates * hiddenSize),
    bIh: uniform(gates),
    bHh: uniform(gates),
    headW: uniform(outputSize * hiddenSize),
    headB: uniform(outputSize),
  }
}

/** The weights as a typical hand-written JS model holds them: plain nested arrays of numbers. */
export type PlainLstm = {
  readonly hiddenSize: number
  readonly wIh: number[][]
  readonly wHh: number[][]
  readonly bIh: number[]
  readonly bHh: number[]
  readonly headW: number[][]
  readonly headB: number[]
}

/** The recurrent state of {@link referenceLstmStep}: hidden and cell vectors, replaced each step. */
export type PlainLstmState = { h: number[]; c: number[] }

function rows(flat: Float32Array, rowCount: number, columnCount: number): number[][] {
  const out: number[][] = []
  for (let r = 0; r < rowCount; r++)
    out.push(Array.from(flat.subarray(r * columnCount, (r + 1) * columnCount)))
  return out
}

/** Copies the weights into plain arrays (float64 numbers), once, before stepping. */
export function toPlainLstm(w: LstmWeights): PlainLstm {
  const gates = 4 * w.hiddenSize
  return {
    hiddenSize: w.hiddenSize,
    wIh: rows(w.wIh, gates, w.inputSize),
    wHh: rows(w.wHh, gates, w.hiddenSize),
    bIh: Array.from(w.bIh),
    bHh: Array.from(w.bHh),
    headW: rows(w.headW, w.outputSize, w.hiddenSize),
    headB: Array.from(w.headB),
  }
}

/** A zero state, as PyTorch starts when no (h0, c0) is given. */
export function zeroPlainState(hiddenSize: number): PlainLstmState {
  return { h: new Array(hiddenSize).fill(0), c: new Array(hiddenSize).fill(0) }
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z))

/**
 * One LSTM step plus the linear head, written the straightforward way (the "plain JS loop" baseline):
 * float64 arithmetic, fresh arrays each step, no preallocation. Replaces `state.h` and `state.c`;
 * returns the head output.
 *
 * @example
 * const m = toPlainLstm(randomLstmWeights(2, 8, 1, 1))
 * const state = zeroPlainState(8)
 * const y = referenceLstmStep(m, state, [0.5, -1])
 */
export function referenceLstmStep(m: PlainLstm, state: PlainLstmState, x: ArrayLike<number>): number[] {
  const H = m.hiddenSize
  const gates: number[] = []
  for (let r = 0; r < 4 * H; r++) {
    const wIhRow = m.wIh[r]!
    const wHhRow = m.wHh[r]!
    let sum = m.bIh[r]! + m.bHh[r]!
    for (let k = 0; k < x.length; k++) sum += wIhRow[k]! * x[k]!
    for (let k = 0; k < H; k++) sum += wHhRow[k]! * state.h[k]!
    gates.push(sum)
  }
  const h: number[] = []
  const c: number[] = []
  for (let j = 0; j < H; j++) {
    const i = sigmoid(gates[j]!)
    const f = sigmoid(gates[H + j]!)
    const g = Math.tanh(gates[2 * H + j]!)
    const o = sigmoid(gates[3 * H + j]!)
    c.push(f * state.c[j]! + i * g)
    h.push(o * Math.tanh(c[j]!))
  }
  state.h = h
  state.c = c
  const y: number[] = []
  for (let r = 0; r < m.headW.length; r++) {
    const row = m.headW[r]!
    let sum = m.headB[r]!
    for (let k = 0; k < H; k++) sum += row[k]! * h[k]!
    y.push(sum)
  }
  return y
}
