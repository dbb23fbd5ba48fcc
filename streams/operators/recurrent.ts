import type { Observable, OperatorFunction } from 'rxjs'
import type { FloatArray, Model } from '../../src/index.js'
import type { Monitor } from './monitor.js'
import { operate } from './operate.js'

export interface RecurrentOptions {
  /** Counts events and receives refused ones on `errors$`. */
  monitor?: Monitor
  /** Each emission is a sequence boundary: the hidden state goes back to zero. */
  reset$?: Observable<unknown>
}

/**
 * Runs a recurrent model over a stream: x_t in, y_t out, the hidden state h(t−1) carried from
 * one event to the next. Each subscription has its own hidden state (the weights are shared).
 * A malformed x (wrong length, NaN, not numbers) is skipped and reported; the state is untouched.
 * Every y is a fresh array, yours to keep.
 *
 * @example
 * import { recurrent } from 'rxrnn/streams'
 * sensor$.pipe(recurrent(model)).subscribe((y) => console.log(y[0]))
 */
export function recurrent(
  model: Model,
  options: RecurrentOptions = {},
): OperatorFunction<ArrayLike<number>, FloatArray> {
  const { monitor, reset$ } = options
  return operate<ArrayLike<number>, FloatArray>(monitor, (subscriber) => {
    const state = model.initialState()
    const resetSubscription = reset$?.subscribe({
      next: () => state.reset(),
      error: (e) => subscriber.error(e),
    })
    return {
      next(x) {
        const y = model.step(x, state)
        monitor?.event()
        subscriber.next(y.slice())
      },
      teardown: () => resetSubscription?.unsubscribe(),
    }
  })
}
