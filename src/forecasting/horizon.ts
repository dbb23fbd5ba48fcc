import type { FloatArray, FloatArrayConstructor } from '../dtype.js'
import { RxrnnError } from '../errors.js'
import type { Loss, LossName } from '../losses.js'
import { createLoss } from '../losses.js'
import type { SequenceWindow } from '../window.js'

/**
 * What is wrong with a horizon for these TBPTT settings. Step t's row h − 1 forecasts the
 * target given at step t + h − 1, so step t's loss is complete only H − 1 steps after it. An
 * update every k1 steps therefore learns from the k1 steps that ended H − 1 steps ago, and
 * backpropagates from those through every newer step of the window too (their states lie
 * between): the window must span k1 + H − 1 steps.
 */
export function horizonProblems(k1: number, k2: number, horizon: number, loss: unknown): string[] {
  if (horizon <= 1) return []
  const problems: string[] = []
  if (k2 < k1 + horizon - 1)
    problems.push(
      `k2 (${k2}) is too short for horizon ${horizon} with k1 ${k1}: a step's loss enters only once all ` +
        `its ${horizon} targets have arrived, ${horizon - 1} steps later, so each update learns from the ` +
        `k1 steps that ended ${horizon - 1} steps ago and k2 must reach back over them: ` +
        `k2 >= k1 + horizon - 1 = ${k1 + horizon - 1}. Raise k2 or lower k1.`,
    )
  if (loss === 'cross_entropy')
    problems.push('horizon > 1 needs a loss per output (mse, huber or bce), not cross_entropy')
  return problems
}

/**
 * The delayed targets of a direct multi-horizon head: the model outputs H rows of `width`
 * values, and the target given at step t is row 0's target of step t, row 1's of step t − 1,
 * …, row H − 1's of step t − H + 1, which it completes. The trainer's window then holds each
 * step's H targets in its slot, and a slot counts as having a target once all H arrived in a
 * row (a tick without target leaves the H steps it belongs to without loss).
 *
 * Cost: O(H · width) per step, no allocation; no memory beyond the window's own targets.
 *
 * @example
 * // Inside the trainer: after the forward step of a tick with target y
 * horizonTargets.read(y)        // validate (width values)
 * horizonTargets.write(seq, true)
 */
export class HorizonTargets {
  readonly width: number
  /** Validates and reads a target of one row. */
  readonly rowLoss: Loss
  private readonly targetIn: FloatArray

  constructor(
    readonly horizon: number,
    outputSize: number,
    loss: LossName,
    huberDelta: number,
    ArrayType: FloatArrayConstructor,
  ) {
    if (outputSize % horizon !== 0)
      throw new RxrnnError(
        'bad_config',
        `The model's outputSize ${outputSize} is not a multiple of horizon ${horizon}: a direct ` +
          `multi-horizon head has horizon × (target width) outputs; create the model with ` +
          `outputSize = ${horizon} × your target's width.`,
      )
    this.width = outputSize / horizon
    this.rowLoss = createLoss(loss, this.width, huberDelta)
    this.targetIn = new ArrayType(this.width)
  }

  /** Validates a user target (one row); returns whether there is one. Throws bad_target. */
  read(target: number | ArrayLike<number> | null | undefined): boolean {
    if (target === undefined || target === null) return false
    const problem = this.rowLoss.readTarget(this.targetIn, target)
    if (problem) throw new RxrnnError('bad_target', problem)
    return true
  }

  /** After the forward step: spreads the read target over the last H steps' rows. */
  write(seq: SequenceWindow, hasTarget: boolean): void {
    const H = this.horizon
    seq.slotBack(0).hasTarget = false
    if (!hasTarget) {
      seq.targetRun = 0
      return
    }
    if (seq.targetRun < H) seq.targetRun++
    const W = this.width
    const reach = Math.min(H, seq.filled)
    for (let b = 0; b < reach; b++) seq.slotBack(b).target.set(this.targetIn, b * W)
    if (seq.targetRun >= H && seq.filled >= H) seq.slotBack(H - 1).hasTarget = true
  }
}
