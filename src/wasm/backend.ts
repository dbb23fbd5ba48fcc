import type { Cell } from '../cells/cell.js'
import type { FloatArray } from '../dtype.js'
import { RxrnnError } from '../errors.js'
import type { Kernels } from '../kernels.js'
import { transposeInto } from '../kernels.js'
import { gerStepsAdd, sumStepsAdd } from '../linalg.js'
import { WasmKernels } from './kernels.js'

/** Keys that the batch room of a `StagedWasmKernels` holds by default (see its constructor). */
export const DEFAULT_BATCH_KEYS = 64

/** The largest memory WasmKernels makes (2 GiB). */
const MAX_MEMORY_BYTES = 2 ** 31

/**
 * The WebAssembly SIMD kernels behind the `Kernels` interface. A model's parameters, gradients,
 * optimizer state and scratch live in the kernels' memory (allocated through `alloc`); arrays
 * from outside it (a user's state, a key's TBPTT window) are staged: copied into fixed buffers in
 * the memory before a call and copied back after. Staging moves O(H) floats per call, next to
 * the O(H²) the kernels compute.
 *
 * Batched calls (`gemmBias`, `cellForwardBatch`) run at full speed on arrays from `allocBatch`,
 * which hands out a room of the memory reserved for them at construction; other arrays go
 * through the staging buffers one key at a time (correct, and as slow as one call per key).
 */
export class StagedWasmKernels implements Kernels {
  readonly name = 'wasm' as const
  private readonly k: WasmKernels
  private readonly stageIn: Float32Array[]
  private readonly stageOut: Float32Array[]
  /** The room for `allocBatch`, and how much of it is handed out. */
  private readonly batchRoom: Float32Array
  private batchTop = 0

  /**
   * @param floats floats the model will `alloc` (a generous estimate: past it, `alloc` falls
   *   back to ordinary arrays, which are staged like any outside array)
   * @param maxDim the longest vector a kernel call reads or writes besides the parameters
   * @param batchFloats the room set aside for `allocBatch`; by default 9·maxDim floats per key
   *   for DEFAULT_BATCH_KEYS keys, enough for model.stepBatch's staging (eight arrays of at most
   *   maxDim floats per key). Reserved, not touched: pages no batch ever uses cost no memory.
   */
  constructor(floats: number, maxDim: number, batchFloats = 9 * maxDim * DEFAULT_BATCH_KEYS) {
    const stageCount = 7
    const bytes = WasmKernels.bytesFor([floats, ...Array<number>(stageCount).fill(maxDim)]) + 64 * 1024
    // The room never makes a memory too large that would fit without it: it shrinks instead.
    const room = Math.max(0, Math.min(batchFloats, Math.floor((MAX_MEMORY_BYTES - bytes) / 4) - 4))
    this.k = new WasmKernels(bytes + WasmKernels.bytesFor([room]))
    this.stageIn = Array.from({ length: 4 }, () => this.k.alloc(maxDim))
    this.stageOut = Array.from({ length: 3 }, () => this.k.alloc(maxDim))
    this.batchRoom = this.k.alloc(room, true, false)
  }

  get batchFloatsFree(): number {
    return this.batchRoom.length - this.batchTop
  }

  /**
   * A zeroed view of n floats in the batch room (16-byte aligned), or when the room is full an
   * `alloc`. The room was never written, so it is zero; views never overlap, so it stays so.
   */
  allocBatch(n: number): FloatArray {
    const start = Math.ceil(this.batchTop / 4) * 4
    if (start + n > this.batchRoom.length) return this.alloc(n)
    this.batchTop = start + n
    return this.batchRoom.subarray(start, start + n)
  }

  alloc(n: number): FloatArray {
    return this.k.bytesFree >= 4 * n + 16 ? this.k.alloc(n) : new Float32Array(n)
  }

  /** Whether a view lies in the kernels' memory (cached on the view: its buffer getter is slow). */
  private resident(view: FloatArray): boolean {
    return this.k.offsetOf(view) >= 0
  }

  /** A view that must be resident (parameters): the memory is sized so that they always are. */
  private must(view: FloatArray): Float32Array {
    if (this.resident(view)) return view as Float32Array
    throw new RxrnnError(
      'internal',
      'WebAssembly kernels got parameters outside their memory; please report this',
    )
  }

  /** The view itself when resident, else its first n floats copied into staging buffer `slot`. */
  private in(view: FloatArray, n: number, slot: number): Float32Array {
    if (this.resident(view)) return view as Float32Array
    const stage = this.stageIn[slot]!
    for (let i = 0; i < n; i++) stage[i] = view[i]!
    return stage
  }

  /** Where a kernel writes `view`: itself when resident, else an output staging buffer (pre-filled when `accumulate`). */
  private out(view: FloatArray, n: number, slot: number, accumulate: boolean): Float32Array {
    if (this.resident(view)) return view as Float32Array
    const stage = this.stageOut[slot]!
    if (accumulate) for (let i = 0; i < n; i++) stage[i] = view[i]!
    return stage
  }

  private back(view: FloatArray, stage: Float32Array, n: number): void {
    if (stage === view) return
    for (let i = 0; i < n; i++) view[i] = stage[i]!
  }

  gemvBias(y: FloatArray, w: FloatArray, x: FloatArray, b: FloatArray, rows: number, cols: number): void {
    const yw = this.out(y, rows, 0, false)
    this.k.gemvBias(yw, this.must(w), this.in(x, cols, 1), this.in(b, rows, 2), rows, cols)
    this.back(y, yw, rows)
  }

  gemvAcc(y: FloatArray, w: FloatArray, x: FloatArray, rows: number, cols: number): void {
    const yw = this.out(y, rows, 0, true)
    this.k.gemvAcc(yw, this.must(w), this.in(x, cols, 1), rows, cols)
    this.back(y, yw, rows)
  }

  gemvTransAcc(y: FloatArray, w: FloatArray, v: FloatArray, rows: number, cols: number): void {
    const yw = this.out(y, cols, 0, true)
    this.k.gemvTransAcc(yw, this.must(w), this.in(v, rows, 1), rows, cols)
    this.back(y, yw, cols)
  }

  gerAcc(g: FloatArray, v: FloatArray, x: FloatArray, rows: number, cols: number): void {
    this.k.gerAcc(this.must(g), this.in(v, rows, 1), this.in(x, cols, 2), rows, cols)
  }

  gerStepsAcc(g: FloatArray, v: FloatArray, x: FloatArray, rows: number, cols: number, steps: number): void {
    if (this.resident(v) && this.resident(x)) {
      this.k.gerStepsAcc(this.must(g), v as Float32Array, x as Float32Array, rows, cols, steps)
    } else gerStepsAdd(g, v, x, rows, cols, steps)
  }

  sumStepsAcc(b: FloatArray, v: FloatArray, rows: number, steps: number): void {
    if (this.resident(b) && this.resident(v))
      this.k.sumStepsAcc(b as Float32Array, v as Float32Array, rows, steps)
    else sumStepsAdd(b, v, rows, steps)
  }

  gemmBias(
    y: FloatArray,
    w: FloatArray,
    x: FloatArray,
    b: FloatArray,
    rows: number,
    cols: number,
    batch: number,
  ): void {
    const wr = this.must(w)
    if (this.resident(y) && this.resident(x) && this.resident(b)) {
      this.k.gemmBias(y as Float32Array, wr, x as Float32Array, b as Float32Array, rows, cols, batch)
      return
    }
    // One key at a time through the staging buffers: column k of x in, column k of y out.
    const xs = this.stageIn[1]!
    const ys = this.stageOut[0]!
    const bw = this.in(b, rows, 2)
    for (let k = 0; k < batch; k++) {
      for (let j = 0, i = k; j < cols; j++, i += batch) xs[j] = x[i]!
      this.k.gemvBias(ys, wr, xs, bw, rows, cols)
      for (let r = 0, i = k; r < rows; r++, i += batch) y[i] = ys[r]!
    }
  }

  transpose(y: FloatArray, x: FloatArray, rows: number, cols: number): void {
    if (this.resident(y) && this.resident(x))
      this.k.transpose(y as Float32Array, x as Float32Array, rows, cols)
    else transposeInto(y, x, rows, cols)
  }

  cellForwardBatch(
    cell: Cell,
    cand: FloatArray,
    cache: FloatArray,
    gIh: FloatArray,
    gHh: FloatArray,
    stateIn: FloatArray,
    batch: number,
  ): void {
    if (
      this.resident(cand) &&
      this.resident(cache) &&
      this.resident(gIh) &&
      this.resident(gHh) &&
      this.resident(stateIn)
    ) {
      this.k.cellForwardBatch(
        cell,
        cand as Float32Array,
        cache as Float32Array,
        gIh as Float32Array,
        gHh as Float32Array,
        stateIn as Float32Array,
        batch,
      )
      return
    }
    // One key at a time: gather column k of every input, run the one-key kernel, scatter.
    const S = cell.stateSize
    const C = cell.cacheSize
    const rows = cell.gates * cell.hiddenSize
    const [st, gi, gh] = this.stageIn as [Float32Array, Float32Array, Float32Array]
    const [cd, ch] = this.stageOut as [Float32Array, Float32Array]
    for (let k = 0; k < batch; k++) {
      for (let s = 0, i = k; s < S; s++, i += batch) st[s] = stateIn[i]!
      for (let r = 0, i = k; r < rows; r++, i += batch) {
        gi[r] = gIh[i]!
        gh[r] = gHh[i]!
      }
      this.k.cellForward(cell, cd, ch, gi, gh, st)
      for (let s = 0, i = k; s < S; s++, i += batch) cand[i] = cd[s]!
      for (let c = 0, i = k; c < C; c++, i += batch) cache[i] = ch[c]!
    }
  }

  cellForward(
    cell: Cell,
    cand: FloatArray,
    cache: FloatArray,
    gIh: FloatArray,
    gHh: FloatArray,
    stateIn: FloatArray,
  ): void {
    const S = cell.stateSize
    const stateW = this.in(stateIn, S, 0)
    const candW = this.out(cand, S, 0, false)
    const cacheW = this.out(cache, cell.cacheSize, 1, false)
    const rows = cell.gates * cell.hiddenSize
    this.k.cellForward(cell, candW, cacheW, this.in(gIh, rows, 1), this.in(gHh, rows, 2), stateW)
    this.back(cand, candW, S)
    this.back(cache, cacheW, cell.cacheSize)
  }

  cellBackward(
    cell: Cell,
    dGIh: FloatArray,
    dGHh: FloatArray,
    dStateDirect: FloatArray,
    dCand: FloatArray,
    cache: FloatArray,
    stateIn: FloatArray,
  ): void {
    const S = cell.stateSize
    const rows = cell.gates * cell.hiddenSize
    const dGIhW = this.out(dGIh, rows, 0, false)
    const dGHhW = dGHh === dGIh ? dGIhW : this.out(dGHh, rows, 1, false)
    const dStateW = this.out(dStateDirect, S, 2, false)
    this.k.cellBackward(
      cell,
      dGIhW,
      dGHhW,
      dStateW,
      this.in(dCand, S, 0),
      this.in(cache, cell.cacheSize, 1),
      this.in(stateIn, S, 2),
    )
    this.back(dGIh, dGIhW, rows)
    if (dGHh !== dGIh) this.back(dGHh, dGHhW, rows)
    this.back(dStateDirect, dStateW, S)
  }

  sumSquares(values: FloatArray): number {
    return this.resident(values) ? this.k.sumSquares(values as Float32Array) : jsSumSquares(values)
  }

  scale(values: FloatArray, factor: number): void {
    if (this.resident(values)) this.k.scale(values as Float32Array, factor)
    else for (let i = 0; i < values.length; i++) values[i] = values[i]! * factor
  }

  adam(
    p: FloatArray,
    g: FloatArray,
    m: FloatArray,
    v: FloatArray,
    lrOverBc1: number,
    beta1: number,
    beta2: number,
    eps: number,
    bc2Sqrt: number,
    decay: number,
    l2: number,
  ): boolean {
    if (!(this.resident(p) && this.resident(g) && this.resident(m) && this.resident(v))) return false
    this.k.adam(
      p as Float32Array,
      g as Float32Array,
      m as Float32Array,
      v as Float32Array,
      lrOverBc1,
      beta1,
      beta2,
      eps,
      bc2Sqrt,
      decay,
      l2,
    )
    return true
  }
}

function jsSumSquares(values: FloatArray): number {
  let s = 0
  for (let i = 0; i < values.length; i++) s += values[i]! * values[i]!
  return s
}
