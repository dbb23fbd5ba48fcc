/**
 * A small seeded generator (xoshiro128**, seeded through splitmix32) so that the same
 * config and seed give the same weights, dropout masks and shuffles on every machine.
 * Math.random cannot be seeded, hence this.
 */
export class Rng {
  private s0: number
  private s1: number
  private s2: number
  private s3: number
  private spareNormal = Number.NaN

  constructor(seed: number) {
    let x = seed >>> 0 || 0x9e3779b9
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.s0 = next()
    this.s1 = next()
    this.s2 = next()
    this.s3 = next()
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0
    const t = this.s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = rotl(this.s3, 11)
    return result
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5
    const lo = this.nextUint32() >>> 6
    return (hi * 67108864 + lo) / 9007199254740992
  }

  /** Uniform in [low, high). */
  range(low: number, high: number): number {
    return low + (high - low) * this.uniform()
  }

  /** Standard normal (Box–Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spareNormal)) {
      const v = this.spareNormal
      this.spareNormal = Number.NaN
      return v
    }
    let u = 0
    while (u === 0) u = this.uniform()
    const v = this.uniform()
    const r = Math.sqrt(-2 * Math.log(u))
    this.spareNormal = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }

  /** The generator's full state, for snapshots. */
  getState(): number[] {
    return [this.s0, this.s1, this.s2, this.s3, this.spareNormal]
  }

  setState(state: readonly number[]): void {
    this.s0 = (state[0] ?? 0) | 0
    this.s1 = (state[1] ?? 0) | 0
    this.s2 = (state[2] ?? 0) | 0
    this.s3 = (state[3] ?? 0) | 0
    this.spareNormal = state[4] ?? Number.NaN
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}
