import type { DType } from './dtype.js'
import { RxrnnError } from './errors.js'

/** The recurrent cells, named and computed exactly as PyTorch's nn.RNN / nn.LSTM / nn.GRU. */
export type CellKind = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru'

export const CELL_KINDS: readonly CellKind[] = ['rnn_tanh', 'rnn_relu', 'lstm', 'gru']

/** How a weight matrix is initialised. Fans are taken per gate block (H rows). */
export type WeightInit =
  | 'pytorch'
  | 'xavier_uniform'
  | 'xavier_normal'
  | 'kaiming_uniform'
  | 'kaiming_normal'
  | 'orthogonal'
  | 'identity'

export const WEIGHT_INITS: readonly WeightInit[] = [
  'pytorch',
  'xavier_uniform',
  'xavier_normal',
  'kaiming_uniform',
  'kaiming_normal',
  'orthogonal',
  'identity',
]

/** Initialisation per parameter group; every field defaults to PyTorch's own default. */
export interface InitConfig {
  /** W_ih of every layer. Default 'pytorch': U(±1/√H). */
  input?: WeightInit
  /** W_hh of every layer. 'orthogonal' keeps the recurrent Jacobian's singular values at 1; 'identity' with rnn_relu is the IRNN. */
  recurrent?: WeightInit
  /** Multiplies orthogonal and identity matrices (and scales the others' std). Default 1. */
  gain?: number
  /** Biases (the head's too): 'pytorch' U(±1/√H) or 'zeros'. */
  bias?: 'pytorch' | 'zeros'
  /** LSTM only: the forget gate's total bias (b_ih + b_hh), e.g. 1, so that memory is kept early in training. */
  forgetBias?: number
  /** The linear head's weight. Default 'pytorch' (nn.Linear: U(±1/√H) for weight and bias). */
  head?: WeightInit
}

/**
 * What `createModel` takes.
 *
 * @example
 * createModel({ cell: 'lstm', inputSize: 3, hiddenSize: 5, numLayers: 2, outputSize: 2, dtype: 'float64', seed: 7 })
 */
export interface ModelConfig {
  cell: CellKind
  inputSize: number
  hiddenSize: number
  /** Stacked layers; layer l > 0 reads the hidden state of layer l − 1. Default 1. */
  numLayers?: number
  outputSize: number
  /** Default 'float32'. */
  dtype?: DType
  /** Same config and seed, same weights. Default: a random seed, recorded in `model.config.seed`. */
  seed?: number
  init?: InitConfig
  /**
   * Zoneout probability (Krueger et al. 2016): while training, each unit keeps its previous
   * value with this probability; when predicting, h = p·h_prev + (1 − p)·h_new. Default 0.
   * It belongs to the model because it changes the inference equation.
   */
  zoneout?: number
}

/** A config with every default filled in. */
export interface ResolvedModelConfig {
  cell: CellKind
  inputSize: number
  hiddenSize: number
  numLayers: number
  outputSize: number
  dtype: DType
  seed: number
  init: Required<Omit<InitConfig, 'forgetBias'>> & { forgetBias?: number }
  zoneout: number
}

/** Checks a config and fills in its defaults; every problem is reported at once. */
export function resolveModelConfig(config: ModelConfig): ResolvedModelConfig {
  const problems: string[] = []
  const c = (config ?? {}) as Partial<ModelConfig>
  if (!CELL_KINDS.includes(c.cell as CellKind)) {
    problems.push(`cell is ${JSON.stringify(c.cell)}; use one of ${CELL_KINDS.join(', ')}`)
  }
  const positive = (name: keyof ModelConfig, value: unknown, fallback?: number): number => {
    if (value === undefined && fallback !== undefined) return fallback
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1 << 20) {
      problems.push(`${name} is ${JSON.stringify(value)}; it must be a positive integer`)
      return 1
    }
    return value
  }
  const inputSize = positive('inputSize', c.inputSize)
  const hiddenSize = positive('hiddenSize', c.hiddenSize)
  const numLayers = positive('numLayers', c.numLayers, 1)
  const outputSize = positive('outputSize', c.outputSize)
  const dtype = c.dtype ?? 'float32'
  if (dtype !== 'float32' && dtype !== 'float64') {
    problems.push(`dtype is ${JSON.stringify(dtype)}; use 'float32' or 'float64'`)
  }
  let seed = c.seed
  if (seed === undefined) seed = Math.floor(Math.random() * 2 ** 31)
  else if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    problems.push(`seed is ${JSON.stringify(seed)}; it must be an integer`)
  }
  const zoneout = c.zoneout ?? 0
  if (typeof zoneout !== 'number' || !(zoneout >= 0 && zoneout < 1)) {
    problems.push(`zoneout is ${JSON.stringify(zoneout)}; it must be in [0, 1)`)
  }
  const init = c.init ?? {}
  if (typeof init !== 'object' || Array.isArray(init)) {
    problems.push(`init is ${JSON.stringify(init)}; it must be an object, e.g. { recurrent: 'orthogonal' }`)
  }
  const known = ['input', 'recurrent', 'gain', 'bias', 'forgetBias', 'head']
  if (typeof init === 'object' && init !== null) {
    for (const key of Object.keys(init)) {
      if (!known.includes(key))
        problems.push(`init.${key} is not an option; the options are ${known.join(', ')}`)
    }
  }
  const scheme = (name: string, value: unknown): WeightInit => {
    if (value === undefined) return 'pytorch'
    if (!WEIGHT_INITS.includes(value as WeightInit)) {
      problems.push(`init.${name} is ${JSON.stringify(value)}; use one of ${WEIGHT_INITS.join(', ')}`)
      return 'pytorch'
    }
    return value as WeightInit
  }
  const resolvedInit: ResolvedModelConfig['init'] = {
    input: scheme('input', init.input),
    recurrent: scheme('recurrent', init.recurrent),
    head: scheme('head', init.head),
    gain: init.gain ?? 1,
    bias: init.bias ?? 'pytorch',
  }
  if (typeof resolvedInit.gain !== 'number' || !Number.isFinite(resolvedInit.gain)) {
    problems.push(`init.gain is ${JSON.stringify(init.gain)}; it must be a finite number`)
  }
  if (resolvedInit.bias !== 'pytorch' && resolvedInit.bias !== 'zeros') {
    problems.push(`init.bias is ${JSON.stringify(init.bias)}; use 'pytorch' or 'zeros'`)
  }
  if (init.forgetBias !== undefined) {
    if (typeof init.forgetBias !== 'number' || !Number.isFinite(init.forgetBias)) {
      problems.push(`init.forgetBias is ${JSON.stringify(init.forgetBias)}; it must be a finite number`)
    } else if (c.cell !== 'lstm') {
      problems.push(`init.forgetBias applies to 'lstm' only, not ${JSON.stringify(c.cell)}`)
    } else resolvedInit.forgetBias = init.forgetBias
  }
  if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid model config', problems)
  return {
    cell: c.cell as CellKind,
    inputSize,
    hiddenSize,
    numLayers,
    outputSize,
    dtype,
    seed: seed as number,
    init: resolvedInit,
    zoneout,
  }
}

/** Rows of W_ih per hidden unit: 1 for the plain RNN, 4 for the LSTM (i, f, g, o), 3 for the GRU (r, z, n). */
export function gateCount(cell: CellKind): number {
  return cell === 'lstm' ? 4 : cell === 'gru' ? 3 : 1
}
