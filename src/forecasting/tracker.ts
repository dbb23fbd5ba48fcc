import { RxrnnError } from '../errors.js'
import type { ConformalOptions } from './conformal.js'
import { AdaptiveConformal } from './conformal.js'
import type { DriftDetector, DriftOptions, ResolvedDriftOptions } from './drift.js'
import { createDriftDetector, resolveDriftOptions } from './drift.js'

/**
 * What to track around a key's forecasts, with the option names of `learn`, `learnByKey`,
 * `forecast` and `rxrnn serve`.
 *
 * @example
 * { coverage: 0.9, anomalyThreshold: 0.99, drift: { detector: 'adwin', response: 'reset' } }
 */
export interface ForecastTrackingOptions {
  /** Intervals holding the target with long-run probability c (or the full conformal options). */
  coverage?: number | ConformalOptions
  /** Mark a tick anomalous when its anomaly score is >= this (needs `coverage`). Default 0.99. */
  anomalyThreshold?: number
  /** Detect drift on the prequential loss (true: the defaults). */
  drift?: boolean | DriftOptions
}

/** One tick's account (reused by the next tick of the same tracker: copy what you keep). */
export interface ForecastStep {
  /** Interval per row and output of this tick's forecast (±Infinity until calibrated); empty without coverage. */
  readonly lower: Float64Array
  readonly upper: Float64Array
  /** 1 − conformal p-value of this tick's target against the forecast made for it; NaN without a target. */
  anomaly: number
  /** anomaly >= anomalyThreshold. */
  isAnomaly: boolean
  /** The prequential squared error of this tick's (row 0) forecast, mean over outputs; NaN without target. */
  loss: number
  /** The drift detector fired on this tick. */
  drift: boolean
}

/**
 * Per-key bookkeeping around a forecaster, O(H²·O) memory and O(H·O·log W) work per tick
 * (H: horizon, O: outputs, W: the conformal window): remembers the last H forecasts and their
 * intervals, scores each row against its target when it arrives (row h − 1 of the forecast
 * made h − 1 ticks ago against this tick's target), calibrates one adaptive conformal series
 * per row and output, scores anomalies and watches the loss for drift.
 *
 * Anomaly score: the conformal p-value of this tick's row-0 absolute residual among the recent
 * ones, p_o = (1 + #{stored ≥ r_o}) / (n + 1), combined over outputs by Bonferroni:
 * anomaly = 1 − min(1, O · min_o p_o). Under exchangeable residuals P(anomaly ≥ 1 − a) ≤ a, so a
 * threshold θ marks at most 1 − θ of normal ticks (θ = 0.99: 1 %).
 *
 * @example
 * const tracker = new ForecastTracker(1, 1, { coverage: 0.9, drift: true })
 * const step = tracker.step(prediction, target)
 * if (step.isAnomaly) console.log('unusual', step.anomaly)
 */
export class ForecastTracker {
  readonly conformal: AdaptiveConformal | null
  readonly drift: ResolvedDriftOptions | null
  readonly detector: DriftDetector | null
  readonly anomalyThreshold: number
  private readonly rows: number
  /** The last H forecasts (rows × outputs each) and their intervals, newest at `newest`. */
  private readonly past: Float64Array
  private readonly pastLower: Float64Array
  private readonly pastUpper: Float64Array
  private newest = -1
  private held = 0
  private readonly result: ForecastStep
  /** Ticks with a target, anomalies marked and drifts detected, so far. */
  scored = 0
  anomalies = 0
  drifts = 0

  constructor(
    readonly outputSize: number,
    readonly horizon: number,
    options: ForecastTrackingOptions,
  ) {
    const H = horizon
    const O = outputSize
    this.rows = H * O
    const coverage = options.coverage
    this.conformal =
      coverage === undefined
        ? null
        : new AdaptiveConformal(H * O, typeof coverage === 'number' ? { coverage } : coverage)
    const threshold = options.anomalyThreshold ?? 0.99
    if (typeof threshold !== 'number' || !(threshold > 0 && threshold <= 1))
      throw new RxrnnError(
        'bad_config',
        `anomalyThreshold is ${JSON.stringify(threshold)}; it must be in (0, 1], e.g. 0.99`,
      )
    this.anomalyThreshold = threshold
    this.drift = options.drift ? resolveDriftOptions(options.drift) : null
    this.detector = this.drift ? createDriftDetector(this.drift) : null
    const n = this.conformal ? H * H * O : 0
    this.past = new Float64Array(H * H * O)
    this.pastLower = new Float64Array(n)
    this.pastUpper = new Float64Array(n)
    const intervals = this.conformal ? H * O : 0
    this.result = {
      lower: new Float64Array(intervals),
      upper: new Float64Array(intervals),
      anomaly: Number.NaN,
      isAnomaly: false,
      loss: Number.NaN,
      drift: false,
    }
  }

  /**
   * One tick: `forecast` holds this tick's H rows of O values (row 0 the next value), `target`
   * this tick's O target values or null. Returns the intervals for `forecast` (made before the
   * target is looked at), then scores the target against every forecast made for it.
   */
  step(forecast: ArrayLike<number>, target: ArrayLike<number> | null): ForecastStep {
    this.forecast(forecast)
    return target === null ? this.result : this.outcome(target)
  }

  /**
   * The first half of `step`, for targets that arrive later (before the next forecast): records
   * this tick's forecast and returns its intervals; `anomaly`, `loss` and `drift` are cleared.
   */
  forecast(forecast: ArrayLike<number>): ForecastStep {
    const H = this.horizon
    const rows = this.rows
    const r = this.result
    const cal = this.conformal
    this.newest = (this.newest + 1) % H
    if (this.held < H) this.held++
    const at = this.newest * rows
    for (let i = 0; i < rows; i++) this.past[at + i] = forecast[i]!
    if (cal) {
      for (let i = 0; i < rows; i++) {
        const q = cal.halfWidth(i)
        r.lower[i] = forecast[i]! - q
        r.upper[i] = forecast[i]! + q
      }
      this.pastLower.set(r.lower, at)
      this.pastUpper.set(r.upper, at)
    }
    r.anomaly = Number.NaN
    r.isAnomaly = false
    r.loss = Number.NaN
    r.drift = false
    return r
  }

  /** The second half of `step`: the target of the latest forecast arrived; scores it against every forecast made for it. */
  outcome(target: ArrayLike<number>): ForecastStep {
    const H = this.horizon
    const O = this.outputSize
    const rows = this.rows
    const r = this.result
    const cal = this.conformal
    const at = this.newest * rows
    // The latest forecast is past[at .. at + rows): read in place (no view allocated per tick).
    const past = this.past
    this.scored++
    let loss = 0
    for (let o = 0; o < O; o++) {
      const d = target[o]! - past[at + o]!
      loss += d * d
    }
    r.loss = loss / O
    if (cal) {
      // Anomaly first: the p-value is against the residuals before this one joins them.
      let minP = 1
      for (let o = 0; o < O; o++) minP = Math.min(minP, cal.pValue(o, Math.abs(target[o]! - past[at + o]!)))
      r.anomaly = 1 - Math.min(1, O * minP)
      r.isAnomaly = r.anomaly >= this.anomalyThreshold
      if (r.isAnomaly) this.anomalies++
      for (let h = 1; h <= Math.min(H, this.held); h++) {
        const slot = ((this.newest - (h - 1) + H) % H) * rows + (h - 1) * O
        for (let o = 0; o < O; o++) {
          const y = target[o]!
          const covered = y >= this.pastLower[slot + o]! && y <= this.pastUpper[slot + o]!
          cal.observe((h - 1) * O + o, Math.abs(y - this.past[slot + o]!), covered)
        }
      }
    }
    if (this.detector?.update(r.loss)) {
      r.drift = true
      this.drifts++
    }
    return r
  }

  /** Bytes of typed arrays this tracker holds (intervals, remembered forecasts, detector), for memory budgets. */
  bytes(): number {
    const series = this.rows
    const conformal = this.conformal ? series * (2 * this.conformal.options.window * 8 + 3 * 8 + 2 * 4) : 0
    const past = this.past.byteLength + this.pastLower.byteLength + this.pastUpper.byteLength
    // ADWIN's buckets (about 200 numbers); Page-Hinkley keeps 6.
    const detector = this.detector ? (this.drift?.detector === 'adwin' ? 200 * 8 : 6 * 8) : 0
    return conformal + past + detector
  }

  /** Realised coverage of row 0 (the next value), over outputs; NaN before any outcome or without coverage. */
  coverage(row = 0): number {
    const cal = this.conformal
    if (!cal) return Number.NaN
    let outcomes = 0
    let misses = 0
    for (let o = 0; o < this.outputSize; o++) {
      outcomes += cal.outcomes[row * this.outputSize + o]!
      misses += cal.misses[row * this.outputSize + o]!
    }
    return outcomes === 0 ? Number.NaN : 1 - misses / outcomes
  }

  /** Everything needed to resume this key's bookkeeping exactly (copies). */
  exportState(): Record<string, unknown> {
    return {
      past: this.past.slice(),
      pastLower: this.pastLower.slice(),
      pastUpper: this.pastUpper.slice(),
      newest: this.newest,
      held: this.held,
      scored: this.scored,
      anomalies: this.anomalies,
      drifts: this.drifts,
      conformal: this.conformal?.exportState() ?? null,
      detector: this.detector?.exportState() ?? null,
    }
  }

  /** Restores `exportState`'s output into a tracker made with the same sizes and options. */
  importState(saved: Record<string, unknown>): void {
    const put = (to: Float64Array, from: unknown, name: string) => {
      if (!ArrayBuffer.isView(from) || (from as Float64Array).length !== to.length)
        throw new RxrnnError('bad_snapshot', `Cannot restore this snapshot: forecast.${name} does not fit`)
      to.set(from as Float64Array)
    }
    const int = (name: string, min: number): number => {
      const v = saved[name]
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
        throw new RxrnnError(
          'bad_snapshot',
          `Cannot restore this snapshot: forecast.${name} is ${JSON.stringify(v)}`,
        )
      return v
    }
    put(this.past, saved.past, 'past')
    put(this.pastLower, saved.pastLower, 'pastLower')
    put(this.pastUpper, saved.pastUpper, 'pastUpper')
    const conformal = saved.conformal as Record<string, unknown> | null
    const detector = saved.detector as Record<string, unknown> | null
    if (
      (conformal === null) !== (this.conformal === null) ||
      (detector === null) !== (this.detector === null)
    )
      throw new RxrnnError(
        'bad_snapshot',
        'Cannot restore this snapshot: it was taken with other forecasting options',
      )
    if (conformal) this.conformal!.importState(conformal)
    if (detector) this.detector!.importState(detector)
    this.newest = int('newest', -1)
    this.held = int('held', 0)
    this.scored = int('scored', 0)
    this.anomalies = int('anomalies', 0)
    this.drifts = int('drifts', 0)
  }

  /** A sequence boundary: forget the remembered forecasts (they belong to the old sequence). */
  forgetForecasts(): void {
    this.held = 0
  }
}
