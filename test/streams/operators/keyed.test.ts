import { from, map } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createModel, KeyedTrainer, OnlineTrainer } from '../../../src/index.js'
import type { KeyedEvent, KeyedResult, KeyedUpdate, MetricsSnapshot } from '../../../streams/index.js'
import { learnByKey } from '../../../streams/index.js'
import {
  drain,
  frozen,
  learning,
  marbles,
  recordingMonitor,
  rows,
  sameModel,
  squaredError,
  stepLoop,
  tinyModel,
  withUnhandledErrorSpy,
} from '../../helpers/streams.js'

const xs = rows(31, 12, 2)
const ys = rows(32, 12, 1)
const asPair = map((r: KeyedResult) => ({ key: r.key, y: Array.from(r.prediction) }))

describe('learnByKey: per-key state', () => {
  it('with lr 0, each key predicts exactly as its own model.step loop while keys are interleaved', () => {
    const model = tinyModel(2)
    const keys = ['a', 'b', 'a', 'c', 'b', 'a', 'a', 'c', 'b', 'c']
    const events: KeyedEvent[] = keys.map((key, t) => ({ key, x: xs[t]!, target: ys[t]! }))
    const out = drain(from(events).pipe(learnByKey(model, frozen(2))))
    expect(out.values.map((r) => r.key)).toEqual(keys)
    for (const k of ['a', 'b', 'c']) {
      const own = events.filter((e) => e.key === k).map((e) => e.x)
      expect(out.values.filter((r) => r.key === k).map((r) => Array.from(r.prediction))).toEqual(
        stepLoop(model, own),
      )
    }
    // Updates run per key, on every k1-th event of that key: a at t 2 and 6, b at 4, c at 7.
    expect(out.values.flatMap((r, t) => (r.update ? [`${r.key}@${t}`] : []))).toEqual([
      'a@2',
      'b@4',
      'a@6',
      'c@7',
    ])
  })

  it('marbles: results at the frames of the events, completing with the source', () => {
    const model = tinyModel(2)
    const [A0, A1] = stepLoop(model, [xs[0]!, xs[2]!])
    const [B0] = stepLoop(model, [xs[1]!])
    marbles().run(({ cold, expectObservable, expectSubscriptions }) => {
      const e$ = cold('-a--b-c|', {
        a: { key: 'a', x: xs[0]! },
        b: { key: 'b', x: xs[1]! },
        c: { key: 'a', x: xs[2]! },
      })
      expectObservable(e$.pipe(learnByKey(model, frozen(2)), asPair)).toBe('-a--b-c|', {
        a: { key: 'a', y: A0 },
        b: { key: 'b', y: B0 },
        c: { key: 'a', y: A1 },
      })
      expectSubscriptions(e$.subscriptions).toBe('^------!')
    })
  })

  it('shares learning: an update from key a changes the predictions for key b', () => {
    const model = tinyModel(2)
    const untrained = stepLoop(sameModel(model), [xs[2]!])[0]
    // The reference: the same updates from a direct trainer on an identical model.
    const twin = sameModel(model)
    const reference = new OnlineTrainer(twin, learning(2))
    const refUpdate = [reference.observe(xs[0]!, ys[0]!), reference.observe(xs[1]!, ys[1]!)][1]!.update
    const events: KeyedEvent[] = [
      { key: 'a', x: xs[0]!, target: ys[0]! },
      { key: 'a', x: xs[1]!, target: ys[1]! },
      { key: 'b', x: xs[2]! },
    ]
    const out = drain(from(events).pipe(learnByKey(model, learning(2))))
    expect(out.values[1]!.update?.loss).toBeCloseTo(refUpdate!.loss, 14)
    expect(out.values[1]!.update?.gradNorm).toBeCloseTo(refUpdate!.gradNorm, 12)
    const b = Array.from(out.values[2]!.prediction)
    expect(b).not.toEqual(untrained)
    const expected = stepLoop(twin, [xs[2]!])[0]!
    for (const [i, v] of b.entries()) expect(v).toBeCloseTo(expected[i]!, 12)
  })

  it('reset$ for one key zeroes only that key; teardown unsubscribes source and reset$', () => {
    const model = tinyModel(2)
    const [A0] = stepLoop(model, [xs[0]!])
    const [A1] = stepLoop(model, [xs[2]!])
    const [B0, B1] = stepLoop(model, [xs[1]!, xs[3]!])
    marbles().run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const e$ = cold('-a-b-c-d-e', {
        a: { key: 'a', x: xs[0]! },
        b: { key: 'b', x: xs[1]! },
        c: { key: 'a', x: xs[2]! },
        d: { key: 'b', x: xs[3]! },
        e: { key: 'b', x: xs[4]! },
      })
      const reset$ = hot('----a-z--', { a: 'a', z: 'never-seen' })
      expectObservable(e$.pipe(learnByKey(model, frozen(2), { reset$ }), asPair), '^--------!').toBe(
        '-a-b-c-d-',
        { a: { key: 'a', y: A0 }, b: { key: 'b', y: B0 }, c: { key: 'a', y: A1 }, d: { key: 'b', y: B1 } },
      )
      expectSubscriptions(e$.subscriptions).toBe('^--------!')
      expectSubscriptions(reset$.subscriptions).toBe('^--------!')
    })
  })
})

describe('learnByKey: eviction', () => {
  it('idleMs on a TestScheduler: a key idle for idleMs is evicted at the next sweep and comes back from zero', () => {
    const model = tinyModel(2)
    const { monitor } = recordingMonitor()
    const evictions: string[] = []
    const counts: string[] = []
    const probes: number[] = []
    const [A0] = stepLoop(model, [xs[0]!])
    const [B0, B1] = stepLoop(model, [xs[1]!, xs[2]!])
    const [A1] = stepLoop(model, [xs[3]!])
    expect(A1).not.toEqual(stepLoop(model, [xs[0]!, xs[3]!])[1])
    const scheduler = marbles()
    scheduler.run(({ cold, expectObservable }) => {
      // a 0, b 40, b 120, a 160, complete 190; sweeps every idleMs / 2 = 50 frames.
      const marble = 'a 39ms b 79ms c 39ms d 29ms |'
      const e$ = cold(marble, {
        a: { key: 'a', x: xs[0]! },
        b: { key: 'b', x: xs[1]! },
        c: { key: 'b', x: xs[2]! },
        d: { key: 'a', x: xs[3]! },
      })
      const out$ = e$.pipe(
        learnByKey(model, frozen(2), {
          idleMs: 100,
          scheduler,
          monitor,
          onEvict: (key) => evictions.push(`${key}@${scheduler.now()}`),
        }),
        map((r) => {
          counts.push(`${r.key}: keys ${monitor.keys}, evicted ${monitor.evicted}`)
          return Array.from(r.prediction)
        }),
      )
      scheduler.schedule(() => probes.push(monitor.keys ?? -1), 99)
      scheduler.schedule(() => probes.push(monitor.keys ?? -1), 101)
      expectObservable(out$).toBe(marble, { a: A0, b: B0, c: B1, d: A1 })
    })
    // At 50 a was idle 50 frames; at 100, 100 frames: evicted. b (seen at 40, then 120) never is.
    expect(evictions).toEqual(['a@100'])
    expect(probes).toEqual([2, 1])
    expect(counts).toEqual([
      'a: keys 1, evicted 0',
      'b: keys 2, evicted 0',
      'b: keys 1, evicted 1',
      'a: keys 2, evicted 1',
    ])
  })

  it('maxKeys evicts the least recently seen key; it comes back from a zero state', () => {
    const model = tinyModel(2)
    const { monitor } = recordingMonitor()
    const evictions: string[] = []
    const keys = ['a', 'b', 'a', 'c', 'b', 'a']
    const events: KeyedEvent[] = keys.map((key, t) => ({ key, x: xs[t]! }))
    const out = drain(
      from(events).pipe(
        learnByKey(model, frozen(2), { maxKeys: 2, monitor, onEvict: (k) => evictions.push(k) }),
      ),
    )
    // c pushes out b (a was seen after b); b pushes out a; a pushes out c.
    expect(evictions).toEqual(['b', 'a', 'c'])
    expect(monitor.keys).toBe(2)
    expect(monitor.evicted).toBe(3)
    const y = out.values.map((r) => Array.from(r.prediction))
    expect(y[2]).toEqual(stepLoop(model, [xs[0]!, xs[2]!])[1])
    expect(y[4]).toEqual(stepLoop(model, [xs[4]!])[0])
    expect(y[5]).toEqual(stepLoop(model, [xs[5]!])[0])
  })

  it('memory stays bounded: 20 000 keys with maxKeys 5 000 keep 5 000', () => {
    const model = tinyModel(2)
    const { monitor } = recordingMonitor()
    let evicted = 0
    const events = Array.from({ length: 20_000 }, (_, i) => ({ key: `k${i}`, x: xs[i % 12]! }))
    const out = drain(
      from(events).pipe(learnByKey(model, frozen(4), { maxKeys: 5_000, monitor, onEvict: () => evicted++ })),
    )
    expect(out.values).toHaveLength(20_000)
    expect(monitor.keys).toBe(5_000)
    expect(monitor.evicted).toBe(15_000)
    expect(evicted).toBe(15_000)
  })

  it('KeyedTrainer directly: 20 000 keys, maxKeys 5 000: size 5 000 and bytesPerKey as the window formula says', () => {
    const model = createModel({
      cell: 'lstm',
      inputSize: 3,
      hiddenSize: 4,
      numLayers: 2,
      outputSize: 2,
      dtype: 'float64',
      seed: 1,
    })
    const keyed = new KeyedTrainer(new OnlineTrainer(model, frozen(4, { k2: 6 })), { maxKeys: 5_000 })
    for (let i = 0; i < 20_000; i++) keyed.observe(`k${i}`, [0.1, 0.2, 0.3], [0, 1], i)
    expect(keyed.size).toBe(5_000)
    expect(keyed.evicted).toBe(15_000)
    expect([...keyed.keys()][0]).toBe('k15000')
    // (k2 + 1) slots × (inputs + targets + layers × LSTM state [h | c]) float64s.
    const expected = (6 + 1) * (3 + 2 + 2 * (2 * 4)) * 8
    expect(keyed.bytesPerKey()).toBe(expected)
    let held = 0
    for (const k of keyed.keys()) held += keyed.entry(k)!.sequence.slots[0]!.x.buffer.byteLength
    expect(held).toBe(5_000 * expected)
  })
})

describe('learnByKey: bad events and user errors', () => {
  it('skips and reports bad events without creating keys; the state of the key is untouched', () => {
    const model = tinyModel(2)
    const { monitor, rejected } = recordingMonitor()
    const events = [
      { key: 'a', x: xs[0]! },
      { x: xs[1]! },
      { key: '', x: xs[1]! },
      { key: 'b', x: [1] },
      { key: 'a', x: [0, Number.NaN] },
      { key: 'a', x: xs[1]!, target: [Number.NaN] },
      null,
      { key: 'a', x: xs[2]! },
    ] as unknown as KeyedEvent[]
    const out = drain(from(events).pipe(learnByKey(model, frozen(2), { monitor })))
    expect(out.error).toBeUndefined()
    expect(out.values.map((r) => Array.from(r.prediction))).toEqual(stepLoop(model, [xs[0]!, xs[2]!]))
    expect(rejected.map((r) => [r.code, r.key, r.message])).toEqual([
      ['missing_key', undefined, 'The event has no key: give each event a non-empty string key'],
      ['missing_key', '', 'The event has no key: give each event a non-empty string key'],
      ['bad_input', 'b', 'x has 1 values but the model takes 2 (inputSize); send exactly 2'],
      ['bad_input', 'a', 'x[1] is NaN; values must be finite (impute or drop missing data first)'],
      ['bad_target', 'a', 'target[0] is NaN; targets must be finite'],
      ['bad_input', undefined, 'Each event must be an object { key, x, target? }'],
    ])
    expect(monitor.rejected).toBe(6)
    expect(monitor.events).toBe(2)
    // b was refused before it existed: it was never created.
    expect(monitor.keys).toBe(1)
  })

  it("an exception in the user's select reaches subscriber.error (not the unhandled-error hook) and learning stops", async () => {
    const model = tinyModel(2)
    const { monitor } = recordingMonitor()
    const before = Array.from(model.params.values)
    let caught: unknown
    const seen: string[] = []
    const spy = await withUnhandledErrorSpy(() => {
      from([0, 1, 2, 3, 4, 5])
        .pipe(
          learnByKey<number>(model, learning(1), {
            monitor,
            select: (i) => {
              if (i === 2) throw new Error('cannot parse tick 2')
              return { key: `k${i % 2}`, x: xs[i]!, target: ys[i]! }
            },
          }),
        )
        .subscribe({ next: (r) => seen.push(r.key), error: (e) => (caught = e) })
    })
    expect((caught as Error).message).toBe('cannot parse tick 2')
    expect(seen).toEqual(['k0', 'k1'])
    expect(spy).not.toHaveBeenCalled()
    // k1 = 1: two events, two updates; the events after the error taught nothing.
    expect(monitor.events).toBe(2)
    expect(monitor.updates).toBe(2)
    const reference = new OnlineTrainer(sameModelFrom(before), learning(1))
    reference.observe(xs[0]!, ys[0]!)
    reference.reset()
    reference.observe(xs[1]!, ys[1]!)
    for (const [i, v] of model.params.values.entries())
      expect(v).toBeCloseTo(reference.model.params.values[i]!, 12)

    function sameModelFrom(values: number[]) {
      const m = tinyModel(2)
      m.params.values.set(values)
      return m
    }
  })

  it('updates$ tags each update with its key; metrics score each key against its own persistence', () => {
    const model = tinyModel(2)
    const { monitor } = recordingMonitor()
    const updates: KeyedUpdate[] = []
    const snapshots: MetricsSnapshot[] = []
    monitor.updates$.subscribe((u) => updates.push(u))
    monitor.metrics$.subscribe((m) => snapshots.push(m))
    const keys = ['a', 'b', 'a', 'b', 'b', 'a']
    const events: KeyedEvent[] = keys.map((key, t) => ({ key, x: xs[t]!, target: ys[t]! }))
    drain(from(events).pipe(learnByKey(model, frozen(2), { monitor })))
    expect(updates.map((u) => `${u.key}:${u.step}`)).toEqual(['a:2', 'b:2'])
    const predictions = new Map<number, number[]>()
    for (const events of [
      [0, 2, 5],
      [1, 3, 4],
    ]) {
      const ys = stepLoop(
        model,
        events.map((t) => xs[t]!),
      )
      for (const [i, t] of events.entries()) predictions.set(t, ys[i]!)
    }
    // [event, the same key's previous event]: each key's first event has no persistence forecast.
    const scored = [
      [2, 0],
      [3, 1],
      [4, 3],
      [5, 2],
    ] as const
    const rmse = (pairs: readonly (readonly [number, number])[]) => {
      let sq = 0
      let psq = 0
      for (const [t, p] of pairs) {
        sq += squaredError(predictions.get(t)!, ys[t]!)
        psq += squaredError(ys[p]!, ys[t]!)
      }
      return {
        n: pairs.length,
        rmse: Math.sqrt(sq / pairs.length),
        persistenceRmse: Math.sqrt(psq / pairs.length),
      }
    }
    // The snapshot of b's update at event 3 has scored events 2 and 3; all four are in the end.
    expect(snapshots).toHaveLength(2)
    for (const [got, want] of [
      [snapshots[1]!.regression, rmse(scored.slice(0, 2))],
      [monitor.snapshot().regression, rmse(scored)],
    ] as const) {
      expect(got?.n).toBe(want.n)
      expect(got?.rmse).toBeCloseTo(want.rmse, 12)
      expect(got?.persistenceRmse).toBeCloseTo(want.persistenceRmse, 12)
    }
  })
})
