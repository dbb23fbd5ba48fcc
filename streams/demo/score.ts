/**
 * Prequential error over a whole evaluation period: every forecast is scored against its
 * target, in original units, and it was made before the model learned from that target.
 */
export class ErrorTally {
  /** Forecasts scored. */
  n = 0
  private readonly squares: Float64Array[]
  private readonly absolutes: Float64Array[]

  /** `forecasters` rows (the model, then each baseline) by `targets` columns. */
  constructor(
    readonly forecasters: number,
    readonly targets: number,
  ) {
    this.squares = Array.from({ length: forecasters }, () => new Float64Array(targets))
    this.absolutes = Array.from({ length: forecasters }, () => new Float64Array(targets))
  }

  /** Scores one step: `forecasts[f][i]` is forecaster f's value for target i. */
  add(forecasts: readonly ArrayLike<number>[], truth: ArrayLike<number>): void {
    for (let f = 0; f < this.forecasters; f++) {
      const forecast = forecasts[f]!
      const sq = this.squares[f]!
      const abs = this.absolutes[f]!
      for (let i = 0; i < this.targets; i++) {
        const e = forecast[i]! - truth[i]!
        sq[i] = sq[i]! + e * e
        abs[i] = abs[i]! + Math.abs(e)
      }
    }
    this.n++
  }

  rmse(forecaster: number, target: number): number {
    return Math.sqrt(this.squares[forecaster]![target]! / this.n)
  }

  mae(forecaster: number, target: number): number {
    return this.absolutes[forecaster]![target]! / this.n
  }
}
