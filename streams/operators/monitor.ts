import type { Observable } from 'rxjs'
import { Subject } from 'rxjs'
import type { DriftEvent, ForecastFields, UpdateReport } from '../../src/index.js'
import { copyReport, RxrnnError } from '../../src/index.js'
import type { ClassificationScores, RegressionScores } from './evaluation.js'
import { ClassificationEvaluator, RegressionEvaluator } from './evaluation.js'

/** An event an operator refused: skipped, counted, and reported here; the stream went on. */
export interface RejectedEvent {
  /** Machine-readable (see RxrnnErrorCode): bad_input, bad_target, missing_key, … */
  code: string
  /** What was wrong, and what to do. */
  message: string
  key?: string
  /** The refused event itself. */
  event: unknown
}

/** An update report tagged with the key whose window triggered it. */
export type KeyedUpdate = UpdateReport & { key?: string }

/** Everything a learner has measured so far. */
export interface MetricsSnapshot {
  /** Milliseconds since the epoch. */
  time: number
  events: number
  rejected: number
  updates: number
  skippedUpdates: number
  rolledBack: number
  /** Loss of the latest update, and its exponential moving average (α = 0.05). */
  loss: number
  lossAverage: number
  /** With the forecasting options: drift alarms and anomalies so far, and the realised interval coverage (row 0). */
  drifts?: number
  anomalies?: number
  intervalCoverage?: number
  /** Gradient norm of the latest update before and after clipping. */
  gradNorm: number
  clippedGradNorm: number
  /** Fraction of the last 100 updates that were clipped. */
  clipRate: number
  /** Events per second since the previous snapshot. */
  eventsPerSecond: number
  /** Keys held, and keys evicted so far (keyed operators). */
  keys?: number
  evicted?: number
  gradientFlow?: UpdateReport['gradientFlow']
  spectralRadius?: number[]
  /** Prequential scores (test-then-train) over the latest events. */
  regression?: RegressionScores
  classification?: ClassificationScores
}

/**
 * The side channels of the learning operators: metrics, refused events and updates, each an
 * Observable you subscribe to separately from the predictions.
 *
 * @example
 * const monitor = new Monitor()
 * monitor.metrics$.pipe(sampleTime(1000)).subscribe((m) => console.log(m.loss, m.clipRate))
 * monitor.errors$.subscribe((e) => console.warn(e.code, e.message))
 * events$.pipe(learn(model, options, { monitor })).subscribe()
 */
export class Monitor {
  private readonly metricsSubject = new Subject<MetricsSnapshot>()
  private readonly errorsSubject = new Subject<RejectedEvent>()
  private readonly updatesSubject = new Subject<KeyedUpdate>()
  /** A snapshot after every update (sample it: `metrics$.pipe(sampleTime(1000))`). */
  readonly metrics$: Observable<MetricsSnapshot> = this.metricsSubject.asObservable()
  readonly errors$: Observable<RejectedEvent> = this.errorsSubject.asObservable()
  readonly updates$: Observable<KeyedUpdate> = this.updatesSubject.asObservable()
  private readonly driftsSubject = new Subject<DriftEvent>()
  /** Drift alarms (with the `drift` option), per key, as they fire. */
  readonly drifts$: Observable<DriftEvent> = this.driftsSubject.asObservable()
  private drifts = 0
  private anomalies = 0
  private intervalOutcomes = 0
  private intervalHits = 0

  events = 0
  rejected = 0
  updates = 0
  skippedUpdates = 0
  rolledBack = 0
  keys: number | undefined
  evicted: number | undefined
  private last: UpdateReport | undefined
  private lossAverage = Number.NaN
  private regression: RegressionEvaluator | undefined
  private classification: ClassificationEvaluator | undefined
  private rateEvents = 0
  private rateTime: number

  constructor(
    private readonly now: () => number = Date.now,
    readonly scoreWindow = 500,
  ) {
    this.rateTime = now()
  }

  /** Counts a successful event. */
  event(): void {
    this.events++
  }

  /** Records a refused event; non-RxrnnErrors are not data problems and are rethrown. */
  reject(error: unknown, event: unknown, key?: string): void {
    if (!(error instanceof RxrnnError)) throw error
    this.rejected++
    const rejected: RejectedEvent = { code: error.code, message: error.message, event }
    if (key !== undefined) rejected.key = key
    this.errorsSubject.next(rejected)
  }

  /** Records an update; the report is copied (the trainer reuses its report object). */
  update(update: UpdateReport, key?: string): void {
    const report = copyReport(update)
    this.updates++
    if (report.skipped) this.skippedUpdates++
    if (report.rolledBack) this.rolledBack++
    this.last = report
    if (!report.skipped) {
      this.lossAverage = Number.isNaN(this.lossAverage)
        ? report.loss
        : 0.95 * this.lossAverage + 0.05 * report.loss
    }
    this.updatesSubject.next(key === undefined ? report : Object.assign(report, { key }))
    this.metricsSubject.next(this.snapshot())
  }

  /**
   * Scores one prediction prequentially (test-then-train) and keeps persistence's baseline: under
   * cross-entropy a classification score (the target is a class index); otherwise a regression
   * score next to persistence, whose forecast is the series' previous target, `baseline`. Returns
   * the baseline for the series' next call: this target, copied into `baseline` (allocated on the
   * first call, `null`). Pass no `baseline` where order means nothing (late labels): regression is
   * then scored without persistence and nothing is kept.
   *
   * @example
   * let baseline: Float64Array | null = null
   * for (const { x, y } of events) baseline = monitor.score(trainer.loss.name, model.predict(x), y, baseline)
   */
  score(
    loss: string,
    prediction: ArrayLike<number>,
    target: number | ArrayLike<number>,
    baseline: Float64Array | null,
  ): Float64Array | null
  score(loss: string, prediction: ArrayLike<number>, target: number | ArrayLike<number>): void
  score(
    loss: string,
    prediction: ArrayLike<number>,
    target: number | ArrayLike<number>,
    baseline?: Float64Array | null,
  ): Float64Array | null | undefined {
    if (loss === 'cross_entropy') {
      this.scoreClassification(prediction, typeof target === 'number' ? target : target[0]!)
      return baseline
    }
    const vector = typeof target === 'number' ? [target] : target
    this.scoreRegression(prediction, vector, baseline ?? null)
    if (baseline === undefined) return undefined
    const kept =
      baseline !== null && baseline.length === vector.length ? baseline : new Float64Array(vector.length)
    for (let i = 0; i < vector.length; i++) kept[i] = vector[i]!
    return kept
  }

  /** Scores a regression prediction against its target, next to persistence (the previous target). */
  scoreRegression(
    prediction: ArrayLike<number>,
    target: ArrayLike<number>,
    previousTarget: ArrayLike<number> | null,
  ): void {
    this.regression ??= new RegressionEvaluator(this.scoreWindow)
    this.regression.add(prediction, target, previousTarget)
  }

  scoreClassification(logits: ArrayLike<number>, target: number): void {
    this.classification ??= new ClassificationEvaluator(logits.length, this.scoreWindow)
    this.classification.add(logits, target)
  }

  snapshot(): MetricsSnapshot {
    const time = this.now()
    const elapsed = time - this.rateTime
    const eventsPerSecond = elapsed > 0 ? ((this.events - this.rateEvents) * 1000) / elapsed : 0
    if (elapsed >= 1000) {
      this.rateTime = time
      this.rateEvents = this.events
    }
    const u = this.last
    const s: MetricsSnapshot = {
      time,
      events: this.events,
      rejected: this.rejected,
      updates: this.updates,
      skippedUpdates: this.skippedUpdates,
      rolledBack: this.rolledBack,
      loss: u?.loss ?? Number.NaN,
      lossAverage: this.lossAverage,
      gradNorm: u?.gradNorm ?? Number.NaN,
      clippedGradNorm: u?.clippedGradNorm ?? Number.NaN,
      clipRate: u?.clipRate ?? 0,
      eventsPerSecond,
    }
    if (this.keys !== undefined) s.keys = this.keys
    if (this.evicted !== undefined) s.evicted = this.evicted
    if (u?.gradientFlow) s.gradientFlow = u.gradientFlow
    if (u?.spectralRadius) s.spectralRadius = u.spectralRadius
    if (this.drifts > 0) s.drifts = this.drifts
    if (this.anomalies > 0) s.anomalies = this.anomalies
    if (this.intervalOutcomes > 0) s.intervalCoverage = this.intervalHits / this.intervalOutcomes
    if (this.regression) s.regression = this.regression.scores()
    if (this.classification) s.classification = this.classification.scores()
    return s
  }

  /** A drift alarm: counted and sent on `drifts$`. */
  drift(event: DriftEvent): void {
    this.drifts++
    this.driftsSubject.next(event)
  }

  /** A tick's forecasting fields: counts anomalies and interval hits (and forwards a drift). */
  forecast(fields: ForecastFields): void {
    if (fields.isAnomaly) this.anomalies++
    if (fields.covered !== undefined) {
      this.intervalOutcomes++
      if (fields.covered) this.intervalHits++
    }
    if (fields.drift) this.drift(fields.drift)
  }

  /** Completes the channels (subscribers see complete). */
  complete(): void {
    this.metricsSubject.complete()
    this.errorsSubject.complete()
    this.updatesSubject.complete()
    this.driftsSubject.complete()
  }
}
