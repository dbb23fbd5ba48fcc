import { RxrnnError } from './errors.js'

/** Options of a {@link KeyStore}. */
export interface KeyStoreOptions<V> {
  /** Most keys kept; past it the least recently seen key is evicted. Default 100 000. */
  maxKeys?: number
  /** A key unseen for this long is evicted by `evictIdle`. Default: never. */
  idleMs?: number
  /** Makes a new key's value: its state and whatever else the caller keeps per key. */
  create: (key: string) => V
  /**
   * Called with each key evicted (idle or over maxKeys) and its value, after it left the store;
   * not called for `delete` or `clear`.
   */
  onEvict?: (key: string, value: V) => void
}

/**
 * The store's callbacks, as methods: a store of a narrower value type may be used where a wider
 * one is expected (function-typed fields would make the store's type invariant in V).
 */
interface KeyStoreHooks<V> {
  create(key: string): V
  onEvict?(key: string, value: V): void
}

/** A key on the recency list: least recently seen at `oldest`, most recently at `newest`. */
interface Node<V> {
  readonly key: string
  readonly value: V
  lastSeen: number
  older: Node<V> | null
  newer: Node<V> | null
}

/**
 * Per-key values with a bound on how many are kept: seeing a key (`touch`) creates its value
 * the first time and moves it to the newest end of a recency list; past `maxKeys` the least
 * recently seen key is evicted, and `evictIdle(now)` evicts every key unseen for `idleMs`. Both
 * call `onEvict(key, value)`, so whatever a caller keeps per key lives in the value and leaves
 * with it (no side maps to keep in step).
 *
 * The recency list is linked through the store's own nodes: seeing a known key moves it in
 * O(1) and allocates nothing (re-inserting into a Map to keep it ordered would grow and rehash
 * the Map). Clocks are the caller's: pass `now` in any unit, the same for `touch` and
 * `evictIdle`, for instance ms since start (a small integer that Node does not box).
 *
 * @example
 * const states = new KeyStore({ maxKeys: 10_000, idleMs: 60_000, create: () => model.initialState() })
 * const state = states.touch('sensor-7', performance.now())
 * setInterval(() => states.evictIdle(performance.now()), 30_000)
 */
export class KeyStore<V> {
  readonly maxKeys: number
  readonly idleMs: number
  /** Keys evicted so far (idle or over maxKeys). */
  evicted = 0
  private readonly hooks: KeyStoreHooks<V>
  private readonly nodes = new Map<string, Node<V>>()
  private oldest: Node<V> | null = null
  private newest: Node<V> | null = null

  constructor(options: KeyStoreOptions<V>) {
    this.maxKeys = options.maxKeys ?? 100_000
    this.idleMs = options.idleMs ?? Number.POSITIVE_INFINITY
    this.hooks = options
    const problems = keyStoreProblems(options)
    if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid key store options', problems)
  }

  get size(): number {
    return this.nodes.size
  }

  has(key: string): boolean {
    return this.nodes.has(key)
  }

  /** The key's value, without counting as seeing it. */
  get(key: string): V | undefined {
    return this.nodes.get(key)?.value
  }

  /** When the key was last seen, in the clock of `touch`. */
  lastSeen(key: string): number | undefined {
    return this.nodes.get(key)?.lastSeen
  }

  /**
   * The key's value, created when new, seen at `now`: it moves to the newest end. Creating a key
   * when `maxKeys` are held first evicts the least recently seen one.
   */
  touch(key: string, now: number): V {
    let node = this.nodes.get(key)
    if (node) {
      if (node !== this.newest) {
        this.unlink(node)
        this.append(node)
      }
    } else {
      if (this.nodes.size >= this.maxKeys && this.oldest) this.evict(this.oldest)
      node = { key, value: this.hooks.create(key), lastSeen: now, older: null, newer: null }
      this.nodes.set(key, node)
      this.append(node)
    }
    node.lastSeen = now
    return node.value
  }

  /** Removes the key (no `onEvict`); false when it was not there. */
  delete(key: string): boolean {
    const node = this.nodes.get(key)
    if (!node) return false
    this.unlink(node)
    return this.nodes.delete(key)
  }

  /** Removes every key (no `onEvict`). */
  clear(): void {
    this.nodes.clear()
    this.oldest = null
    this.newest = null
  }

  /** Evicts the keys unseen for `idleMs` at `now`; returns them, least recently seen first. */
  evictIdle(now: number): string[] {
    const evicted: string[] = []
    // The list runs from least recently seen, so the scan stops at the first fresh key.
    while (this.oldest && now - this.oldest.lastSeen >= this.idleMs) {
      evicted.push(this.oldest.key)
      this.evict(this.oldest)
    }
    return evicted
  }

  /** The keys, least recently seen first. Deleting or seeing keys while iterating is safe. */
  *keys(): IterableIterator<string> {
    for (let node = this.oldest; node; ) {
      // Read on before yielding: the caller may delete this key (unlinking it) or see it again.
      const next = node.newer
      yield node.key
      node = next
    }
  }

  /** Keys, values and when they were last seen, least recently seen first (a copy). */
  entries(): { key: string; value: V; lastSeen: number }[] {
    const out: { key: string; value: V; lastSeen: number }[] = []
    for (let node = this.oldest; node; node = node.newer) {
      out.push({ key: node.key, value: node.value, lastSeen: node.lastSeen })
    }
    return out
  }

  private evict(node: Node<V>): void {
    this.unlink(node)
    this.nodes.delete(node.key)
    this.evicted++
    this.hooks.onEvict?.(node.key, node.value)
  }

  private unlink(node: Node<V>): void {
    if (node.older) node.older.newer = node.newer
    else this.oldest = node.newer
    if (node.newer) node.newer.older = node.older
    else this.newest = node.older
    node.older = null
    node.newer = null
  }

  private append(node: Node<V>): void {
    node.older = this.newest
    node.newer = null
    if (this.newest) this.newest.newer = node
    else this.oldest = node
    this.newest = node
  }
}

/** What is wrong with a key store's limits, one line each (empty when they are fine). */
export function keyStoreProblems(options: { maxKeys?: number; idleMs?: number }): string[] {
  const problems: string[] = []
  const maxKeys = options.maxKeys ?? 100_000
  const idleMs = options.idleMs ?? Number.POSITIVE_INFINITY
  if (!Number.isInteger(maxKeys) || maxKeys < 1) problems.push('maxKeys must be a positive integer')
  if (!(idleMs > 0)) problems.push('idleMs must be a positive number of milliseconds')
  return problems
}

/**
 * Where a component keeps one value per key: a `Map` by default, or one field of every key's
 * extras in a `KeyedTrainer` (`keyed.slots('tracker')`), so the value leaves with its key.
 * A Map satisfies it.
 */
export interface KeySlots<V> {
  get(key: string): V | undefined
  /** Stores the value; a slot view over a store's keys ignores a key the store does not hold. */
  set(key: string, value: V): void
  delete(key: string): void
  clear(): void
  entries(): Iterable<[string, V]>
}
