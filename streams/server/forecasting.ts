import { Packr } from 'msgpackr'
import type { DriftOptions, ForecastFields, KeyedTrainer, MissingPolicy } from '../../src/index.js'
import { ForecastBook, InputAugmenter, RxrnnError } from '../../src/index.js'
import type { FrameExpectations } from '../transport/protocol.js'
import type { ServerKeyExtras } from './learner.js'

/** The snapshots' msgpack settings: typed arrays come back as typed arrays. */
const packr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true, structuredClone: false })

/**
 * The forecasting side of `serve` (flags --horizon, --coverage, --anomaly-threshold, --drift,
 * --on-drift, --time-feature, --missing): the trainer's `horizon` sets the direct head; these
 * set the rest.
 *
 * @example
 * { coverage: 0.9, drift: { detector: 'adwin', response: 'reset' }, missing: 'last', timeFeature: true }
 */
export interface ServeForecastingOptions {
  /** Prediction frames carry `lower`/`upper` (and `anomaly` on ticks with `y`). */
  coverage?: number
  anomalyThreshold?: number
  /** Drift detection on each key's prequential loss; alarms go to `updates` subscribers. */
  drift?: DriftOptions
  /** The model also gets ln(1 + seconds since the key's last tick), from the ticks' `t`. */
  timeFeature?: boolean
  /** `null` entries in x are imputed, with a mask input per feature. */
  missing?: MissingPolicy
}

/**
 * What the server keeps for forecasting: the book, the input augmenter, and the counts metrics
 * show. Their per-key state lives in the keyed trainer's entries, so it leaves with each key.
 */
export class ServerForecasting {
  readonly book: ForecastBook
  readonly inputs: InputAugmenter | null
  /** Raw values per tick's x (the model takes more with --missing or --time-feature). */
  readonly rawInputSize: number
  /** Target width: values per row of `y` and of each `ahead` row. */
  readonly width: number

  constructor(
    readonly keyed: KeyedTrainer<ServerKeyExtras>,
    readonly options: ServeForecastingOptions,
  ) {
    const trainer = keyed.trainer
    this.book = new ForecastBook(trainer, {
      ...(options.coverage === undefined ? {} : { coverage: options.coverage }),
      ...(options.anomalyThreshold === undefined ? {} : { anomalyThreshold: options.anomalyThreshold }),
      ...(options.drift === undefined ? {} : { drift: options.drift }),
      // A queued update of the key runs before its reset (KeyedTrainer.reset).
      resetKey: (key) => keyed.reset(key),
      trackers: keyed.slots('tracker'),
    })
    this.width = this.book.width
    const inputSize = trainer.model.config.inputSize
    const extra = options.timeFeature === true || options.missing !== undefined
    if (extra) {
      const perFeature = options.missing ? 2 : 1
      const features = (inputSize - (options.timeFeature ? 1 : 0)) / perFeature
      this.inputs = new InputAugmenter({
        features,
        timeFeature: options.timeFeature === true,
        ...(options.missing ? { missing: options.missing } : {}),
        keys: keyed.slots('inputs'),
      })
      this.rawInputSize = features
    } else {
      this.inputs = null
      this.rawInputSize = inputSize
    }
  }

  /** The model's input for a tick. */
  prepare(key: string, x: ArrayLike<number | null>, t: number | undefined): ArrayLike<number> {
    return this.inputs ? this.inputs.prepare(key, x, t) : (x as ArrayLike<number>)
  }

  /** The fields a prediction frame gains, after the key's step produced `output`. */
  annotate(
    key: string,
    output: ArrayLike<number>,
    y: number | ArrayLike<number> | null | undefined,
  ): ForecastFields {
    // The model accepted the tick: its inputs may now count as the key's last ones.
    this.inputs?.commit()
    const entry = this.keyed.entry(key)
    if (!entry) return {}
    return this.book.step(key, entry.sequence, output, y)
  }

  /**
   * Every key's forecasting state as msgpack bytes (the checkpoint's sidecar, `<path>.forecast`):
   * intervals, anomaly and drift bookkeeping, and the inputs' last values and times.
   */
  snapshot(): Uint8Array {
    return packr.pack({ book: this.book.exportState(), inputs: this.inputs?.exportState() ?? null })
  }

  /** Resumes from `snapshot()`'s bytes (taken with the same options); throws RxrnnError('bad_snapshot'). */
  restore(bytes: Uint8Array): void {
    let saved: { book?: Record<string, unknown>; inputs?: Record<string, unknown> | null }
    try {
      saved = packr.unpack(bytes) as typeof saved
    } catch (e) {
      throw new RxrnnError('bad_snapshot', `Cannot restore the forecasting state: ${(e as Error).message}`)
    }
    if (saved === null || typeof saved !== 'object' || !saved.book)
      throw new RxrnnError('bad_snapshot', 'Cannot restore the forecasting state: it holds no book')
    this.book.importState(saved.book)
    if (this.inputs && saved.inputs) this.inputs.importState(saved.inputs)
  }

  /** Bytes of typed arrays one key's forecasting state takes (intervals, detectors, last inputs). */
  bytesPerKey(): number {
    return this.book.bytesPerKey() + (this.inputs ? 8 * this.inputs.features + 64 : 0)
  }

  /** Fields of the metrics frame: realised coverage (row 0, every key), anomalies and drifts so far. */
  metrics(): { intervalCoverage: number | null; anomalies: number; drifts: number } {
    const c = this.book.coverage()
    return {
      intervalCoverage: Number.isFinite(c) ? c : null,
      anomalies: this.book.anomalies,
      drifts: this.book.drifts,
    }
  }
}

/**
 * What a tick must look like for a model with (or without) forecasting: with --missing or
 * --time-feature the tick's x holds the raw values, with a horizon its y one row.
 */
export function tickExpectations(
  keyed: KeyedTrainer<ServerKeyExtras>,
  f: ServerForecasting | null,
): FrameExpectations {
  const c = keyed.trainer.model.config
  return {
    inputSize: f?.rawInputSize ?? c.inputSize,
    outputSize: f?.width ?? c.outputSize,
    task: keyed.trainer.loss.name === 'cross_entropy' ? 'classification' : 'regression',
    ...(f?.inputs?.missing ? { allowMissing: true } : {}),
  }
}

/** Whether a server or worker needs a ServerForecasting: forecasting settings, or a trainer horizon. */
export function wantsServerForecasting(
  keyed: KeyedTrainer<ServerKeyExtras>,
  options: ServeForecastingOptions | undefined,
): boolean {
  return (options !== undefined && Object.keys(options).length > 0) || keyed.trainer.options.horizon > 1
}
