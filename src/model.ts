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
  /** Inference needs no backward, so one cache serves every layer and step. */
  private readonly cacheScratch: FloatArray

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
    this.cacheScratch = alloc(this.cell.cacheSize)
    this.inferenceMasks =
      c.zoneout > 0 ? { x: null, h: null, zone: alloc(this.stateSize).fill(c.zoneout) } : null
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
    let input = x
    const masks = this.inferenceMasks
    for (let l = 0; l < this.layers.length; l++) {
      const s = state.layers[l]!
      this.layers[l]!.forward(s, this.cacheScratch, input, s, masks)
      input = s
    }
    this.head.forward(this.output, input)
    return this.output
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
  return new StagedWasmKernels(5 * params + scratch, maxDim)
}
