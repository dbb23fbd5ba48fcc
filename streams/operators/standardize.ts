import type { OperatorFunction } from 'rxjs'
import { OnlineScaler } from '../../src/index.js'
import type { Monitor } from './monitor.js'
import { operate } from './operate.js'

export interface StandardizeOptions {
  /** Events folded into the statistics before the first is emitted (a tiny sample has a useless std). Default 0. */
  warmup?: number
  monitor?: Monitor
  /** The scaler to use, e.g. to read its statistics or inverse-transform predictions. */
  scaler?: OnlineScaler
}

/**
 * Online input scaling: each vector is standardised with the running mean and variance per
 * feature of everything seen so far (including itself), so no look-ahead leaks in. Bad vectors
 * are skipped and reported.
 *
 * @example
 * import { standardize, recurrent } from 'rxrnn/streams'
 * raw$.pipe(standardize({ warmup: 20 }), recurrent(model))
 */
export function standardize(
  size: number,
  options: StandardizeOptions = {},
): OperatorFunction<ArrayLike<number>, Float64Array> {
  const warmup = options.warmup ?? 0
  return operate<ArrayLike<number>, Float64Array>(options.monitor, (subscriber) => {
    const scaler = options.scaler ?? new OnlineScaler(size)
    return {
      next(x) {
        scaler.update(x)
        if (scaler.count > warmup) subscriber.next(scaler.transform(x))
      },
    }
  })
}
