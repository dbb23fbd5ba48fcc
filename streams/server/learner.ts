/**
 * The learning half of the server, with no transport in it: the keyed trainer (shared weights,
 * per-key state), the monitor that scores it, each key's last target (for the persistence
 * baseline), and deferred updates (answer first, learn after). `serve()` feeds it ticks and
 * turns what it returns into frames.
 */
import type {
  ForecastFields,
  ForecastingExtras,
  ModelConfig,
  TrainerOptions,
  UpdateReport,
} from '../../src/index.js'
import { createModel, KeyedTrainer, Model, OnlineTrainer } from '../../src/index.js'
import { Monitor } from '../operators/monitor.js'
import type { FrameExpectations, ModelSummary, NumericVector } from '../transport/protocol.js'
import type { ServeForecastingOptions } from './forecasting.js'
import { ServerForecasting, tickExpectations } from './forecasting.js'

export interface LearnerOptions {
  model: Model | ModelConfig
  trainer: TrainerOptions
  /** A checkpoint's bytes: model and trainer come from it, not from `model` and `trainer`. */
  resumeFrom?: Uint8Array | null
  maxKeys?: number
  idleMs?: number
  staggerUpdates?: boolean
  /** See `ServeOptions.deferUpdates`. Default true. */
  deferUpdates?: boolean
  /** Called with every update the trainer runs (after the monitor has it). */
  onUpdate: (key: string, report: UpdateReport) => void
  /** Intervals, anomalies, drift, irregular time, missing values (see `ServeOptions.forecasting`). */
  forecasting?: ServeForecastingOptions
}

/**
 * What a tick gives back. Further per-tick outputs (forecasts ahead, intervals, anomaly scores)
 * are fields added here and copied into the prediction frame by `serve()`.
 */
export interface TickResult {
  /** The model's output as a plain array (a typed array would go out as msgpackr's extension). */
  y: number[]
  /** With forecasting: `ahead`, intervals, the anomaly score and a drift alarm (fresh arrays). */
  forecast?: ForecastFields | undefined
}

const noUpdates: readonly UpdateReport[] = []

/** What the server keeps per key besides its state and window: it lives in the key's entry. */
export interface ServerKeyExtras extends ForecastingExtras {
  /** The key's last target (persistence's forecast of its next), rewritten in place. */
  previousTarget: Float64Array | null
}

/**
 * Ends a key's sequence: its state and window, the forecasts still waiting for their targets, and
 * the persistence baseline (its next target follows no previous one).
 */
export function resetServerKey(keyed: KeyedTrainer<ServerKeyExtras>, key: string): void {
  keyed.reset(key)
  const extras = keyed.entry(key)?.extras
  if (extras) {
    extras.tracker?.forgetForecasts()
    extras.previousTarget = null
  }
}

/** A new key's extras: nothing kept yet. */
export const newServerKeyExtras = (): ServerKeyExtras => ({ previousTarget: null })

/**
 * @example
 * const learner = new Learner({ model: { cell: 'gru', inputSize: 2, hiddenSize: 16, outputSize: 1 },
 *   trainer: { k1: 8 }, onUpdate: (key, u) => console.log(key, u.loss) })
 * const { y } = learner.tick('sensor-1', [0.1, 0.2], 0.3)
 */
export class Learner {
  readonly keyed: KeyedTrainer<ServerKeyExtras>
  readonly trainer: OnlineTrainer
  readonly model: Model
  readonly monitor = new Monitor()
  readonly classification: boolean
  readonly summary: ModelSummary
  /** Ticks refused, per error code. */
  readonly rejectedByCode = new Map<string, number>()
  /** Intervals, anomaly scores and drift per key (with forecasting options or a trainer horizon), else null. */
  readonly forecasting: ServerForecasting | null
  private readonly targetScratch = new Float64Array(1)
  private readonly deferUpdates: boolean
  private readonly onUpdate: (key: string, report: UpdateReport) => void
  /** Reused by every tick (its fields are replaced, never mutated in place): no allocation per tick. */
  private readonly result: TickResult = { y: [] }
  private flushScheduled = false
  private readonly flushBound = () => this.flush()

  constructor(options: LearnerOptions) {
    // Every server setting is given, so that none comes from a checkpoint.
    const serverSettings = {
      maxKeys: options.maxKeys ?? 100_000,
      idleMs: options.idleMs ?? Number.POSITIVE_INFINITY,
      staggerUpdates: options.staggerUpdates ?? true,
      extras: newServerKeyExtras,
    }
    if (options.resumeFrom) {
      // Server settings come from the caller, the model and trainer from the checkpoint.
      this.keyed = KeyedTrainer.fromSnapshot<ServerKeyExtras>(options.resumeFrom, serverSettings)
    } else {
      const model = options.model instanceof Model ? options.model : createModel(options.model)
      this.keyed = new KeyedTrainer(new OnlineTrainer(model, options.trainer), serverSettings)
    }
    this.trainer = this.keyed.trainer
    this.model = this.trainer.model
    const horizon = this.trainer.options.horizon
    this.forecasting =
      options.forecasting || horizon > 1 ? new ServerForecasting(this.keyed, options.forecasting ?? {}) : null
    this.deferUpdates = options.deferUpdates ?? true
    this.onUpdate = options.onUpdate
    this.classification = this.trainer.loss.name === 'cross_entropy'
    const c = this.model.config
    this.summary = {
      cell: c.cell,
      inputSize: c.inputSize,
      hiddenSize: c.hiddenSize,
      numLayers: c.numLayers,
      // With a multi-horizon head: the target's width (each `ahead` row), and the horizon.
      outputSize: this.forecasting?.width ?? c.outputSize,
      ...(horizon > 1 ? { horizon } : {}),
      dtype: c.dtype,
      task: this.classification ? 'classification' : 'regression',
      loss: this.trainer.loss.name,
      algorithm: this.trainer.options.algorithm,
      k1: this.trainer.options.k1,
      k2: this.trainer.options.k2,
      optimizer: this.trainer.optimizer.config.type,
      lr: this.trainer.optimizer.config.lr,
      clipNorm: this.trainer.options.clipNorm ?? null,
    }
    // A checkpoint can hold windows that were complete but not yet learned from.
    this.scheduleFlush()
  }

  /** What a tick must look like for this model (for `decodeClientFrame`). */
  expectations(): FrameExpectations {
    return tickExpectations(this.keyed, this.forecasting)
  }

  has(key: string): boolean {
    return this.keyed.entry(key) !== undefined
  }

  /**
   * Predicts for the tick, then learns from it (now, or deferred until the current batch of
   * replies is out). Throws RxrnnError for a tick the model cannot take; the state is then
   * unchanged. The result object is reused by the next tick: read it before then (its arrays are
   * fresh each tick and may be kept).
   */
  tick(
    key: string,
    x: NumericVector | ArrayLike<number | null>,
    y: number | NumericVector | undefined,
    t?: number,
  ): TickResult {
    let output: ArrayLike<number>
    let updates: readonly UpdateReport[] = noUpdates
    const f = this.forecasting
    // With --missing or --time-feature the model's input is built here (imputed values, masks, Δt).
    const input = f ? f.prepare(key, x, t) : (x as NumericVector)
    if (this.deferUpdates) {
      output = this.keyed.observeDeferred(key, input, y ?? null)
      this.scheduleFlush()
    } else {
      const observed = this.keyed.observe(key, input, y ?? null)
      output = observed.prediction
      updates = observed.updates
    }
    // Intervals, anomaly and drift; with a horizon, `y` is row 0 of the head's rows.
    const forecast = f ? f.annotate(key, output, y) : undefined
    // A loop, not Array.from, which walks an iterator.
    const width = f?.width ?? output.length
    const prediction = new Array<number>(width)
    for (let i = 0; i < width; i++) prediction[i] = output[i]!
    this.monitor.event()
    if (y !== undefined) this.score(key, prediction, y)
    if (forecast) this.monitor.forecast(forecast)
    for (const u of updates) this.report(key, u)
    this.result.y = prediction
    this.result.forecast = forecast
    return this.result
  }

  /** Counts a refused tick or frame. */
  reject(error: { code: string }): void {
    this.rejectedByCode.set(error.code, (this.rejectedByCode.get(error.code) ?? 0) + 1)
  }

  /** The key's top-layer hidden state, or undefined for an unknown key. */
  hidden(key: string): Float32Array | Float64Array | undefined {
    return this.keyed.entry(key)?.sequence.state.hidden()
  }

  reset(key: string): void {
    resetServerKey(this.keyed, key)
    this.scheduleFlush()
  }

  /** Evicts keys idle past idleMs; their queued updates ran as they left and are reported now. */
  evictIdle(): void {
    this.keyed.evictIdle()
    this.scheduleFlush()
  }

  /** Runs the queued updates now and reports them. */
  flush(): void {
    this.flushScheduled = false
    for (const { key, report } of this.keyed.runDueUpdates()) this.report(key, report)
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.keyed.dueUpdates === 0) return
    this.flushScheduled = true
    // After this turn's I/O (and the uncork of its replies).
    setImmediate(this.flushBound)
  }

  private report(key: string, u: UpdateReport): void {
    this.monitor.update(u, key)
    this.onUpdate(key, u)
  }

  private score(key: string, prediction: number[], y: number | NumericVector): void {
    if (this.classification) {
      this.monitor.scoreClassification(prediction, typeof y === 'number' ? y : y[0]!)
      return
    }
    let target: ArrayLike<number> = y as NumericVector
    if (typeof y === 'number') {
      this.targetScratch[0] = y
      target = this.targetScratch
    }
    // Each key's last target, for the persistence baseline: one buffer per key, rewritten.
    const extras = this.keyed.entry(key)!.extras
    let previous = extras.previousTarget
    this.monitor.scoreRegression(prediction, target, previous)
    if (!previous) extras.previousTarget = previous = new Float64Array(prediction.length)
    previous.set(target)
  }
}
