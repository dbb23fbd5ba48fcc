import type { Cell } from './cells/cell.js'
import { createCell } from './cells/index.js'
import type { ModelConfig, ResolvedModelConfig } from './config.js'
import { gateCount, resolveModelConfig } from './config.js'
import type { FloatArray } from './dtype.js'
import { arrayTypeOf } from './dtype.js'
import { RxrnnError } from './errors.js'
import { LinearHead } from './head.js'
import { initializeParameters } from './init.js'
import type { Kernels } from './kernels.js'
import { jsKernels } from './kernels.js'
import type { LayerMasks } from './layer.js'
import { RecurrentLayer } from './layer.js'
import { ParameterSet } from './params.js'
import { readSafetensors, writeSafetensors } from './safetensors.js'
import { forwardStack } from './stack.js'
import { RecurrentState } from './state.js'
import { copyFiniteVector } from './validate.js'
import { StagedWasmKernels } from './wasm/backend.js'
import { wasmSimdSupported } from './wasm/kernels.js'

/**
 * A stack of recurrent layers with a linear head, weights laid out and named as the
 * state_dict of a PyTorch module `{ rnn: nn.LSTM | nn.GRU | nn.RNN, head: nn.Linear }`.
 *
 * @example
 * const model = createModel({ cell: 'gru', inputSize: 3, hiddenSize: 16, outputSize: 1, seed: 1 })
 * const state = model.initialState()
 * for (const x of [[1, 2, 3], [2, 3, 4]]) console.log(model.step(x, state)[0])
 */
/** How a model computes; results agree to float32 rounding whichever is used. */
export interface ModelOptions {
  /**
   * 'wasm': WebAssembly SIMD kernels (float32 only); 'js': portable TypeScript loops;
   * 'auto' (default): wasm for float32 models where the runtime supports SIMD, else js.
   */
  backend?: 'auto' | 'wasm' | 'js'
}

export class Model {
  readonly config: ResolvedModelConfig
  /** The kernels and memory this model computes with. */
  readonly kernels: Kernels
  readonly params: ParameterSet
  readonly cell: Cell
  readonly layers: readonly RecurrentLayer[]
  readonly head: LinearHead
  /** Floats of state per layer: H, or 2H for the LSTM ([h | c]). */
  readonly stateSize: number
  private readonly input: FloatArray
  private readonly output: FloatArray
  private readonly inferenceMasks: LayerMasks | null
  /** Per layer: the inference masks (zoneout's expectation), or null. */
  private readonly stepMasks: readonly (LayerMasks | null)[] | null
  /** Inference needs no backward, so one cache serves every layer and step. */
  private readonly stepCaches: readonly FloatArray[]
  /** stepBatch's staging, made on its first call. */
  private batchWork: BatchWorkspace | null = null
  /** stepBatch's check that no state comes twice (reused: the hot path allocates nothing). */
  private readonly batchSeen = new Set<RecurrentState>()

  constructor(config: ModelConfig, options: ModelOptions = {}) {
    const c = resolveModelConfig(config)
    this.config = c
    this.kernels = selectKernels(c, options.backend ?? 'auto')
    const alloc = (n: number) => this.kernels.alloc(n)
    const H = c.hiddenSize
    const G = gateCount(c.cell)
    const shapes: [string, number[]][] = []
    for (let l = 0; l < c.numLayers; l++) {
      const I = l === 0 ? c.inputSize : H
      shapes.push([`rnn.weight_ih_l${l}`, [G * H, I]], [`rnn.weight_hh_l${l}`, [G * H, H]])
      shapes.push([`rnn.bias_ih_l${l}`, [G * H]], [`rnn.bias_hh_l${l}`, [G * H]])
    }
    shapes.push(['head.weight', [c.outputSize, H]], ['head.bias', [c.outputSize]])
    this.params = new ParameterSet(alloc, shapes)
    this.cell = createCell(c.cell, H)
    this.stateSize = this.cell.stateSize
    this.layers = Array.from(
      { length: c.numLayers },
      (_, l) => new RecurrentLayer(this.cell, l === 0 ? c.inputSize : H, this.params, l, this.kernels),
    )
    this.head = new LinearHead(this.params, H, c.outputSize, this.kernels)
    this.input = alloc(c.inputSize)
    this.output = alloc(c.outputSize)
    const cache = alloc(this.cell.cacheSize)
    this.stepCaches = this.layers.map(() => cache)
    this.inferenceMasks =
      c.zoneout > 0 ? { x: null, h: null, zone: alloc(this.stateSize).fill(c.zoneout) } : null
    this.stepMasks = this.inferenceMasks ? this.layers.map(() => this.inferenceMasks) : null
    initializeParameters(this.params, c)
  }

  get dtype(): ResolvedModelConfig['dtype'] {
    return this.config.dtype
  }

  /** A zero state for a new sequence (or a new key of a keyed stream). */
  initialState(): RecurrentState {
    const ArrayType = arrayTypeOf(this.config.dtype)
    return new RecurrentState(
      new ArrayType(this.config.numLayers * this.stateSize),
      this.config.numLayers,
      this.config.hiddenSize,
    )
  }

  /**
   * One time step: reads x_t, advances `state` from h(t−1) to h(t) in place and returns y_t.
   *
   * The returned array is the model's own output buffer, overwritten by the next `step` on this
   * model: copy it (`Float32Array.from(y)`) if you keep it. Allocates nothing.
   * Throws RxrnnError('bad_input') for a wrong length or a non-finite value, before touching `state`.
   */
  step(x: ArrayLike<number>, state: RecurrentState): FloatArray {
    copyFiniteVector(this.input, x, 'x', 'bad_input', 'inputSize')
    return this.stepValidated(this.input, state)
  }

  /** `step` for an input already checked and in the model's float type. */
  stepValidated(x: FloatArray, state: RecurrentState): FloatArray {
    const top = forwardStack(this.layers, state.layers, this.stepCaches, x, state.layers, this.stepMasks)
    this.head.forward(this.output, top)
    return this.output
  }

  /**
   * One time step for `batch` independent sequences (keys) at once, each with its own state,
   * all through these weights: row k of `xs` [batch, inputSize] advances `states[k]` in place and
   * its output goes to row k of `out` [batch, outputSize]. The same results as `step(xs row k,
   * states[k])` for each k (bit for bit on the JS kernels, to float32 rounding on WebAssembly),
   * for less work per key: the keys' vectors go through each weight matrix in one
   * matrix–matrix product (Kernels.gemmBias), so every weight loaded serves many keys.
   *
   * States are gathered into a staging block, stepped, and scattered back; batches larger than
   * that block (up to 256 keys, fewer on WebAssembly, whose memory is fixed at creation) run in
   * chunks of equal size. Fewer than 8 keys are stepped one by one (a product that narrow wastes
   * most of a SIMD vector). Allocates nothing after its first call (and after the largest batch,
   * on JS).
   *
   * Throws RxrnnError('bad_input') before touching any state when a size is wrong, a value of
   * `xs` is not finite (or out of float32 range on a float32 model), a state is not shaped for
   * this model, or one state comes twice (a key can step once per batch: step it again in the
   * next batch).
   *
   * @example
   * const states = ['a', 'b', 'c'].map(() => model.initialState())
   * const xs = new Float32Array(3 * model.config.inputSize) // row k: key k's input
   * const ys = new Float32Array(3 * model.config.outputSize)
   * model.stepBatch(xs, states, ys, 3) // ys row k = model.step(row k, states[k]), for each k
   */
  stepBatch(xs: FloatArray, states: readonly RecurrentState[], out: FloatArray, batch: number): void {
    this.checkBatch(xs, states, out, batch)
    this.stepBatchValidated(xs, states, out, batch)
  }

  /**
   * `stepBatch` for a batch already checked: sizes right, every value of `xs` finite (within
   * float32 range for a float32 model), the states this model's and all different. Checks
   * nothing: what operators that validate each event as it arrives call.
   *
   * @example
   * model.stepBatchValidated(xs, states, ys, states.length)
   */
  stepBatchValidated(
    xs: FloatArray,
    states: readonly RecurrentState[],
    out: FloatArray,
    batch: number,
  ): void {
    const work = batch < MIN_BATCH_CHUNK ? null : this.batchWorkspace(batch)
    // (A staging block under 8 keys: a WebAssembly memory that had no room left for one.)
    if (!work || work.capacity < MIN_BATCH_CHUNK) {
      this.stepEach(xs, states, out, 0, batch)
      return
    }
    const chunks = Math.ceil(batch / work.capacity)
    for (let c = 0, k0 = 0; c < chunks; c++) {
      const n = Math.ceil((batch - k0) / (chunks - c))
      this.stepChunk(work, xs, states, out, k0, n)
      k0 += n
    }
  }

  /** Keys `k0 .. k0 + n − 1` of a stepBatch, one `stepValidated` each. */
  private stepEach(
    xs: FloatArray,
    states: readonly RecurrentState[],
    out: FloatArray,
    k0: number,
    n: number,
  ): void {
    const I = this.config.inputSize
    const O = this.config.outputSize
    const x = this.input
    for (let k = k0; k < k0 + n; k++) {
      for (let j = 0; j < I; j++) x[j] = xs[k * I + j]!
      const y = this.stepValidated(x, states[k]!)
      for (let o = 0; o < O; o++) out[k * O + o] = y[o]!
    }
  }

  /** Keys `k0 .. k0 + n − 1` of a stepBatch, n ≤ the workspace's capacity. */
  private stepChunk(
    work: BatchWorkspace,
    xs: FloatArray,
    states: readonly RecurrentState[],
    out: FloatArray,
    k0: number,
    n: number,
  ): void {
    const I = this.config.inputSize
    const O = this.config.outputSize
    const S = this.stateSize
    const x = work.x
    for (let b = 0; b < n; b++) {
      for (let j = 0, src = (k0 + b) * I, i = b; j < I; j++, i += n) x[i] = xs[src + j]!
    }
    const zone = this.inferenceMasks?.zone ?? null
    const k = this.kernels
    const { stateIn, stateOut, keyRows, keyRowViews } = work
    let input = x
    for (let l = 0; l < this.layers.length; l++) {
      // Each key's state copied whole (a memcpy) into row b of keyRows, then turned batch-minor
      // in one kernel call: several times faster than copying float by float into a column.
      for (let b = 0; b < n; b++) keyRows.set(states[k0 + b]!.layers[l]!, b * S)
      k.transpose(stateIn, keyRows, n, S)
      this.layers[l]!.forwardBatch(stateOut, work.cache, work.gIh, work.gHh, input, stateIn, n, zone)
      k.transpose(keyRows, stateOut, S, n)
      for (let b = 0; b < n; b++) states[k0 + b]!.layers[l]!.set(keyRowViews[b]!)
      input = stateOut
    }
    const y = work.y
    this.kernels.gemmBias(y, this.head.weight, input, this.head.bias, O, this.config.hiddenSize, n)
    for (let b = 0; b < n; b++) {
      for (let o = 0, dst = (k0 + b) * O, i = b; o < O; o++, i += n) out[dst + o] = y[i]!
    }
  }

  private checkBatch(
    xs: FloatArray,
    states: readonly RecurrentState[],
    out: FloatArray,
    batch: number,
  ): void {
    const c = this.config
    const I = c.inputSize
    const problems: string[] = []
    if (!Number.isInteger(batch) || batch < 0) {
      throw new RxrnnError(
        'bad_input',
        `stepBatch: batch is ${batch}; pass the number of keys (an integer >= 0)`,
      )
    }
    if (xs.length < batch * I)
      problems.push(`xs has ${xs.length} values; ${batch} keys × inputSize ${I} need ${batch * I}`)
    if (out.length < batch * c.outputSize)
      problems.push(
        `out has ${out.length} values; ${batch} keys × outputSize ${c.outputSize} need ${batch * c.outputSize}`,
      )
    if (states.length < batch) problems.push(`states has ${states.length} states for ${batch} keys`)
    const size = c.numLayers * this.stateSize
    const seen = this.batchSeen
    for (let k = 0; k < Math.min(batch, states.length); k++) {
      const s = states[k]
      if (!(s instanceof RecurrentState) || s.data.length !== size || s.layers.length !== c.numLayers) {
        problems.push(
          `states[${k}] is not a state of this model (${this.describe()}): use model.initialState()`,
        )
      } else if (seen.has(s)) {
        problems.push(`states[${k}] comes twice in one batch: step a key once per batch`)
      } else seen.add(s)
    }
    seen.clear()
    if (problems.length === 0) {
      const float32 = c.dtype === 'float32' && !(xs instanceof Float32Array)
      for (let i = 0; i < batch * I; i++) {
        const v = xs[i]!
        if (!Number.isFinite(v) || (float32 && !Number.isFinite(Math.fround(v)))) {
          const k = Math.floor(i / I)
          problems.push(
            `xs[${i}] (key ${k}, x[${i - k * I}]) is ${v}; values must be finite${float32 ? ' and within float32 range' : ''}`,
          )
          break
        }
      }
    }
    if (problems.length === 1) throw new RxrnnError('bad_input', `stepBatch: ${problems[0]}`)
    if (problems.length > 1) throw new RxrnnError('bad_input', 'stepBatch refused the batch', problems)
  }

  /**
   * The staging for a chunk of up to `wanted` keys. The JS kernels' staging grows with the batch
   * (up to MAX_BATCH_CHUNK keys); WebAssembly's is made once, as large as the room its fixed
   * memory set aside for batches allows (at most MAX_BATCH_CHUNK).
   */
  private batchWorkspace(wanted: number): BatchWorkspace {
    const current = this.batchWork
    const k = this.kernels
    const bounded = Number.isFinite(k.batchFloatsFree)
    if (current && (bounded || current.capacity >= Math.min(wanted, MAX_BATCH_CHUNK))) return current
    const c = this.config
    const rows = this.cell.gates * c.hiddenSize
    const S = this.stateSize
    const C = this.cell.cacheSize
    const perKey = c.inputSize + 3 * S + 2 * rows + C + c.outputSize
    let capacity: number
    if (bounded) {
      // 8 arrays, each rounded up to 16 bytes (3 floats at most).
      const fits = Math.floor((k.batchFloatsFree - 8 * 3) / perKey)
      capacity = Math.max(1, Math.min(MAX_BATCH_CHUNK, fits >= 8 ? fits - (fits % 8) : fits))
    } else capacity = Math.min(MAX_BATCH_CHUNK, Math.max(8, Math.ceil(wanted / 8) * 8))
    const alloc = (n: number) => k.allocBatch(n * capacity)
    const keyRows = alloc(S)
    const work: BatchWorkspace = {
      capacity,
      x: alloc(c.inputSize),
      keyRows,
      keyRowViews: Array.from({ length: capacity }, (_, b) => keyRows.subarray(b * S, (b + 1) * S)),
      stateIn: alloc(S),
      stateOut: alloc(S),
      gIh: alloc(rows),
      gHh: alloc(rows),
      cache: alloc(C),
      y: alloc(c.outputSize),
    }
    this.batchWork = work
    return work
  }

  /** A live, row-major view of a parameter by its PyTorch name (writing to it changes the model). */
  getParameter(name: string): FloatArray {
    if (!this.params.spec(name)) {
      throw new RxrnnError(
        'bad_config',
        `No parameter named ${JSON.stringify(name)}; this model has ${this.parameterNames().join(', ')}`,
      )
    }
    return this.params.value(name)
  }

  parameterNames(): string[] {
    return this.params.specs.map((s) => s.name)
  }

  /**
   * Loads weights written by PyTorch (`safetensors.torch.save_file(net.state_dict(), path)`).
   * F32, F64, F16 and BF16 are converted to the model's dtype. All or nothing: on any problem
   * one RxrnnError('bad_safetensors') lists every problem and the model is left unchanged.
   */
  loadSafetensors(bytes: Uint8Array): void {
    const file = readSafetensors(bytes)
    const problems: string[] = []
    for (const spec of this.params.specs) {
      const t = file.tensors.get(spec.name)
      if (!t) {
        problems.push(`missing tensor ${spec.name} (shape [${spec.shape.join(', ')}])`)
      } else if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
        problems.push(
          `tensor ${spec.name} has shape [${t.shape.join(', ')}], the model needs [${spec.shape.join(', ')}]`,
        )
      }
    }
    for (const name of file.tensors.keys()) {
      if (!this.params.spec(name)) {
        problems.push(`unexpected tensor ${name}: this model (${this.describe()}) has no such parameter`)
      }
    }
    if (problems.length > 0) {
      throw new RxrnnError(
        'bad_safetensors',
        `The safetensors file does not fit this model (${this.describe()})`,
        problems,
      )
    }
    for (const spec of this.params.specs) {
      this.params.values.set(file.tensors.get(spec.name)!.data, spec.offset)
    }
  }

  /** The weights as a safetensors file with PyTorch's names, in the model's dtype (F32 or F64). */
  toSafetensors(metadata?: Record<string, string>): Uint8Array {
    const values = this.params.values
    return writeSafetensors(
      this.params.specs.map((s) => ({
        name: s.name,
        shape: s.shape,
        data: values.subarray(s.offset, s.offset + s.size),
      })),
      this.config.dtype === 'float64' ? 'F64' : 'F32',
      { format: 'pt', ...metadata },
    )
  }

  /** Copies all weights from a model of the same shape. */
  copyWeightsFrom(other: Model): void {
    if (other.params.size !== this.params.size || other.config.cell !== this.config.cell) {
      throw new RxrnnError(
        'bad_config',
        `Cannot copy weights from ${other.describe()} into ${this.describe()}`,
      )
    }
    this.params.values.set(other.params.values)
  }

  /** e.g. `lstm 3→5×2→2 float64`. */
  describe(): string {
    const c = this.config
    return `${c.cell} ${c.inputSize}→${c.hiddenSize}${c.numLayers > 1 ? `×${c.numLayers}` : ''}→${c.outputSize} ${c.dtype}`
  }
}

/** The most keys model.stepBatch stages at once; larger batches run in chunks. */
const MAX_BATCH_CHUNK = 256
/** model.stepBatch steps fewer keys than this one by one. */
const MIN_BATCH_CHUNK = 8

/** model.stepBatch's staging, every array batch-minor [dim, capacity] (see Kernels.gemmBias). */
interface BatchWorkspace {
  readonly capacity: number
  readonly x: FloatArray
  /** States key-major [capacity, stateSize], and a view of each row. */
  readonly keyRows: FloatArray
  readonly keyRowViews: readonly FloatArray[]
  readonly stateIn: FloatArray
  readonly stateOut: FloatArray
  readonly gIh: FloatArray
  readonly gHh: FloatArray
  readonly cache: FloatArray
  readonly y: FloatArray
}

/**
 * Builds a model: a stack of `numLayers` recurrent layers (`rnn_tanh`, `rnn_relu`, `lstm`,
 * `gru`) and a linear head, initialised from `seed`.
 *
 * @example
 * import { createModel } from 'rxrnn'
 * const model = createModel({ cell: 'lstm', inputSize: 3, hiddenSize: 5, numLayers: 2, outputSize: 2, dtype: 'float64', seed: 7 })
 */
export function createModel(config: ModelConfig, options?: ModelOptions): Model {
  return new Model(config, options)
}

function selectKernels(c: ResolvedModelConfig, backend: NonNullable<ModelOptions['backend']>): Kernels {
  if (backend === 'js') return jsKernels(arrayTypeOf(c.dtype))
  const usable = c.dtype === 'float32' && wasmSimdSupported()
  if (backend === 'wasm' && !usable) {
    throw new RxrnnError(
      'bad_config',
      c.dtype === 'float32'
        ? "backend 'wasm' needs WebAssembly SIMD, which this runtime lacks; use backend 'js'"
        : "backend 'wasm' computes in float32; use dtype 'float32', or backend 'js' for float64",
    )
  }
  if (!usable) return jsKernels(arrayTypeOf(c.dtype))
  // Everything the model, its trainer and optimizer allocate: parameters and gradients, up to
  // three optimizer buffers, and per-layer scratch. Past the estimate, alloc falls back to
  // ordinary arrays (staged, so only slower).
  const H = c.hiddenSize
  const G = gateCount(c.cell)
  const S = c.cell === 'lstm' ? 2 * H : H
  let params = c.outputSize * (H + 1)
  for (let l = 0; l < c.numLayers; l++) params += G * H * ((l === 0 ? c.inputSize : H) + H + 2)
  const cache = c.cell === 'lstm' ? 5 * H : c.cell === 'gru' ? 4 * H : H
  const maxDim = Math.max(c.inputSize, G * H, S, cache, c.outputSize)
  const scratch = c.numLayers * (4 * G * H + 4 * S + 2 * c.inputSize + 4 * H) + 8 * maxDim + 4 * c.outputSize
  // Room for a trainer's own TBPTT window and workspace with k2 up to 64 (slots of input,
  // target, state, gate cache and output per layer), so training needs no staging copies.
  const slot = c.inputSize + 2 * c.outputSize + c.numLayers * (S + cache)
  // Per layer and step: the gate gradients (two sets for the GRU) and the layer's inputs, kept
  // for the window's weight-gradient products (LayerWindowGrads).
  let stepGrads = 0
  for (let l = 0; l < c.numLayers; l++)
    stepGrads += (c.cell === 'gru' ? 2 : 1) * G * H + (l === 0 ? c.inputSize : H) + H + 12
  const window = 2 * 66 * slot + 64 * stepGrads + (c.numLayers + 1) * (S + 4)
  return new StagedWasmKernels(5 * params + scratch + window, maxDim)
}
