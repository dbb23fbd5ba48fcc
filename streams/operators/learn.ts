import type { OperatorFunction } from 'rxjs'
import type { FloatArray, TrainerOptions, UpdateReport } from '../../src/index.js'
import { copyReport, RxrnnError } from '../../src/index.js'
import type { Monitor } from './monitor.js'
import { operate } from './operate.js'
import type { ModelOrTrainer } from './shared.js'
import { trainerFor } from './shared.js'

/** One event of a learning stream. */
export interface LearnEvent {
  x: ArrayLike<number>
  /** The target of this step, when known (a class index for cross_entropy). */
  target?: number | ArrayLike<number> | null
  /** A sequence boundary before this event: zero state, empty window. */
  reset?: boolean
}

export interface LearnResult {
  /** The prediction for this event, made before learning from its target. Yours to keep. */
  prediction: FloatArray
  /** Present when this event completed a TBPTT window and the weights were updated. */
  update?: UpdateReport
}

export interface LearnOptions {
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
    const trainer = trainerFor(modelOrTrainer, trainerOptions)
    let baseline: Float64Array | null = null
    return {
      next(event) {
        if (event === null || typeof event !== 'object') {
          throw new RxrnnError('bad_input', 'Each event must be an object { x, target? }')
        }
        if (event.reset) {
          // A refused event must not reset the sequence either.
          trainer.check(event.x, event.target)
          trainer.reset()
          baseline = null
        }
        const { prediction, update } = trainer.observeSequence(trainer.sequence, event.x, event.target)
        const result: LearnResult = update
          ? { prediction: prediction.slice(), update: copyReport(update) }
          : { prediction: prediction.slice() }
        if (monitor) {
          monitor.event()
          if (event.target !== undefined && event.target !== null) {
            baseline = monitor.score(trainer.loss.name, result.prediction, event.target, baseline)
          }
          if (result.update) monitor.update(result.update)
        }
        subscriber.next(result)
      },
    }
  })
}
