import type { Observable, OperatorFunction, SchedulerLike } from 'rxjs'
import { asyncScheduler } from 'rxjs'
import type { FloatArray, TrainerOptions } from '../../src/index.js'
import { KeyedTrainer, RxrnnError } from '../../src/index.js'
import type { Monitor } from './monitor.js'
import { operate } from './operate.js'
import type { ModelOrTrainer } from './shared.js'
import { sweepIdleKeys, trainerFor } from './shared.js'

/** An event whose label comes later, under the same id. */
export interface UnlabelledEvent {
  id: number
  x: ArrayLike<number>
  key?: string
}

/** A label for an earlier event. */
export interface LateLabel {
  id: number
  target: number | ArrayLike<number>
  key?: string
}

export interface LearnWithLabelsOptions {
  /** The labels, in any order, joined to their events by (key, id). */
  labels$: Observable<LateLabel>
  /** Most events per key waiting for a label; past it the oldest is learned from without one. Default 64. */
  maxPending?: number
  idleMs?: number
  maxKeys?: number
  monitor?: Monitor
  scheduler?: SchedulerLike
}

export interface LabelledPrediction {
  key: string
  id: number
  /** Made at once, from the key's latest state. Yours to keep. */
  prediction: FloatArray
}

/**
 * Labels that arrive later than their events (a fraud flag, a human annotation): every event
 * is predicted at once; its label, when it comes on `labels$`, is joined by id, and the model
 * learns from the events in their order as soon as their labels are in. At most `maxPending`
 * events per key wait; updates and scores go to the monitor.
 *
 * @example
 * import { learnWithLabels } from 'rxrnn/streams'
 * frames$.pipe(learnWithLabels(model, options, { labels$, maxPending: 100, monitor }))
 */
export function learnWithLabels(
  modelOrTrainer: ModelOrTrainer,
  trainerOptions: TrainerOptions | undefined,
  options: LearnWithLabelsOptions,
): OperatorFunction<UnlabelledEvent, LabelledPrediction> {
  const { monitor } = options
  const scheduler = options.scheduler ?? asyncScheduler
  return operate<UnlabelledEvent, LabelledPrediction>(monitor, (subscriber) => {
    const keyed = new KeyedTrainer(trainerFor(modelOrTrainer, trainerOptions), {
      maxPending: options.maxPending ?? 64,
      ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }),
      ...(options.maxKeys === undefined ? {} : { maxKeys: options.maxKeys }),
    })
    const sweep = sweepIdleKeys(keyed, scheduler)
    // The labels are a second source; the same body routes their bad data.
    const labels = options.labels$
      .pipe(
        operate<LateLabel, never>(monitor, () => ({
          next(label, context) {
            if (subscriber.closed) return
            if (label === null || typeof label !== 'object') {
              throw new RxrnnError('bad_target', 'Each label must be an object { id, target, key? }')
            }
            const key = label.key ?? ''
            context.key = label.key
            const joined = keyed.label(key, label.id, label.target)
            if (!joined) {
              throw new RxrnnError(
                'bad_target',
                `No event ${label.id} of key ${JSON.stringify(key)} is waiting for a label (too late, or never seen)`,
              )
            }
            // Scored first, so the snapshot each update emits counts this prediction (as learn does).
            // Labels come in any order: no persistence baseline.
            if (joined.event.prediction)
              monitor?.score(keyed.trainer.loss.name, joined.event.prediction, label.target)
            for (const u of joined.updates) monitor?.update(u, key)
          },
        })),
      )
      .subscribe({ error: (e) => subscriber.error(e) })
    return {
      next(event, context) {
        if (event === null || typeof event !== 'object' || typeof event.id !== 'number') {
          throw new RxrnnError('bad_input', 'Each event must be an object { id: number, x, key? }')
        }
        context.key = event.key
        const key = event.key ?? ''
        const { prediction } = keyed.predict(key, event.id, event.x, scheduler.now())
        monitor?.event()
        subscriber.next({ key, id: event.id, prediction: prediction.slice() })
      },
      teardown: () => {
        labels.unsubscribe()
        sweep?.unsubscribe()
      },
    }
  })
}
