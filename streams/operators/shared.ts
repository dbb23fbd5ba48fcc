import type { SchedulerAction, SchedulerLike, Subscription } from 'rxjs'
import type { KeyedTrainer, Model, TrainerOptions } from '../../src/index.js'
import { OnlineTrainer, RxrnnError } from '../../src/index.js'
import type { Monitor } from './monitor.js'

/** A model (each subscription gets its own trainer and optimizer, sharing the weights) or a trainer to share. */
export type ModelOrTrainer = Model | OnlineTrainer

export function trainerFor(
  modelOrTrainer: ModelOrTrainer,
  options: TrainerOptions | undefined,
): OnlineTrainer {
  if (modelOrTrainer instanceof OnlineTrainer) return modelOrTrainer
  if (!options) {
    throw new RxrnnError(
      'bad_config',
      'Pass trainer options with a model, e.g. { k1: 8, loss: "mse", optimizer: { type: "adam", lr: 1e-3 } }',
    )
  }
  return new OnlineTrainer(modelOrTrainer, options)
}

const warned = new Set<string>()

/**
 * Routes a refused event: to the monitor's errors$ when there is one, else one process warning
 * per error code (so a bad feed is never silent, nor floods the log). Anything that is not a
 * RxrnnError is a bug or user code failing, not bad data: it is rethrown for subscriber.error.
 */
export function rejectEvent(
  monitor: Monitor | undefined,
  error: unknown,
  event: unknown,
  key?: string,
): void {
  if (!(error instanceof RxrnnError)) throw error
  if (monitor) {
    monitor.reject(error, event, key)
    return
  }
  if (!warned.has(error.code)) {
    warned.add(error.code)
    const message = `rxrnn skipped an event (${error.code}): ${error.message}. Pass a Monitor to see every refused event.`
    // Node's warning channel where there is one; browsers have no `process`.
    const node = (globalThis as { process?: { emitWarning?: (message: string) => void } }).process
    if (typeof node?.emitWarning === 'function') node.emitWarning(message)
    else console.warn(message)
  }
}

/**
 * `rejectEvent`, with anything that is not bad data (a bug, an exception from user code) routed
 * to the subscriber's error channel, never to RxJS's unhandled-error path.
 */
export function refuse(
  subscriber: { error(error: unknown): void },
  monitor: Monitor | undefined,
  error: unknown,
  event: unknown,
  key?: string,
): void {
  try {
    rejectEvent(monitor, error, event, key)
  } catch (fatal) {
    subscriber.error(fatal)
  }
}

/**
 * Evicts `keyed`'s idle keys every `everyMs` on `scheduler` (by default every idleMs / 2; never
 * when idleMs is not set), calling `after` once per sweep. Unsubscribe to stop.
 */
export function sweepIdleKeys(
  keyed: KeyedTrainer,
  scheduler: SchedulerLike,
  everyMs?: number,
  after?: () => void,
): Subscription | undefined {
  const every = everyMs ?? (Number.isFinite(keyed.idleMs) ? keyed.idleMs / 2 : 0)
  if (!(every > 0)) return undefined
  return scheduler.schedule(function (this: SchedulerAction<undefined>) {
    keyed.evictIdle(scheduler.now())
    after?.()
    this.schedule(undefined, every)
  }, every)
}
