import type { OperatorFunction } from 'rxjs'
import type { FloatArray, ForecastFields, TrainerOptions, UpdateReport } from '../../src/index.js'
import { copyReport, RxrnnError } from '../../src/index.js'
import type { ForecastingOptions, ForecastResultFields } from './forecasting.js'
import { assignForecastFields, OperatorForecasting, wantsForecasting, withHorizon } from './forecasting.js'
import type { Monitor } from './monitor.js'
import { operate } from './operate.js'
import type { ModelOrTrainer } from './shared.js'
import { trainerFor } from './shared.js'

/** One event of a learning stream. */
export interface LearnEvent {
  /**
   * The inputs. With the `missing` option an entry may be null (typed as numbers so that code
   * reading events keeps its types: write `[21.5, null] as number[]`).
   */
  x: ArrayLike<number>
  /** The target of this step, when known (a class index for cross_entropy). */
  target?: number | ArrayLike<number> | null
  /** A sequence boundary before this event: zero state, empty window. */
  reset?: boolean
  /** When it happened, in ms since the epoch (for the `timeFeature` option). */
  t?: number
}

export interface LearnResult extends ForecastResultFields {
  /** The prediction for this event, made before learning from its target. Yours to keep. */
  prediction: FloatArray
  /** Present when this event completed a TBPTT window and the weights were updated. */
  update?: UpdateReport
}

export interface LearnOptions extends ForecastingOptions {
  monitor?: Monitor
}

/**
 * Online learning, test-then-train: for every event `{ x, target? }` emits the prediction made
 * before learning from it (prequential evaluation), then learns with TBPTT(k1, k2) through
 * `OnlineTrainer`. Given a model, each subscription gets its own trainer (own hidden state and
 * optimizer, shared weights); given a trainer, subscriptions share it.
 * Malformed events are skipped and reported on the monitor's `errors$`; no state changes.
 *
 * @example
 * import { learn } from 'rxrnn/streams'
 * ticks$.pipe(
 *   map((t) => ({ x: [t.ret], target: t.nextRet })),
 *   learn(model, { k1: 8, k2: 16, loss: 'mse', optimizer: { type: 'adam', lr: 1e-3 }, clipNorm: 1 }),
 * ).subscribe(({ prediction, update }) => update && console.log(update.loss))
 */
export function learn(
  modelOrTrainer: ModelOrTrainer,
  trainerOptions?: TrainerOptions,
  options: LearnOptions = {},
): OperatorFunction<LearnEvent, LearnResult> {
  const { monitor } = options
  return operate<LearnEvent, LearnResult>(monitor, (subscriber) => {
    const trainer = trainerFor(modelOrTrainer, withHorizon(trainerOptions, options))
    const forecasting = wantsForecasting(options) ? new OperatorForecasting(trainer, options) : null
    let baseline: Float64Array | null = null
    return {
      next(event) {
        if (event === null || typeof event !== 'object') {
          throw new RxrnnError('bad_input', 'Each event must be an object { x, target? }')
        }
        const x = forecasting ? forecasting.prepare('', event.x, event.t) : event.x
        if (event.reset) {
          // A refused event must not reset the sequence either.
          trainer.check(x, event.target)
          trainer.reset()
          baseline = null
        }
        const { prediction, update } = trainer.observeSequence(trainer.sequence, x, event.target)
        const result: LearnResult = {
          prediction: forecasting ? forecasting.prediction(prediction) : prediction.slice(),
        }
        if (update) result.update = copyReport(update)
        let fields: ForecastFields | null = null
        if (forecasting) {
          fields = forecasting.step('', trainer.sequence, prediction, event.target)
          assignForecastFields(result, fields)
        }
        if (monitor) {
          monitor.event()
          if (event.target !== undefined && event.target !== null) {
            baseline = monitor.score(trainer.loss.name, result.prediction, event.target, baseline)
          }
          if (fields) monitor.forecast(fields)
          if (result.update) monitor.update(result.update)
        }
        subscriber.next(result)
      },
    }
  })
}
