import { Observable, type OperatorFunction, type Subscriber } from 'rxjs'
import type { Monitor } from './monitor.js'
import { refuse } from './shared.js'

/**
 * What an operator built with {@link operate} does, set up once per subscription. Only `next` is
 * required; `operate` owns the rest (the closed check, routing errors, forwarding, teardown).
 */
export interface OperatorBody<In> {
  /**
   * One source value. Throwing an `RxrnnError` refuses the value as bad data: it goes to the
   * monitor's `errors$` (or one warning per code) and the stream goes on; throwing anything else
   * is a bug or a failing user callback: the subscriber errors.
   */
  next(value: In, context: OperatorContext): void
  /** Before the source's complete or error is passed on: emit what still waits. */
  end?(): void
  /** On unsubscribe, error or complete, after the source's subscription is closed. */
  teardown?(): void
}

/** Per-subscription helpers handed to `next`. */
export interface OperatorContext {
  /**
   * The key a refused value is reported under; set it in `next` once known (it is cleared before
   * each value).
   */
  key: string | undefined
  /** Refuses `value` now and lets `next` go on (for a value that is refused only in part). */
  refuse(error: unknown, value: unknown): void
}

/**
 * Builds an operator the way RxJS builds its own (`operate` + `createOperatorSubscriber`, which
 * are internal to RxJS and not imported here): `init` runs once per subscription and returns the
 * body. This function owns what every rxrnn operator needs and used to write out by hand:
 * - a synchronous source goes on emitting after an error or a downstream unsubscribe, so a closed
 *   subscriber sees no more `next` (nothing is learned or stepped after the end);
 * - bad data (an `RxrnnError`) is refused and the stream goes on; any other exception errors the
 *   subscriber, never RxJS's unhandled-error path;
 * - error and complete are forwarded after `end`, and `teardown` runs after the source is closed.
 *
 * @example
 * const double = (monitor?: Monitor) =>
 *   operate<number, number>(monitor, (subscriber) => ({
 *     next(x) {
 *       if (!Number.isFinite(x)) throw new RxrnnError('bad_input', 'x must be finite')
 *       subscriber.next(2 * x)
 *     },
 *   }))
 */
export function operate<In, Out>(
  monitor: Monitor | undefined,
  init: (subscriber: Subscriber<Out>) => OperatorBody<In>,
): OperatorFunction<In, Out> {
  return (source) =>
    new Observable<Out>((subscriber) => {
      const body = init(subscriber)
      const context: OperatorContext = {
        key: undefined,
        refuse: (error, value) => refuse(subscriber, monitor, error, value, context.key),
      }
      const subscription = source.subscribe({
        next(value) {
          if (subscriber.closed) return
          context.key = undefined
          try {
            body.next(value, context)
          } catch (error) {
            refuse(subscriber, monitor, error, value, context.key)
          }
        },
        error(error) {
          end(body, subscriber)
          subscriber.error(error)
        },
        complete() {
          if (!end(body, subscriber)) return
          subscriber.complete()
        },
      })
      return () => {
        subscription.unsubscribe()
        body.teardown?.()
      }
    })
}

/** Runs `body.end`; false when it failed (the subscriber then has the error). */
function end<In>(body: OperatorBody<In>, subscriber: Subscriber<unknown>): boolean {
  if (!body.end) return true
  try {
    body.end()
    return true
  } catch (error) {
    subscriber.error(error)
    return false
  }
}
