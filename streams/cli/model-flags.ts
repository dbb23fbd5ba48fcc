/**
 * The model and trainer flags that `rxrnn serve` and `rxrnn worker` share (`--cell`,
 * `--input-size`, … `--clip-norm`): their definitions, and how they merge with a config file's
 * `model` and `trainer` into a model config and trainer options, with every problem named by its
 * flag and config field.
 */
import { type Command, Option } from 'commander'
import { type ResolvedModelConfig, resolveModelConfig } from '../../src/config.js'
import type {
  AlgorithmName,
  CellKind,
  DType,
  LossName,
  ModelConfig,
  TrainerOptions,
} from '../../src/index.js'
import { ALGORITHM_NAMES, CELL_KINDS, LOSS_NAMES, RxrnnError } from '../../src/index.js'
import { resolveTrainerOptions } from '../../src/trainer-options.js'
import { integer, number } from './parse.js'

export const OPTIMIZER_TYPES = ['sgd', 'rmsprop', 'adam', 'adamw'] as const

/** The model and trainer flags, as commander parses them. */
export interface ModelFlags {
  cell: CellKind
  inputSize?: number
  hiddenSize: number
  outputSize?: number
  layers: number
  dtype: DType
  seed?: number
  algorithm: AlgorithmName
  k1: number
  k2?: number
  loss: LossName
  optimizer: (typeof OPTIMIZER_TYPES)[number]
  lr: number
  clipNorm: number
}

/** Where a flag's value came from (commander's `getOptionValueSource`): 'cli', 'env', 'default', … */
export type ModelFlagSource = (flag: keyof ModelFlags) => string | undefined

/** Which flag and config field set what a core problem message starts with. */
const WHERE: Record<string, string> = {
  cell: '--cell, or model.cell',
  inputSize: '--input-size, or model.inputSize',
  hiddenSize: '--hidden-size, or model.hiddenSize',
  numLayers: '--layers, or model.numLayers',
  outputSize: '--output-size, or model.outputSize',
  dtype: '--dtype, or model.dtype',
  seed: '--seed, or model.seed',
  algorithm: '--algorithm, or trainer.algorithm',
  k1: '--k1, or trainer.k1',
  k2: '--k2, or trainer.k2',
  loss: '--loss, or trainer.loss',
  clipNorm: '--clip-norm, or trainer.clipNorm',
  'optimizer.type': '--optimizer, or trainer.optimizer.type',
  'optimizer.lr': '--lr, or trainer.optimizer.lr',
}

/** Adds the model and trainer flags to a command; `seedHelp` says what happens without --seed. */
export function addModelFlags(
  command: Command,
  seedHelp = 'seed of the initial weights (default: random, printed at start)',
): Command {
  return command
    .addOption(new Option('--cell <kind>', 'recurrent cell').choices(CELL_KINDS).default('gru'))
    .option('--input-size <n>', 'inputs per tick (length of x); required unless in --config', integer(1))
    .option('--hidden-size <n>', 'hidden units per layer', integer(1), 32)
    .option(
      '--output-size <n>',
      'outputs (regression targets, or classes with --loss cross_entropy); required unless in --config',
      integer(1),
    )
    .option('--layers <n>', 'stacked recurrent layers', integer(1), 1)
    .addOption(
      new Option('--dtype <dtype>', 'floating-point type of the weights')
        .choices(['float32', 'float64'])
        .default('float32'),
    )
    .option('--seed <n>', seedHelp, integer(0))
    .addOption(
      new Option(
        '--algorithm <name>',
        'how gradients reach back: tbptt (truncated BPTT over k2 ticks), rtrl (exact, untruncated, O(H²·P) a tick), ' +
          'snap1 or uoro (untruncated approximations, O(P) a tick)',
      )
        .choices(ALGORITHM_NAMES)
        .default('tbptt'),
    )
    .option(
      '--k1 <n>',
      'update the weights every k1 ticks of a key (the gradients of k1 ticks in one update)',
      integer(1),
      16,
    )
    .option('--k2 <n>', 'tbptt only: backpropagate through the last k2 ticks (>= k1; default k1)', integer(1))
    .addOption(new Option('--loss <name>', 'training loss').choices(LOSS_NAMES).default('mse'))
    .addOption(new Option('--optimizer <type>', 'optimizer').choices(OPTIMIZER_TYPES).default('adam'))
    .option('--lr <rate>', 'learning rate', number(0), 1e-3)
    .option('--clip-norm <n>', 'clip the global gradient norm to this (0: no clipping)', number(0), 1)
}

/**
 * Merges the model and trainer flags over a config file's `model` and `trainer` (a flag given on
 * the command line wins; then the file; then the flag's default), and checks them: returns the
 * model config (with its seed resolved) and the trainer options, or throws one
 * `RxrnnError('bad_config')` listing every problem, each naming its flag and config field.
 */
export function resolveModelFlags(
  flags: ModelFlags,
  sourceOf: ModelFlagSource,
  file: { model?: Partial<ModelConfig>; trainer?: Partial<TrainerOptions> } = {},
  command = 'rxrnn serve',
  /**
   * Forecasting's effect on the sizes: `outputSize` is the target's width, so a horizon H gives
   * the model H × that many outputs (and k2 defaults to k1 + H − 1); missing values add a mask
   * input per feature, the time feature one input.
   */
  shape: { horizon?: number | undefined; missing?: boolean; timeFeature?: boolean } = {},
): { model: ResolvedModelConfig; trainer: TrainerOptions } {
  const given = (flag: keyof ModelFlags): boolean => {
    const source = sourceOf(flag)
    return source === 'cli' || source === 'env'
  }
  const pick = <T>(flag: keyof ModelFlags, fromFile: T | undefined): T | undefined =>
    given(flag) || fromFile === undefined ? (flags[flag] as T | undefined) : fromFile

  const model: Record<string, unknown> = { ...file.model }
  const modelFields: [keyof ModelConfig, keyof ModelFlags][] = [
    ['cell', 'cell'],
    ['inputSize', 'inputSize'],
    ['hiddenSize', 'hiddenSize'],
    ['numLayers', 'layers'],
    ['outputSize', 'outputSize'],
    ['dtype', 'dtype'],
    ['seed', 'seed'],
  ]
  for (const [field, flag] of modelFields) {
    const value = pick(flag, model[field])
    if (value !== undefined) model[field] = value
  }

  const trainer: Record<string, unknown> = { ...file.trainer }
  for (const field of ['algorithm', 'k1', 'k2', 'loss'] as const) {
    const value = pick(field, trainer[field])
    if (value !== undefined) trainer[field] = value
  }
  const horizon = shape.horizon ?? (trainer.horizon as number | undefined) ?? 1
  if (horizon > 1) {
    trainer.horizon = horizon
    if (typeof model.outputSize === 'number') model.outputSize = model.outputSize * horizon
    // k2 must reach back over the horizon: unless given, it does.
    if (trainer.k2 === undefined && typeof trainer.k1 === 'number') trainer.k2 = trainer.k1 + horizon - 1
  }
  if (typeof model.inputSize === 'number' && (shape.missing || shape.timeFeature)) {
    model.inputSize = model.inputSize * (shape.missing ? 2 : 1) + (shape.timeFeature ? 1 : 0)
  }
  // 0 (a flag) or null (a file) turns clipping off.
  const clipNorm = pick('clipNorm', trainer.clipNorm)
  if (clipNorm === 0 || clipNorm === null) delete trainer.clipNorm
  else trainer.clipNorm = clipNorm
  let optimizer: Record<string, unknown> = {
    ...(file.trainer?.optimizer as Record<string, unknown> | undefined),
  }
  // Another optimizer type on the command line drops the file's settings that belonged to the old one.
  if (given('optimizer') && optimizer.type !== flags.optimizer) optimizer = {}
  optimizer.type = pick('optimizer', optimizer.type)
  optimizer.lr = pick('lr', optimizer.lr)
  trainer.optimizer = optimizer

  const problems: string[] = []
  if (model.inputSize === undefined) {
    problems.push('inputSize is missing: pass --input-size <n> (or set model.inputSize in the --config file)')
  }
  if (model.outputSize === undefined) {
    problems.push(
      'outputSize is missing: pass --output-size <n> (or set model.outputSize in the --config file)',
    )
  }
  let config: ResolvedModelConfig | undefined
  if (problems.length === 0) {
    try {
      // A missing seed is drawn here, once: the caller reports it.
      config = resolveModelConfig(model as unknown as ModelConfig)
    } catch (error) {
      if (!(error instanceof RxrnnError)) throw error
      problems.push(...error.problems.map(where))
    }
  }
  try {
    resolveTrainerOptions(trainer as unknown as TrainerOptions)
  } catch (error) {
    if (!(error instanceof RxrnnError)) throw error
    problems.push(...error.problems.map(where))
  }
  if (problems.length > 0 || config === undefined) {
    const message = `Invalid model or trainer settings for ${command}`
    // RxrnnError lists several problems after the message; a single one goes into the message.
    throw new RxrnnError(
      'bad_config',
      problems.length === 1 ? `${message}: ${problems[0]}` : message,
      problems,
    )
  }
  return { model: config, trainer: trainer as unknown as TrainerOptions }
}

/** Appends the flag and config field a core problem is about, when it is one of ours. */
function where(problem: string): string {
  const subject = /^([A-Za-z0-9]+(?:\.[A-Za-z0-9]+)?)/.exec(problem)?.[1]
  const hint = subject === undefined ? undefined : WHERE[subject]
  return hint === undefined ? problem : `${problem} (${hint})`
}
