import type { OperatorFunction, SchedulerLike } from 'rxjs'
import { asyncScheduler } from 'rxjs'
import type {
  FloatArray,
  ForecastFields,
  ForecastingExtras,
  TrainerOptions,
  UpdateReport,
} from '../../src/index.js'
import { KeyedTrainer } from '../../src/index.js'
import type { ForecastingOptions, ForecastResultFields } from './forecasting.js'
import { assignForecastFields, OperatorForecasting, wantsForecasting, withHorizon } from './forecasting.js'
import type { Monitor } from './monitor.js'
import { operate } from './operate.js'
import type { ModelOrTrainer } from './shared.js'
import { sweepIdleKeys, trainerFor } from './shared.js'

export interface ForecastOptions<T> extends ForecastingOptions {
  /** The model's input for an event. */
  input: (event: T) => ArrayLike<number>
  /**
   * The target of the previous event, computed when the next one arrives: the next value, the
   * next return, chosen columns… e.g. `(next, current) => Math.log(next.close / current.close)`.
   */
  target: (next: T, current: T) => number | ArrayLike<number>
  /** When an event happened, in ms since the epoch (for the `timeFeature` option). */
  time?: (event: T) => number
  /** The series an event belongs to (one hidden state per key); default: one series. */
  key?: (event: T) => string
  idleMs?: number
  maxKeys?: number
  monitor?: Monitor
  scheduler?: SchedulerLike
}

/**
 * With `coverage`, `anomaly` scores this event against the forecast made for it (its target
 * arrived with it), and `lower`/`upper` bound this event's own forecast.
 */
export interface ForecastResult<T> extends ForecastResultFields {
  key: string
  event: T
  /** The forecast of this event's target (known only when the next event arrives). Yours to keep. */
  prediction: FloatArray
  /** Updates run because the previous event's target arrived with this one. */
  update?: UpdateReport
}

/**
 * Forecasting from a series: the target of step t is computed from the event at t + 1 and
 * joined when it arrives. Every event is answered at once with the forecast for it; learning
 * follows one step behind, in order, with TBPTT. Prequential scores (next to persistence) go
 * to the monitor.
 *
 * @example
 * import { forecast } from 'rxrnn/streams'
 * days$.pipe(
 *   forecast(model, { k1: 16, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 } }, {
 *     input: (d) => [d.ret, d.range],
 *     target: (next) => next.ret,
 *   }),
 * ).subscribe(({ prediction }) => console.log('tomorrow:', prediction[0]))
 */
export function forecast<T>(
  modelOrTrainer: ModelOrTrainer,
  trainerOptions: TrainerOptions | undefined,
  options: ForecastOptions<T>,
): OperatorFunction<T, ForecastResult<T>> {
  const { monitor } = options
  const scheduler = options.scheduler ?? asyncScheduler
  return operate<T, ForecastResult<T>>(monitor, (subscriber) => {
    const keyed = new KeyedTrainer<KeyExtras<T>>(
      trainerFor(modelOrTrainer, withHorizon(trainerOptions, options)),
      {
        maxPending: 1,
        ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }),
        ...(options.maxKeys === undefined ? {} : { maxKeys: options.maxKeys }),
        extras: () => ({ previous: null }),
      },
    )
    const forecasting = wantsForecasting(options) ? new OperatorForecasting(keyed, options) : null
    let nextId = 0
    const sweep = sweepIdleKeys(keyed, scheduler)
    return {
      next(event, context) {
        let key: string
        let x: ArrayLike<number>
        let prev: Previous<T> | undefined
        let target: number | ArrayLike<number> | undefined
        try {
          key = options.key ? options.key(event) : ''
          prev = keyed.entry(key)?.extras.previous ?? undefined
          x = options.input(event)
          target = prev ? options.target(event, prev.event) : undefined
        } catch (userError) {
          subscriber.error(userError)
          return
        }
        context.key = key
        let update: UpdateReport | undefined
        let outcome: ForecastFields | null = null
        if (prev && target !== undefined) {
          try {
            const joined = keyed.label(key, prev.id, target)
            if (joined) {
              update = joined.updates[0]
              // Scored first, so the snapshot the update emits counts this forecast (as learn does).
              if (joined.event.prediction && monitor) {
                prev.baseline = monitor.score(
                  keyed.trainer.loss.name,
                  // With a multi-horizon head the stored output holds every row: row 0 is the forecast.
                  forecasting ? forecasting.prediction(joined.event.prediction) : joined.event.prediction,
                  target,
                  prev.baseline,
                )
              }
              for (const u of joined.updates) monitor?.update(u, key)
              if (forecasting) outcome = forecasting.outcome(key, keyed.entry(key)!.sequence, target)
            }
          } catch (error) {
            // A refused target only skips the join: this event is still forecast, unless it was fatal.
            context.refuse(error, event)
            if (subscriber.closed) return
          }
        }
        const id = nextId++
        const input = forecasting ? forecasting.prepare(key, x, options.time?.(event)) : x
        const output = keyed.predict(key, id, input, scheduler.now()).prediction
        const entry = keyed.entry(key)!
        const prediction = forecasting ? forecasting.prediction(output) : output.slice()
        const fields = forecasting ? forecasting.forecast(key, entry.live!, output) : null
        entry.extras.previous = { id, event, baseline: prev?.baseline ?? null }
        monitor?.event()
        const result: ForecastResult<T> = { key: key, event, prediction }
        if (update) result.update = update
        if (fields) assignForecastFields(result, fields)
        if (outcome) {
          assignForecastFields(result, {
            ...(outcome.anomaly === undefined
              ? {}
              : { anomaly: outcome.anomaly, isAnomaly: outcome.isAnomaly! }),
            ...(outcome.drift ? { drift: outcome.drift } : {}),
          })
          monitor?.forecast(outcome)
        }
        subscriber.next(result)
      },
      teardown: () => sweep?.unsubscribe(),
    }
  })
}

/** What forecast keeps per key besides its state: it lives in the key's entry and leaves with it. */
interface KeyExtras<T> extends ForecastingExtras {
  previous: Previous<T> | null
}

/** A key's latest event, waiting for the next one to bring its target. */
interface Previous<T> {
  id: number
  event: T
  /** Persistence's forecast: the key's previous target. */
  baseline: Float64Array | null
}
