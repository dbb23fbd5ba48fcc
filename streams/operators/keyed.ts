import type { Observable, OperatorFunction, SchedulerLike } from 'rxjs'
import { asyncScheduler } from 'rxjs'
import type {
  FloatArray,
  ForecastFields,
  ForecastingExtras,
  KeyedTrainerOptions,
  TrainerOptions,
  UpdateReport,
} from '../../src/index.js'
import { copyReport, KeyedTrainer, RxrnnError } from '../../src/index.js'
import type { ForecastingOptions, ForecastResultFields } from './forecasting.js'
import { assignForecastFields, OperatorForecasting, wantsForecasting, withHorizon } from './forecasting.js'
import type { Monitor } from './monitor.js'
import { operate } from './operate.js'
import type { ModelOrTrainer } from './shared.js'
import { sweepIdleKeys, trainerFor } from './shared.js'

/** One event of a keyed stream: which stream it belongs to, its input, and its target when known. */
export interface KeyedEvent {
  key: string
  /** With the `missing` option an entry may be null (cast: `[21.5, null] as number[]`). */
  x: ArrayLike<number>
  target?: number | ArrayLike<number> | null
  /** When it happened, in ms since the epoch (for the `timeFeature` option). */
  t?: number
}

export interface KeyedResult extends ForecastResultFields {
  key: string
  /** Made before learning from this event's target. Yours to keep. */
  prediction: FloatArray
  update?: UpdateReport
}

export interface LearnByKeyOptions<T>
  extends Omit<KeyedTrainerOptions, 'maxPending' | 'extras' | 'onEvict'>,
    ForecastingOptions {
  /** Called with each key evicted (idle or over maxKeys). */
  onEvict?: (key: string) => void
  /** Picks the key, x and target of an event; default: the event is a `KeyedEvent`. */
  select?: (event: T) => KeyedEvent
  /** Emits a key whose sequence ends: its hidden state and window are reset. */
  reset$?: Observable<string>
  /** How often idle keys are swept (when `idleMs` is set). Default: idleMs / 2. */
  evictEveryMs?: number
  monitor?: Monitor
  /** Drives the eviction timer and the clock; tests pass a TestScheduler. */
  scheduler?: SchedulerLike
}

/** What learnByKey keeps per key besides its state: it lives in the key's entry and leaves with it. */
interface KeyExtras extends ForecastingExtras {
  /** Persistence's forecast: the key's previous target. */
  baseline: Float64Array | null
}

/**
 * Many streams, one model: events of many keys (sensors, symbols) learn into one shared model
 * while each key keeps its own hidden state and TBPTT window. Keys idle for `idleMs` are
 * evicted, at most `maxKeys` are held (least recently seen go first), and `reset$` ends one
 * key's sequence. Per-subscription state: a second subscription has its own keys.
 *
 * @example
 * import { learnByKey } from 'rxrnn/streams'
 * ticks$.pipe(
 *   map((t) => ({ key: t.symbol, x: [t.ret, t.volume], target: t.nextRet })),
 *   learnByKey(model, { k1: 16, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 } }, { idleMs: 60_000 }),
 * ).subscribe(({ key, prediction }) => console.log(key, prediction[0]))
 */
export function learnByKey<T = KeyedEvent>(
  modelOrTrainer: ModelOrTrainer,
  trainerOptions?: TrainerOptions,
  options: LearnByKeyOptions<T> = {},
): OperatorFunction<T, KeyedResult> {
  const { monitor, reset$, select } = options
  const scheduler = options.scheduler ?? asyncScheduler
  return operate<T, KeyedResult>(monitor, (subscriber) => {
    const { onEvict } = options
    const keyed = new KeyedTrainer<KeyExtras>(
      trainerFor(modelOrTrainer, withHorizon(trainerOptions, options)),
      {
        ...options,
        extras: () => ({ baseline: null }),
        onEvict: onEvict && ((key) => onEvict(key)),
      },
    )
    const forecasting = wantsForecasting(options) ? new OperatorForecasting(keyed, options) : null
    const countKeys = () => {
      if (!monitor) return
      monitor.keys = keyed.size
      monitor.evicted = keyed.evicted
    }
    const sweep = sweepIdleKeys(keyed, scheduler, options.evictEveryMs, countKeys)
    const resets = reset$?.subscribe({
      next: (key) => {
        keyed.reset(key)
        const extras = keyed.entry(key)?.extras
        if (extras) {
          extras.tracker?.forgetForecasts()
          extras.baseline = null
        }
      },
      error: (e) => subscriber.error(e),
    })
    return {
      next(raw, context) {
        let event: KeyedEvent
        try {
          event = select ? select(raw) : (raw as unknown as KeyedEvent)
        } catch (userError) {
          subscriber.error(userError)
          return
        }
        if (event === null || typeof event !== 'object') {
          throw new RxrnnError('bad_input', 'Each event must be an object { key, x, target? }')
        }
        if (typeof event.key === 'string') context.key = event.key
        if (typeof event.key !== 'string' || event.key === '') {
          throw new RxrnnError('missing_key', 'The event has no key: give each event a non-empty string key')
        }
        const x = forecasting ? forecasting.prepare(event.key, event.x, event.t) : event.x
        const { prediction, updates } = keyed.observe(event.key, x, event.target, scheduler.now())
        const result: KeyedResult = {
          key: event.key,
          prediction: forecasting ? forecasting.prediction(prediction) : prediction.slice(),
        }
        if (updates.length > 0) result.update = copyReport(updates[0]!)
        let fields: ForecastFields | null = null
        if (forecasting) {
          fields = forecasting.step(event.key, keyed.entry(event.key)!.sequence, prediction, event.target)
          assignForecastFields(result, fields)
        }
        if (monitor) {
          monitor.event()
          if (event.target !== undefined && event.target !== null) {
            const extras = keyed.entry(event.key)!.extras
            extras.baseline = monitor.score(
              keyed.trainer.loss.name,
              result.prediction,
              event.target,
              extras.baseline,
            )
          }
          countKeys()
          if (fields) monitor.forecast(fields)
          if (result.update) monitor.update(result.update, event.key)
        }
        subscriber.next(result)
      },
      teardown: () => {
        resets?.unsubscribe()
        sweep?.unsubscribe()
      },
    }
  })
}
