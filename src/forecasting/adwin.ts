import { RxrnnError } from '../errors.js'
import { savedNumber } from './saved-state.js'

/**
 * ADWIN (Bifet & Gavaldà, 2007; the ADWIN2 bucket form): an adaptive window of recent losses
 * kept as an exponential histogram, cut where an older and a newer part differ by more than the
 * bound ε = √(2·m·σ²·ln(2 ln W/δ)) + ⅔·m·ln(2 ln W/δ), m = 1/n₀ + 1/n₁ (both parts' sizes
 * counted from the minimum part). The window then drops its older part and follows the new
 * level. Only a cut where the newer part is worse is a drift alarm: a model that is learning
 * (its loss falling) shrinks the window silently. Losses enter squashed as ℓ/(ℓ + s), s the
 * mean loss of the warm-up, so ε's range term (values in [0, 1]) holds for any loss scale.
 *
 * Guarantee (ADWIN's Theorem 3.1, with the bound above): on a stationary stretch the chance of
 * a cut per check is at most δ; a rise of the mean by more than ε is caught once both parts
 * are long enough for ε to drop below it.
 *
 * Cost: memory (M + 1)·⌈log₂ maxWidth⌉ buckets (M = 5; about 200 numbers per key with the
 * default maxWidth 8192); O(1) amortised per loss, a cut check of O(M log W) every `clock` losses.
 *
 * @example
 * const adwin = new Adwin({ warmup: 100, confidence: 0.002 })
 * if (adwin.update(loss)) console.log('loss rose')
 */
export class Adwin {
  seen = 0
  private readonly M = 5
  private readonly rows: number
  private readonly totals: Float64Array
  private readonly m2s: Float64Array
  private readonly rowCount: Uint8Array
  private width = 0
  private total = 0
  private m2 = 0
  private scale = 0
  private readonly warmup: number
  private readonly confidence: number
  private readonly clock: number
  private readonly maxWidth: number
  private readonly minPart: number
  private lastMeans = { before: 0, after: 0 }

  constructor(
    options: {
      warmup?: number
      confidence?: number
      clock?: number
      maxWidth?: number
      minPart?: number
    } = {},
  ) {
    this.warmup = Math.max(1, options.warmup ?? 100)
    this.confidence = options.confidence ?? 0.002
    this.clock = options.clock ?? 16
    this.maxWidth = options.maxWidth ?? 8192
    this.minPart = options.minPart ?? 10
    this.rows = Math.ceil(Math.log2(this.maxWidth)) + 2
    this.totals = new Float64Array(this.rows * (this.M + 1))
    this.m2s = new Float64Array(this.rows * (this.M + 1))
    this.rowCount = new Uint8Array(this.rows)
  }

  /** Items in the current window. */
  get windowWidth(): number {
    return this.width
  }

  update(loss: number): boolean {
    if (!Number.isFinite(loss) || loss < 0) return false
    this.seen++
    if (this.seen <= this.warmup) {
      this.scale += (loss - this.scale) / this.seen
      return false
    }
    const u = loss / (loss + this.scale + 1e-12)
    this.insert(u)
    while (this.width > this.maxWidth) this.dropOldest()
    if ((this.seen - this.warmup) % this.clock !== 0) return false
    return this.detect()
  }

  reset(): void {
    this.seen = 0
    this.width = 0
    this.total = 0
    this.m2 = 0
    this.scale = 0
    this.rowCount.fill(0)
  }

  describe(): Record<string, number> {
    return { meanBefore: this.lastMeans.before, meanAfter: this.lastMeans.after, window: this.width }
  }

  exportState(): Record<string, unknown> {
    return {
      seen: this.seen,
      width: this.width,
      total: this.total,
      m2: this.m2,
      scale: this.scale,
      totals: this.totals.slice(),
      m2s: this.m2s.slice(),
      rowCount: this.rowCount.slice(),
    }
  }

  importState(saved: Record<string, unknown>): void {
    const put = (to: Float64Array | Uint8Array, from: unknown, name: string) => {
      if (!ArrayBuffer.isView(from) || (from as Float64Array).length !== to.length)
        throw new RxrnnError('bad_snapshot', `Cannot restore this snapshot: drift.${name} does not fit`)
      to.set(from as Float64Array)
    }
    put(this.totals, saved.totals, 'totals')
    put(this.m2s, saved.m2s, 'm2s')
    put(this.rowCount, saved.rowCount, 'rowCount')
    this.seen = savedNumber(saved, 'seen')
    this.width = savedNumber(saved, 'width')
    this.total = savedNumber(saved, 'total')
    this.m2 = savedNumber(saved, 'm2')
    this.scale = savedNumber(saved, 'scale')
  }

  private insert(u: number): void {
    const W = this.width + 1
    const d = u - (this.width > 0 ? this.total / this.width : 0)
    this.total += u
    this.m2 += this.width > 0 ? (d * d * (W - 1)) / W : 0
    this.width = W
    this.push(0, u, 0)
    for (let r = 0; r < this.rows - 1 && this.rowCount[r]! > this.M; r++) {
      const i = r * (this.M + 1)
      const n = 2 ** r
      const t0 = this.totals[i]!
      const t1 = this.totals[i + 1]!
      const diff = t0 / n - t1 / n
      const merged = this.m2s[i]! + this.m2s[i + 1]! + (n / 2) * diff * diff
      this.shiftRow(r, 2)
      this.push(r + 1, t0 + t1, merged)
    }
  }

  private push(r: number, total: number, m2: number): void {
    const i = r * (this.M + 1) + this.rowCount[r]!
    this.totals[i] = total
    this.m2s[i] = m2
    this.rowCount[r] = this.rowCount[r]! + 1
  }

  private shiftRow(r: number, by: number): void {
    const i = r * (this.M + 1)
    const count = this.rowCount[r]!
    this.totals.copyWithin(i, i + by, i + count)
    this.m2s.copyWithin(i, i + by, i + count)
    this.rowCount[r] = count - by
  }

  private oldestRow(): number {
    for (let r = this.rows - 1; r >= 0; r--) if (this.rowCount[r]! > 0) return r
    return -1
  }

  private dropOldest(): void {
    const r = this.oldestRow()
    if (r < 0) return
    const i = r * (this.M + 1)
    const n = 2 ** r
    const t = this.totals[i]!
    const rest = this.width - n
    if (rest <= 0) {
      this.width = 0
      this.total = 0
      this.m2 = 0
    } else {
      const meanB = t / n
      const meanRest = (this.total - t) / rest
      this.m2 = Math.max(0, this.m2 - this.m2s[i]! - ((n * rest) / this.width) * (meanB - meanRest) ** 2)
      this.total -= t
      this.width = rest
    }
    this.shiftRow(r, 1)
  }

  /** Cuts while some split differs; true when a cut found the newer part worse. */
  private detect(): boolean {
    let rose = false
    let cut = true
    while (cut && this.width >= 2 * this.minPart) {
      cut = false
      const W = this.width
      const variance = this.m2 / W
      const dd = Math.log((2 * Math.log(W)) / this.confidence)
      let n0 = 0
      let u0 = 0
      for (let r = this.rows - 1; r >= 0 && !cut; r--) {
        const n = 2 ** r
        for (let b = 0; b < this.rowCount[r]!; b++) {
          n0 += n
          u0 += this.totals[r * (this.M + 1) + b]!
          const n1 = W - n0
          if (n1 < this.minPart) break
          if (n0 < this.minPart) continue
          const mean0 = u0 / n0
          const mean1 = (this.total - u0) / n1
          const m = 1 / (n0 - this.minPart + 1) + 1 / (n1 - this.minPart + 1)
          const eps = Math.sqrt(2 * m * variance * dd) + (2 / 3) * dd * m
          if (Math.abs(mean1 - mean0) > eps) {
            if (mean1 > mean0) {
              rose = true
              this.lastMeans.before = mean0
              this.lastMeans.after = mean1
            }
            cut = true
            break
          }
        }
      }
      if (cut) this.dropOldest()
    }
    return rose
  }
}
