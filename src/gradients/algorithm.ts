import type { FloatArray } from '../dtype.js'
import type { SequenceWindow, Slot } from '../window.js'

/**
 * How the trainer takes the gradient of an update: 'tbptt' backpropagates through a window;
 * 'rtrl' (exact), 'snap1' and 'uoro' carry sensitivities forward (see TrainerOptions.algorithm).
 */
export type AlgorithmName = 'tbptt' | 'rtrl' | 'snap1' | 'uoro'

/**
 * Every algorithm name, e.g. for a command-line option's choices.
 *
 * @example
 * if (!ALGORITHM_NAMES.includes(name)) throw new Error(`--algorithm: use one of ${ALGORITHM_NAMES.join(', ')}`)
 */
export const ALGORITHM_NAMES: readonly AlgorithmName[] = ['tbptt', 'rtrl', 'snap1', 'uoro']

/** The forward-mode algorithms: they carry sensitivities forward instead of backpropagating a window. */
export function isForwardMode(name: AlgorithmName): boolean {
  return name !== 'tbptt'
}

/** The loss of one update, as the algorithm summed it. */
export interface WindowLoss {
  /** Mean loss over the steps with a target (PyTorch's reduction='mean'). */
  loss: number
  /** Steps with a target in the loss. */
  lossSteps: number
  /** Steps the gradient was taken over: TBPTT's window, or the steps summed since the last update. */
  windowSteps: number
  /** 1 / (lossSteps × elementsPerStep): what turns summed step gradients into the mean's. */
  scale: number
}

/**
 * One way of computing the gradient of the loss of the last k1 steps, behind the trainer's
 * update (loss, zero gradients, gradient, clip, guard, optimizer step, report).
 *
 * TBPTT stores a window of steps and backpropagates through it at update time. The forward-mode
 * algorithms (RTRL, SnAp-1, UORO) carry, per sequence, the sensitivity of the state to the
 * weights, update it at every step (`afterStep`), and sum each step's gradient as they go; the
 * update then only reads that sum.
 */
export interface GradientAlgorithm {
  readonly name: AlgorithmName
  /**
   * Floats each sequence carries for this algorithm from step to step (sensitivities and the
   * summed gradient), in the model's float type; 0 for TBPTT.
   */
  readonly carriedFloats: number
  /**
   * After each training forward step of `seq`: `slot` holds the step (x, target, the new states),
   * `prev` the states it started from, `caches[l]` layer l's activations of this step, y its output.
   */
  afterStep(seq: SequenceWindow, slot: Slot, prev: Slot, caches: readonly FloatArray[], y: FloatArray): void
  /**
   * The loss of the update due on `seq` into `out`; false when no step had a target (then there
   * is no update, and the algorithm forgets the window's sums).
   */
  windowLoss(seq: SequenceWindow, out: WindowLoss): boolean
  /** Adds the gradient of that loss to the model's gradients (zeroed by the trainer). */
  gradient(seq: SequenceWindow, loss: WindowLoss): void
  /**
   * ‖∂L_t/∂s_(t−k)‖ for k = 0, 1, … back through the window of the update just taken, into
   * `norms`; false where the algorithm keeps no window to follow back (the forward-mode ones).
   */
  probeGradientFlow(seq: SequenceWindow, loss: WindowLoss, norms: number[]): boolean
}
