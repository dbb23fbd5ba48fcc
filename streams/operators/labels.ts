import type { Observable, OperatorFunction, SchedulerLike } from 'rxjs'
import { asyncScheduler, Observable as RxObservable } from 'rxjs'
import type { FloatArray, TrainerOptions } from '../../src/index.js'
import { KeyedTrainer, RxrnnError } from '../../src/index.js'
import type { Monitor } from './monitor.js'
import type { ModelOrTrainer } from './shared.js'
import { refuse, score, sweepIdleKeys, trainerFor } from './shared.js'

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
  return (source) =>
    new RxObservable<LabelledPrediction>((subscriber) => {
      const keyed = new KeyedTrainer(trainerFor(modelOrTrainer, trainerOptions), {
        maxPending: options.maxPending ?? 64,
        ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }),
        ...(options.maxKeys === undefined ? {} : { maxKeys: options.maxKeys }),
      })
      const sweep = sweepIdleKeys(keyed, scheduler)
      const labels = options.labels$.subscribe({
        next(label) {
          if (subscriber.closed) return
          try {
            if (label === null || typeof label !== 'object') {
              throw new RxrnnError('bad_target', 'Each label must be an object { id, target, key? }')
            }
            const key = label.key ?? ''
            const joined = keyed.label(key, label.id, label.target)
            if (!joined) {
              throw new RxrnnError(
                'bad_target',
                `No event ${label.id} of key ${JSON.stringify(key)} is waiting for a label (too late, or never seen)`,
              )
            }
            // Scored first, so the snapshot each update emits counts this prediction (as learn does).
            if (joined.event.prediction)
              score(monitor, keyed.trainer, joined.event.prediction, label.target, null)
            for (const u of joined.updates) monitor?.update(u, key)
          } catch (error) {
            refuse(subscriber, monitor, error, label, label?.key)
          }
        },
        error: (e) => subscriber.error(e),
      })
      const events = source.subscribe({
        next(event) {
          // A synchronous source goes on after an error or a downstream unsubscribe: learn nothing more.
          if (subscriber.closed) return
          let result: LabelledPrediction
          try {
            if (event === null || typeof event !== 'object' || typeof event.id !== 'number') {
              throw new RxrnnError('bad_input', 'Each event must be an object { id: number, x, key? }')
            }
            const key = event.key ?? ''
            const { prediction } = keyed.predict(key, event.id, event.x, scheduler.now())
            result = { key, id: event.id, prediction: prediction.slice() }
          } catch (error) {
            refuse(subscriber, monitor, error, event, event?.key)
            return
          }
          monitor?.event()
          subscriber.next(result)
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      })
      return () => {
        events.unsubscribe()
        labels.unsubscribe()
        sweep?.unsubscribe()
      }
    })
}
