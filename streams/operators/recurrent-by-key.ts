import type { Observable, OperatorFunction, SchedulerAction, SchedulerLike, Subscription } from 'rxjs'
import { asapScheduler, asyncScheduler } from 'rxjs'
import { arrayTypeOf } from '../../src/dtype.js'
import type { FloatArray, Model, RecurrentState } from '../../src/index.js'
import { RxrnnError } from '../../src/index.js'
import { KeyStore, keyStoreProblems } from '../../src/key-store.js'
import { copyFiniteVector } from '../../src/validate.js'
import type { KeyedEvent } from './keyed.js'
import type { Monitor } from './monitor.js'
import { operate } from './operate.js'

/** What `recurrentByKey` emits for each event: its key and the model's output. */
export interface RecurrentByKeyResult {
  key: string
  /** y_t for this event's key. A fresh array, yours to keep. */
  y: FloatArray
}

export interface RecurrentByKeyOptions<T> {
  /** The key of an event; default `event.key`. */
  key?: (event: T) => string
  /** The input x of an event; default `event.x`. */
  x?: (event: T) => ArrayLike<number>
  /** Most keys kept; past it the least recently seen key is evicted. Default 100 000. */
  maxKeys?: number
  /** A key unseen for this long is evicted at the next sweep. Default: never. */
  idleMs?: number
  /** How often idle keys are swept (when `idleMs` is set). Default: idleMs / 2. */
  evictEveryMs?: number
  /**
   * Step the events of different keys together, one `model.stepBatch` per batch (one
   * matrix–matrix product per weight matrix instead of one matrix–vector product per event).
   * A batch is stepped when it holds `maxSize` events, when an event of a key already in it
   * arrives (so a key never comes twice in a batch and its events keep their order), when the
   * source completes or errors, and `maxDelayMs` after its first event: 0 (the default) means at
   * the end of the current synchronous burst of events (a microtask, asapScheduler).
   * Without `batch`, each event is stepped as it arrives.
   */
  batch?: { maxSize: number; maxDelayMs?: number }
  /** Emits a key whose sequence ends: its hidden state goes back to zero. */
  reset$?: Observable<string>
  /** Called with each key evicted (idle or over maxKeys). */
  onEvict?: (key: string) => void
  /** Counts events and keys, and receives refused events on `errors$`. */
  monitor?: Monitor
  /**
   * Drives the clock, the idle sweep and the batch timer; tests pass a TestScheduler.
   * Default: asyncScheduler, and asapScheduler for a batch timer of 0 ms.
   */
  scheduler?: SchedulerLike
}

/** One key's hidden state, the value of its entry in the key store. */
interface KeyState {
  readonly state: RecurrentState
  /** Whether an event of this key waits in the current batch. */
  inBatch: boolean
}

/**
 * Many streams, one model, inference only: every key (a sensor, a symbol, a user) keeps its own
 * hidden state while all share the weights, and each event `{ key, x }` comes out as
 * `{ key, y }` in arrival order. Keys idle for `idleMs` are evicted, at most `maxKeys` are held
 * (least recently seen go first), and `reset$` zeroes one key's state. A malformed event (no key,
 * wrong length, NaN) is skipped and reported, creating no key. Each subscription has its own keys.
 *
 * With `batch`, events of different keys are collected and stepped together by `model.stepBatch`:
 * the same outputs (to float32 rounding; exactly on the JS kernels) in the same order, for less
 * work per event when many keys are active at once, at the price of holding an event until its
 * batch is stepped. For an LSTM 8→64→1 on the WebAssembly kernels: 1.6× the events per second
 * of this operator unbatched at maxSize 8, 1.9× at 32 to 64 (stepBatch alone on the JS kernels:
 * about 1.2×; see scripts/bench-batch.ts). Batches of fewer than 8 events save nothing: they
 * are stepped one by one.
 *
 * @example
 * import { recurrentByKey } from 'rxrnn/streams'
 * ticks$.pipe(
 *   map((t) => ({ key: t.symbol, x: [t.ret, t.volume] })),
 *   recurrentByKey(model, { idleMs: 60_000, batch: { maxSize: 64 } }),
 * ).subscribe(({ key, y }) => console.log(key, y[0]))
 */
export function recurrentByKey<T = KeyedEvent>(
  model: Model,
  options: RecurrentByKeyOptions<T> = {},
): OperatorFunction<T, RecurrentByKeyResult> {
  const { monitor, reset$, onEvict } = options
  const keyOf = options.key ?? ((event: T) => (event as unknown as KeyedEvent).key)
  const xOf = options.x ?? ((event: T) => (event as unknown as KeyedEvent).x)
  const maxKeys = options.maxKeys ?? 100_000
  const idleMs = options.idleMs ?? Number.POSITIVE_INFINITY
  const maxSize = options.batch?.maxSize ?? 1
  const maxDelayMs = options.batch?.maxDelayMs ?? 0
  const problems = keyStoreProblems({ maxKeys, idleMs })
  if (options.evictEveryMs !== undefined && !(options.evictEveryMs > 0))
    problems.push('evictEveryMs must be a positive number of milliseconds')
  if (options.batch && (!Number.isInteger(maxSize) || maxSize < 1))
    problems.push('batch.maxSize must be a positive integer')
  if (!(maxDelayMs >= 0 && Number.isFinite(maxDelayMs)))
    problems.push('batch.maxDelayMs must be a finite number of milliseconds >= 0')
  if (problems.length > 0) {
    const message = 'Invalid recurrentByKey options'
    throw new RxrnnError(
      'bad_config',
      problems.length === 1 ? `${message}: ${problems[0]}` : message,
      problems,
    )
  }
  const clock = options.scheduler ?? asyncScheduler
  const timers = options.scheduler ?? (maxDelayMs > 0 ? asyncScheduler : asapScheduler)
  const batched = options.batch !== undefined
  const I = model.config.inputSize
  const O = model.config.outputSize
  const ArrayType = arrayTypeOf(model.config.dtype)

  return operate<T, RecurrentByKeyResult>(monitor, (subscriber) => {
    const keys = new KeyStore<KeyState>({
      maxKeys,
      idleMs,
      create: () => ({ state: model.initialState(), inBatch: false }),
      onEvict: onEvict && ((key) => onEvict(key)),
    })
    // The batch being collected: row i of xs is its i-th event's x.
    const xs = new ArrayType(maxSize * I)
    const xRows = Array.from({ length: maxSize }, (_, i) => xs.subarray(i * I, (i + 1) * I))
    const out = new ArrayType(maxSize * O)
    const batchKeys: string[] = []
    const batchEntries: KeyState[] = []
    const batchStates: RecurrentState[] = []
    let count = 0
    let timer: Subscription | null = null
    // Results wait here until emitted, so that a batch stepped while another is being emitted
    // (an event fed back synchronously from downstream) still comes out in arrival order.
    const ready: RecurrentByKeyResult[] = []
    let emitting = false

    const countKeys = () => {
      if (!monitor) return
      monitor.keys = keys.size
      monitor.evicted = keys.evicted
    }
    const emit = () => {
      if (emitting) return
      emitting = true
      try {
        for (let i = 0; i < ready.length && !subscriber.closed; i++) {
          monitor?.event()
          subscriber.next(ready[i]!)
        }
      } finally {
        ready.length = 0
        emitting = false
      }
    }
    /** Steps the batch collected so far and queues its results (emit() sends them). */
    const flush = () => {
      if (timer) {
        timer.unsubscribe()
        timer = null
      }
      const n = count
      if (n === 0) return
      count = 0
      for (let i = 0; i < n; i++) batchEntries[i]!.inBatch = false
      if (n === 1) {
        ready.push({ key: batchKeys[0]!, y: model.stepValidated(xRows[0]!, batchStates[0]!).slice() })
        return
      }
      // Every x was checked as it arrived and a key's state comes at most once.
      model.stepBatchValidated(xs, batchStates, out, n)
      for (let i = 0; i < n; i++) ready.push({ key: batchKeys[i]!, y: out.slice(i * O, (i + 1) * O) })
    }
    const flushAndEmit = () => {
      try {
        flush()
      } catch (error) {
        subscriber.error(error)
        return
      }
      emit()
    }
    const onTimer = () => {
      timer = null
      flushAndEmit()
    }

    const every = options.evictEveryMs ?? (Number.isFinite(idleMs) ? idleMs / 2 : 0)
    const sweep =
      every > 0
        ? clock.schedule(function (this: SchedulerAction<undefined>) {
            keys.evictIdle(clock.now())
            countKeys()
            this.schedule(undefined, every)
          }, every)
        : undefined
    const resets = reset$?.subscribe({
      next: (key) => {
        const entry = keys.get(key)
        if (!entry) return
        // Its waiting event was before the reset: step it first.
        if (entry.inBatch) flushAndEmit()
        entry.state.reset()
      },
      error: (e) => subscriber.error(e),
    })
    return {
      next(raw, context) {
        if (raw === null || (typeof raw !== 'object' && !options.key)) {
          throw new RxrnnError('bad_input', 'Each event must be an object { key, x }')
        }
        const key = keyOf(raw)
        const x = xOf(raw)
        if (typeof key === 'string') context.key = key
        if (typeof key !== 'string' || key === '') {
          throw new RxrnnError('missing_key', 'The event has no key: give each event a non-empty string key')
        }
        // Checked and copied before anything changes: a refused event creates no key.
        const slot = batched ? count : 0
        copyFiniteVector(xRows[slot]!, x, 'x', 'bad_input', 'inputSize')
        const entry = keys.touch(key, clock.now())
        if (batched && entry.inBatch) {
          // The key's previous event is waiting: step that batch first, then x moves to row 0.
          flush()
          xRows[0]!.set(xRows[slot]!)
        }
        const i = count++
        batchKeys[i] = key
        batchEntries[i] = entry
        batchStates[i] = entry.state
        entry.inBatch = true
        if (count === maxSize) flush()
        else if (count === 1) timer = timers.schedule(onTimer, maxDelayMs)
        countKeys()
        emit()
      },
      end: flushAndEmit,
      teardown: () => {
        resets?.unsubscribe()
        sweep?.unsubscribe()
        timer?.unsubscribe()
        timer = null
      },
    }
  })
}
