import { RxrnnError } from '../errors.js'

/**
 * A learning-rate schedule over the optimizer's update count t (the optimizer's `lr` is the
 * base rate): constant; step decay (× `factor` every `every` updates); cosine annealing with
 * warm restarts (SGDR, Loshchilov & Hutter 2017: from lr down to `min`·lr over `period`
 * updates, then back up, each period `growth` times the one before).
 *
 * @example
 * { type: 'cosine', period: 500, min: 0.1, growth: 2 }
 */
export type LearningRateSchedule =
  | { type: 'constant' }
  | { type: 'step'; every: number; factor: number }
  | { type: 'cosine'; period: number; min?: number; growth?: number }

export function validateSchedule(s: LearningRateSchedule): string[] {
  const problems: string[] = []
  const o = s as Record<string, unknown>
  const positiveInt = (name: string) => {
    const v = o[name]
    if (!Number.isInteger(v) || (v as number) < 1)
      problems.push(`lrSchedule.${name} is ${JSON.stringify(v)}; it must be an integer >= 1`)
  }
  if (s === null || typeof s !== 'object') return ["lrSchedule must be an object, e.g. { type: 'constant' }"]
  if (s.type === 'step') {
    positiveInt('every')
    if (typeof s.factor !== 'number' || !(s.factor > 0 && s.factor <= 1))
      problems.push(`lrSchedule.factor is ${JSON.stringify(s.factor)}; it must be in (0, 1]`)
  } else if (s.type === 'cosine') {
    positiveInt('period')
    if (s.min !== undefined && !(s.min >= 0 && s.min <= 1))
      problems.push(`lrSchedule.min is ${JSON.stringify(s.min)}; it must be in [0, 1]`)
    if (s.growth !== undefined && !(s.growth >= 1))
      problems.push(`lrSchedule.growth is ${JSON.stringify(s.growth)}; it must be >= 1`)
  } else if (s.type !== 'constant') {
    problems.push(`lrSchedule.type is ${JSON.stringify(o.type)}; use constant, step or cosine`)
  }
  return problems
}

/** The schedule's multiplier of the base rate at update t (0-based). */
export function scheduleFactor(s: LearningRateSchedule, t: number): number {
  switch (s.type) {
    case 'constant':
      return 1
    case 'step':
      return s.factor ** Math.floor(t / s.every)
    case 'cosine': {
      const min = s.min ?? 0
      const growth = s.growth ?? 1
      let period = s.period
      let at = t
      // Walk the restarts: with growth 1 a division, else a few geometric periods.
      if (growth === 1) at = t % period
      else
        while (at >= period) {
          at -= period
          period = Math.ceil(period * growth)
        }
      return min + (1 - min) * 0.5 * (1 + Math.cos((Math.PI * at) / period))
    }
  }
}

/**
 * The rate a trainer uses at each update: base × schedule(t) × the drift response's temporary
 * raise, which lasts a given number of updates. O(1) per update.
 *
 * @example
 * const lr = new LearningRateController(1e-3, { type: 'step', every: 1000, factor: 0.5 })
 * lr.raise(5, 200)               // after a drift: 5× for the next 200 updates
 * optimizer.setLearningRate(lr.rateAt(optimizer.t))
 */
export class LearningRateController {
  private raiseFactor = 1
  /** Updates the raise still lasts. */
  raiseLeft = 0
  /** Whether the controller must set the rate on every update (a schedule, or a raise since). */
  engaged: boolean

  constructor(
    readonly base: number,
    readonly schedule: LearningRateSchedule = { type: 'constant' },
  ) {
    const problems = validateSchedule(schedule)
    if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid learning-rate schedule', problems)
    this.engaged = schedule.type !== 'constant'
  }

  /** Multiply the rate by `factor` for the next `updates` updates. */
  raise(factor: number, updates: number): void {
    this.raiseFactor = factor
    this.raiseLeft = updates
    this.engaged = true
  }

  /** A drift response's raise in force, for snapshots (null when none was ever made). */
  exportState(): { raiseFactor: number; raiseLeft: number } | null {
    return this.raiseLeft > 0 ? { raiseFactor: this.raiseFactor, raiseLeft: this.raiseLeft } : null
  }

  /** Restores `exportState()`'s output; null or malformed leaves no raise in force. */
  importState(saved: unknown): void {
    const s = saved as { raiseFactor?: unknown; raiseLeft?: unknown } | null
    if (
      s &&
      typeof s.raiseFactor === 'number' &&
      Number.isInteger(s.raiseLeft) &&
      (s.raiseLeft as number) > 0
    )
      this.raise(s.raiseFactor, s.raiseLeft as number)
    else this.raiseLeft = 0
  }

  /** The rate for update t; counts one update of any raise in force. */
  rateAt(t: number): number {
    let rate = this.base * scheduleFactor(this.schedule, t)
    if (this.raiseLeft > 0) {
      rate *= this.raiseFactor
      this.raiseLeft--
    }
    return rate
  }
}
