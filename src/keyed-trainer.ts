import type { FloatArray } from './dtype.js'
import { arrayTypeOf } from './dtype.js'
import { RxrnnError } from './errors.js'
import type { KeySlots } from './key-store.js'
import { KeyStore, keyStoreProblems } from './key-store.js'
import { decodeSnapshot, encodeSnapshot, field, restoreArray } from './snapshot.js'
import type { RecurrentState } from './state.js'
import type { UpdateReport } from './trainer.js'
import { copyReport, OnlineTrainer } from './trainer.js'
import { copyFiniteVector } from './validate.js'
import type { SequenceWindow } from './window.js'

/** Options of a `KeyedTrainer`; `X` is what the caller keeps per key besides the trainer's state. */
export interface KeyedTrainerOptions<X = unknown> {
  /** Most keys kept; past it the least recently seen key is evicted. Default 100 000. */
  maxKeys?: number
  /** A key unseen for this long is evicted by `evictIdle`. Default: never. */
  idleMs?: number
  /**
   * Labels that arrive after their event (joined by id, see `label`): the most events per key
   * that may wait for a label; past it the oldest is learned from without a target. Default 0
   * (every target arrives with its event).
   */
  maxPending?: number
  /**
   * Start each new key at a different phase of its TBPTT window (its first window is shorter),
   * so that keys created together do not all update on the same tick: a server's latency then
   * has no burst of back-to-back updates. Default false.
   */
  staggerUpdates?: boolean
  /**
   * Makes a new key's `extras`: whatever the caller keeps per key (a baseline, forecasting
   * bookkeeping). It lives in the key's entry and leaves with it, so there is no side map to keep
   * in step with evictions. Required when you give `X`.
   */
  extras?: (key: string) => X
  /** Called with each key evicted (idle or over maxKeys) and its entry, after it left. */
  onEvict?: (key: string, entry: KeyEntry<X>) => void
}

/** One key's state. */
export interface KeyEntry<X = unknown> {
  readonly key: string
  /** The training trajectory: hidden state and TBPTT window. */
  readonly sequence: SequenceWindow
  /** The prediction state when labels arrive late (it runs ahead of the trajectory), else null. */
  readonly live: RecurrentState | null
  /** Events awaiting their label, oldest first. */
  readonly pending: PendingEvent[]
  lastSeen: number
  /** The caller's per-key values (`KeyedTrainerOptions.extras`). */
  readonly extras: X
}

export interface PendingEvent {
  readonly id: number
  readonly x: FloatArray
  target: FloatArray | null
  /** The prediction made for this event (a copy), for scoring once the label arrives. */
  prediction: FloatArray | null
}

/**
 * What a keyed step returns: one object reused by the next step, whose prediction and update
 * reports are reused too (copy what you keep: `prediction.slice()`, `copyReport(update)`).
 */
export interface KeyedObservation {
  prediction: FloatArray
  updates: UpdateReport[]
}

const noUpdates: UpdateReport[] = []

/** A key's value in the store. */
interface LinkedEntry<X> extends KeyEntry<X> {
  /** Its window is complete and its update queued (observeDeferred). */
  due: boolean
}

/** A weight update and the key whose window it learned from. */
export interface KeyedUpdate {
  key: string
  report: UpdateReport
}

/**
 * Many streams, one model: every key (a sensor, a symbol) keeps its own hidden state and
 * truncation window while all keys train the trainer's shared weights and optimizer. Windows
 * store only inputs and states (activations are recomputed at update time), so a key costs
 * (k2 + 1)·(inputs + targets + state) floats; with a forward-mode algorithm (`rtrl`, `snap1`,
 * `uoro`) each key also carries its own sensitivities and summed gradient (RTRL's S·P floats
 * are the most). `bytesPerKey` says how many bytes.
 *
 * @example
 * const keyed = new KeyedTrainer(new OnlineTrainer(model, options), { idleMs: 60_000 })
 * const { prediction, updates } = keyed.observe('sensor-7', [21.5, 1013], [21.7])
 */
export class KeyedTrainer<X = unknown> {
  readonly maxKeys: number
  readonly idleMs: number
  readonly maxPending: number
  readonly staggerUpdates: boolean
  /** Keys created so far: the next key's phase when updates are staggered. */
  private created = 0
  /** The caller's callbacks, as methods, so a KeyedTrainer<X> is usable as a KeyedTrainer<unknown>. */
  private readonly hooks: {
    extras(key: string): X
    onEvict?(key: string, entry: KeyEntry<X>): void
  }
  /** The keys, LRU and idle eviction: seeing a known key allocates nothing. */
  private readonly store: KeyStore<LinkedEntry<X>>
  private readonly xScratch: FloatArray
  private readonly targetScratch: FloatArray
  private readonly updatesScratch: UpdateReport[] = []
  /** Entries whose update observeDeferred queued (some may have run it since: see `due`). */
  private dueEntries: LinkedEntry<X>[] = []
  private dueCount = 0
  /** Updates run but not yet handed out by runDueUpdates. */
  private dueReports: KeyedUpdate[] = []
  /** Reused by every `observe`: the hot path allocates nothing. */
  private readonly result: KeyedObservation
  /** Events learned from without a label because too many were waiting. */
  expiredLabels = 0

  constructor(
    readonly trainer: OnlineTrainer,
    options: KeyedTrainerOptions<X> = {},
  ) {
    this.maxKeys = options.maxKeys ?? 100_000
    this.idleMs = options.idleMs ?? Number.POSITIVE_INFINITY
    this.maxPending = options.maxPending ?? 0
    this.staggerUpdates = options.staggerUpdates ?? false
    const { extras, onEvict } = options
    this.hooks = { extras: extras ?? (() => undefined as X), ...(onEvict ? { onEvict } : {}) }
    const problems = keyStoreProblems(options)
    if (!Number.isInteger(this.maxPending) || this.maxPending < 0)
      problems.push('maxPending must be an integer >= 0')
    if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid keyed trainer options', problems)
    const A = arrayTypeOf(trainer.model.config.dtype)
    this.xScratch = new A(trainer.model.config.inputSize)
    // A label is one row of a multi-horizon head's targets.
    this.targetScratch = new A((trainer.horizonTargets?.rowLoss ?? trainer.loss).targetSize)
    this.result = { prediction: this.xScratch, updates: noUpdates }
    this.store = new KeyStore<LinkedEntry<X>>({
      maxKeys: this.maxKeys,
      idleMs: this.idleMs,
      create: (key) => this.createEntry(key),
      onEvict: (key, entry) => {
        // Its queued update learned from events already seen: it runs now, not never.
        if (entry.due) this.runDue(entry)
        this.hooks.onEvict?.(key, entry)
      },
    })
  }

  /** Keys evicted so far (idle or over maxKeys). */
  get evicted(): number {
    return this.store.evicted
  }

  set evicted(count: number) {
    this.store.evicted = count
  }

  get size(): number {
    return this.store.size
  }

  has(key: string): boolean {
    return this.store.has(key)
  }

  /** The keys, least recently seen first. Deleting or seeing keys while iterating is safe. */
  keys(): IterableIterator<string> {
    return this.store.keys()
  }

  entry(key: string): KeyEntry<X> | undefined {
    return this.store.get(key)
  }

  /**
   * One field of every key's extras, as the per-key storage of a component that would otherwise
   * keep its own map (`ForecastBook`'s trackers, `InputAugmenter`'s last inputs): the values
   * live in the entries, so eviction, `delete` and `clear` take them along. `set` on a key this
   * trainer does not hold does nothing.
   *
   * @example
   * const keyed = new KeyedTrainer<{ tracker?: ForecastTracker }>(trainer, { extras: () => ({}) })
   * const book = new ForecastBook(trainer, { coverage: 0.9, trackers: keyed.slots('tracker') })
   */
  slots<K extends keyof X>(field: K): KeySlots<NonNullable<X[K]>> {
    const store = this.store
    return {
      get: (key) => (store.get(key)?.extras[field] ?? undefined) as NonNullable<X[K]> | undefined,
      set: (key, value) => {
        const entry = store.get(key)
        if (entry) entry.extras[field] = value
      },
      delete: (key) => {
        const entry = store.get(key)
        if (entry) entry.extras[field] = undefined as X[K]
      },
      clear: () => {
        for (const { value } of store.entries()) value.extras[field] = undefined as X[K]
      },
      *entries(): Generator<[string, NonNullable<X[K]>]> {
        for (const { key, value } of store.entries()) {
          const v = value.extras[field]
          if (v !== undefined && v !== null) yield [key, v as NonNullable<X[K]>]
        }
      },
    }
  }

  /**
   * One event of `key`, whose target (if any) is known now: predicts, learns, and returns the
   * prediction with the updates it triggered. Throws RxrnnError before any state changes when
   * x or target is bad.
   *
   * `now` (ms) is when the key was seen, for idle eviction; it defaults to Date.now(), whose
   * result Node 20 boxes (16 bytes per event). A caller that steps many keys can pass a small
   * integer clock of its own (ms since it started, in the same units as `evictIdle`'s `now`),
   * and the path allocates nothing per event.
   */
  observe(
    key: string,
    x: ArrayLike<number>,
    target?: number | ArrayLike<number> | null,
    now = Date.now(),
  ): KeyedObservation {
    const hasTarget = this.checkEvent(x, target)
    const entry = this.touch(key, now)
    // An update observeDeferred queued for this key runs first: its window ends before this event.
    const queued = entry.due ? this.runQueued(entry) : undefined
    const { prediction, update } = this.trainer.observeChecked(entry.sequence, hasTarget)
    const result = this.result
    result.prediction = prediction
    if (update || queued) {
      this.updatesScratch.length = 0
      if (queued) this.updatesScratch.push(queued)
      if (update) this.updatesScratch.push(update)
      result.updates = this.updatesScratch
    } else result.updates = noUpdates
    return result
  }

  /**
   * `observe` with the weight update left for later: predicts from x at once (the hidden state and
   * the window advance exactly as in `observe`) and, when this event completes the key's window,
   * queues the update for `runDueUpdates` instead of running it. A key whose update is still queued
   * runs it before its next event, so every key's windows and losses are those of `observe`; only
   * other keys' events in between still see the weights from before it. A server answers a batch
   * of ticks first and learns after it (see `serve`), so replies never wait behind weight updates.
   * Returns the prediction (reused by the next call: copy what you keep).
   *
   * @example
   * const y = keyed.observeDeferred('sensor-7', [21.5, 1013], [21.7])
   * reply(Array.from(y))
   * for (const { key, report } of keyed.runDueUpdates()) console.log(key, report.loss)
   */
  observeDeferred(
    key: string,
    x: ArrayLike<number>,
    target?: number | ArrayLike<number> | null,
    now = Date.now(),
  ): FloatArray {
    const hasTarget = this.checkEvent(x, target)
    const entry = this.touch(key, now)
    if (entry.due) this.runDue(entry)
    const prediction = this.trainer.forwardChecked(entry.sequence, hasTarget)
    if (this.trainer.updateDue(entry.sequence)) this.queue(entry)
    return prediction
  }

  /** Updates queued by observeDeferred, or run early, that runDueUpdates has not handed out yet. */
  get dueUpdates(): number {
    return this.dueCount + this.dueReports.length
  }

  /**
   * Runs the updates observeDeferred queued, in the order their windows completed, and hands
   * them out with those run early since (when their key saw its next event, was reset or left).
   * Call it regularly (a server does after every batch of ticks): the queue and its reports grow
   * until it runs.
   */
  runDueUpdates(): KeyedUpdate[] {
    const entries = this.dueEntries
    this.dueEntries = []
    let i = 0
    try {
      for (; i < entries.length; i++) if (entries[i]!.due) this.runDue(entries[i]!)
    } finally {
      // An update that threw leaves the rest queued, not forgotten.
      if (i < entries.length) this.dueEntries = entries.slice(i + 1).concat(this.dueEntries)
    }
    const reports = this.dueReports
    this.dueReports = []
    return reports
  }

  /**
   * Validates an event before its key is touched (a refused event must change nothing: not create
   * a key, evict another, nor reorder them); returns whether it has a target.
   */
  private checkEvent(x: ArrayLike<number>, target: number | ArrayLike<number> | null | undefined): boolean {
    if (this.maxPending > 0) {
      throw new RxrnnError(
        'bad_config',
        'This KeyedTrainer joins late labels (maxPending > 0): use predict() and label()',
      )
    }
    return this.trainer.check(x, target)
  }

  private queue(entry: LinkedEntry<X>): void {
    entry.due = true
    this.dueCount++
    this.dueEntries.push(entry)
  }

  /** Runs an entry's queued update; its report waits for runDueUpdates. */
  private runDue(entry: LinkedEntry<X>): void {
    const report = this.runQueued(entry)
    if (report) this.dueReports.push({ key: entry.key, report })
  }

  private runQueued(entry: LinkedEntry<X>): UpdateReport | undefined {
    entry.due = false
    this.dueCount--
    const report = this.trainer.updateSequence(entry.sequence)
    return report ? copyReport(report) : undefined
  }

  /**
   * Late labels: predicts from x now and keeps the event, under `id`, until `label(key, id, …)`
   * brings its target. Learning follows event order, so the model trains on the oldest events
   * as soon as their labels are in.
   */
  predict(key: string, id: number, x: ArrayLike<number>, now = Date.now()): KeyedObservation {
    if (this.maxPending === 0)
      throw new RxrnnError('bad_config', 'predict() needs maxPending > 0; use observe()')
    copyFiniteVector(this.xScratch, x, 'x', 'bad_input', 'inputSize')
    const entry = this.touch(key, now)
    this.updatesScratch.length = 0
    if (entry.pending.length >= this.maxPending) {
      // Too many waiting: the oldest is learned from without its label, in order.
      entry.pending[0]!.target = null
      this.expiredLabels++
      this.drain(entry, true)
    }
    const event: PendingEvent = { id, x: this.xScratch.slice(), target: null, prediction: null }
    entry.pending.push(event)
    const prediction = this.trainer.model.stepValidated(event.x, entry.live!)
    event.prediction = prediction.slice()
    return { prediction, updates: this.updatesScratch }
  }

  /**
   * Joins a label to a waiting event; returns that event and the updates it let run, or null
   * when no event of that key and id is waiting (too old, evicted, or never seen).
   */
  label(
    key: string,
    id: number,
    target: number | ArrayLike<number>,
  ): { event: PendingEvent; updates: UpdateReport[] } | null {
    const entry = this.store.get(key)
    const event = entry?.pending.find((e) => e.id === id)
    if (!entry || !event) return null
    // With a multi-horizon head a label is one row (the target of that event).
    const reader = this.trainer.horizonTargets?.rowLoss ?? this.trainer.loss
    const problem = reader.readTarget(this.targetScratch, target)
    if (problem) throw new RxrnnError('bad_target', problem)
    event.target = this.targetScratch.slice()
    this.updatesScratch.length = 0
    this.drain(entry, false)
    return { event, updates: this.updatesScratch }
  }

  /** Learns from the leading events whose labels are in (and, with `forceOne`, the first regardless). */
  private drain(entry: KeyEntry<X>, forceOne: boolean): void {
    let force = forceOne
    while (entry.pending.length > 0 && (entry.pending[0]!.target !== null || force)) {
      const event = entry.pending.shift()!
      force = false
      const { update } = this.trainer.observeSequence(entry.sequence, event.x, event.target)
      // The trainer reuses its report object; several updates here need one each.
      if (update) this.updatesScratch.push(copyReport(update))
    }
    // Caught up: the prediction state is exactly the trajectory's state again.
    if (entry.pending.length === 0) entry.live!.copyFrom(entry.sequence.state)
  }

  /** A sequence boundary for one key: zero state, empty window, waiting events dropped. */
  reset(key: string): boolean {
    const entry = this.store.get(key)
    if (!entry) return false
    if (entry.due) this.runDue(entry)
    entry.sequence.reset()
    entry.live?.reset()
    entry.pending.length = 0
    return true
  }

  delete(key: string): boolean {
    const entry = this.store.get(key)
    if (!entry) return false
    // Its queued update learned from events already seen: it runs now, not never.
    if (entry.due) this.runDue(entry)
    return this.store.delete(key)
  }

  /** Evicts keys unseen for `idleMs`; returns them. */
  evictIdle(now = Date.now()): string[] {
    return this.store.evictIdle(now)
  }

  /**
   * The shared trainer and every key's state (hidden state, window, waiting events) as bytes;
   * `KeyedTrainer.fromSnapshot` resumes them exactly.
   */
  snapshot(): Uint8Array {
    const keys = this.store.entries().map(({ value: e }) => ({
      key: e.key,
      sequence: e.sequence.exportState(),
      live: e.live?.data.slice() ?? null,
      pending: e.pending.map((p) => ({ id: p.id, x: p.x, target: p.target, prediction: p.prediction })),
      lastSeen: e.lastSeen,
    }))
    return encodeSnapshot('keyed-trainer', {
      trainer: this.trainer.exportState(),
      options: {
        maxKeys: this.maxKeys,
        idleMs: this.idleMs,
        maxPending: this.maxPending,
        staggerUpdates: this.staggerUpdates,
      },
      created: this.created,
      keys,
      evicted: this.evicted,
      expiredLabels: this.expiredLabels,
    })
  }

  /**
   * Resumes `snapshot()`'s bytes; `extras` and `onEvict` are not saved, pass them again (each
   * restored key gets fresh extras). Options given here replace the saved ones (a server's
   * limits come from its flags, not from its checkpoint).
   */
  static fromSnapshot<X = unknown>(
    bytes: Uint8Array,
    options: Pick<
      KeyedTrainerOptions<X>,
      'extras' | 'onEvict' | 'maxKeys' | 'idleMs' | 'staggerUpdates'
    > = {},
  ): KeyedTrainer<X> {
    const body = decodeSnapshot(bytes, 'keyed-trainer')
    const isObject = (v: unknown) => v !== null && typeof v === 'object'
    const trainer = OnlineTrainer.fromState(field(body, 'trainer', isObject, 'a trainer'))
    const saved = field<Omit<KeyedTrainerOptions, 'extras' | 'onEvict'>>(
      body,
      'options',
      isObject,
      'keyed options',
    )
    const keyed = new KeyedTrainer<X>(trainer, { ...saved, ...options })
    const keys = field<Record<string, unknown>[]>(body, 'keys', Array.isArray, 'a list of keys')
    for (const k of keys) {
      if (
        !isObject(k) ||
        typeof k.key !== 'string' ||
        typeof k.lastSeen !== 'number' ||
        !Array.isArray(k.pending)
      ) {
        throw new RxrnnError('bad_snapshot', 'Cannot restore this snapshot: a key entry is malformed')
      }
      const entry = keyed.touch(k.key, k.lastSeen)
      entry.sequence.importState(field(k, 'sequence', isObject, 'a window'))
      // A window that was complete but not yet learned from (observeDeferred) is queued again.
      if (keyed.maxPending === 0 && trainer.updateDue(entry.sequence)) keyed.queue(entry)
      if (entry.live) restoreArray(entry.live.data, k.live, `keys[${k.key}].live`)
      for (const p of k.pending as PendingEvent[]) entry.pending.push({ ...p })
    }
    keyed.evicted = field<number>(body, 'evicted', Number.isInteger, 'an integer')
    keyed.created = typeof body.created === 'number' ? body.created : keyed.size
    keyed.expiredLabels = field<number>(body, 'expiredLabels', Number.isInteger, 'an integer')
    return keyed
  }

  /**
   * Bytes of typed-array memory one key holds (its window and states, and a forward-mode
   * algorithm's sensitivities). The JS objects around them (one small object and a few views
   * per slot) add roughly as much again on the heap: `npm run bench` measures both.
   */
  bytesPerKey(): number {
    const seq = this.trainer.createSequence({ storeActivations: false })
    const bytes = seq.slots[0]!.x.buffer.byteLength + seq.carried.byteLength
    const live = this.maxPending > 0 ? this.trainer.model.initialState().data.byteLength : 0
    const c = this.trainer.model.config
    // A waiting event keeps its x, its target and a copy of its prediction.
    const pending =
      this.maxPending *
      (c.inputSize + this.trainer.loss.targetSize + c.outputSize) *
      (c.dtype === 'float64' ? 8 : 4)
    return bytes + live + pending
  }

  /** The key's entry (created when new), seen at `now`: moved to the newest end of the recency list. */
  private touch(key: string, now: number): LinkedEntry<X> {
    // '' is a key like any other: the single-series operators (forecast, learnWithLabels) use it.
    if (typeof key !== 'string') throw new RxrnnError('missing_key', 'key must be a string')
    const entry = this.store.touch(key, now)
    entry.lastSeen = now
    return entry
  }

  /** A new key's entry: a fresh window (and prediction state when labels come late). */
  private createEntry(key: string): LinkedEntry<X> {
    const entry: LinkedEntry<X> = {
      key,
      sequence: this.trainer.createSequence({ storeActivations: false }),
      live: this.maxPending > 0 ? this.trainer.model.initialState() : null,
      pending: [],
      lastSeen: 0,
      extras: this.hooks.extras(key),
      due: false,
    }
    if (this.staggerUpdates) entry.sequence.sinceUpdate = this.created % this.trainer.options.k1
    this.created++
    return entry
  }
}
