import { RxrnnError } from '../errors.js'
import type { KeySlots } from '../key-store.js'
import type { RecurrentState } from '../state.js'
import type { OnlineTrainer } from '../trainer.js'
import type { SequenceWindow } from '../window.js'
import type { KeyInputs } from './inputs.js'
import { RecursiveRollout } from './rollout.js'
import type { ForecastTrackingOptions } from './tracker.js'
import { ForecastTracker } from './tracker.js'

/** A drift alarm: the key, its observed steps (as in update reports), the detector and what was done. */
export interface DriftEvent {
  type: 'drift'
  key: string
  step: number
  detector: string
  response: string
  /** The loss that tipped it. */
  loss: number
  /** The detector's own account (Page-Hinkley: statistic and threshold; ADWIN: means before and after). */
  detail: Record<string, number>
}

/** What forecasting adds to a tick's result. Arrays are fresh: yours to keep. */
export interface ForecastFields {
  /** H rows of outputSize: row h − 1 forecasts the target h ticks on; row 0 is the prediction. */
  ahead?: number[][]
  /** The interval of row 0 (with `coverage`). */
  lower?: number[]
  upper?: number[]
  /** The intervals of every row (with `coverage` and a horizon > 1). */
  aheadLower?: number[][]
  aheadUpper?: number[][]
  /** 1 − conformal p-value of this tick's target (with `coverage`, on ticks with a target). */
  anomaly?: number
  /** anomaly >= anomalyThreshold. */
  isAnomaly?: boolean
  /** Whether this tick's target lay in the interval made for it (row 0, every output); with `coverage` and a target. */
  covered?: boolean
  /** Present on the tick the drift detector fired. */
  drift?: DriftEvent
}

/** Forecasting options as `learn`, `learnByKey`, `forecast` and `serve` take them. */
export interface ForecastingOptions extends ForecastTrackingOptions {
  /**
   * Recursive roll-out over this many steps (the model's output is its next input), when the
   * trainer has no direct multi-horizon head (`horizon` in the trainer options).
   */
  rollout?: number
  /** Runs the 'reset' drift response for a key; default: reset the sequence it was given. */
  resetKey?: (key: string, seq: SequenceWindow) => void
  /**
   * Where each key's tracker lives; default a map inside the book (then `delete` a key when you
   * drop it). With a KeyedTrainer pass `keyed.slots('tracker')`: the trackers live in its
   * entries and leave with their keys.
   */
  trackers?: KeySlots<ForecastTracker>
}

/**
 * What forecasting keeps per key, as fields of a KeyedTrainer's extras: pass
 * `keyed.slots('tracker')` to a ForecastBook and `keyed.slots('inputs')` to an InputAugmenter.
 */
export interface ForecastingExtras {
  tracker?: ForecastTracker
  inputs?: KeyInputs
}

/**
 * Per key forecasting around one trainer: splits the head's output into horizon rows, or rolls
 * a one-step model out; calibrates intervals, scores anomalies, watches for drift and runs the
 * drift response ('reset': the key's state and window; 'raise-lr': the shared learning rate for
 * a while; 'report': nothing). Keys are created on first sight; `delete` one when it is evicted,
or keep the trackers in a KeyedTrainer's entries (option `trackers`).
 *
 * Cost per tick: the tracker's O(H·O·log W) (see ForecastTracker), plus H − 1 forward steps
 * with a roll-out; memory per key O(H²·O + H·O·W).
 *
 * @example
 * const book = new ForecastBook(trainer, { coverage: 0.9, drift: { response: 'reset' } })
 * const { prediction } = trainer.observe(x, y)
 * const fields = book.step('sensor-7', trainer.sequence, prediction, y)
 */
export class ForecastBook {
  readonly horizon: number
  /** Outputs per row (the target's width). */
  readonly width: number
  private readonly trackers: KeySlots<ForecastTracker>
  private readonly rollout: RecursiveRollout | null
  private readonly target: Float64Array
  /** Drift alarms so far, over all keys. */
  drifts = 0
  anomalies = 0
  /** Outcomes scored and covered, over all keys (row 0): the realised coverage. */
  outcomes = 0
  covered = 0

  constructor(
    readonly trainer: OnlineTrainer,
    readonly options: ForecastingOptions,
  ) {
    this.trackers = options.trackers ?? new Map()
    const c = trainer.model.config
    const direct = trainer.options.horizon
    if (trainer.loss.name === 'cross_entropy' && (options.coverage !== undefined || options.drift))
      throw new RxrnnError(
        'bad_config',
        'Intervals, anomaly scores and drift detection work on regression targets (mse, huber, bce losses); ' +
          'this trainer classifies (cross_entropy): leave coverage and drift out',
      )
    this.rollout =
      options.rollout !== undefined && options.rollout > 1 && direct === 1
        ? new RecursiveRollout(trainer.model, options.rollout)
        : null
    this.horizon = this.rollout ? options.rollout! : direct
    this.width = c.outputSize / direct
    this.target = new Float64Array(this.width)
    // Validate the options now, not on the first event.
    new ForecastTracker(this.width, this.horizon, options)
  }

  /**
   * One tick of `key`, after the trainer's step on `seq` produced `output` (the head's whole
   * output) for this tick, whose target is `target` (a vector or number, or null).
   */
  step(
    key: string,
    seq: SequenceWindow,
    output: ArrayLike<number>,
    target: number | ArrayLike<number> | null | undefined,
  ): ForecastFields {
    const fields = this.forecast(key, seq.state, output)
    return target === undefined || target === null ? fields : this.outcome(key, seq, target, fields)
  }

  /**
   * The forecast half of `step`, for targets that arrive later: the rows and intervals of this
   * tick's forecast. `state` is the state after the step that made `output` (for a roll-out).
   */
  forecast(key: string, state: RecurrentState, output: ArrayLike<number>): ForecastFields {
    let tracker = this.trackers.get(key)
    if (!tracker) {
      tracker = new ForecastTracker(this.width, this.horizon, this.options)
      this.trackers.set(key, tracker)
    }
    const rows = this.rollout ? this.rollout.run(state, output) : output
    const r = tracker.forecast(rows)
    const fields: ForecastFields = {}
    const H = this.horizon
    if (H > 1) fields.ahead = this.split(rows)
    if (tracker.conformal) {
      fields.lower = Array.from(r.lower.subarray(0, this.width))
      fields.upper = Array.from(r.upper.subarray(0, this.width))
      if (H > 1) {
        fields.aheadLower = this.split(r.lower)
        fields.aheadUpper = this.split(r.upper)
      }
    }
    return fields
  }

  /**
   * The outcome half of `step`: the target of `key`'s latest forecast arrived. Adds the anomaly
   * score, coverage and any drift (running its response on `seq`) to `fields` (or a new object).
   */
  outcome(
    key: string,
    seq: SequenceWindow,
    target: number | ArrayLike<number>,
    fields: ForecastFields = {},
  ): ForecastFields {
    const tracker = this.trackers.get(key)
    if (!tracker) return fields
    const t = this.target
    if (typeof target === 'number') t[0] = target
    else for (let o = 0; o < this.width; o++) t[o] = target[o]!
    const W = this.width
    const missesBefore = this.rowMisses(tracker)
    const r = tracker.outcome(t)
    if (tracker.conformal) {
      fields.anomaly = r.anomaly
      fields.isAnomaly = r.isAnomaly
      if (r.isAnomaly) this.anomalies++
      const missed = this.rowMisses(tracker) - missesBefore
      this.outcomes += W
      this.covered += W - missed
      fields.covered = missed === 0
    }
    if (r.drift) {
      this.drifts++
      const drift = tracker.drift!
      if (drift.response === 'reset') {
        if (this.options.resetKey) this.options.resetKey(key, seq)
        else seq.reset()
      } else if (drift.response === 'raise-lr')
        this.trainer.learningRate.raise(drift.raiseFactor, drift.raiseUpdates)
      fields.drift = {
        type: 'drift',
        key,
        step: seq.observed,
        detector: drift.detector,
        response: drift.response,
        loss: r.loss,
        detail: tracker.detector!.describe(),
      }
    }
    return fields
  }

  /** H rows of `width` values, as plain arrays. */
  private split(a: ArrayLike<number>): number[][] {
    const W = this.width
    return Array.from({ length: this.horizon }, (_, h) => Array.from({ length: W }, (_, o) => a[h * W + o]!))
  }

  private rowMisses(tracker: ForecastTracker): number {
    let misses = 0
    if (tracker.conformal) for (let o = 0; o < this.width; o++) misses += tracker.conformal.misses[o]!
    return misses
  }

  /** Bytes of typed arrays one key's bookkeeping takes, for memory budgets. */
  bytesPerKey(): number {
    return new ForecastTracker(this.width, this.horizon, this.options).bytes()
  }

  /** The realised coverage of row 0 over every key so far (NaN before any outcome). */
  coverage(): number {
    return this.outcomes === 0 ? Number.NaN : this.covered / this.outcomes
  }

  /**
   * Every key's bookkeeping and the totals, as plain data with typed arrays (copies): put it in
   * your own snapshot, next to the trainer's, and `importState` it into a book made with the same
   * trainer settings and options to resume exactly.
   *
   * @example
   * const saved = { trainer: keyed.snapshot(), forecast: pack(book.exportState()) }
   */
  exportState(): Record<string, unknown> {
    return {
      keys: Object.fromEntries([...this.trackers.entries()].map(([key, t]) => [key, t.exportState()])),
      drifts: this.drifts,
      anomalies: this.anomalies,
      outcomes: this.outcomes,
      covered: this.covered,
    }
  }

  importState(saved: Record<string, unknown>): void {
    const keys = saved.keys
    if (keys === null || typeof keys !== 'object')
      throw new RxrnnError('bad_snapshot', 'Cannot restore this snapshot: forecast.keys is missing')
    const restored = new Map<string, ForecastTracker>()
    for (const [key, state] of Object.entries(keys as Record<string, Record<string, unknown>>)) {
      const tracker = new ForecastTracker(this.width, this.horizon, this.options)
      tracker.importState(state)
      restored.set(key, tracker)
    }
    const count = (name: string): number => {
      const v = saved[name]
      if (typeof v !== 'number' || !(v >= 0))
        throw new RxrnnError(
          'bad_snapshot',
          `Cannot restore this snapshot: forecast.${name} is ${JSON.stringify(v)}`,
        )
      return v
    }
    const totals = [count('drifts'), count('anomalies'), count('outcomes'), count('covered')] as const
    this.trackers.clear()
    for (const [key, t] of restored) this.trackers.set(key, t)
    ;[this.drifts, this.anomalies, this.outcomes, this.covered] = totals
  }

  tracker(key: string): ForecastTracker | undefined {
    return this.trackers.get(key)
  }

  delete(key: string): void {
    this.trackers.delete(key)
  }
}
