/**
 * The server's limits as small units: connections in all and per address, new keys per
 * connection per second, and the memory budget checked at start.
 */
import { totalmem } from 'node:os'

/**
 * Open connections, in all and per remote address: `admit` says why one more is refused (503),
 * `release` gives its place back.
 *
 * @example
 * const limits = new ConnectionLimits(1024, 256)
 * const problem = limits.admit('10.0.0.7') // undefined: admitted
 * limits.release('10.0.0.7')
 */
export class ConnectionLimits {
  private readonly perAddress = new Map<string, number>()
  private total = 0
  /** Connections refused so far. */
  refused = 0

  constructor(
    readonly maxConnections: number,
    readonly maxPerAddress: number,
  ) {}

  get size(): number {
    return this.total
  }

  /** Why the connection is refused, or undefined when it took a place (then `release` it once). */
  admit(address: string): string | undefined {
    if (this.total >= this.maxConnections) {
      this.refused++
      return `the server holds ${this.total} connections, its --max-connections`
    }
    const n = this.perAddress.get(address) ?? 0
    if (n >= this.maxPerAddress) {
      this.refused++
      return `${address} holds ${n} connections, the --max-connections-per-address`
    }
    this.perAddress.set(address, n + 1)
    this.total++
    return undefined
  }

  release(address: string): void {
    const n = this.perAddress.get(address)
    if (n === undefined) return
    if (n <= 1) this.perAddress.delete(address)
    else this.perAddress.set(address, n - 1)
    this.total--
  }
}

/**
 * A token bucket: `rate` new keys per second, bursts of up to `rate`. One per connection, so
 * one producer inventing keys cannot evict everyone else's state.
 *
 * @example
 * const bucket = new RateBucket(100)
 * if (!bucket.take(performance.now())) refuse()
 */
export class RateBucket {
  private tokens: number
  private at = 0

  constructor(readonly rate: number) {
    this.tokens = rate
  }

  /** Takes one token at `now` (ms); false when none is left. */
  take(now: number): boolean {
    if (this.at !== 0) this.tokens = Math.min(this.rate, this.tokens + ((now - this.at) * this.rate) / 1000)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens--
    return true
  }
}

/** The default memory budget: half the machine's memory. */
export function defaultMaxMemory(): number {
  return Math.floor(totalmem() / 2)
}

/**
 * Bytes one key costs on the heap, from the typed-array bytes `KeyedTrainer.bytesPerKey()`
 * reports: the JS objects around them (entry, views per window slot, the key string, maps) add
 * about as much again (`npm run bench` measures it), plus a fixed part.
 */
export function heapBytesPerKey(typedArrayBytes: number): number {
  return 2 * typedArrayBytes + 512
}

/**
 * Why `maxKeys` keys do not fit in `maxMemory` bytes, or undefined.
 *
 * @example
 * memoryProblem(2_000_000, 100_000, 8 * 2 ** 30) // '--max-keys 100000 × 1.9 MiB per key = 186 GiB ...'
 */
export function memoryProblem(bytesPerKey: number, maxKeys: number, maxMemory: number): string | undefined {
  const total = bytesPerKey * maxKeys
  if (total <= maxMemory) return undefined
  const fit = Math.max(1, Math.floor(maxMemory / bytesPerKey))
  return (
    `--max-keys ${maxKeys} × ${formatBytes(bytesPerKey)} per key (this model and trainer) = ${formatBytes(total)}, ` +
    `over --max-memory ${formatBytes(maxMemory)}: lower --max-keys (at most ${fit} fit), shrink the model or --k2, ` +
    'or raise --max-memory'
  )
}

/** Bytes in binary units, for messages. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}
