/**
 * Prequential ("test-then-train") evaluation: every prediction is scored against its target
 * before the model learns from that target, so the score is an honest out-of-sample error
 * on a stream that never ends. Scores are over a rolling window of the latest events.
 */

/** A rolling mean over the last `size` values, O(1) per value, no allocation. */
export class RollingMean {
  private readonly values: Float64Array
  private sum = 0
  private next = 0
  count = 0

  constructor(readonly size: number) {
    this.values = new Float64Array(size)
  }

  add(v: number): void {
    if (this.count === this.size) this.sum -= this.values[this.next]!
    else this.count++
    this.values[this.next] = v
    this.sum += v
    this.next = (this.next + 1) % this.size
    // Re-add from scratch once per lap so rounding in the running sum cannot drift.
    if (this.next === 0) {
      let s = 0
      for (let i = 0; i < this.count; i++) s += this.values[i]!
      this.sum = s
    }
  }

  get mean(): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count
  }

  reset(): void {
    this.sum = 0
    this.next = 0
    this.count = 0
  }
}

/** Rolling regression errors of the model next to the naive persistence forecast. */
export interface RegressionScores {
  /** Events scored in the window. */
  n: number
  rmse: number
  mae: number
  /** The same errors for persistence: predicting that the target equals the previous target. */
  persistenceRmse: number
  persistenceMae: number
  /** 1 − MSE / MSE_persistence: above 0 the model beats persistence. */
  skill: number
}

export class RegressionEvaluator {
  private readonly sq: RollingMean
  private readonly abs: RollingMean
  private readonly persistenceSq: RollingMean
  private readonly persistenceAbs: RollingMean

  constructor(window = 500) {
    this.sq = new RollingMean(window)
    this.abs = new RollingMean(window)
    this.persistenceSq = new RollingMean(window)
    this.persistenceAbs = new RollingMean(window)
  }

  /** Scores one prediction; `previousTarget` is persistence's forecast (skipped when null). */
  add(
    prediction: ArrayLike<number>,
    target: ArrayLike<number>,
    previousTarget: ArrayLike<number> | null,
  ): void {
    if (previousTarget === null) return
    const n = target.length
    let sq = 0
    let abs = 0
    let psq = 0
    let pabs = 0
    for (let i = 0; i < n; i++) {
      const d = prediction[i]! - target[i]!
      const p = previousTarget[i]! - target[i]!
      sq += d * d
      abs += Math.abs(d)
      psq += p * p
      pabs += Math.abs(p)
    }
    this.sq.add(sq / n)
    this.abs.add(abs / n)
    this.persistenceSq.add(psq / n)
    this.persistenceAbs.add(pabs / n)
  }

  scores(): RegressionScores {
    const mse = this.sq.mean
    const pmse = this.persistenceSq.mean
    return {
      n: this.sq.count,
      rmse: Math.sqrt(mse),
      mae: this.abs.mean,
      persistenceRmse: Math.sqrt(pmse),
      persistenceMae: this.persistenceAbs.mean,
      skill: pmse > 0 ? 1 - mse / pmse : Number.NaN,
    }
  }
}

/** Rolling accuracy and log-loss of a classifier whose outputs are logits (cross_entropy). */
export interface ClassificationScores {
  n: number
  accuracy: number
  logLoss: number
  /** Accuracy of always predicting the most frequent class seen so far. */
  majorityAccuracy: number
}

export class ClassificationEvaluator {
  private readonly correct: RollingMean
  private readonly logLoss: RollingMean
  private readonly majority: RollingMean
  private readonly classCounts: Float64Array

  constructor(
    readonly numClasses: number,
    window = 500,
  ) {
    this.correct = new RollingMean(window)
    this.logLoss = new RollingMean(window)
    this.majority = new RollingMean(window)
    this.classCounts = new Float64Array(numClasses)
  }

  add(logits: ArrayLike<number>, target: number): void {
    let best = 0
    let max = Number.NEGATIVE_INFINITY
    for (let i = 0; i < this.numClasses; i++) {
      if (logits[i]! > max) {
        max = logits[i]!
        best = i
      }
    }
    let sumExp = 0
    for (let i = 0; i < this.numClasses; i++) sumExp += Math.exp(logits[i]! - max)
    this.correct.add(best === target ? 1 : 0)
    this.logLoss.add(max + Math.log(sumExp) - logits[target]!)
    let majorityClass = 0
    for (let i = 1; i < this.numClasses; i++)
      if (this.classCounts[i]! > this.classCounts[majorityClass]!) majorityClass = i
    this.majority.add(majorityClass === target ? 1 : 0)
    this.classCounts[target] = this.classCounts[target]! + 1
  }

  scores(): ClassificationScores {
    return {
      n: this.correct.count,
      accuracy: this.correct.mean,
      logLoss: this.logLoss.mean,
      majorityAccuracy: this.majority.mean,
    }
  }
}

/**
 * Errors over a whole evaluation period (not a rolling window), per output: for the summary of
 * a replay, where every forecast since warm-up counts once.
 *
 * @example
 * const totals = new ErrorTotals(2)
 * totals.add(prediction, truth)
 * console.log(totals.at(0).rmse, totals.at(1).mae)
 */
export class ErrorTotals {
  /** Forecasts scored. */
  n = 0
  private readonly squares: Float64Array
  private readonly absolutes: Float64Array

  constructor(readonly size: number) {
    this.squares = new Float64Array(size)
    this.absolutes = new Float64Array(size)
  }

  add(forecast: ArrayLike<number>, truth: ArrayLike<number>): void {
    this.n++
    for (let k = 0; k < this.size; k++) {
      const e = forecast[k]! - truth[k]!
      this.squares[k] = this.squares[k]! + e * e
      this.absolutes[k] = this.absolutes[k]! + Math.abs(e)
    }
  }

  rmse(k: number): number {
    return Math.sqrt(this.squares[k]! / this.n)
  }

  mae(k: number): number {
    return this.absolutes[k]! / this.n
  }

  at(k: number): { rmse: number; mae: number } {
    return { rmse: this.rmse(k), mae: this.mae(k) }
  }
}
