import type { FloatArray } from './dtype.js'
import type { Optimizer } from './optimizers.js'
import { field, restoreArray } from './snapshot.js'

/**
 * The divergence guard of the trainer's update: refuses an update whose loss or gradient is not
 * finite, or (with `rollback`) whose loss is over `lossFactor` × the running loss, and then puts
 * the weights and optimizer state back to the last good copy, saved every `every` updates.
 */
export class DivergenceGuard {
  /** Exponential moving average of accepted losses (NaN before the first). */
  lossAverage = Number.NaN
  private readonly goodParams: FloatArray | null
  private readonly goodOptimizerState: Record<string, FloatArray> | null
  private goodOptimizerT = 0

  constructor(
    private readonly rollback: { lossFactor: number; every: number } | undefined,
    private readonly params: FloatArray,
    private readonly optimizer: Optimizer,
  ) {
    if (rollback) {
      this.goodParams = params.slice()
      this.goodOptimizerState = Object.fromEntries(
        Object.entries(optimizer.state).map(([k, v]) => [k, v.slice()]),
      )
    } else {
      this.goodParams = null
      this.goodOptimizerState = null
    }
  }

  get rollsBack(): boolean {
    return this.rollback !== undefined
  }

  /** Why this update must not be applied, or null. */
  refusal(loss: number, gradNorm: number): string | null {
    if (!Number.isFinite(gradNorm))
      return `non-finite gradient norm (${gradNorm}); update skipped, weights unchanged`
    if (!Number.isFinite(loss)) return `non-finite loss (${loss}); update skipped, weights unchanged`
    const rb = this.rollback
    if (rb && this.lossAverage > 0 && loss > rb.lossFactor * this.lossAverage) {
      return `loss ${loss.toPrecision(4)} is over ${rb.lossFactor}× the running loss ${this.lossAverage.toPrecision(4)}: diverging`
    }
    return null
  }

  /**
   * Before the optimizer steps on an accepted update. The good copy is the weights whose loss
   * was just accepted, saved before the step: weights saved after it are vouched for by no loss
   * yet, and rolling back to them would undo nothing.
   */
  beforeStep(): void {
    if (this.rollback && this.optimizer.t % this.rollback.every === 0) {
      this.goodParams!.set(this.params)
      for (const [k, v] of Object.entries(this.optimizer.state)) this.goodOptimizerState![k]!.set(v)
      this.goodOptimizerT = this.optimizer.t
    }
  }

  /** After the step: the accepted loss joins the running average. */
  accepted(loss: number): void {
    this.lossAverage = Number.isNaN(this.lossAverage) ? loss : 0.9 * this.lossAverage + 0.1 * loss
  }

  /** Weights that already make the loss blow up are not trusted either: back to the last good copy. */
  restoreGoodWeights(): void {
    this.params.set(this.goodParams!)
    for (const [k, v] of Object.entries(this.optimizer.state)) v.set(this.goodOptimizerState![k]!)
    this.optimizer.t = this.goodOptimizerT
  }

  /** The snapshot's `lossAverage` and `good` fields. */
  exportState(): { lossAverage: number; good: unknown } {
    return {
      lossAverage: this.lossAverage,
      good: this.goodParams
        ? { params: this.goodParams.slice(), state: this.goodOptimizerState, t: this.goodOptimizerT }
        : null,
    }
  }

  importState(body: Record<string, unknown>): void {
    this.lossAverage = field<number>(body, 'lossAverage', (v) => typeof v === 'number', 'a number')
    const good = body.good as { params: unknown; state: Record<string, unknown>; t: number } | null
    if (this.goodParams && good) {
      restoreArray(this.goodParams, good.params, 'good.params')
      for (const [k, v] of Object.entries(this.goodOptimizerState!))
        restoreArray(v, good.state?.[k], `good.${k}`)
      this.goodOptimizerT = good.t
    }
  }
}
