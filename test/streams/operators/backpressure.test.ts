/**
 * RxJS has no backpressure: a source pushes and every operator runs synchronously inside its
 * `next`. When a feed is faster than the model, the caller chooses what to give up: these tests
 * document the recipes, and what the learning operators do when nothing is given up.
 */
import { auditTime, bufferCount, concatMap, from, map, mergeMap, Subject, sampleTime, take } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { OnlineTrainer } from '../../../src/index.js'
import type { KeyedEvent, LearnEvent } from '../../../streams/index.js'
import { learn, learnByKey, recurrent } from '../../../streams/index.js'
import {
  drain,
  frozen,
  learning,
  marbles,
  recordingMonitor,
  rows,
  stepLoop,
  tinyModel,
} from '../../helpers/streams.js'

const model = tinyModel(13)
const xs = rows(51, 9, 2)
const named = Object.fromEntries('abcdefghi'.split('').map((c, i) => [c, xs[i]!]))
const asArray = map((y: ArrayLike<number>) => Array.from(y))

describe('throttling recipes (TestScheduler)', () => {
  it('sampleTime keeps the latest event per interval; the RNN then sees only the sampled sequence', () => {
    const { b, d, f, h } = named
    const sampled = stepLoop(model, [b!, d!, f!, h!])
    // The same events inside the full sequence would be predicted differently: skipping events
    // changes the sequence the RNN sees, and so its state.
    const full = stepLoop(model, xs)
    expect(sampled[1]).not.toEqual(full[3])
    marbles().run(({ hot, expectObservable }) => {
      const x$ = hot('-a-b-c-d-e-f-g-h-i|', named)
      // Ticks at 4, 8, 12, 16; i comes after the last tick and is dropped at completion.
      expectObservable(x$.pipe(sampleTime(4), recurrent(model), asArray)).toBe('----B---D---F---H-|', {
        B: sampled[0],
        D: sampled[1],
        F: sampled[2],
        H: sampled[3],
      })
    })
  })

  it('auditTime emits the latest event at the end of each window a new event opens', () => {
    const { c, f, i } = named
    const audited = stepLoop(model, [c!, f!, i!])
    marbles().run(({ hot, expectObservable }) => {
      const x$ = hot('-a-b-c-d-e-f-g-h-i---|', named)
      // a (1) opens a window to 6: c; d (7) to 12: f; g (13) to 18: i.
      expectObservable(x$.pipe(auditTime(5), recurrent(model), asArray)).toBe('------C-----F-----I--|', {
        C: audited[0],
        F: audited[1],
        I: audited[2],
      })
    })
  })

  it('bufferCount micro-batches, flattened in order (concatMap or mergeMap over from()), change nothing but timing', () => {
    const targets = rows(52, 5, 1)
    const events: LearnEvent[] = xs.slice(0, 5).map((x, t) => ({ x, target: targets[t]! }))
    const reference = new OnlineTrainer(tinyModel(13), learning(2))
    const expected = events.map((e) => Array.from(reference.observe(e.x, e.target).prediction))
    const flatteners = [
      concatMap((batch: LearnEvent[]) => from(batch)),
      mergeMap((batch: LearnEvent[]) => from(batch)),
    ]
    for (const flatten of flatteners) {
      marbles().run(({ cold, expectObservable }) => {
        const e$ = cold('-a-b-c-d-e|', Object.fromEntries(events.map((e, t) => ['abcde'[t]!, e])))
        const out$ = e$.pipe(
          bufferCount(3),
          flatten,
          learn(tinyModel(13), learning(2)),
          map((r) => Array.from(r.prediction)),
        )
        // Each batch is processed when it closes: the first at c (5), the rest at completion.
        expectObservable(out$).toBe('-----(abc)(de|)', {
          a: expected[0],
          b: expected[1],
          c: expected[2],
          d: expected[3],
          e: expected[4],
        })
      })
    }
  })

  it('pitfall: a recurrent operator inside the batch mapping restarts from a zero state every batch', () => {
    const perBatch = [...stepLoop(model, xs.slice(0, 3)), ...stepLoop(model, xs.slice(3, 5))]
    const continuous = stepLoop(model, xs.slice(0, 5))
    const out = drain(
      from(xs.slice(0, 5)).pipe(
        bufferCount(3),
        concatMap((batch) => from(batch).pipe(recurrent(model))),
        asArray,
      ),
    )
    expect(out.values).toEqual(perBatch)
    expect(out.values[3]).not.toEqual(continuous[3])
  })
})

describe('a synchronous burst, with no throttling', () => {
  const n = 10_000
  const burstX = Array.from({ length: n }, (_, t) => [Math.sin(t / 7), Math.cos(t / 11)])
  const burst: LearnEvent[] = burstX.map((x, t) => ({ x, target: [Math.sin((t + 1) / 7)] }))

  it('learn processes all 10 000 events in order: nothing dropped, every prediction emitted', () => {
    const { monitor } = recordingMonitor()
    const out = drain(
      from(burst).pipe(learn(tinyModel(13), learning(8, { diagnosticsEvery: 0 }), { monitor })),
    )
    expect(out.completed).toBe(true)
    expect(out.values).toHaveLength(n)
    expect(monitor.events).toBe(n)
    expect(monitor.updates).toBe(n / 8)
    expect(monitor.rejected).toBe(0)
    const reference = new OnlineTrainer(tinyModel(13), learning(8, { diagnosticsEvery: 0 }))
    const expected = burst.map((e) => reference.observe(e.x, e.target))
    for (let t = 0; t < n; t++) expect(out.values[t]!.prediction).toEqual(expected[t]!.prediction)
    expect(out.values.filter((r) => r.update).map((r) => r.update!.step)).toEqual(
      Array.from({ length: n / 8 }, (_, i) => 8 * (i + 1)),
    )
  })

  it('learnByKey processes a 10 000-event burst over 10 keys in order', () => {
    const { monitor } = recordingMonitor()
    const events: KeyedEvent[] = burst.map((e, t) => ({ key: `s${t % 10}`, x: e.x, target: e.target! }))
    const out = drain(from(events).pipe(learnByKey(model, frozen(4), { monitor })))
    expect(out.values).toHaveLength(n)
    expect(out.values.map((r) => r.key)).toEqual(events.map((e) => e.key))
    expect(monitor.events).toBe(n)
    expect(monitor.keys).toBe(10)
    expect(monitor.updates).toBe(n / 4)
    // Spot-check one key against its own loop (lr 0).
    const s3 = out.values.filter((r) => r.key === 's3').map((r) => Array.from(r.prediction))
    expect(s3).toEqual(
      stepLoop(
        model,
        events.filter((e) => e.key === 's3').map((e) => e.x),
      ),
    )
  })

  it('there is no queue: each next() on a Subject runs the model before it returns', () => {
    const x$ = new Subject<number[]>()
    const out: number[][] = []
    x$.pipe(recurrent(model), asArray).subscribe((y) => out.push(y))
    for (let t = 0; t < n; t++) {
      x$.next(burstX[t]!)
      if (out.length !== t + 1) throw new Error(`event ${t} was not processed synchronously`)
    }
    x$.complete()
    expect(out).toHaveLength(n)
    expect(out[n - 1]).toEqual(stepLoop(model, burstX)[n - 1])
  })

  it('take(n) downstream of a synchronous burst stops the learning at n events', () => {
    const { monitor } = recordingMonitor()
    const learner = tinyModel(13)
    const out = drain(from(burst).pipe(learn(learner, learning(8), { monitor }), take(20)))
    expect(out.values).toHaveLength(20)
    expect(out.completed).toBe(true)
    expect(monitor.events).toBe(20)
    expect(monitor.updates).toBe(2)
    const reference = new OnlineTrainer(tinyModel(13), learning(8))
    for (const e of burst.slice(0, 20)) reference.observe(e.x, e.target)
    expect(Array.from(learner.params.values)).toEqual(Array.from(reference.model.params.values))
  })
})
