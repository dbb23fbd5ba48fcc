import { RxrnnError } from './errors.js'
import { horizonProblems } from './forecasting/horizon.js'
import type { LearningRateSchedule } from './forecasting/lr-schedule.js'
import { validateSchedule } from './forecasting/lr-schedule.js'
import type { AlgorithmName } from './gradients/algorithm.js'
import { ALGORITHM_NAMES, isForwardMode } from './gradients/algorithm.js'
import type { LossName } from './losses.js'
import { LOSS_NAMES } from './losses.js'
import type { OptimizerConfig } from './optimizers.js'
import { resolveOptimizerConfig } from './optimizers.js'

/**
 * How `OnlineTrainer` learns.
 *
 * @example
 * { k1: 6, k2: 12, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 }
 * { algorithm: 'rtrl', k1: 1, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 }
 */
export interface TrainerOptions {
  /**
   * How the gradient is taken (default 'tbptt'): 'tbptt' backpropagates through a window of k2
   * steps; 'rtrl' (exact), 'snap1' and 'uoro' (O(P) approximations) carry the state's
   * sensitivity to the weights forward from step to step, with no window and no truncation.
   * See the README's "Learning without truncation".
   */
  algorithm?: AlgorithmName
  /**
   * Update the weights after every k1 observed steps. For the forward-mode algorithms, the
   * gradients of those k1 steps are summed into one update (their mean over the steps with a target).
   */
  k1: number
  /** TBPTT only: backpropagate through the last k2 steps (k2 >= k1; default k1). */
  k2?: number
  /**
   * RTRL only: the most its sensitivities (per sequence: per key for a KeyedTrainer) may hold, and
   * the most multiply-adds a step may take to update them. A model past either is refused with
   * the figures. Defaults: 64 MiB and 1e8 (a tanh RNN of 64 units, or an LSTM of 32, fits).
   */
  rtrlBudget?: { maxBytes?: number; maxMultiplyAddsPerStep?: number }
  loss: LossName
  /** Huber's threshold between the quadratic and linear parts. Default 1. */
  huberDelta?: number
  optimizer: OptimizerConfig
  /** Clip the global gradient norm to this (torch.nn.utils.clip_grad_norm_). */
  clipNorm?: number
  /** Clamp every gradient to ±clipValue (torch.nn.utils.clip_grad_value_), before norm clipping. */
  clipValue?: number
  /**
   * Variational (locked) dropout: one mask per truncation window on each layer's input and on
   * the h entering W_hh, the same units dropped at every step, so the time dependency survives.
   * Predictions never use dropout.
   */
  dropout?: { input?: number; recurrent?: number }
  /** Seeds the dropout and zoneout masks. Default: the model's seed + 1. */
  seed?: number
  /** Measure gradient flow and spectral radii on every n-th update (0: never). Default 1. */
  diagnosticsEvery?: number
  /**
   * Divergence guard: when an update's loss is non-finite or above `lossFactor` × the running
   * loss, the weights and optimizer state go back to the last good copy, saved every `every` updates.
   */
  rollback?: { lossFactor?: number; every?: number }
  /**
   * Direct multi-horizon forecasting: the model's outputSize is horizon × the target's width,
   * row h − 1 forecasting the target h steps on (the target given h − 1 events later). A step's
   * loss enters once all its targets have arrived, so each update learns from the k1 steps that
   * ended horizon − 1 steps ago: k2 must be >= k1 + horizon − 1 (its default then). TBPTT only.
   * Default 1 (the next value).
   */
  horizon?: number
  /** Learning-rate schedule over the update count (the optimizer's lr is the base). Default constant. */
  lrSchedule?: LearningRateSchedule
}

export interface ResolvedTrainerOptions {
  algorithm: AlgorithmName
  k1: number
  k2: number
  loss: LossName
  huberDelta: number
  optimizer: OptimizerConfig
  clipNorm: number | undefined
  clipValue: number | undefined
  inputDropout: number
  recurrentDropout: number
  seed: number | undefined
  diagnosticsEvery: number
  rollback: { lossFactor: number; every: number } | undefined
  rtrlBudget: { maxBytes: number; maxMultiplyAddsPerStep: number }
  horizon: number
  lrSchedule: LearningRateSchedule | undefined
}

/** The options TrainerOptions has: anything else is refused (a misspelt option would otherwise do nothing). */
const KNOWN_OPTIONS: readonly (keyof TrainerOptions)[] = [
  'algorithm',
  'k1',
  'k2',
  'rtrlBudget',
  'loss',
  'huberDelta',
  'optimizer',
  'clipNorm',
  'clipValue',
  'dropout',
  'seed',
  'diagnosticsEvery',
  'rollback',
  'horizon',
  'lrSchedule',
]

/** RTRL's default budget per sequence: 64 MiB of sensitivities, 1e8 multiply-adds a step. */
export const DEFAULT_RTRL_BUDGET = { maxBytes: 64 * 2 ** 20, maxMultiplyAddsPerStep: 1e8 } as const

export function resolveTrainerOptions(options: TrainerOptions): ResolvedTrainerOptions {
  const problems: string[] = []
  const o = (options ?? {}) as Partial<TrainerOptions>
  const int = (name: string, v: unknown, min: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      problems.push(`${name} is ${JSON.stringify(v)}; it must be an integer >= ${min}`)
      return min
    }
    return v
  }
  for (const key of Object.keys(o)) {
    if (!(KNOWN_OPTIONS as readonly string[]).includes(key)) {
      problems.push(
        `unknown option ${JSON.stringify(key)}; the trainer options are ${KNOWN_OPTIONS.join(', ')}`,
      )
    }
  }
  const algorithm = o.algorithm ?? 'tbptt'
  if (!ALGORITHM_NAMES.includes(algorithm)) {
    problems.push(`algorithm is ${JSON.stringify(o.algorithm)}; use one of ${ALGORITHM_NAMES.join(', ')}`)
  }
  const forwardMode = ALGORITHM_NAMES.includes(algorithm) && isForwardMode(algorithm)
  const k1 = int('k1', o.k1, 1)
  if (forwardMode && o.k2 !== undefined) {
    problems.push(
      `k2 is ${JSON.stringify(o.k2)}, but algorithm '${algorithm}' has no window to backpropagate through: its gradient reaches back to the start of the sequence. Leave k2 out (k1 sets how many steps each update sums)`,
    )
  }
  if (forwardMode && (o.dropout?.input || o.dropout?.recurrent)) {
    problems.push(
      `dropout is not supported with algorithm '${algorithm}' (its masks belong to TBPTT's windows); leave dropout out, or use algorithm 'tbptt'`,
    )
  }
  if (o.rtrlBudget !== undefined && algorithm !== 'rtrl') {
    problems.push(`rtrlBudget applies to algorithm 'rtrl' only; leave it out for '${algorithm}'`)
  }
  // With a horizon H, k2 left out reaches back over it: k1 + H − 1 (see horizonProblems).
  const reach =
    !forwardMode && Number.isInteger(o.horizon) && (o.horizon as number) > 1 ? (o.horizon as number) - 1 : 0
  const k2 = o.k2 === undefined || forwardMode ? k1 + reach : int('k2', o.k2, 1)
  if (k2 < k1)
    problems.push(
      `k2 (${k2}) is smaller than k1 (${k1}); k2 >= k1 backpropagates through every step that has a loss`,
    )
  if (!LOSS_NAMES.includes(o.loss as LossName)) {
    problems.push(`loss is ${JSON.stringify(o.loss)}; use one of ${LOSS_NAMES.join(', ')}`)
  }
  const positive = (name: string, v: unknown): number | undefined => {
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
      problems.push(`${name} is ${JSON.stringify(v)}; it must be a positive number`)
      return undefined
    }
    return v
  }
  const rate = (name: string, v: unknown): number => {
    if (v === undefined) return 0
    if (typeof v !== 'number' || !(v >= 0 && v < 1)) {
      problems.push(`${name} is ${JSON.stringify(v)}; it must be in [0, 1)`)
      return 0
    }
    return v
  }
  if (o.optimizer === undefined || o.optimizer === null || typeof o.optimizer !== 'object') {
    problems.push("optimizer is missing; e.g. { type: 'adam', lr: 1e-3 }")
  } else {
    // The optimizer's own problems belong in the same report as the rest.
    try {
      resolveOptimizerConfig(o.optimizer)
    } catch (e) {
      if (!(e instanceof RxrnnError)) throw e
      problems.push(...e.problems)
    }
  }
  const rollback =
    o.rollback === undefined
      ? undefined
      : {
          lossFactor: positive('rollback.lossFactor', o.rollback.lossFactor) ?? 10,
          every: o.rollback.every === undefined ? 10 : int('rollback.every', o.rollback.every, 1),
        }
  const rtrlBudget = {
    maxBytes: positive('rtrlBudget.maxBytes', o.rtrlBudget?.maxBytes) ?? DEFAULT_RTRL_BUDGET.maxBytes,
    maxMultiplyAddsPerStep:
      positive('rtrlBudget.maxMultiplyAddsPerStep', o.rtrlBudget?.maxMultiplyAddsPerStep) ??
      DEFAULT_RTRL_BUDGET.maxMultiplyAddsPerStep,
  }
  const resolved: ResolvedTrainerOptions = {
    algorithm,
    k1,
    k2,
    loss: o.loss as LossName,
    huberDelta: positive('huberDelta', o.huberDelta) ?? 1,
    optimizer: o.optimizer as OptimizerConfig,
    clipNorm: positive('clipNorm', o.clipNorm),
    clipValue: positive('clipValue', o.clipValue),
    inputDropout: rate('dropout.input', o.dropout?.input),
    recurrentDropout: rate('dropout.recurrent', o.dropout?.recurrent),
    seed: o.seed,
    diagnosticsEvery: o.diagnosticsEvery === undefined ? 1 : int('diagnosticsEvery', o.diagnosticsEvery, 0),
    rollback,
    rtrlBudget,
    horizon: o.horizon === undefined ? 1 : int('horizon', o.horizon, 1),
    lrSchedule: o.lrSchedule,
  }
  if (resolved.horizon > 1 && forwardMode)
    problems.push(
      `horizon ${resolved.horizon} needs algorithm 'tbptt': a step's loss enters only once its targets have ` +
        `arrived, later, and '${algorithm}' adds each step's loss as it goes; leave horizon out or use 'tbptt'`,
    )
  else problems.push(...horizonProblems(k1, k2, resolved.horizon, o.loss))
  if (o.lrSchedule !== undefined) problems.push(...validateSchedule(o.lrSchedule))
  if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid trainer options', problems)
  return resolved
}
