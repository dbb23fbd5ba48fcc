import { ErrorTotals } from '../operators/evaluation.js'

/**
 * Prequential error over a whole evaluation period: every forecast is scored against its
 * target, in original units, and it was made before the model learned from that target.
 */
export class ErrorTally {
  private readonly totals: ErrorTotals[]

  /** `forecasters` rows (the model, then each baseline) by `targets` columns. */
  constructor(
    readonly forecasters: number,
    readonly targets: number,
  ) {
    this.totals = Array.from({ length: forecasters }, () => new ErrorTotals(targets))
  }

  /** Forecasts scored. */
  get n(): number {
    return this.totals[0]!.n
  }

  /** Scores one step: `forecasts[f][i]` is forecaster f's value for target i. */
  add(forecasts: readonly ArrayLike<number>[], truth: ArrayLike<number>): void {
    for (let f = 0; f < this.forecasters; f++) this.totals[f]!.add(forecasts[f]!, truth)
  }

  rmse(forecaster: number, target: number): number {
    return this.totals[forecaster]!.rmse(target)
  }

  mae(forecaster: number, target: number): number {
    return this.totals[forecaster]!.mae(target)
  }
}
