import { RxrnnError } from './errors.js'

/**
 * Running mean and variance per feature (Welford's algorithm), for scaling a stream's inputs
 * online: (x − mean) / std with the statistics of everything seen so far. Recurrent nets train
 * badly on raw prices or pressures in the thousands; standardised inputs keep the gates in
 * their sensitive range.
 *
 * @example
 * const scaler = new OnlineScaler(3)
 * const z = scaler.update([1013, 21.5, 3.2]).transform([1013, 21.5, 3.2])
 */
export class OnlineScaler {
  readonly mean: Float64Array
  private readonly m2: Float64Array
  count = 0

  constructor(
    readonly size: number,
    /** Added to the std so a constant feature maps to 0, not NaN. */
    readonly epsilon = 1e-8,
  ) {
    this.mean = new Float64Array(size)
    this.m2 = new Float64Array(size)
  }

  /** Folds one observation into the statistics. */
  update(x: ArrayLike<number>): this {
    if (x.length !== this.size) {
      throw new RxrnnError('bad_input', `x has ${x.length} values, the scaler was made for ${this.size}`)
    }
    for (let i = 0; i < this.size; i++) {
      if (!Number.isFinite(x[i]))
        throw new RxrnnError('bad_input', `x[${i}] is ${x[i]}; the scaler needs finite values`)
    }
    this.count++
    for (let i = 0; i < this.size; i++) {
      const d = x[i]! - this.mean[i]!
      this.mean[i] = this.mean[i]! + d / this.count
      this.m2[i] = this.m2[i]! + d * (x[i]! - this.mean[i]!)
    }
    return this
  }

  std(i: number): number {
    return this.count > 1 ? Math.sqrt(this.m2[i]! / (this.count - 1)) : 1
  }

  /** (x − mean) / (std + ε) into `out` (a new Float64Array when omitted). */
  transform(x: ArrayLike<number>, out = new Float64Array(this.size)): Float64Array {
    for (let i = 0; i < this.size; i++) out[i] = (x[i]! - this.mean[i]!) / (this.std(i) + this.epsilon)
    return out
  }

  /** Back from the scaled space: z·(std + ε) + mean. */
  inverse(z: ArrayLike<number>, out = new Float64Array(this.size)): Float64Array {
    for (let i = 0; i < this.size; i++) out[i] = z[i]! * (this.std(i) + this.epsilon) + this.mean[i]!
    return out
  }

  getState(): { count: number; mean: number[]; m2: number[] } {
    return { count: this.count, mean: Array.from(this.mean), m2: Array.from(this.m2) }
  }

  setState(state: { count: number; mean: ArrayLike<number>; m2: ArrayLike<number> }): void {
    this.count = state.count
    this.mean.set(state.mean)
    this.m2.set(state.m2)
  }
}
