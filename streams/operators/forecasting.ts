import type {
  ConformalOptions,
  DriftDetectorName,
  DriftOptions,
  DriftResponse,
  ForecastFields,
  ForecastingExtras,
  MissingPolicy,
  OnlineTrainer,
  RecurrentState,
  SequenceWindow,
  TrainerOptions,
} from '../../src/index.js'
import { ForecastBook, InputAugmenter, KeyedTrainer, RxrnnError } from '../../src/index.js'

/**
 * Forecasting options of `learn`, `learnByKey` and `forecast`, named as `rxrnn serve`'s flags
 * (--horizon, --coverage, --anomaly-threshold, --drift, --on-drift, --time-feature, --missing).
 *
 * Sizes: with `horizon` H the model's outputSize is H × the target's width; with `missing` the
 * model takes a mask per feature too, and with `timeFeature` one more input (see `modelInputSize`).
 *
 * @example
 * learn(model, trainerOptions, { horizon: 6, coverage: 0.9, drift: 'adwin', onDrift: 'reset' })
 */
export interface ForecastingOptions {
  /** Direct multi-horizon head: results carry `ahead` (H rows). Sets the trainer's `horizon` (k2 defaults to k1 + H − 1). */
  horizon?: number
  /** Recursive roll-out over this many steps instead (the model's output is its next input). */
  rollout?: number
  /** Results carry `lower`/`upper` (and `aheadLower`/`aheadUpper`) and, with a target, `anomaly`. */
  coverage?: number | ConformalOptions
  /** `isAnomaly` when anomaly >= this. Default 0.99. */
  anomalyThreshold?: number
  /** Drift detection on each key's prequential loss: true, a detector name, or the full options. */
  drift?: boolean | DriftDetectorName | DriftOptions
  /** What a drift alarm does: 'reset' the key, 'raise-lr' for a while, or 'report' (default). */
  onDrift?: DriftResponse
  /** Events may carry `t` (ms since the epoch): the model also gets ln(1 + seconds since the key's last event). */
  timeFeature?: boolean
  /** `x` may hold `null`: imputed ('last' value or 'zero') with a mask input per feature. */
  missing?: MissingPolicy
}

/** What forecasting adds to an operator's result (see ForecastFields). */
export type ForecastResultFields = Omit<ForecastFields, 'covered'>

/** The model inputs for `features` raw values under these options. */
export function modelInputSize(features: number, options: ForecastingOptions): number {
  return features * (options.missing ? 2 : 1) + (options.timeFeature ? 1 : 0)
}

/** Trainer options with the operator's `horizon` applied (k2 reaching back over it unless given). */
export function withHorizon(
  trainerOptions: TrainerOptions | undefined,
  options: ForecastingOptions,
): TrainerOptions | undefined {
  const H = options.horizon
  if (H === undefined || H === 1 || !trainerOptions) return trainerOptions
  return { ...trainerOptions, horizon: H, k2: trainerOptions.k2 ?? trainerOptions.k1 + H - 1 }
}

/** Whether any forecasting option is set. */
export function wantsForecasting(o: ForecastingOptions): boolean {
  return (
    (o.horizon ?? 1) > 1 ||
    (o.rollout ?? 1) > 1 ||
    o.coverage !== undefined ||
    (o.drift !== undefined && o.drift !== false) ||
    o.onDrift !== undefined ||
    o.timeFeature === true ||
    o.missing !== undefined
  )
}

/**
 * One subscription's forecasting: input preparation per key, the ForecastBook, and result fields.
 * Around a KeyedTrainer, the per-key state lives in its entries (and leaves with each key) and
 * the 'reset' drift response resets the key there; around a single trainer (learn) it is one key.
 * @internal
 */
export class OperatorForecasting {
  readonly book: ForecastBook
  readonly inputs: InputAugmenter | null
  readonly width: number

  constructor(owner: OnlineTrainer | KeyedTrainer<ForecastingExtras>, options: ForecastingOptions) {
    const keyed = owner instanceof KeyedTrainer ? owner : null
    const trainer = keyed ? keyed.trainer : (owner as OnlineTrainer)
    if (options.horizon !== undefined && options.horizon !== trainer.options.horizon)
      throw new RxrnnError(
        'bad_config',
        `horizon ${options.horizon} was asked for, but the trainer given has horizon ${trainer.options.horizon}; ` +
          'pass a model (the operator makes the trainer) or set horizon in its trainer options',
      )
    const drift = options.drift
    const driftOptions: DriftOptions | undefined =
      drift === undefined || drift === false
        ? options.onDrift
          ? { response: options.onDrift }
          : undefined
        : {
            ...(drift === true ? {} : typeof drift === 'string' ? { detector: drift } : drift),
            ...(options.onDrift ? { response: options.onDrift } : {}),
          }
    this.book = new ForecastBook(trainer, {
      ...(options.coverage === undefined ? {} : { coverage: options.coverage }),
      ...(options.anomalyThreshold === undefined ? {} : { anomalyThreshold: options.anomalyThreshold }),
      ...(driftOptions ? { drift: driftOptions } : {}),
      ...(options.rollout === undefined ? {} : { rollout: options.rollout }),
      // A queued update of the key runs before its reset (KeyedTrainer.reset).
      ...(keyed ? { resetKey: (key: string) => keyed.reset(key), trackers: keyed.slots('tracker') } : {}),
    })
    this.width = this.book.width
    const inputSize = trainer.model.config.inputSize
    if (options.timeFeature || options.missing) {
      const features = (inputSize - (options.timeFeature ? 1 : 0)) / (options.missing ? 2 : 1)
      if (!Number.isInteger(features) || features < 1)
        throw new RxrnnError(
          'bad_config',
          `The model's inputSize ${inputSize} does not fit ${options.missing ? 'a mask per feature' : ''}` +
            `${options.timeFeature ? ' and the time input' : ''}: create it with inputSize = modelInputSize(features, options)`,
        )
      this.inputs = new InputAugmenter({
        features,
        timeFeature: options.timeFeature === true,
        ...(options.missing ? { missing: options.missing } : {}),
        ...(keyed ? { keys: keyed.slots('inputs') } : {}),
      })
    } else this.inputs = null
  }

  /** The model input of an event (validated here when augmenting: bad values throw before any state changes). */
  prepare(key: string, x: ArrayLike<number | null>, t: number | undefined): ArrayLike<number> {
    return this.inputs ? this.inputs.prepare(key, x, t) : (x as ArrayLike<number>)
  }

  /** The first row of the head's output: the plain prediction (a copy). */
  prediction(output: ArrayLike<number>): Float64Array | Float32Array {
    const row = output as Float64Array | Float32Array
    return row.slice(0, this.width)
  }

  step(
    key: string,
    seq: SequenceWindow,
    output: ArrayLike<number>,
    target: number | ArrayLike<number> | null | undefined,
  ): ForecastFields {
    // The model accepted the event: its inputs may now count as the key's last ones.
    this.inputs?.commit()
    return this.book.step(key, seq, output, target)
  }

  forecast(key: string, state: RecurrentState, output: ArrayLike<number>): ForecastFields {
    this.inputs?.commit()
    return this.book.forecast(key, state, output)
  }

  outcome(key: string, seq: SequenceWindow, target: number | ArrayLike<number>): ForecastFields {
    return this.book.outcome(key, seq, target)
  }
}

/**
 * Copies the present forecasting fields onto a result or a prediction frame (`drift` too, unless
 * `withDrift` is false: the server sends drift alarms on the `updates` channel instead).
 */
export function assignForecastFields(target: object, f: ForecastFields, withDrift = true): void {
  const result = target as Record<string, unknown>
  if (f.ahead) result.ahead = f.ahead
  if (f.lower) result.lower = f.lower
  if (f.upper) result.upper = f.upper
  if (f.aheadLower) result.aheadLower = f.aheadLower
  if (f.aheadUpper) result.aheadUpper = f.aheadUpper
  if (f.anomaly !== undefined) result.anomaly = f.anomaly
  if (f.isAnomaly !== undefined) result.isAnomaly = f.isAnomaly
  if (withDrift && f.drift) result.drift = f.drift
}
