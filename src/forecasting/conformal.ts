import { RxrnnError } from '../errors.js'

/**
 * How intervals are calibrated: adaptive conformal inference (Gibbs & Candès, 2021).
 *
 * @example
 * { coverage: 0.9, gamma: 0.02, window: 100 }
 */
export interface ConformalOptions {
  /** Target long-run coverage c, in (0, 1): intervals hold the target this often. */
  coverage: number
  /** ACI step size γ: how fast the working level follows misses. Default 0.02. */
  gamma?: number
  /** Recent absolute residuals kept per calibrated series (the scores the quantile is taken over). Default 100. */
  window?: number
}

export interface ResolvedConformalOptions {
  coverage: number
  gamma: number
  window: number
}

export function resolveConformalOptions(options: ConformalOptions): ResolvedConformalOptions {
  const problems: string[] = []
  const c = options?.coverage
  if (typeof c !== 'number' || !(c > 0 && c < 1))
    problems.push(`coverage is ${JSON.stringify(c)}; it must be a number in (0, 1), e.g. 0.9`)
  const gamma = options?.gamma ?? 0.02
  if (typeof gamma !== 'number' || !(gamma > 0 && gamma < 1))
    problems.push(`gamma is ${JSON.stringify(gamma)}; it must be in (0, 1), e.g. 0.02`)
  const window = options?.window ?? 100
  if (!Number.isInteger(window) || window < 10 || window > 100_000)
    problems.push(`window is ${JSON.stringify(window)}; it must be an integer in [10, 100000], e.g. 100`)
  if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid interval (coverage) options', problems)
  return { coverage: c as number, gamma, window }
}

/**
 * Adaptive conformal inference over `series` independent score streams (one per horizon and
 * output of a key): each keeps the last `window` absolute residuals, sorted, and a working
 * miss level α_t that moves by γ(α − err_t) after each outcome (α = 1 − coverage, err_t = 1
 * when the target fell outside its interval). The half-width is the ⌈(1 − α_t)(n + 1)⌉-th
 * smallest stored residual; when that rank is beyond the window (α_t too small) it is
 * +Infinity (the whole line), and when α_t ≥ 1 it is 0.
 *
 * Guarantee (Gibbs & Candès 2021, Prop. 4.1): for every series, whatever the data — drifting,
 * adversarial, not exchangeable — the realised miss rate over T outcomes obeys
 * |(1/T)·Σ err_t − α| ≤ (max(α₁, 1 − α₁) + γ) / (γ·T), so the long-run coverage is exactly c.
 * With the defaults (γ = 0.02) and c = 0.9 that is within 1 point after 4 600 outcomes; the
 * recent-window quantile makes it much closer much sooner. The defaults (γ 0.02, 100 residuals)
 * were chosen on a GRU learning a sine online, where residuals shrink as it learns: coverage of
 * ticks 500–1500 at c = 0.9 was 0.890–0.900 (γ 0.005 and 200 residuals: 0.847–0.884).
 *
 * Cost: memory 2·window + 3 floats per series, allocated once; per outcome one binary search
 * and one in-place shift of at most `window` floats (bounded, allocation free); per interval
 * O(1).
 *
 * The conformal p-value of a new score s (before it is stored) is (1 + #{stored ≥ s}) / (n + 1):
 * under exchangeability P(p ≤ a) ≤ a, so `1 − p` is an anomaly score in [0, 1). Scores beyond
 * every stored one (p = 1/(n + 1) for all of them) are told apart by a Pareto tail,
 * p = max/(s·(n + 1)), so a spike far beyond the window ranks above a slight excess.
 *
 * @example
 * const cal = new AdaptiveConformal(1, { coverage: 0.9 })
 * const q = cal.halfWidth(0)            // interval: prediction ± q
 * cal.observe(0, Math.abs(y - prediction), Math.abs(y - prediction) <= q)
 */
export class AdaptiveConformal {
  readonly options: ResolvedConformalOptions
  /** Insertion order, for evicting the oldest score. */
  private readonly ring: Float64Array
  /** The same scores, ascending. */
  private readonly sorted: Float64Array
  private readonly count: Uint32Array
  private readonly next: Uint32Array
  /** Working miss level α_t per series. */
  readonly alpha: Float64Array
  /** Outcomes and misses per series, for the realised coverage. */
  readonly outcomes: Float64Array
  readonly misses: Float64Array

  constructor(
    readonly series: number,
    options: ConformalOptions,
  ) {
    this.options = resolveConformalOptions(options)
    const W = this.options.window
    this.ring = new Float64Array(series * W)
    this.sorted = new Float64Array(series * W)
    this.count = new Uint32Array(series)
    this.next = new Uint32Array(series)
    this.alpha = new Float64Array(series).fill(1 - this.options.coverage)
    this.outcomes = new Float64Array(series)
    this.misses = new Float64Array(series)
  }

  /** The interval half-width for series `s` now: ±Infinity-wide until enough residuals are in. */
  halfWidth(s: number): number {
    const n = this.count[s]!
    const a = this.alpha[s]!
    if (a >= 1) return 0
    const rank = Math.ceil((1 - a) * (n + 1))
    if (rank > n) return Number.POSITIVE_INFINITY
    return this.sorted[s * this.options.window + Math.max(rank, 1) - 1]!
  }

  /** The conformal p-value of score `score` against series `s`'s stored scores (1 when none). */
  pValue(s: number, score: number): number {
    const n = this.count[s]!
    const base = s * this.options.window
    // First index whose score is >= `score`: everything from there on counts.
    const at = lowerBound(this.sorted, base, base + n, score)
    const above = base + n - at
    if (above > 0 || n === 0) return (1 + above) / (n + 1)
    // Beyond every stored score: the conformal p-value is 1/(n + 1) for all of them, which would
    // tie a slight excess with a spike ten times larger. A Pareto tail, max/score, orders them.
    const max = this.sorted[base + n - 1]!
    return max > 0 ? max / score / (n + 1) : 1 / (n + 1)
  }

  /** One outcome for series `s`: its absolute residual and whether its interval held it. */
  observe(s: number, score: number, covered: boolean): void {
    const o = this.options
    this.alpha[s] = this.alpha[s]! + o.gamma * (1 - o.coverage - (covered ? 0 : 1))
    this.outcomes[s] = this.outcomes[s]! + 1
    if (!covered) this.misses[s] = this.misses[s]! + 1
    if (!Number.isFinite(score)) return
    const W = o.window
    const base = s * W
    const n = this.count[s]!
    const slot = base + this.next[s]!
    const sorted = this.sorted
    let end = base + n
    if (n === W) {
      // Full: take the evicted score out of the sorted run first.
      const evicted = this.ring[slot]!
      const at = lowerBound(sorted, base, end, evicted)
      sorted.copyWithin(at, at + 1, end)
      end--
    } else this.count[s] = n + 1
    this.ring[slot] = score
    this.next[s] = (this.next[s]! + 1) % W
    const at = lowerBound(sorted, base, end, score)
    sorted.copyWithin(at + 1, at, end)
    sorted[at] = score
  }

  /** Realised coverage of series `s` so far (NaN before any outcome). */
  coverage(s: number): number {
    const n = this.outcomes[s]!
    return n === 0 ? Number.NaN : 1 - this.misses[s]! / n
  }

  /** Forget every series' scores and level (e.g. after drift, when old residuals mislead). */
  reset(): void {
    this.count.fill(0)
    this.next.fill(0)
    this.alpha.fill(1 - this.options.coverage)
  }

  /** Everything needed to resume (copies). */
  exportState(): Record<string, unknown> {
    return {
      ring: this.ring.slice(),
      sorted: this.sorted.slice(),
      count: this.count.slice(),
      next: this.next.slice(),
      alpha: this.alpha.slice(),
      outcomes: this.outcomes.slice(),
      misses: this.misses.slice(),
    }
  }

  importState(saved: Record<string, unknown>): void {
    const put = (to: Float64Array | Uint32Array, from: unknown, name: string) => {
      if (!ArrayBuffer.isView(from) || (from as Float64Array).length !== to.length)
        throw new RxrnnError('bad_snapshot', `Cannot restore this snapshot: conformal.${name} does not fit`)
      to.set(from as Float64Array)
    }
    put(this.ring, saved.ring, 'ring')
    put(this.sorted, saved.sorted, 'sorted')
    put(this.count, saved.count, 'count')
    put(this.next, saved.next, 'next')
    put(this.alpha, saved.alpha, 'alpha')
    put(this.outcomes, saved.outcomes, 'outcomes')
    put(this.misses, saved.misses, 'misses')
  }
}

/** The first index in [from, to) of ascending `a` whose value is >= v. */
function lowerBound(a: Float64Array, from: number, to: number, v: number): number {
  let lo = from
  let hi = to
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (a[mid]! < v) lo = mid + 1
    else hi = mid
  }
  return lo
}
