import type { Cell } from '../cells/cell.js'
import { RxrnnError } from '../errors.js'
import { KERNELS_WASM_BASE64 } from './kernels.generated.js'

/**
 * The raw exports of the kernel module. Every pointer is a byte offset into the module's memory
 * (4-byte aligned, 16 not needed); sizes are counts of floats. See src/wasm/kernels.wat.
 */
export interface KernelExports {
  /** y = b + W·x, W [rows, cols] row-major. b may equal y. */
  gemv_bias(y: number, w: number, x: number, b: number, rows: number, cols: number): void
  /** y += W·x */
  gemv_acc(y: number, w: number, x: number, rows: number, cols: number): void
  /** y += Wᵀ·v */
  gemv_t_acc(y: number, w: number, v: number, rows: number, cols: number): void
  /** G += v·xᵀ */
  ger_acc(g: number, v: number, x: number, rows: number, cols: number): void
  /** G [rows, cols] += Vᵀ·X, V [steps, rows] and X [steps, cols] step-major. G must not overlap V or X. */
  ger_steps_acc(g: number, v: number, x: number, rows: number, cols: number, steps: number): void
  /** b [rows] += Σ_t V[t, :], V [steps, rows]. */
  sum_steps_acc(b: number, v: number, rows: number, steps: number): void
  /**
   * Y [rows, batch] = b·1ᵀ + W·X, W [rows, cols] row-major, X [cols, batch] and Y [rows, batch]
   * batch-minor (element (j, k) at j·batch + k). Y must not overlap W, X or b.
   */
  gemm_bias(y: number, w: number, x: number, b: number, rows: number, cols: number, batch: number): void
  /** y [cols, rows] = xᵀ, x [rows, cols] row-major. y must not overlap x. */
  transpose(y: number, x: number, rows: number, cols: number): void
  lstm_fwd(cand: number, cache: number, gih: number, ghh: number, stateIn: number, H: number): void
  gru_fwd(cand: number, cache: number, gih: number, ghh: number, stateIn: number, H: number): void
  rnn_tanh_fwd(cand: number, cache: number, gih: number, ghh: number, H: number): void
  rnn_relu_fwd(cand: number, cache: number, gih: number, ghh: number, H: number): void
  lstm_bwd(dg: number, dStateDirect: number, dCand: number, cache: number, stateIn: number, H: number): void
  gru_bwd(
    dgih: number,
    dghh: number,
    dStateDirect: number,
    dCand: number,
    cache: number,
    stateIn: number,
    H: number,
  ): void
  rnn_tanh_bwd(dg: number, dStateDirect: number, dCand: number, cache: number, H: number): void
  rnn_relu_bwd(dg: number, dStateDirect: number, dCand: number, cache: number, H: number): void
  /** y = exp(x) (x clamped to [−87, 88]); y may equal x. */
  vexp(y: number, x: number, n: number): void
  /** y = 1 / (1 + exp(−x)); y may equal x. */
  vsigmoid(y: number, x: number, n: number): void
  /** y = tanh(x); y may equal x. */
  vtanh(y: number, x: number, n: number): void
  /** Σ p², accumulated in float64. */
  sum_squares(p: number, n: number): number
  /** p *= factor (product in float64, rounded once). */
  scale(p: number, n: number, factor: number): void
  adam(
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    lrOverBc1: number,
    beta1: number,
    beta2: number,
    eps: number,
    bc2Sqrt: number,
    decay: number,
    l2: number,
  ): void
}

// The project compiles against lib ES2023 without the DOM, which has no WebAssembly types; these
// are the parts of the JS API used here.

/** A WebAssembly.Memory: `buffer` is its ArrayBuffer. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(deltaPages: number): number
}

/** A compiled WebAssembly.Module (opaque). */
export type WasmModule = object

interface WasmApi {
  validate(bytes: Uint8Array): boolean
  compile(bytes: Uint8Array): Promise<WasmModule>
  Module: new (bytes: Uint8Array) => WasmModule
  Instance: new (
    module: WasmModule,
    imports: Record<string, Record<string, unknown>>,
  ) => { readonly exports: object }
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory
}

const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly

// The smallest module using a v128 instruction: (func (result v128) v128.const i32x4 0 0 0 0).
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11,
])

let simdSupported: boolean | undefined
let compiled: WasmModule | undefined

/**
 * Whether this runtime has WebAssembly with 128-bit SIMD (Node ≥ 16.4, every current browser).
 * Validates a tiny SIMD module once and remembers the answer.
 *
 * @example
 * const kernels = wasmSimdSupported() ? 'wasm' : 'js'
 */
export function wasmSimdSupported(): boolean {
  if (simdSupported === undefined) {
    simdSupported = wasmApi?.validate(SIMD_PROBE) === true
  }
  return simdSupported
}

function kernelBytes(): Uint8Array<ArrayBuffer> {
  const binary = atob(KERNELS_WASM_BASE64)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/**
 * The compiled kernel module, compiled on the first call and cached. Synchronous: fine in Node
 * and in workers; a browser's main thread refuses to compile modules over 4 KB synchronously,
 * so call `precompileKernels()` there first.
 *
 * @example
 * const module = compileKernels()
 */
export function compileKernels(): WasmModule {
  if (!compiled) {
    if (!wasmSimdSupported()) {
      throw new RxrnnError(
        'bad_config',
        'This runtime has no WebAssembly SIMD; use the JS kernels (Node >= 16.4 and current browsers have it)',
      )
    }
    compiled = new wasmApi!.Module(kernelBytes())
  }
  return compiled
}

/**
 * Compiles the kernel module asynchronously and caches it, so that later `compileKernels()` and
 * `new WasmKernels(...)` calls are synchronous and free (needed on a browser's main thread).
 *
 * @example
 * await precompileKernels()
 * const kernels = new WasmKernels(1 << 20)
 */
export async function precompileKernels(): Promise<WasmModule> {
  if (!compiled) {
    if (!wasmSimdSupported()) compileKernels() // throws the explanatory error
    compiled = await wasmApi!.compile(kernelBytes())
  }
  return compiled
}

const PAGE_BYTES = 65536

/** A view carrying its cached byte offset (see WasmKernels.at). */
type Tagged = Record<symbol, number | undefined>

function roundUp16(bytes: number): number {
  return Math.ceil(bytes / 16) * 16
}

/**
 * The WebAssembly SIMD kernels over one memory of a fixed size, with a bump allocator that
 * hands out Float32Array views into it. Every array a kernel reads or writes must be such a
 * view (`alloc`, or a subarray of one); the typed methods check that and pass byte offsets.
 * The memory is never grown, so views stay valid for the life of the object.
 *
 * Float32 only. Kernel outputs must not overlap their inputs, except where a method says so.
 *
 * @example
 * const k = new WasmKernels(WasmKernels.bytesFor([6, 3, 2, 2]))
 * const w = k.alloc(6), x = k.alloc(3), b = k.alloc(2), y = k.alloc(2)
 * w.set([1, 2, 3, 4, 5, 6]); x.set([1, 1, 1]); b.set([0.5, -0.5])
 * k.gemvBias(y, w, x, b, 2, 3) // y = [6.5, 14.5]
 */
export class WasmKernels {
  readonly name = 'wasm' as const
  /** The module's memory: `maximum` equals `initial`, so it never grows (views never detach). */
  readonly memory: WasmMemory
  /** A view of the whole memory. */
  readonly f32: Float32Array<ArrayBuffer>
  /** The exports, for callers that keep byte offsets themselves (no checks at all). */
  readonly raw: KernelExports
  private readonly buffer: ArrayBuffer
  private readonly limit: number
  /** Where `at` caches a checked view's byte offset (see there). */
  private readonly key: symbol = Symbol('rxrnn.wasmKernels.byteOffset')
  private top = 0

  // The exports as fields: one property load per call, no lookups.
  private readonly gemvBiasFn: KernelExports['gemv_bias']
  private readonly gemvAccFn: KernelExports['gemv_acc']
  private readonly gemvTAccFn: KernelExports['gemv_t_acc']
  private readonly gerAccFn: KernelExports['ger_acc']
  private readonly gerStepsAccFn: KernelExports['ger_steps_acc']
  private readonly sumStepsAccFn: KernelExports['sum_steps_acc']
  private readonly gemmBiasFn: KernelExports['gemm_bias']
  private readonly transposeFn: KernelExports['transpose']
  private readonly lstmFwdFn: KernelExports['lstm_fwd']
  private readonly gruFwdFn: KernelExports['gru_fwd']
  private readonly rnnTanhFwdFn: KernelExports['rnn_tanh_fwd']
  private readonly rnnReluFwdFn: KernelExports['rnn_relu_fwd']
  private readonly lstmBwdFn: KernelExports['lstm_bwd']
  private readonly gruBwdFn: KernelExports['gru_bwd']
  private readonly rnnTanhBwdFn: KernelExports['rnn_tanh_bwd']
  private readonly rnnReluBwdFn: KernelExports['rnn_relu_bwd']
  private readonly vexpFn: KernelExports['vexp']
  private readonly vsigmoidFn: KernelExports['vsigmoid']
  private readonly vtanhFn: KernelExports['vtanh']
  private readonly sumSquaresFn: KernelExports['sum_squares']
  private readonly scaleFn: KernelExports['scale']
  private readonly adamFn: KernelExports['adam']

  /**
   * Bytes of memory that `alloc` calls of these float counts need (each rounded up to 16 bytes).
   *
   * @example
   * const bytes = WasmKernels.bytesFor([params.size, params.size, 4 * 64])
   */
  static bytesFor(floatCounts: readonly number[]): number {
    let bytes = 0
    for (const n of floatCounts) bytes += roundUp16(4 * n)
    return bytes
  }

  /**
   * A memory of at least `memoryBytes` (rounded up to whole 64 KiB pages), all free.
   *
   * @example
   * const k = new WasmKernels(1 << 20)
   */
  constructor(memoryBytes: number) {
    if (!Number.isInteger(memoryBytes) || memoryBytes < 0 || memoryBytes > 2 ** 31) {
      throw new RxrnnError(
        'bad_config',
        `WasmKernels memory of ${memoryBytes} bytes: pass an integer number of bytes in [0, 2^31]`,
      )
    }
    const pages = Math.max(1, Math.ceil(memoryBytes / PAGE_BYTES))
    const module = compileKernels()
    this.memory = new wasmApi!.Memory({ initial: pages, maximum: pages })
    const instance = new wasmApi!.Instance(module, { env: { memory: this.memory } })
    const e = instance.exports as unknown as KernelExports
    this.raw = e
    this.buffer = this.memory.buffer
    this.f32 = new Float32Array(this.buffer)
    this.limit = this.buffer.byteLength
    this.gemvBiasFn = e.gemv_bias
    this.gemvAccFn = e.gemv_acc
    this.gemvTAccFn = e.gemv_t_acc
    this.gerAccFn = e.ger_acc
    this.gerStepsAccFn = e.ger_steps_acc
    this.sumStepsAccFn = e.sum_steps_acc
    this.gemmBiasFn = e.gemm_bias
    this.transposeFn = e.transpose
    this.lstmFwdFn = e.lstm_fwd
    this.gruFwdFn = e.gru_fwd
    this.rnnTanhFwdFn = e.rnn_tanh_fwd
    this.rnnReluFwdFn = e.rnn_relu_fwd
    this.lstmBwdFn = e.lstm_bwd
    this.gruBwdFn = e.gru_bwd
    this.rnnTanhBwdFn = e.rnn_tanh_bwd
    this.rnnReluBwdFn = e.rnn_relu_bwd
    this.vexpFn = e.vexp
    this.vsigmoidFn = e.vsigmoid
    this.vtanhFn = e.vtanh
    this.sumSquaresFn = e.sum_squares
    this.scaleFn = e.scale
    this.adamFn = e.adam
  }

  /** Bytes handed out by `alloc` so far (including alignment padding). */
  get bytesUsed(): number {
    return this.top
  }

  /** Bytes still free. */
  get bytesFree(): number {
    return this.limit - this.top
  }

  /**
   * A zeroed view of `n` floats inside the memory, 16-byte aligned unless `align16` is false
   * (then only 4-byte aligned, packed right after the previous allocation). Never freed.
   * Throws RxrnnError('internal') when the memory is full: size it up front with `bytesFor`.
   * `zero: false` skips the fill, for a reservation that may never be used: memory no one has
   * written is zero already, and pages no one touches take no physical memory.
   *
   * @example
   * const h = kernels.alloc(64)
   */
  alloc(n: number, align16 = true, zero = true): Float32Array<ArrayBuffer> {
    if (!Number.isInteger(n) || n < 0) {
      throw new RxrnnError('internal', `WasmKernels.alloc(${n}): pass a whole number of floats`)
    }
    const start = align16 ? roundUp16(this.top) : this.top
    const end = start + 4 * n
    if (end > this.limit) {
      throw new RxrnnError(
        'internal',
        `WasmKernels memory is full: ${n} floats need ${end - this.top} more bytes, ${this.bytesFree} are free ` +
          `of ${this.limit}; size the memory with WasmKernels.bytesFor(...) when creating it`,
      )
    }
    this.top = end
    const view = new Float32Array(this.buffer, start, n)
    if (zero) view.fill(0)
    Object.defineProperty(view, this.key, { value: start })
    return view
  }

  /**
   * The byte offset of a view inside this memory, as the raw kernels take it.
   * Throws RxrnnError('internal') for a view of any other buffer.
   *
   * @example
   * kernels.raw.vtanh(kernels.ptr(h), kernels.ptr(h), h.length)
   */
  ptr(view: Float32Array): number {
    return this.at(view, 0)
  }

  /**
   * ptr(view), after checking that the view holds at least `n` floats. The `buffer` and
   * `byteOffset` getters cost 10–15 ns each on a WebAssembly memory's views (a builtin call, not
   * inlined), several times the price of a small kernel; so the offset, once checked, is cached
   * on the view under this instance's private symbol and the hot path is a property load and a
   * length compare. Views never move (the memory never grows), so the cache cannot go stale, and
   * a view of another instance's memory never carries this instance's symbol.
   */
  private at(view: Float32Array, n: number): number {
    const p = (view as unknown as Tagged)[this.key]
    if (p !== undefined && p >= 0 && view.length >= n) return p
    return this.resolve(view, n)
  }

  /**
   * The byte offset of a view of this memory, −1 for any other array; cached on the view like
   * `at`'s (one symbol for both, so views keep one shape and the lookup stays monomorphic). The
   * staged kernels ask this to tell a resident array from one they must copy in.
   *
   * @example
   * const resident = kernels.offsetOf(h) >= 0
   */
  offsetOf(view: ArrayLike<number>): number {
    const tagged = view as unknown as Tagged
    let p = tagged[this.key]
    if (p === undefined) {
      p = view instanceof Float32Array && view.buffer === this.buffer ? view.byteOffset : -1
      Object.defineProperty(view, this.key, { value: p })
    }
    return p
  }

  private resolve(view: Float32Array, n: number): number {
    const p = this.offsetOf(view)
    if (p < 0) {
      throw new RxrnnError(
        'internal',
        'A WasmKernels call got an array outside its memory: allocate every kernel array with its alloc()',
      )
    }
    if (!(view.length >= n)) {
      throw new RxrnnError(
        'internal',
        `A WasmKernels call got an array of ${view.length} floats where it needs ${n}`,
      )
    }
    return p
  }

  /**
   * y [rows] = b [rows] + W·x, W [rows, cols] row-major, x [cols]. b may be y itself.
   *
   * @example
   * kernels.gemvBias(gIh, wIh, x, bIh, 4 * H, I)
   */
  gemvBias(
    y: Float32Array,
    w: Float32Array,
    x: Float32Array,
    b: Float32Array,
    rows: number,
    cols: number,
  ): void {
    this.gemvBiasFn(this.at(y, rows), this.at(w, rows * cols), this.at(x, cols), this.at(b, rows), rows, cols)
  }

  /**
   * y [rows] += W·x, W [rows, cols], x [cols].
   *
   * @example
   * kernels.gemvAcc(gHh, wHh, h, 4 * H, H)
   */
  gemvAcc(y: Float32Array, w: Float32Array, x: Float32Array, rows: number, cols: number): void {
    this.gemvAccFn(this.at(y, rows), this.at(w, rows * cols), this.at(x, cols), rows, cols)
  }

  /**
   * y [cols] += Wᵀ·v, W [rows, cols], v [rows]. Blocks of 4 rows with v = 0 are skipped.
   *
   * @example
   * kernels.gemvTransAcc(dH, wHh, dGHh, 4 * H, H)
   */
  gemvTransAcc(y: Float32Array, w: Float32Array, v: Float32Array, rows: number, cols: number): void {
    this.gemvTAccFn(this.at(y, cols), this.at(w, rows * cols), this.at(v, rows), rows, cols)
  }

  /**
   * G [rows, cols] += v·xᵀ, v [rows], x [cols]. Rows with v = 0 are skipped.
   *
   * @example
   * kernels.gerAcc(dWhh, dGHh, hPrev, 4 * H, H)
   */
  gerAcc(g: Float32Array, v: Float32Array, x: Float32Array, rows: number, cols: number): void {
    this.gerAccFn(this.at(g, rows * cols), this.at(v, rows), this.at(x, cols), rows, cols)
  }

  /**
   * G [rows, cols] += Vᵀ·X = Σ_t V[t, :]ᵀ X[t, :] over `steps` time steps, V [steps, rows] and
   * X [steps, cols] step-major: a truncation window's weight gradient in one pass over G (blocks
   * of 4 × 8 of G held in registers across the steps) instead of a gerAcc per step. Each element
   * sums in step order. G must not overlap V or X.
   *
   * @example
   * kernels.gerStepsAcc(dWhh, dGatesPerStep, hPrevPerStep, 4 * H, H, 16)
   */
  gerStepsAcc(
    g: Float32Array,
    v: Float32Array,
    x: Float32Array,
    rows: number,
    cols: number,
    steps: number,
  ): void {
    this.gerStepsAccFn(
      this.at(g, rows * cols),
      this.at(v, rows * steps),
      this.at(x, cols * steps),
      rows,
      cols,
      steps,
    )
  }

  /**
   * b [rows] += Σ_t V[t, :] over `steps` rows of V [steps, rows] (a window's bias gradient),
   * summed in step order.
   *
   * @example
   * kernels.sumStepsAcc(dBhh, dGatesPerStep, 4 * H, 16)
   */
  sumStepsAcc(b: Float32Array, v: Float32Array, rows: number, steps: number): void {
    this.sumStepsAccFn(this.at(b, rows), this.at(v, rows * steps), rows, steps)
  }

  /**
   * Y [rows, batch] = b·1ᵀ + W·X for `batch` keys at once: W [rows, cols] row-major, b [rows];
   * X [cols, batch] and Y [rows, batch] batch-minor (element (j, k) at j·batch + k: column k is
   * key k's vector). Each W entry loaded serves 8 keys. Column k equals gemvBias on column k to
   * float32 rounding (the sum runs in column order, bias first), and does not depend on `batch`
   * or on k. Y must not overlap W, X or b.
   *
   * @example
   * kernels.gemmBias(gIh, wIh, xs, bIh, 4 * H, I, 64) // 64 keys' gates in one call
   */
  gemmBias(
    y: Float32Array,
    w: Float32Array,
    x: Float32Array,
    b: Float32Array,
    rows: number,
    cols: number,
    batch: number,
  ): void {
    this.gemmBiasFn(
      this.at(y, rows * batch),
      this.at(w, rows * cols),
      this.at(x, cols * batch),
      this.at(b, rows),
      rows,
      cols,
      batch,
    )
  }

  /**
   * y [cols, rows] = xᵀ for x [rows, cols] row-major (4×4 blocks in registers). y must not
   * overlap x.
   *
   * @example
   * kernels.transpose(batchMinor, keyMajor, keys, stateSize) // [keys, S] → [S, keys]
   */
  transpose(y: Float32Array, x: Float32Array, rows: number, cols: number): void {
    this.transposeFn(this.at(y, rows * cols), this.at(x, rows * cols), rows, cols)
  }

  /**
   * LSTM pointwise forward, as lstmCell(H).forward: cand [2H] = [h | c], cache [5H] =
   * [i f g o tanh(c)], from gIh, gHh [4H] and stateIn [2H]. cand may be stateIn.
   *
   * @example
   * kernels.lstmForward(state, cache, gIh, gHh, state, 64)
   */
  lstmForward(
    cand: Float32Array,
    cache: Float32Array,
    gIh: Float32Array,
    gHh: Float32Array,
    stateIn: Float32Array,
    H: number,
  ): void {
    this.lstmFwdFn(
      this.at(cand, 2 * H),
      this.at(cache, 5 * H),
      this.at(gIh, 4 * H),
      this.at(gHh, 4 * H),
      this.at(stateIn, 2 * H),
      H,
    )
  }

  /**
   * GRU pointwise forward, as gruCell(H).forward: cand [H], cache [4H] = [r z n hn], from
   * gIh, gHh [3H] and stateIn [H]. cand may be stateIn.
   *
   * @example
   * kernels.gruForward(state, cache, gIh, gHh, state, 64)
   */
  gruForward(
    cand: Float32Array,
    cache: Float32Array,
    gIh: Float32Array,
    gHh: Float32Array,
    stateIn: Float32Array,
    H: number,
  ): void {
    this.gruFwdFn(
      this.at(cand, H),
      this.at(cache, 4 * H),
      this.at(gIh, 3 * H),
      this.at(gHh, 3 * H),
      this.at(stateIn, H),
      H,
    )
  }

  /**
   * Elman tanh forward: cand [H] = cache [H] = tanh(gIh + gHh).
   *
   * @example
   * kernels.rnnTanhForward(state, cache, gIh, gHh, 64)
   */
  rnnTanhForward(
    cand: Float32Array,
    cache: Float32Array,
    gIh: Float32Array,
    gHh: Float32Array,
    H: number,
  ): void {
    this.rnnTanhFwdFn(this.at(cand, H), this.at(cache, H), this.at(gIh, H), this.at(gHh, H), H)
  }

  /**
   * Elman ReLU forward: cand [H] = cache [H] = max(gIh + gHh, 0).
   *
   * @example
   * kernels.rnnReluForward(state, cache, gIh, gHh, 64)
   */
  rnnReluForward(
    cand: Float32Array,
    cache: Float32Array,
    gIh: Float32Array,
    gHh: Float32Array,
    H: number,
  ): void {
    this.rnnReluFwdFn(this.at(cand, H), this.at(cache, H), this.at(gIh, H), this.at(gHh, H), H)
  }

  /**
   * LSTM pointwise backward, as lstmCell(H).backward: overwrites dG [4H] and dStateDirect [2H]
   * from dCand [2H], cache [5H] and stateIn [2H].
   *
   * @example
   * kernels.lstmBackward(dG, dState, dCand, cache, stateIn, 64)
   */
  lstmBackward(
    dG: Float32Array,
    dStateDirect: Float32Array,
    dCand: Float32Array,
    cache: Float32Array,
    stateIn: Float32Array,
    H: number,
  ): void {
    this.lstmBwdFn(
      this.at(dG, 4 * H),
      this.at(dStateDirect, 2 * H),
      this.at(dCand, 2 * H),
      this.at(cache, 5 * H),
      this.at(stateIn, 2 * H),
      H,
    )
  }

  /**
   * GRU pointwise backward, as gruCell(H).backward: overwrites dGIh, dGHh [3H] and
   * dStateDirect [H] from dCand [H], cache [4H] and stateIn [H].
   *
   * @example
   * kernels.gruBackward(dGIh, dGHh, dState, dCand, cache, stateIn, 64)
   */
  gruBackward(
    dGIh: Float32Array,
    dGHh: Float32Array,
    dStateDirect: Float32Array,
    dCand: Float32Array,
    cache: Float32Array,
    stateIn: Float32Array,
    H: number,
  ): void {
    this.gruBwdFn(
      this.at(dGIh, 3 * H),
      this.at(dGHh, 3 * H),
      this.at(dStateDirect, H),
      this.at(dCand, H),
      this.at(cache, 4 * H),
      this.at(stateIn, H),
      H,
    )
  }

  /**
   * Elman tanh backward: dG [H] = dCand·(1 − h²), dStateDirect [H] = 0; cache [H] = h.
   *
   * @example
   * kernels.rnnTanhBackward(dG, dState, dCand, cache, 64)
   */
  rnnTanhBackward(
    dG: Float32Array,
    dStateDirect: Float32Array,
    dCand: Float32Array,
    cache: Float32Array,
    H: number,
  ): void {
    this.rnnTanhBwdFn(this.at(dG, H), this.at(dStateDirect, H), this.at(dCand, H), this.at(cache, H), H)
  }

  /**
   * Elman ReLU backward: dG [H] = h > 0 ? dCand : 0, dStateDirect [H] = 0; cache [H] = h.
   *
   * @example
   * kernels.rnnReluBackward(dG, dState, dCand, cache, 64)
   */
  rnnReluBackward(
    dG: Float32Array,
    dStateDirect: Float32Array,
    dCand: Float32Array,
    cache: Float32Array,
    H: number,
  ): void {
    this.rnnReluBwdFn(this.at(dG, H), this.at(dStateDirect, H), this.at(dCand, H), this.at(cache, H), H)
  }

  /**
   * A cell's pointwise forward, as `cell.forward` (dispatches on `cell.kind`).
   *
   * @example
   * kernels.cellForward(lstmCell(64), state, cache, gIh, gHh, state)
   */
  cellForward(
    cell: Cell,
    cand: Float32Array,
    cache: Float32Array,
    gIh: Float32Array,
    gHh: Float32Array,
    stateIn: Float32Array,
  ): void {
    this.cellForwardBatch(cell, cand, cache, gIh, gHh, stateIn, 1)
  }

  /**
   * A cell's pointwise forward for `batch` keys at once, every array batch-minor ([dim, batch]:
   * cand and stateIn [stateSize, batch], cache [cacheSize, batch], gIh and gHh [G·H, batch]).
   * The pointwise math is elementwise within each gate block, and in that layout a gate block of
   * all keys is H·batch consecutive floats: so this is the one-key kernel with H·batch for H,
   * and column k equals cellForward on column k exactly. cand may be stateIn.
   *
   * @example
   * kernels.cellForwardBatch(lstmCell(64), states, cache, gIh, gHh, states, 32)
   */
  cellForwardBatch(
    cell: Cell,
    cand: Float32Array,
    cache: Float32Array,
    gIh: Float32Array,
    gHh: Float32Array,
    stateIn: Float32Array,
    batch: number,
  ): void {
    const H = cell.hiddenSize * batch
    switch (cell.kind) {
      case 'lstm':
        this.lstmForward(cand, cache, gIh, gHh, stateIn, H)
        return
      case 'gru':
        this.gruForward(cand, cache, gIh, gHh, stateIn, H)
        return
      case 'rnn_tanh':
        this.rnnTanhForward(cand, cache, gIh, gHh, H)
        return
      case 'rnn_relu':
        this.rnnReluForward(cand, cache, gIh, gHh, H)
        return
    }
  }

  /**
   * A cell's pointwise backward, as `cell.backward` (dGHh is only written for the GRU; the other
   * cells have dGHh = dGIh).
   *
   * @example
   * kernels.cellBackward(lstmCell(64), dG, dG, dState, dCand, cache, stateIn)
   */
  cellBackward(
    cell: Cell,
    dGIh: Float32Array,
    dGHh: Float32Array,
    dStateDirect: Float32Array,
    dCand: Float32Array,
    cache: Float32Array,
    stateIn: Float32Array,
  ): void {
    const H = cell.hiddenSize
    switch (cell.kind) {
      case 'lstm':
        this.lstmBackward(dGIh, dStateDirect, dCand, cache, stateIn, H)
        return
      case 'gru':
        this.gruBackward(dGIh, dGHh, dStateDirect, dCand, cache, stateIn, H)
        return
      case 'rnn_tanh':
        this.rnnTanhBackward(dGIh, dStateDirect, dCand, cache, H)
        return
      case 'rnn_relu':
        this.rnnReluBackward(dGIh, dStateDirect, dCand, cache, H)
        return
    }
  }

  /**
   * y = exp(x) elementwise over x.length (x clamped to [−87, 88]); y may be x.
   *
   * @example
   * kernels.exp(v, v)
   */
  exp(y: Float32Array, x: Float32Array): void {
    this.vexpFn(this.at(y, x.length), this.at(x, 0), x.length)
  }

  /**
   * y = 1 / (1 + exp(−x)) elementwise over x.length (abs. error ≤ 2e-7); y may be x.
   *
   * @example
   * kernels.sigmoid(v, v)
   */
  sigmoid(y: Float32Array, x: Float32Array): void {
    this.vsigmoidFn(this.at(y, x.length), this.at(x, 0), x.length)
  }

  /**
   * y = tanh(x) elementwise over x.length (abs. error ≤ 2e-7); y may be x.
   *
   * @example
   * kernels.tanh(v, v)
   */
  tanh(y: Float32Array, x: Float32Array): void {
    this.vtanhFn(this.at(y, x.length), this.at(x, 0), x.length)
  }

  /**
   * Σ p[i]² over the whole view, in float64 (each square exact): globalNorm(p)² for clipping.
   *
   * @example
   * const norm = Math.sqrt(kernels.sumSquares(grads))
   */
  sumSquares(p: Float32Array): number {
    return this.sumSquaresFn(this.at(p, 0), p.length)
  }

  /**
   * p[i] *= factor over the whole view, bit for bit as `p[i] = p[i] * factor` in JS.
   *
   * @example
   * kernels.scale(grads, maxNorm / (norm + 1e-6))
   */
  scale(p: Float32Array, factor: number): void {
    this.scaleFn(this.at(p, 0), p.length, factor)
  }

  /**
   * One Adam (decay = 1, l2 = weightDecay) or AdamW (decay = 1 − lr·weightDecay, l2 = 0) step
   * over p, g, m, v (all of p.length), as the adam optimizer of src/optimizers.ts:
   * p ← p·decay; g' = g + l2·p; m ← β1·m + (1 − β1)·g'; v ← β2·v + (1 − β2)·g'²;
   * p ← p − lrOverBc1·m / (√v / bc2Sqrt + eps), in float32 arithmetic.
   *
   * @example
   * const t = ++steps
   * kernels.adam(p, g, m, v, lr / (1 - b1 ** t), b1, b2, 1e-8, Math.sqrt(1 - b2 ** t), 1, 0)
   */
  adam(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    lrOverBc1: number,
    beta1: number,
    beta2: number,
    eps: number,
    bc2Sqrt: number,
    decay: number,
    l2: number,
  ): void {
    const n = p.length
    this.adamFn(
      this.at(p, n),
      this.at(g, n),
      this.at(m, n),
      this.at(v, n),
      n,
      lrOverBc1,
      beta1,
      beta2,
      eps,
      bc2Sqrt,
      decay,
      l2,
    )
  }
}
