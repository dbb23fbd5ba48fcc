import { from, map, Subject } from 'rxjs'
import { describe, expect, it, vi } from 'vitest'
import type { Model } from '../../../src/index.js'
import { createModel } from '../../../src/index.js'
import { wasmSimdSupported } from '../../../src/wasm/kernels.js'
import type { KeyedEvent, RecurrentByKeyResult } from '../../../streams/index.js'
import { recurrentByKey } from '../../../streams/index.js'
import { drain, marbles, recordingMonitor, rows, stepLoop, tinyModel } from '../../helpers/streams.js'

const xs = rows(41, 40, 2)
const asPair = map((r: RecurrentByKeyResult) => ({ key: r.key, y: Array.from(r.y) }))

/** Each event's expected output: its key's own model.step loop over that key's inputs so far. */
function expected(model: Model, events: readonly KeyedEvent[]): { key: string; y: number[] }[] {
  const seen = new Map<string, ArrayLike<number>[]>()
  for (const e of events) seen.set(e.key, [...(seen.get(e.key) ?? []), e.x])
  const loops = new Map([...seen].map(([k, inputs]) => [k, stepLoop(model, inputs)]))
  const next = new Map<string, number>()
  return events.map((e) => {
    const i = next.get(e.key) ?? 0
    next.set(e.key, i + 1)
    return { key: e.key, y: loops.get(e.key)![i]! }
  })
}

/**
 * Records how many events each step the operator makes takes: stepBatchValidated's batch size, or
 * 1 for a lone stepValidated (not counting those inside it or inside model.step, which the
 * references use). The real methods run.
 */
function batchSizes(model: Model): number[] {
  const sizes: number[] = []
  const stepBatch = model.stepBatchValidated.bind(model)
  const stepOne = model.stepValidated.bind(model)
  const step = model.step.bind(model)
  let inside = false
  const within = <R>(body: () => R): R => {
    inside = true
    try {
      return body()
    } finally {
      inside = false
    }
  }
  vi.spyOn(model, 'stepBatchValidated').mockImplementation((x, states, out, batch) => {
    sizes.push(batch)
    within(() => stepBatch(x, states, out, batch))
  })
  vi.spyOn(model, 'step').mockImplementation((x, state) => within(() => step(x, state)))
  vi.spyOn(model, 'stepValidated').mockImplementation((x, state) => {
    if (!inside) sizes.push(1)
    return stepOne(x, state)
  })
  return sizes
}

const keys = [
  'a',
  'b',
  'a',
  'c',
  'b',
  'a',
  'a',
  'c',
  'b',
  'c',
  'd',
  'a',
  'e',
  'f',
  'b',
  'g',
  'h',
  'i',
  'j',
  'c',
]
const events: KeyedEvent[] = keys.map((key, t) => ({ key, x: xs[t]! }))

describe('recurrentByKey: per-key state', () => {
  it('unbatched: each key predicts as its own model.step loop while keys are interleaved', () => {
    const model = tinyModel(2)
    const out = drain(from(events).pipe(recurrentByKey(model), asPair))
    expect(out.completed).toBe(true)
    expect(out.values).toEqual(expected(model, events))
  })

  it('batched (a synchronous source): the same outputs in arrival order; no batch holds a key twice', () => {
    const model = tinyModel(2)
    const sizes = batchSizes(model)
    const out = drain(from(events).pipe(recurrentByKey(model, { batch: { maxSize: 8 } }), asPair))
    // float64 JS kernels: stepBatch is bit for bit model.step.
    expect(out.values).toEqual(expected(model, events))
    // a b | a c b | a | a c b | c d a e f b g h | i j c: a batch is stepped when the next event's
    // key is already in it, at maxSize 8, and (the last one) at completion.
    expect(sizes).toEqual([2, 3, 1, 3, 8, 3])
  })

  it.skipIf(!wasmSimdSupported())(
    'batched on WebAssembly: 600 events of 37 keys in batches up to 32 agree with per-key steps to float32 rounding',
    () => {
      const model = createModel(
        { cell: 'lstm', inputSize: 2, hiddenSize: 16, outputSize: 2, numLayers: 2, seed: 5 },
        { backend: 'wasm' },
      )
      const many: KeyedEvent[] = Array.from({ length: 600 }, (_, t) => ({
        key: `k${(t * 7) % 37}`,
        x: xs[t % 40]!,
      }))
      const sizes = batchSizes(model)
      const out = drain(from(many).pipe(recurrentByKey(model, { batch: { maxSize: 32 } }), asPair))
      const want = expected(model, many)
      expect(out.values.map((r) => r.key)).toEqual(many.map((e) => e.key))
      let worst = 0
      out.values.forEach((r, t) => {
        r.y.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - want[t]!.y[i]!))
        })
      })
      expect(worst).toBeLessThan(1e-5)
      expect(sizes.filter((n) => n === 32).length).toBeGreaterThan(15)
    },
  )
})

describe('recurrentByKey: when a batch is stepped (marbles)', () => {
  it('maxDelayMs 0: at the end of each synchronous burst (here: each frame)', () => {
    const model = tinyModel(3)
    const sizes = batchSizes(model)
    const e = { a: xs[0]!, b: xs[1]!, c: xs[2]!, d: xs[3]!, f: xs[4]! }
    const [A0, A1] = stepLoop(model, [e.a, e.d])
    const [B0] = stepLoop(model, [e.b])
    const [C0] = stepLoop(model, [e.c])
    const [F0] = stepLoop(model, [e.f])
    const scheduler = marbles()
    scheduler.run(({ cold, expectObservable }) => {
      const e$ = cold('(abc)--(df)|', {
        a: { key: 'a', x: e.a },
        b: { key: 'b', x: e.b },
        c: { key: 'c', x: e.c },
        d: { key: 'a', x: e.d },
        f: { key: 'f', x: e.f },
      })
      expectObservable(e$.pipe(recurrentByKey(model, { batch: { maxSize: 10 }, scheduler }), asPair)).toBe(
        '(abc)--(df)|',
        {
          a: { key: 'a', y: A0 },
          b: { key: 'b', y: B0 },
          c: { key: 'c', y: C0 },
          d: { key: 'a', y: A1 },
          f: { key: 'f', y: F0 },
        },
      )
    })
    expect(sizes).toEqual([3, 2])
  })

  it('maxDelayMs: a batch waits that long after its first event, unless maxSize fills it first', () => {
    const model = tinyModel(3)
    const sizes = batchSizes(model)
    const [A0] = stepLoop(model, [xs[0]!])
    const [B0] = stepLoop(model, [xs[1]!])
    const [C0] = stepLoop(model, [xs[2]!])
    const [F0] = stepLoop(model, [xs[4]!])
    const scheduler = marbles()
    scheduler.run(({ cold, expectObservable }) => {
      // a at 0, b at 2: maxSize 2 steps them at 2. c at 4: alone until 4 + 5 = 9. f at 12: until 17.
      const e$ = cold('a-b-c-------f-----', {
        a: { key: 'a', x: xs[0]! },
        b: { key: 'b', x: xs[1]! },
        c: { key: 'c', x: xs[2]! },
        f: { key: 'f', x: xs[4]! },
      })
      const options = { batch: { maxSize: 2, maxDelayMs: 5 }, scheduler }
      expectObservable(e$.pipe(recurrentByKey(model, options), asPair)).toBe('--(ab)---c-------f', {
        a: { key: 'a', y: A0 },
        b: { key: 'b', y: B0 },
        c: { key: 'c', y: C0 },
        f: { key: 'f', y: F0 },
      })
    })
    expect(sizes).toEqual([2, 1, 1])
  })

  it('an event of a key already waiting steps the batch first: order per key is kept', () => {
    const model = tinyModel(3)
    const [A0, A1] = stepLoop(model, [xs[0]!, xs[2]!])
    const [B0] = stepLoop(model, [xs[1]!])
    const scheduler = marbles()
    scheduler.run(({ cold, expectObservable }) => {
      const e$ = cold('a-b-c------', {
        a: { key: 'a', x: xs[0]! },
        b: { key: 'b', x: xs[1]! },
        c: { key: 'a', x: xs[2]! },
      })
      const options = { batch: { maxSize: 10, maxDelayMs: 5 }, scheduler }
      // a waits from 0; at 4 the second a steps [a, b]; it waits itself until 9.
      expectObservable(e$.pipe(recurrentByKey(model, options), asPair)).toBe('----(ab)-c', {
        a: { key: 'a', y: A0 },
        b: { key: 'b', y: B0 },
        c: { key: 'a', y: A1 },
      })
    })
  })

  it('completion steps what waits, then completes; an error from the source steps it, then errors', () => {
    const model = tinyModel(3)
    const [A0] = stepLoop(model, [xs[0]!])
    const [B0] = stepLoop(model, [xs[1]!])
    const scheduler = marbles()
    scheduler.run(({ cold, expectObservable }) => {
      const values = { a: { key: 'a', x: xs[0]! }, b: { key: 'b', x: xs[1]! } }
      const results = { a: { key: 'a', y: A0 }, b: { key: 'b', y: B0 } }
      const options = { batch: { maxSize: 10, maxDelayMs: 100 }, scheduler }
      expectObservable(cold('a-b|', values).pipe(recurrentByKey(model, options), asPair)).toBe(
        '---(ab|)',
        results,
      )
      expectObservable(cold('a-b#', values, 'boom').pipe(recurrentByKey(model, options), asPair)).toBe(
        '---(ab#)',
        results,
        'boom',
      )
    })
  })

  it('teardown: unsubscribing drops the waiting batch and its timer, and unsubscribes the source and reset$', () => {
    const model = tinyModel(3)
    const sizes = batchSizes(model)
    const [A0] = stepLoop(model, [xs[0]!])
    const scheduler = marbles()
    scheduler.run(({ cold, hot, expectObservable, expectSubscriptions, flush }) => {
      const e$ = cold('a--b-------', { a: { key: 'a', x: xs[0]! }, b: { key: 'b', x: xs[1]! } })
      const reset$ = hot('-------')
      const options = { batch: { maxSize: 10, maxDelayMs: 2 }, scheduler, reset$ }
      expectObservable(e$.pipe(recurrentByKey(model, options), asPair), '^----!').toBe('--a--', {
        a: { key: 'a', y: A0 },
      })
      expectSubscriptions(e$.subscriptions).toBe('^----!')
      expectSubscriptions(reset$.subscriptions).toBe('^----!')
      flush()
      // b waited from 3 to 5 (its batch was due at 5): never stepped, no timer left behind.
      expect(scheduler.actions).toHaveLength(0)
    })
    expect(sizes).toEqual([1])
  })
})

describe('recurrentByKey: keys', () => {
  it('reset$ zeroes one key; its waiting event is stepped first', () => {
    const model = tinyModel(2)
    const [A0] = stepLoop(model, [xs[0]!])
    const [A1] = stepLoop(model, [xs[2]!])
    const [B0, B1] = stepLoop(model, [xs[1]!, xs[3]!])
    const scheduler = marbles()
    scheduler.run(({ cold, hot, expectObservable }) => {
      const e$ = cold('a-b-c-d---', {
        a: { key: 'a', x: xs[0]! },
        b: { key: 'b', x: xs[1]! },
        c: { key: 'a', x: xs[2]! },
        d: { key: 'b', x: xs[3]! },
      })
      // a is reset at 1 while its first event waits (batches wait 5 frames): that event is
      // stepped at 1, then the state zeroed. b (2) and the second a (4) wait; the second b (6)
      // steps them and waits itself until 11.
      const reset$ = hot('-a--z', { a: 'a', z: 'never-seen' })
      const options = { batch: { maxSize: 10, maxDelayMs: 5 }, scheduler, reset$ }
      expectObservable(e$.pipe(recurrentByKey(model, options), asPair)).toBe('-a----(bc)-d', {
        a: { key: 'a', y: A0 },
        b: { key: 'b', y: B0 },
        c: { key: 'a', y: A1 },
        d: { key: 'b', y: B1 },
      })
    })
  })

  it('idleMs and maxKeys evict keys (least recently seen first); an evicted key comes back from zero', () => {
    const model = tinyModel(2)
    const { monitor } = recordingMonitor()
    const evictions: string[] = []
    const [A0] = stepLoop(model, [xs[0]!])
    const [B0, B1] = stepLoop(model, [xs[1]!, xs[2]!])
    const [A1] = stepLoop(model, [xs[3]!])
    const [C0] = stepLoop(model, [xs[4]!])
    const scheduler = marbles()
    scheduler.run(({ cold, expectObservable }) => {
      // a 0, b 40, b 120, a 160 (a was evicted at 100, idle 100), c 170 (maxKeys 2: b goes).
      const marble = 'a 39ms b 79ms c 39ms d 9ms f 19ms |'
      const e$ = cold(marble, {
        a: { key: 'a', x: xs[0]! },
        b: { key: 'b', x: xs[1]! },
        c: { key: 'b', x: xs[2]! },
        d: { key: 'a', x: xs[3]! },
        f: { key: 'c', x: xs[4]! },
      })
      const options = {
        idleMs: 100,
        maxKeys: 2,
        scheduler,
        monitor,
        batch: { maxSize: 4 },
        onEvict: (key: string) => evictions.push(`${key}@${scheduler.now()}`),
      }
      expectObservable(
        e$.pipe(
          recurrentByKey(model, options),
          map((r) => Array.from(r.y)),
        ),
      ).toBe(marble, {
        a: A0,
        b: B0,
        c: B1,
        d: A1,
        f: C0,
      })
    })
    expect(evictions).toEqual(['a@100', 'b@170'])
    expect(monitor.keys).toBe(2)
    expect(monitor.evicted).toBe(2)
    expect(monitor.events).toBe(5)
  })

  it('malformed events are reported and skipped, creating no key; custom key and x selectors', () => {
    const model = tinyModel(2)
    const { monitor, rejected } = recordingMonitor()
    type Tick = { sym?: unknown; v: unknown }
    const ticks: Tick[] = [
      { sym: 'a', v: xs[0] },
      { sym: '', v: xs[1] },
      { sym: 'b', v: [1] },
      { sym: 'c', v: [Number.NaN, 1] },
      { sym: 'a', v: xs[1] },
    ]
    const out = drain(
      from(ticks).pipe(
        recurrentByKey<Tick>(model, {
          key: (t) => t.sym as string,
          x: (t) => t.v as number[],
          monitor,
          batch: { maxSize: 3 },
        }),
        asPair,
      ),
    )
    const [A0, A1] = stepLoop(model, [xs[0]!, xs[1]!])
    expect(out.values).toEqual([
      { key: 'a', y: A0 },
      { key: 'a', y: A1 },
    ])
    expect(rejected.map((r) => `${r.code} ${r.key ?? '-'}`)).toEqual([
      'missing_key ',
      'bad_input b',
      'bad_input c',
    ])
    expect(monitor.keys).toBe(1)
    const plain = drain(
      from([null, 3, { key: 'z', x: xs[0]! }] as unknown[]).pipe(recurrentByKey(model, { monitor })),
    )
    expect(plain.values).toHaveLength(1)
    expect(rejected.slice(3).map((r) => r.code)).toEqual(['bad_input', 'bad_input'])
  })

  it('bad options are refused at once', () => {
    const model = tinyModel(2)
    expect(() => recurrentByKey(model, { batch: { maxSize: 0 } })).toThrow(/batch.maxSize/)
    expect(() => recurrentByKey(model, { batch: { maxSize: 4, maxDelayMs: -1 } })).toThrow(/maxDelayMs/)
    expect(() => recurrentByKey(model, { maxKeys: 0, idleMs: 0 })).toThrow(/maxKeys[\s\S]*idleMs/)
  })
})

describe('recurrentByKey: real schedulers', () => {
  it('maxDelayMs 0 by default steps a synchronous burst from a Subject in one batch, after a microtask', async () => {
    const model = tinyModel(4)
    const sizes = batchSizes(model)
    const source = new Subject<KeyedEvent>()
    const got: string[] = []
    const subscription = source
      .pipe(recurrentByKey(model, { batch: { maxSize: 64 } }))
      .subscribe((r) => got.push(r.key))
    for (const e of events.slice(0, 2)) source.next(e)
    source.next({ key: 'z', x: xs[9]! })
    expect(got).toEqual([])
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(got).toEqual(['a', 'b', 'z'])
    expect(sizes).toEqual([3])
    subscription.unsubscribe()
  })

  it('an event fed back synchronously from downstream keeps arrival order', () => {
    const model = tinyModel(4)
    const source = new Subject<KeyedEvent>()
    const got: string[] = []
    source.pipe(recurrentByKey(model, { batch: { maxSize: 2 } })).subscribe((r) => {
      got.push(r.key)
      // Each result of a key 'a…' sends one more event, of key 'x…', while the batch is emitted.
      if (r.key.startsWith('a')) source.next({ key: `x${r.key}`, x: xs[5]! })
    })
    source.next({ key: 'a1', x: xs[0]! })
    source.next({ key: 'a2', x: xs[1]! }) // fills the batch: a1, a2 emitted; xa1, xa2 fill the next
    source.complete()
    expect(got).toEqual(['a1', 'a2', 'xa1', 'xa2'])
  })
})
