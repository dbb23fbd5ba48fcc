import { from, map, Observable, Subject, take } from 'rxjs'
import { describe, expect, it } from 'vitest'
import type { FloatArray, UpdateReport } from '../../../src/index.js'
import { OnlineTrainer } from '../../../src/index.js'
import type { ForecastResult, LearnEvent, LearnResult, MetricsSnapshot } from '../../../streams/index.js'
import { forecast, learn, learnWithLabels, recurrent } from '../../../streams/index.js'
import {
  drain,
  frozen,
  learning,
  marbles,
  recordingMonitor,
  rows,
  squaredError,
  stepLoop,
  tinyModel,
  withUnhandledErrorSpy,
} from '../../helpers/streams.js'

const asArray = map((y: FloatArray) => Array.from(y))

describe('recurrent', () => {
  const model = tinyModel(3)
  const x = { a: [0.1, -0.2], b: [0.5, 0.3], c: [-0.7, 0.9], d: [0.2, 0.2] }

  it('maps x$ to y$ at the same frames, equal to model.step from a fresh state, and completes with the source', () => {
    const [A, B, C, D] = stepLoop(model, [x.a, x.b, x.c, x.d])
    marbles().run(({ cold, expectObservable, expectSubscriptions }) => {
      const x$ = cold('-a-b--cd|', x)
      expectObservable(x$.pipe(recurrent(model), asArray)).toBe('-A-B--CD|', { A, B, C, D })
      expectSubscriptions(x$.subscriptions).toBe('^-------!')
    })
  })

  it('propagates an error from the source and unsubscribes from it', () => {
    const [A, B] = stepLoop(model, [x.a, x.b])
    const boom = new Error('feed died')
    marbles().run(({ cold, expectObservable, expectSubscriptions }) => {
      const x$ = cold('-a-b-#', x, boom)
      expectObservable(x$.pipe(recurrent(model), asArray)).toBe('-A-B-#', { A, B }, boom)
      expectSubscriptions(x$.subscriptions).toBe('^----!')
    })
  })

  it('emits a new array each time (no reused buffer)', () => {
    // model.step's own output buffer, which every step overwrites.
    const buffer = model.step([0, 0], model.initialState())
    const out = drain(from([x.a, x.b, x.c, x.d]).pipe(recurrent(model)))
    expect(out.completed).toBe(true)
    expect(new Set(out.values).size).toBe(4)
    for (const y of out.values) expect(y).not.toBe(buffer)
    // Keeping an emission is safe: later steps did not overwrite the first one.
    expect(out.values.map((y) => Array.from(y))).toEqual(stepLoop(model, [x.a, x.b, x.c, x.d]))
  })

  it('two subscriptions to the same piped observable each run from their own fresh state', () => {
    marbles().run(({ hot, expectObservable }) => {
      const x$ = hot('-a-b-c-d-|', x)
      const y$ = x$.pipe(recurrent(model), asArray)
      const [A, B, C, D] = stepLoop(model, [x.a, x.b, x.c, x.d])
      // The late subscriber sees c first: its c is stepped from zero, not from after a, b.
      const [C2, D2] = stepLoop(model, [x.c, x.d])
      expect(C2).not.toEqual(C)
      expectObservable(y$).toBe('-A-B-C-D-|', { A, B, C, D })
      expectObservable(y$, '----^').toBe('-----E-F-|', { E: C2, F: D2 })
    })
  })

  it('reset$ zeroes the state; teardown unsubscribes the source and reset$', () => {
    const [A, B] = stepLoop(model, [x.a, x.b])
    const [C] = stepLoop(model, [x.c])
    marbles().run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const x$ = cold('-a-b--c-d-', x)
      const reset$ = hot('----r-----')
      expectObservable(x$.pipe(recurrent(model, { reset$ }), asArray), '^-------!').toBe('-A-B--C-', {
        A,
        B,
        C,
      })
      expectSubscriptions(x$.subscriptions).toBe('^-------!')
      expectSubscriptions(reset$.subscriptions).toBe('^-------!')
    })
  })

  it('an error on reset$ errors the output', () => {
    const [A] = stepLoop(model, [x.a])
    const boom = new Error('reset feed died')
    marbles().run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const x$ = cold('-a---b-|', x)
      const reset$ = hot('---#', undefined, boom)
      expectObservable(x$.pipe(recurrent(model, { reset$ }), asArray)).toBe('-A-#', { A }, boom)
      expectSubscriptions(x$.subscriptions).toBe('^--!')
    })
  })

  it('skips and reports a malformed x, leaving the state untouched', () => {
    const { monitor, rejected } = recordingMonitor()
    const bad = [[1, 2, 3], [0, Number.NaN], 'ab', null] as unknown as ArrayLike<number>[]
    const out = drain(from([x.a, ...bad, x.b]).pipe(recurrent(model, { monitor }), asArray))
    expect(out.values).toEqual(stepLoop(model, [x.a, x.b]))
    expect(monitor.events).toBe(2)
    expect(monitor.rejected).toBe(4)
    expect(rejected.map((r) => [r.code, r.message])).toEqual([
      ['bad_input', 'x has 3 values but the model takes 2 (inputSize); send exactly 2'],
      ['bad_input', 'x[1] is NaN; values must be finite (impute or drop missing data first)'],
      ['bad_input', 'x must be an array of 2 numbers, got the string "ab"'],
      ['bad_input', 'x must be an array of 2 numbers, got null'],
    ])
  })

  it('a throwing input (user code, not bad data) reaches subscriber.error, not the unhandled-error hook', async () => {
    const exploding = {
      length: 2,
      get 0(): number {
        throw new Error('getter failed')
      },
    } as unknown as ArrayLike<number>
    let caught: unknown
    const values: number[][] = []
    const spy = await withUnhandledErrorSpy(() => {
      from([x.a, exploding, x.b])
        .pipe(recurrent(model), asArray)
        .subscribe({
          next: (v) => values.push(v),
          error: (e) => {
            caught = e
          },
        })
    })
    expect((caught as Error).message).toBe('getter failed')
    expect(values).toEqual(stepLoop(model, [x.a]))
    expect(spy).not.toHaveBeenCalled()
  })

  it('control: an error nobody handles does reach the unhandled-error hook', async () => {
    const spy = await withUnhandledErrorSpy(() => {
      new Observable((s) => s.error(new Error('unhandled'))).subscribe()
    })
    expect(spy).toHaveBeenCalledTimes(1)
  })
})

describe('learn', () => {
  const options = learning(3, { k2: 5, clipNorm: 0.5 })
  const xs = rows(11, 12, 2)
  const targets = rows(12, 12, 1)
  const events: LearnEvent[] = xs.map((x, t) => ({ x, target: targets[t]! }))

  /** A direct OnlineTrainer run on an identical model. */
  function reference(seen: LearnEvent[], trainerOptions = options) {
    const trainer = new OnlineTrainer(tinyModel(5), trainerOptions)
    return seen.map((e) => {
      if (e.reset) trainer.reset()
      return trainer.observe(e.x, e.target)
    })
  }

  it('predicts before learning (test-then-train) and reports the same updates as a direct OnlineTrainer', () => {
    const out = drain(from(events).pipe(learn(tinyModel(5), options)))
    const expected = reference(events)
    expect(out.values.map((r) => Array.from(r.prediction))).toEqual(
      expected.map((o) => Array.from(o.prediction)),
    )
    expect(out.values.map((r) => r.update)).toEqual(expected.map((o) => o.update))
    // An update at every k1-th event.
    expect(out.values.flatMap((r, t) => (r.update ? [t] : []))).toEqual([2, 5, 8, 11])
    expect(out.values.map((r) => r.update?.step).filter((s) => s !== undefined)).toEqual([3, 6, 9, 12])
    // The first prediction is the untrained model's: made before learning from its own target.
    expect(Array.from(out.values[0]!.prediction)).toEqual(stepLoop(tinyModel(5), [xs[0]!])[0])
    // And learning happened: the 4th prediction differs from the untrained model's.
    expect(Array.from(out.values[3]!.prediction)).not.toEqual(stepLoop(tinyModel(5), xs.slice(0, 4))[3])
  })

  it('emits at the frames of the source', () => {
    const expected = reference(events.slice(0, 4))
    marbles().run(({ cold, expectObservable }) => {
      const e$ = cold('-a--b-cd|', { a: events[0]!, b: events[1]!, c: events[2]!, d: events[3]! })
      const p$ = e$.pipe(
        learn(tinyModel(5), options),
        map((r: LearnResult) => ({ y: Array.from(r.prediction), updated: r.update !== undefined })),
      )
      const v = expected.map((o) => ({ y: Array.from(o.prediction), updated: o.update !== undefined }))
      expectObservable(p$).toBe('-a--b-cd|', { a: v[0], b: v[1], c: v[2], d: v[3] })
    })
  })

  it('a window without any target makes no update', () => {
    const sparse: LearnEvent[] = events.map((e, t) => (t >= 3 && t < 6 ? { x: e.x } : e))
    const out = drain(from(sparse).pipe(learn(tinyModel(5), options)))
    expect(out.values.flatMap((r, t) => (r.update ? [t] : []))).toEqual([2, 8, 11])
    expect(out.values.map((r) => r.update)).toEqual(reference(sparse).map((o) => o.update))
  })

  it('skips, counts and reports bad events; later predictions equal a run that never saw them', () => {
    const { monitor, rejected } = recordingMonitor()
    const bad: unknown[] = [
      { x: [1, 2, 3], target: [0] },
      { x: [0, Number.NaN], target: [0] },
      null,
      { x: 'ab', target: [0] },
      { x: [0.1, 0.2], target: [Number.POSITIVE_INFINITY] },
      // A refused event must not reset the sequence either.
      { x: [0.1, Number.NaN], target: [0], reset: true },
    ]
    const stream = [...events.slice(0, 4), ...(bad as LearnEvent[]), ...events.slice(4)]
    const out = drain(from(stream).pipe(learn(tinyModel(5), options, { monitor })))
    const expected = reference(events)
    expect(out.error).toBeUndefined()
    expect(out.values.map((r) => Array.from(r.prediction))).toEqual(
      expected.map((o) => Array.from(o.prediction)),
    )
    expect(out.values.map((r) => r.update)).toEqual(expected.map((o) => o.update))
    expect(monitor.rejected).toBe(6)
    expect(monitor.events).toBe(12)
    expect(rejected.map((r) => [r.code, r.message])).toEqual([
      ['bad_input', 'x has 3 values but the model takes 2 (inputSize); send exactly 2'],
      ['bad_input', 'x[1] is NaN; values must be finite (impute or drop missing data first)'],
      ['bad_input', 'Each event must be an object { x, target? }'],
      ['bad_input', 'x must be an array of 2 numbers, got the string "ab"'],
      ['bad_target', 'target[0] is Infinity; targets must be finite'],
      ['bad_input', 'x[1] is NaN; values must be finite (impute or drop missing data first)'],
    ])
    expect(rejected.map((r) => r.event)).toEqual(bad)
  })

  it('reset: true is a sequence boundary, as trainer.reset()', () => {
    const withReset = events.map((e, t) => (t === 5 ? { ...e, reset: true } : e))
    const out = drain(from(withReset).pipe(learn(tinyModel(5), options)))
    const expected = reference(withReset)
    expect(out.values.map((r) => Array.from(r.prediction))).toEqual(
      expected.map((o) => Array.from(o.prediction)),
    )
    expect(Array.from(out.values[5]!.prediction)).not.toEqual(Array.from(reference(events)[5]!.prediction))
  })

  it('monitor.metrics$ after each update: loss, gradNorm, clipRate and prequential regression scores', () => {
    const { monitor } = recordingMonitor()
    const snapshots: MetricsSnapshot[] = []
    monitor.metrics$.subscribe((m) => snapshots.push(m))
    const out = drain(from(events).pipe(learn(tinyModel(5), options, { monitor })))
    const updates = out.values.flatMap((r) => (r.update ? [r.update] : []))
    expect(snapshots).toHaveLength(4)
    const predictions = out.values.map((r) => Array.from(r.prediction))
    snapshots.forEach((s, i) => {
      const u = updates[i]!
      const t = 3 * i + 2 // the event whose arrival ran this update
      expect(s.events).toBe(t + 1)
      expect(s.updates).toBe(i + 1)
      expect(s.loss).toBe(u.loss)
      expect(s.gradNorm).toBe(u.gradNorm)
      expect(s.clippedGradNorm).toBe(u.clippedGradNorm)
      expect(s.clipRate).toBe(u.clipRate)
      // Scored from the second event on (persistence needs a previous target).
      let sq = 0
      let psq = 0
      for (let k = 1; k <= t; k++) {
        sq += squaredError(predictions[k]!, targets[k]!)
        psq += squaredError(targets[k - 1]!, targets[k]!)
      }
      expect(s.regression?.n).toBe(t)
      expect(s.regression?.rmse).toBeCloseTo(Math.sqrt(sq / t), 12)
      expect(s.regression?.persistenceRmse).toBeCloseTo(Math.sqrt(psq / t), 12)
      expect(s.regression?.skill).toBeCloseTo(1 - sq / psq, 12)
      expect(s.classification).toBeUndefined()
    })
    // clipNorm 0.5 against fresh SGD gradients: the clip rate is the running fraction clipped.
    const clipped = updates.map((u) => (u.clipped ? 1 : 0) as number)
    expect(snapshots.map((s) => s.clipRate)).toEqual(
      clipped.map((_, i) => clipped.slice(0, i + 1).reduce((a, b) => a + b, 0) / (i + 1)),
    )
    // The monitor's loss average is the EMA (α = 0.05) of the update losses.
    let ema = updates[0]!.loss
    for (const u of updates.slice(1)) ema = 0.95 * ema + 0.05 * u.loss
    expect(snapshots.at(-1)!.lossAverage).toBeCloseTo(ema, 14)
  })

  it('classification scores for cross_entropy', () => {
    const model = tinyModel(7, { outputSize: 3 })
    const labels = [0, 2, 1, 1, 2, 0, 2, 2, 1]
    const stream: LearnEvent[] = labels.map((c, t) => ({ x: xs[t]!, target: c }))
    const { monitor } = recordingMonitor()
    const snapshots: MetricsSnapshot[] = []
    monitor.metrics$.subscribe((m) => snapshots.push(m))
    const opts = frozen(3, { loss: 'cross_entropy' })
    const out = drain(from(stream).pipe(learn(model, opts, { monitor })))
    expect(snapshots).toHaveLength(3)
    const logits = stepLoop(
      model,
      stream.map((e) => e.x),
    )
    expect(out.values.map((r) => Array.from(r.prediction))).toEqual(logits)
    let correct = 0
    let logLoss = 0
    let majority = 0
    const counts = [0, 0, 0]
    labels.forEach((c, t) => {
      const z = logits[t]!
      const best = z.indexOf(Math.max(...z))
      if (best === c) correct++
      const m = Math.max(...z)
      logLoss += m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) - z[c]!
      const majorityClass = counts.indexOf(Math.max(...counts))
      if (majorityClass === c) majority++
      counts[c]!++
    })
    const last = snapshots.at(-1)!
    expect(last.classification?.n).toBe(9)
    expect(last.classification?.accuracy).toBeCloseTo(correct / 9, 14)
    expect(last.classification?.logLoss).toBeCloseTo(logLoss / 9, 12)
    expect(last.classification?.majorityAccuracy).toBeCloseTo(majority / 9, 14)
    expect(last.regression).toBeUndefined()
    // With lr 0 each update's loss is the mean cross-entropy of its k1 predictions.
    const ce = (t: number) => {
      const z = logits[t]!
      const m = Math.max(...z)
      return m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) - z[labels[t]!]!
    }
    expect(last.loss).toBeCloseTo((ce(6) + ce(7) + ce(8)) / 3, 12)
  })

  it('given a model, each subscription has its own trainer; given a trainer, subscriptions share it', () => {
    const model = tinyModel(5)
    const learned$ = from(events.slice(0, 2)).pipe(learn(model, frozen(2)))
    const first = drain(learned$).values.map((r) => Array.from(r.prediction))
    const second = drain(learned$).values.map((r) => Array.from(r.prediction))
    expect(second).toEqual(first)
    const trainer = new OnlineTrainer(model, frozen(2))
    const shared$ = from(events.slice(0, 2)).pipe(learn(trainer))
    drain(shared$)
    const again = drain(shared$).values.map((r) => Array.from(r.prediction))
    // The shared trainer carried its state on: the same inputs now give other predictions.
    expect(again).toEqual(stepLoop(model, [...xs.slice(0, 2), ...xs.slice(0, 2)]).slice(2))
    expect(trainer.sequence.observed).toBe(4)
  })

  it('stops learning when the consumer unsubscribes from a synchronous source', () => {
    const { monitor } = recordingMonitor()
    const model = tinyModel(5)
    const before = Array.from(model.params.values)
    const seen = drain(from(events).pipe(learn(model, options, { monitor }), take(2))).values
    expect(seen).toHaveLength(2)
    // No update ran (k1 = 3), and none may run for the events nobody was listening to.
    expect(monitor.events).toBe(2)
    expect(monitor.updates).toBe(0)
    expect(Array.from(model.params.values)).toEqual(before)
  })
})

describe('forecast', () => {
  const values = [0.3, -0.1, 0.4, 0.2, -0.5, 0.1, 0.6, -0.2]
  const input = (v: number) => [v, v * v]
  const nextValue = (next: number) => next

  it('predicts every event at once (lr 0: a model.step loop) and learns one step behind; first update at event 2 with k1 = 2', () => {
    const model = tinyModel(9)
    const { monitor } = recordingMonitor()
    const updates: UpdateReport[] = []
    monitor.updates$.subscribe((u) => updates.push(u))
    const out = drain(from(values).pipe(forecast(model, frozen(2), { input, target: nextValue, monitor })))
    const reference = stepLoop(model, values.map(input))
    expect(out.values.map((r) => Array.from(r.prediction))).toEqual(reference)
    expect(out.values.map((r) => r.key)).toEqual(values.map(() => ''))
    expect(out.values.map((r) => r.event)).toEqual(values)
    expect(out.values.flatMap((r, t) => (r.update ? [t] : []))).toEqual([2, 4, 6])
    expect(updates.map((u) => u.step)).toEqual([2, 4, 6])
    // Each update's loss is the mean squared error of the two forecasts it learned from:
    // the forecast made at step t for the value that arrived at t + 1.
    out.values
      .flatMap((r, t) => (r.update ? [[r.update, t] as const] : []))
      .forEach(([u, t]) => {
        const err = (s: number) => squaredError(reference[s]!, [values[s + 1]!])
        expect(u.loss).toBeCloseTo((err(t - 2) + err(t - 1)) / 2, 14)
        expect(u.lossSteps).toBe(2)
      })
  })

  it('scores forecasts next to persistence', () => {
    const model = tinyModel(9)
    const { monitor } = recordingMonitor()
    const snapshots: MetricsSnapshot[] = []
    monitor.metrics$.subscribe((m) => snapshots.push(m))
    drain(from(values).pipe(forecast(model, frozen(2), { input, target: nextValue, monitor })))
    const reference = stepLoop(model, values.map(input))
    // At the last update (event 6) the forecasts for values[2..6] were scored: persistence says
    // the next value is the one just seen.
    let sq = 0
    let psq = 0
    for (let t = 1; t <= 5; t++) {
      sq += squaredError(reference[t]!, [values[t + 1]!])
      psq += squaredError([values[t]!], [values[t + 1]!])
    }
    const last = snapshots.at(-1)!
    expect(last.regression?.n).toBe(5)
    expect(last.regression?.rmse).toBeCloseTo(Math.sqrt(sq / 5), 12)
    expect(last.regression?.persistenceRmse).toBeCloseTo(Math.sqrt(psq / 5), 12)
    expect(monitor.events).toBe(values.length)
  })

  it('marbles: each forecast at the frame of its event; an update where the next event completes the window', () => {
    const model = tinyModel(9)
    const reference = stepLoop(model, values.slice(0, 4).map(input))
    marbles().run(({ cold, expectObservable }) => {
      const v$ = cold('-a-b--c-d|', { a: values[0]!, b: values[1]!, c: values[2]!, d: values[3]! })
      const out$ = v$.pipe(
        forecast(model, frozen(2), { input: (v: number) => input(v), target: nextValue }),
        map((r: ForecastResult<number>) => ({ y: Array.from(r.prediction), step: r.update?.step })),
      )
      const e = (t: number, step?: number) => ({ y: reference[t], step })
      expectObservable(out$).toBe('-a-b--c-d|', { a: e(0), b: e(1), c: e(2, 2), d: e(3) })
    })
  })

  it('per-key series: each key has its own state, and targets pair events of the same key', () => {
    const model = tinyModel(9)
    const ticks = [
      { s: 'A', v: 0.1 },
      { s: 'B', v: -0.4 },
      { s: 'A', v: 0.3 },
      { s: 'A', v: -0.2 },
      { s: 'B', v: 0.5 },
      { s: 'B', v: 0.2 },
      { s: 'A', v: 0.7 },
    ]
    const pairs: string[] = []
    const out = drain(
      from(ticks).pipe(
        forecast(model, frozen(2), {
          key: (t) => t.s,
          input: (t) => input(t.v),
          target: (next, current) => {
            pairs.push(`${current.s}${current.v}->${next.s}${next.v}`)
            return next.v
          },
        }),
      ),
    )
    const a = stepLoop(
      model,
      ticks.filter((t) => t.s === 'A').map((t) => input(t.v)),
    )
    const b = stepLoop(
      model,
      ticks.filter((t) => t.s === 'B').map((t) => input(t.v)),
    )
    const byKey = (k: string) => out.values.filter((r) => r.key === k).map((r) => Array.from(r.prediction))
    expect(byKey('A')).toEqual(a)
    expect(byKey('B')).toEqual(b)
    expect(pairs).toEqual(['A0.1->A0.3', 'A0.3->A-0.2', 'B-0.4->B0.5', 'B0.5->B0.2', 'A-0.2->A0.7'])
    // A's second labelled step arrives with its 3rd event, B's with its 3rd.
    expect(out.values.flatMap((r, t) => (r.update ? [`${r.key}@${t}`] : []))).toEqual(['A@3', 'B@5'])
  })

  it("an exception in the user's target function reaches subscriber.error and learning stops", async () => {
    const { monitor } = recordingMonitor()
    let caught: unknown
    const seen: number[] = []
    const spy = await withUnhandledErrorSpy(() => {
      from(values)
        .pipe(
          forecast(tinyModel(9), frozen(2), {
            input,
            target: (next) => {
              if (next === values[3]) throw new Error('no price')
              return next
            },
            monitor,
          }),
        )
        .subscribe({ next: (r) => seen.push(r.event), error: (e) => (caught = e) })
    })
    expect((caught as Error).message).toBe('no price')
    expect(seen).toEqual(values.slice(0, 3))
    expect(monitor.events).toBe(3)
    expect(spy).not.toHaveBeenCalled()
  })

  it('idleMs evicts a quiet series: it starts over from a zero state and its last event gets no label', () => {
    const model = tinyModel(9)
    const evaluated: string[] = []
    const ev = { a: { s: 'A', v: 0.1 }, b: { s: 'A', v: 0.3 }, c: { s: 'B', v: 0.2 }, d: { s: 'A', v: -0.4 } }
    const [A1, A2] = stepLoop(model, [input(0.1), input(0.3)])
    const [B1] = stepLoop(model, [input(0.2)])
    const [A3] = stepLoop(model, [input(-0.4)])
    expect(A3).not.toEqual(stepLoop(model, [input(0.1), input(0.3), input(-0.4)])[2])
    marbles().run(({ cold, expectObservable }) => {
      // Frames: a 0, b 10, c 60, d 170. Sweeps every idleMs / 2 = 50 frames: the one at 150
      // finds A unseen for 140 frames and evicts it; B (seen at 60) stays.
      const marble = 'a 9ms b 49ms c 109ms d|'
      const out$ = cold(marble, ev).pipe(
        forecast(model, frozen(1), {
          key: (t) => t.s,
          input: (t) => input(t.v),
          target: (next, current) => {
            evaluated.push(`${current.v}->${next.v}`)
            return next.v
          },
          idleMs: 100,
        }),
        map((r) => Array.from(r.prediction)),
      )
      expectObservable(out$).toBe(marble, { a: A1, b: A2, c: B1, d: A3 })
    })
    // b's target would have come from d: A was evicted in between, so it is never asked for.
    expect(evaluated).toEqual(['0.1->0.3'])
  })
})

describe('learnWithLabels', () => {
  const xs = rows(21, 6, 2)
  const targets = rows(22, 6, 1)

  it('joins late, out-of-order labels by id and learns in event order', () => {
    const model = tinyModel(4)
    const reference = stepLoop(model, xs.slice(0, 4))
    const { monitor, rejected } = recordingMonitor()
    const updates: UpdateReport[] = []
    monitor.updates$.subscribe((u) => updates.push(u))
    marbles().run(({ hot, expectObservable }) => {
      const ev = Object.fromEntries(xs.slice(0, 4).map((x, id) => [`${id}`, { id, x }]))
      const lab = Object.fromEntries([0, 1, 2, 3].map((id) => [`${id}`, { id, target: targets[id]! }]))
      const events$ = hot('-0-1-2-3--------|', ev)
      const labels$ = hot('-------2-0-3-1', lab)
      const out$ = events$.pipe(
        learnWithLabels(model, frozen(2), { labels$, monitor }),
        map((r) => ({ id: r.id, key: r.key, y: Array.from(r.prediction) })),
      )
      const p = (id: number) => ({ id, key: '', y: reference[id] })
      expectObservable(out$).toBe('-0-1-2-3--------|', { 0: p(0), 1: p(1), 2: p(2), 3: p(3) })
    })
    expect(rejected).toEqual([])
    // Both updates ran when label 1 came (it unblocked 1, 2 and 3), over events 0–1 and 2–3.
    expect(updates.map((u) => u.step)).toEqual([2, 4])
    const err = (i: number) => squaredError(reference[i]!, targets[i]!)
    expect(updates[0]!.loss).toBeCloseTo((err(0) + err(1)) / 2, 14)
    expect(updates[1]!.loss).toBeCloseTo((err(2) + err(3)) / 2, 14)
  })

  it('maxPending 3: a 4th unlabelled event makes the oldest be learned without its label', () => {
    const model = tinyModel(4)
    const reference = stepLoop(model, xs)
    const { monitor, rejected } = recordingMonitor()
    const labels$ = new Subject<{ id: number; target: number[] }>()
    const events$ = new Subject<{ id: number; x: number[] }>()
    const updates: UpdateReport[] = []
    monitor.updates$.subscribe((u) => updates.push(u))
    const predictions: number[][] = []
    events$
      .pipe(learnWithLabels(model, frozen(2), { labels$, maxPending: 3, monitor }))
      .subscribe((r) => predictions.push(Array.from(r.prediction)))
    for (let id = 0; id < 4; id++) events$.next({ id, x: xs[id]! })
    // Event 0 was learned from (as a step without a target); its label now finds nothing waiting.
    labels$.next({ id: 0, target: targets[0]! })
    expect(rejected.map((r) => [r.code, r.message])).toEqual([
      ['bad_target', 'No event 0 of key "" is waiting for a label (too late, or never seen)'],
    ])
    labels$.next({ id: 1, target: targets[1]! })
    // Steps 0 (no target) and 1 made the window: its loss has only step 1.
    expect(updates).toHaveLength(1)
    expect(updates[0]!.step).toBe(2)
    expect(updates[0]!.lossSteps).toBe(1)
    expect(updates[0]!.loss).toBeCloseTo(squaredError(reference[1]!, targets[1]!), 14)
    // The stream goes on.
    events$.next({ id: 4, x: xs[4]! })
    expect(predictions).toEqual(reference.slice(0, 5))
    expect(monitor.events).toBe(5)
  })

  it('reports a label for an unknown id or a malformed label, and goes on', () => {
    const model = tinyModel(4)
    const { monitor, rejected } = recordingMonitor()
    const labels$ = new Subject<unknown>()
    const events$ = new Subject<{ id: number; x: number[]; key?: string }>()
    const out: number[][] = []
    let error: unknown
    events$
      .pipe(learnWithLabels(model, frozen(2), { labels$: labels$ as never, monitor }))
      .subscribe({ next: (r) => out.push(Array.from(r.prediction)), error: (e) => (error = e) })
    events$.next({ id: 0, x: xs[0]!, key: 'k' })
    labels$.next({ id: 42, target: [1], key: 'k' })
    labels$.next({ id: 0, target: [1] })
    labels$.next(null)
    labels$.next({ id: 0, target: [Number.NaN], key: 'k' })
    events$.next({ id: 1, x: xs[1]!, key: 'k' })
    expect(error).toBeUndefined()
    expect(rejected.map((r) => [r.code, r.message, r.key])).toEqual([
      ['bad_target', 'No event 42 of key "k" is waiting for a label (too late, or never seen)', 'k'],
      ['bad_target', 'No event 0 of key "" is waiting for a label (too late, or never seen)', undefined],
      ['bad_target', 'Each label must be an object { id, target, key? }', undefined],
      ['bad_target', 'target[0] is NaN; targets must be finite', 'k'],
    ])
    expect(out).toEqual(stepLoop(model, xs.slice(0, 2)))
    expect(monitor.rejected).toBe(4)
  })

  it('teardown unsubscribes events and labels', () => {
    marbles().run(({ hot, expectObservable, expectSubscriptions }) => {
      const events$ = hot('-a-b-c-', {
        a: { id: 0, x: xs[0]! },
        b: { id: 1, x: xs[1]! },
        c: { id: 2, x: xs[2]! },
      })
      const labels$ = hot<{ id: number; target: number[] }>('--------')
      const [A, B] = stepLoop(tinyModel(4), xs.slice(0, 2))
      const out$ = events$.pipe(
        learnWithLabels(tinyModel(4), frozen(2), { labels$ }),
        map((r) => Array.from(r.prediction)),
      )
      expectObservable(out$, '^---!').toBe('-a-b', { a: A, b: B })
      expectSubscriptions(events$.subscriptions).toBe('^---!')
      expectSubscriptions(labels$.subscriptions).toBe('^---!')
    })
  })
})
