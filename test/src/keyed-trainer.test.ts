import { describe, expect, it } from 'vitest'
import type { KeyedTrainerOptions, Model, RxrnnErrorCode, TrainerOptions } from '../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer, RxrnnError } from '../../src/index.js'
import { frozen, rows, stepLoop, tinyModel } from '../helpers/streams.js'

const xs = rows(41, 8, 2)
const ys = rows(42, 8, 1)

function keyedOn(
  model: Model,
  options: ConstructorParameters<typeof KeyedTrainer>[1],
  trainer?: TrainerOptions,
) {
  return new KeyedTrainer(new OnlineTrainer(model, trainer ?? frozen(2)), options)
}

function codeOf(f: () => unknown): RxrnnErrorCode {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(RxrnnError)
    return (e as RxrnnError).code
  }
  throw new Error('expected a RxrnnError')
}

describe('KeyedTrainer: refused events', () => {
  it('a refused event for a new key neither creates it nor evicts another when maxKeys is full', () => {
    const evicted: string[] = []
    const keyed = keyedOn(tinyModel(1), { maxKeys: 2, onEvict: (k) => evicted.push(k) })
    keyed.observe('a', xs[0]!, ys[0]!, 0)
    keyed.observe('b', xs[1]!, ys[1]!, 1)
    const a = Array.from(keyed.entry('a')!.sequence.state.data)
    expect(codeOf(() => keyed.observe('c', [1, 2, 3], ys[2]!, 2))).toBe('bad_input')
    expect(codeOf(() => keyed.observe('c', [0, Number.NaN], ys[2]!, 2))).toBe('bad_input')
    expect(codeOf(() => keyed.observe('c', xs[2]!, [Number.NaN], 2))).toBe('bad_target')
    expect(codeOf(() => keyed.observe(42 as unknown as string, xs[2]!, ys[2]!, 2))).toBe('missing_key')
    expect(keyed.size).toBe(2)
    expect([...keyed.keys()]).toEqual(['a', 'b'])
    expect(keyed.has('c')).toBe(false)
    expect(keyed.evicted).toBe(0)
    expect(evicted).toEqual([])
    expect(Array.from(keyed.entry('a')!.sequence.state.data)).toEqual(a)
  })

  it('a refused event for an existing key leaves its state and window untouched', () => {
    const model = tinyModel(1)
    const keyed = keyedOn(model, {})
    keyed.observe('a', xs[0]!, ys[0]!, 0)
    const seq = keyed.entry('a')!.sequence
    const before = { state: Array.from(seq.state.data), observed: seq.observed, filled: seq.filled }
    expect(codeOf(() => keyed.observe('a', [Number.POSITIVE_INFINITY, 0], ys[1]!, 1))).toBe('bad_input')
    expect({ state: Array.from(seq.state.data), observed: seq.observed, filled: seq.filled }).toEqual(before)
    expect(Array.from(keyed.observe('a', xs[1]!, ys[1]!, 2).prediction)).toEqual(
      stepLoop(model, xs.slice(0, 2))[1],
    )
  })

  it("'' is a key like any other (the single-series operators use it)", () => {
    const model = tinyModel(1)
    const keyed = keyedOn(model, {})
    expect(Array.from(keyed.observe('', xs[0]!, null, 0).prediction)).toEqual(stepLoop(model, [xs[0]!])[0])
    expect(keyed.has('')).toBe(true)
  })

  it('predict and label need maxPending > 0; observe needs maxPending 0', () => {
    expect(codeOf(() => keyedOn(tinyModel(1), {}).predict('a', 0, xs[0]!, 0))).toBe('bad_config')
    expect(codeOf(() => keyedOn(tinyModel(1), { maxPending: 2 }).observe('a', xs[0]!, ys[0]!, 0))).toBe(
      'bad_config',
    )
    expect(codeOf(() => keyedOn(tinyModel(1), { maxKeys: 0 }))).toBe('bad_config')
    expect(codeOf(() => keyedOn(tinyModel(1), { idleMs: 0 }))).toBe('bad_config')
    expect(codeOf(() => keyedOn(tinyModel(1), { maxPending: 1.5 }))).toBe('bad_config')
  })
})

describe('KeyedTrainer: late labels (predict / label)', () => {
  it('predicts at once, joins labels by id, and learns in event order whatever order labels come in', () => {
    const model = tinyModel(1)
    const keyed = keyedOn(model, { maxPending: 4 })
    const reference = stepLoop(model, xs.slice(0, 4))
    const predictions = [0, 1, 2, 3].map((id) => {
      const { prediction, updates } = keyed.predict('a', id, xs[id]!, id)
      expect(updates).toEqual([])
      return Array.from(prediction)
    })
    expect(predictions).toEqual(reference)
    const entry = keyed.entry('a')!
    expect(entry.pending.map((e) => e.id)).toEqual([0, 1, 2, 3])

    // Label 1 first: event 0 still waits, so nothing is learned yet.
    const one = keyed.label('a', 1, ys[1]!)!
    expect(one.event.id).toBe(1)
    expect(Array.from(one.event.prediction!)).toEqual(reference[1])
    expect(one.updates).toEqual([])
    expect(entry.sequence.observed).toBe(0)

    // Label 0 lets 0 and 1 be learned: k1 = 2 makes one update over both.
    const zero = keyed.label('a', 0, ys[0]!)!
    expect(zero.updates.map((u) => [u.step, u.lossSteps])).toEqual([[2, 2]])
    const sq = (i: number) => (reference[i]![0]! - ys[i]![0]!) ** 2
    expect(zero.updates[0]!.loss).toBeCloseTo((sq(0) + sq(1)) / 2, 14)
    expect(entry.sequence.observed).toBe(2)
    expect(entry.pending.map((e) => e.id)).toEqual([2, 3])

    expect(keyed.label('a', 3, ys[3]!)!.updates).toEqual([])
    const two = keyed.label('a', 2, ys[2]!)!
    expect(two.updates.map((u) => u.step)).toEqual([4])
    expect(two.updates[0]!.loss).toBeCloseTo((sq(2) + sq(3)) / 2, 14)
    expect(entry.pending).toEqual([])
    // Caught up: the prediction state is the trajectory's state again.
    expect(Array.from(entry.live!.data)).toEqual(Array.from(entry.sequence.state.data))
    expect(Array.from(keyed.predict('a', 4, xs[4]!, 4).prediction)).toEqual(
      stepLoop(model, xs.slice(0, 5))[4],
    )
  })

  it('a label for an unknown id or key is null; a bad target throws and the event keeps waiting', () => {
    const keyed = keyedOn(tinyModel(1), { maxPending: 2 })
    keyed.predict('a', 7, xs[0]!, 0)
    expect(keyed.label('a', 8, ys[0]!)).toBeNull()
    expect(keyed.label('b', 7, ys[0]!)).toBeNull()
    expect(codeOf(() => keyed.label('a', 7, [Number.NaN]))).toBe('bad_target')
    expect(keyed.entry('a')!.pending.map((e) => [e.id, e.target])).toEqual([[7, null]])
    expect(keyed.label('a', 7, ys[0]!)!.event.id).toBe(7)
    expect(keyed.entry('a')!.pending).toEqual([])
    // Already learned: no longer waiting.
    expect(keyed.label('a', 7, ys[0]!)).toBeNull()
  })

  it('maxPending 3: a 4th unlabelled event makes the oldest be learned without a label (expiredLabels)', () => {
    const model = tinyModel(1)
    const keyed = keyedOn(model, { maxPending: 3 })
    for (let id = 0; id < 3; id++) keyed.predict('a', id, xs[id]!, id)
    expect(keyed.expiredLabels).toBe(0)
    const entry = keyed.entry('a')!
    expect(entry.sequence.observed).toBe(0)
    keyed.predict('a', 3, xs[3]!, 3)
    expect(keyed.expiredLabels).toBe(1)
    expect(entry.pending.map((e) => e.id)).toEqual([1, 2, 3])
    expect(entry.sequence.observed).toBe(1)
    expect(entry.sequence.slotBack(0).hasTarget).toBe(false)
    expect(keyed.label('a', 0, ys[0]!)).toBeNull()
    // Event 1's label completes the window of steps 0 (no target) and 1.
    const { updates } = keyed.label('a', 1, ys[1]!)!
    expect(updates.map((u) => [u.step, u.lossSteps])).toEqual([[2, 1]])
  })

  it('reset(key) zeroes one key and drops its waiting events', () => {
    const model = tinyModel(1)
    const keyed = keyedOn(model, { maxPending: 3 })
    keyed.predict('a', 0, xs[0]!, 0)
    keyed.predict('b', 1, xs[1]!, 1)
    expect(keyed.reset('a')).toBe(true)
    expect(keyed.reset('nope')).toBe(false)
    expect(keyed.entry('a')!.pending).toEqual([])
    expect(keyed.label('a', 0, ys[0]!)).toBeNull()
    expect(Array.from(keyed.predict('a', 2, xs[2]!, 2).prediction)).toEqual(stepLoop(model, [xs[2]!])[0])
    expect(Array.from(keyed.predict('b', 3, xs[3]!, 3).prediction)).toEqual(
      stepLoop(model, [xs[1]!, xs[3]!])[1],
    )
  })
})

describe('KeyedTrainer: eviction', () => {
  it('evictIdle evicts least recently seen first, stops at the first fresh key, and calls onEvict', () => {
    const evicted: string[] = []
    const keyed = keyedOn(tinyModel(1), { idleMs: 15, onEvict: (k) => evicted.push(k) })
    keyed.observe('a', xs[0]!, null, 0)
    keyed.observe('b', xs[1]!, null, 10)
    keyed.observe('c', xs[2]!, null, 20)
    keyed.observe('a', xs[3]!, null, 30)
    expect([...keyed.keys()]).toEqual(['b', 'c', 'a'])
    expect(keyed.evictIdle(24)).toEqual([])
    // b idle 15 (= idleMs: evicted), c idle 14 (kept, and the scan stops there).
    expect(keyed.evictIdle(25)).toEqual(['b'])
    expect(keyed.evictIdle(44)).toEqual(['c'])
    expect(keyed.evictIdle(100)).toEqual(['a'])
    expect(evicted).toEqual(['b', 'c', 'a'])
    expect(keyed.evicted).toBe(3)
    expect(keyed.size).toBe(0)
  })

  it('past maxKeys the least recently seen key goes, through onEvict, and comes back from zero', () => {
    const model = tinyModel(1)
    const evicted: string[] = []
    const keyed = keyedOn(model, { maxKeys: 2, onEvict: (k) => evicted.push(k) })
    keyed.observe('a', xs[0]!, null, 0)
    keyed.observe('b', xs[1]!, null, 1)
    keyed.observe('a', xs[2]!, null, 2)
    keyed.observe('c', xs[3]!, null, 3)
    expect(evicted).toEqual(['b'])
    expect(Array.from(keyed.observe('b', xs[4]!, null, 4).prediction)).toEqual(stepLoop(model, [xs[4]!])[0])
    expect(evicted).toEqual(['b', 'a'])
    expect(keyed.evicted).toBe(2)
    expect([...keyed.keys()]).toEqual(['c', 'b'])
  })

  it('recency survives deletes from the middle, the ends and a snapshot round trip', () => {
    const evicted: string[] = []
    const keyed = keyedOn(tinyModel(1), { maxKeys: 4, onEvict: (k) => evicted.push(k) })
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) keyed.observe(key, xs[i]!, null, i)
    keyed.observe('b', xs[4]!, null, 4)
    expect(keyed.delete('c')).toBe(true)
    expect(keyed.delete('c')).toBe(false)
    expect([...keyed.keys()]).toEqual(['a', 'd', 'b'])
    expect(keyed.delete('a')).toBe(true)
    expect(keyed.delete('b')).toBe(true)
    keyed.observe('e', xs[5]!, null, 5)
    keyed.observe('d', xs[6]!, null, 6)
    expect([...keyed.keys()]).toEqual(['e', 'd'])
    const resumed = KeyedTrainer.fromSnapshot(keyed.snapshot(), { onEvict: (k) => evicted.push(k) })
    expect([...resumed.keys()]).toEqual(['e', 'd'])
    for (const [i, key] of ['f', 'g', 'h'].entries()) resumed.observe(key, xs[i]!, null, 10 + i)
    expect(evicted).toEqual(['e'])
    expect([...resumed.keys()]).toEqual(['d', 'f', 'g', 'h'])
  })

  it('keys() survives deleting and seeing keys while it iterates', () => {
    const keyed = keyedOn(tinyModel(1), {})
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) keyed.observe(key, xs[i]!, null, i)
    const visited: string[] = []
    for (const key of keyed.keys()) {
      visited.push(key)
      if (key === 'b') keyed.observe('b', xs[5]!, null, 5)
      else keyed.delete(key)
    }
    // b, seen again, moved behind d and came round once more; everything else was deleted.
    expect(visited).toEqual(['a', 'b', 'c', 'd', 'b'])
    expect([...keyed.keys()]).toEqual(['b'])
  })

  it('delete forgets a key without counting an eviction', () => {
    const evicted: string[] = []
    const keyed = keyedOn(tinyModel(1), { onEvict: (k) => evicted.push(k) })
    keyed.observe('a', xs[0]!, null, 0)
    expect(keyed.delete('a')).toBe(true)
    expect(keyed.delete('a')).toBe(false)
    expect(keyed.evicted).toBe(0)
    expect(evicted).toEqual([])
  })
})

describe('KeyedTrainer: per-key extras (one key store for everything kept per key)', () => {
  interface Extras {
    seen: number
    note?: string
  }
  const made: string[] = []
  const withExtras = (options: Omit<KeyedTrainerOptions<Extras>, 'extras'> = {}) =>
    new KeyedTrainer<Extras>(new OnlineTrainer(tinyModel(1), frozen(2)), {
      ...options,
      extras: (key) => {
        made.push(key)
        return { seen: 0 }
      },
    })

  it('are made with the key, live in its entry, and leave with it (eviction hands them to onEvict)', () => {
    made.length = 0
    const gone: [string, Extras][] = []
    const keyed = withExtras({ maxKeys: 2, onEvict: (key, entry) => gone.push([key, entry.extras]) })
    for (const [i, key] of ['a', 'b', 'a', 'c'].entries()) {
      keyed.observe(key, xs[i]!, null, i)
      keyed.entry(key)!.extras.seen++
    }
    expect(made).toEqual(['a', 'b', 'c'])
    expect(gone).toEqual([['b', { seen: 1 }]])
    expect(keyed.entry('a')!.extras).toEqual({ seen: 2 })
    // Back after its eviction: fresh extras, like its fresh state.
    keyed.observe('b', xs[4]!, null, 4)
    expect(keyed.entry('b')!.extras).toEqual({ seen: 0 })
    expect(made).toEqual(['a', 'b', 'c', 'b'])
    // A refused event makes no key and no extras.
    expect(codeOf(() => keyed.observe('d', [Number.NaN, 0], null, 5))).toBe('bad_input')
    expect(made).toHaveLength(4)
  })

  it('a snapshot restores the keys with fresh extras from the factory passed again', () => {
    made.length = 0
    const keyed = withExtras()
    keyed.observe('a', xs[0]!, null, 0)
    keyed.entry('a')!.extras.seen = 7
    const resumed = KeyedTrainer.fromSnapshot<Extras>(keyed.snapshot(), { extras: () => ({ seen: -1 }) })
    expect(resumed.entry('a')!.extras).toEqual({ seen: -1 })
  })

  it('slots(field) is one field of every entry as a map: set on an unknown key does nothing', () => {
    const keyed = withExtras({ maxKeys: 2 })
    const notes = keyed.slots('note')
    keyed.observe('a', xs[0]!, null, 0)
    keyed.observe('b', xs[1]!, null, 1)
    notes.set('a', 'first')
    notes.set('b', 'second')
    notes.set('zzz', 'nobody')
    expect(keyed.entry('a')!.extras.note).toBe('first')
    expect(notes.get('zzz')).toBeUndefined()
    expect([...notes.entries()]).toEqual([
      ['a', 'first'],
      ['b', 'second'],
    ])
    notes.delete('a')
    expect([...notes.entries()]).toEqual([['b', 'second']])
    // Evicting b takes its note along: nothing to keep in step.
    keyed.observe('c', xs[2]!, null, 2)
    keyed.observe('a', xs[3]!, null, 3)
    expect(notes.get('b')).toBeUndefined()
    notes.set('c', 'third')
    notes.clear()
    expect([...notes.entries()]).toEqual([])
    expect(keyed.entry('c')!.extras.seen).toBe(0)
  })
})

describe('KeyedTrainer: bytesPerKey', () => {
  it('is the window without activations: (k2 + 1) × (inputs + targets + layers × state) floats', () => {
    const model = createModel({
      cell: 'gru',
      inputSize: 5,
      hiddenSize: 6,
      numLayers: 3,
      outputSize: 2,
      seed: 1,
    })
    const keyed = keyedOn(model, {}, frozen(3, { k2: 9 }))
    expect(keyed.bytesPerKey()).toBe(10 * (5 + 2 + 3 * 6) * 4)
    keyed.observe('a', [1, 2, 3, 4, 5], [0, 0], 0)
    expect(keyed.entry('a')!.sequence.slots[0]!.x.buffer.byteLength).toBe(keyed.bytesPerKey())
  })

  it('with late labels adds the prediction state and the waiting events (x, target, prediction)', () => {
    const model = createModel({
      cell: 'lstm',
      inputSize: 2,
      hiddenSize: 3,
      numLayers: 2,
      outputSize: 4,
      dtype: 'float64',
      seed: 1,
    })
    const keyed = keyedOn(model, { maxPending: 3 }, frozen(2, { k2: 4 }))
    const window = 5 * (2 + 4 + 2 * (2 * 3)) * 8
    const live = 2 * (2 * 3) * 8
    const pending = 3 * (2 + 4 + 4) * 8
    expect(keyed.bytesPerKey()).toBe(window + live + pending)
    // Fill the waiting list as far as it goes: 3 events, all but the oldest labelled.
    for (let id = 0; id < 3; id++) keyed.predict('a', id, xs[id]!, id)
    keyed.label('a', 1, [0, 0, 0, 0])
    keyed.label('a', 2, [0, 0, 0, 0])
    const entry = keyed.entry('a')!
    let held = entry.sequence.slots[0]!.x.buffer.byteLength + entry.live!.data.byteLength
    for (const e of entry.pending)
      held += e.x.byteLength + (e.target?.byteLength ?? 0) + (e.prediction?.byteLength ?? 0)
    // Everything but the oldest event's target, which has not come.
    expect(held).toBe(keyed.bytesPerKey() - 4 * 8)
  })
})

describe('staggered update phases', () => {
  it('spreads the first updates of keys created together over the window', () => {
    const model = createModel({
      cell: 'gru',
      inputSize: 2,
      hiddenSize: 4,
      outputSize: 1,
      seed: 3,
      dtype: 'float64',
    })
    const keyed = new KeyedTrainer(
      new OnlineTrainer(model, { k1: 4, loss: 'mse', optimizer: { type: 'sgd', lr: 0.01 } }),
      { staggerUpdates: true },
    )
    const firstUpdate = new Map<string, { step: number; lossSteps: number }>()
    for (let t = 0; t < 8; t++) {
      for (const key of ['a', 'b', 'c', 'd']) {
        const { updates } = keyed.observe(key, [t / 8, 1 - t / 8], [t / 16], t)
        if (updates.length > 0 && !firstUpdate.has(key)) {
          firstUpdate.set(key, { step: updates[0]!.step, lossSteps: updates[0]!.lossSteps })
        }
      }
    }
    // Key k starts k steps into its window: its first window is k steps shorter.
    expect(Object.fromEntries(firstUpdate)).toEqual({
      a: { step: 4, lossSteps: 4 },
      b: { step: 3, lossSteps: 3 },
      c: { step: 2, lossSteps: 2 },
      d: { step: 1, lossSteps: 1 },
    })
    // The phase survives a snapshot: a restored trainer staggers the next key where this one would.
    const resumed = KeyedTrainer.fromSnapshot(keyed.snapshot())
    let step = 0
    for (let t = 0; t < 4 && step === 0; t++) {
      const { updates } = resumed.observe('e', [0, 1], [0], 100 + t)
      if (updates.length > 0) step = updates[0]!.step
    }
    expect(step).toBe(4)
  })
})

describe('KeyedTrainer: deferred updates (observeDeferred, runDueUpdates)', () => {
  const learning: TrainerOptions = { k1: 2, loss: 'mse', optimizer: { type: 'adam', lr: 0.05 }, clipNorm: 1 }
  const events = Array.from({ length: 24 }, (_, i) => ({
    key: ['a', 'b', 'c'][(i * 7) % 3]!,
    x: xs[i % 8]!,
    y: ys[(i * 3) % 8]!,
  }))
  const pair = () => [keyedOn(tinyModel(5), {}, learning), keyedOn(tinyModel(5), {}, learning)] as const

  it('flushed after every event, it is observe exactly: predictions, update reports and weights', () => {
    const [sync, deferred] = pair()
    const syncLosses: number[] = []
    const deferredLosses: number[] = []
    for (const e of events) {
      const { prediction, updates } = sync.observe(e.key, e.x, e.y, 0)
      for (const u of updates) syncLosses.push(u.loss)
      expect(Array.from(deferred.observeDeferred(e.key, e.x, e.y, 0))).toEqual(Array.from(prediction))
      for (const { report } of deferred.runDueUpdates()) deferredLosses.push(report.loss)
    }
    expect(syncLosses.length).toBe(12)
    expect(deferredLosses).toEqual(syncLosses)
    expect(deferred.trainer.model.params.values).toEqual(sync.trainer.model.params.values)
  })

  it("holds updates until runDueUpdates, and a key's next event runs its own first", () => {
    const [sync, deferred] = pair()
    const before = deferred.trainer.model.params.values.slice()
    deferred.observeDeferred('a', xs[0]!, ys[0]!, 0)
    deferred.observeDeferred('a', xs[1]!, ys[1]!, 0)
    expect(deferred.dueUpdates).toBe(1)
    deferred.observeDeferred('b', xs[2]!, ys[2]!, 0)
    // b stepped on the weights from before a's update.
    expect(deferred.trainer.model.params.values).toEqual(before)
    // a's third event runs a's update first: one report waits, none queued.
    deferred.observeDeferred('a', xs[3]!, ys[3]!, 0)
    expect(deferred.dueUpdates).toBe(1)
    expect(deferred.trainer.model.params.values).not.toEqual(before)
    const reports = deferred.runDueUpdates()
    expect(reports.map((r) => r.key)).toEqual(['a'])
    expect(deferred.dueUpdates).toBe(0)
    // One key alone: never flushing still learns exactly as observe does.
    const solo = keyedOn(tinyModel(5), {}, learning)
    for (let i = 0; i < 8; i++) {
      const y = solo.observeDeferred('s', xs[i]!, ys[i]!, 0)
      expect(Array.from(y)).toEqual(Array.from(sync.observe('s', xs[i]!, ys[i]!, 0).prediction))
    }
    expect(solo.runDueUpdates().length).toBe(4)
    expect(solo.trainer.model.params.values).toEqual(sync.trainer.model.params.values)
  })

  it('an update that throws in runDueUpdates leaves the later ones queued', () => {
    const keyed = keyedOn(tinyModel(5), {}, learning)
    for (const key of ['a', 'b', 'c']) {
      keyed.observeDeferred(key, xs[0]!, ys[0]!, 0)
      keyed.observeDeferred(key, xs[1]!, ys[1]!, 0)
    }
    expect(keyed.dueUpdates).toBe(3)
    const trainer = keyed.trainer as unknown as { updateSequence: (...args: unknown[]) => unknown }
    const real = trainer.updateSequence.bind(keyed.trainer)
    let calls = 0
    trainer.updateSequence = (...args) => {
      if (++calls === 2) throw new Error('boom')
      return real(...args)
    }
    expect(() => keyed.runDueUpdates()).toThrow('boom')
    // a ran; b threw (its window is dropped from the queue with the error); c is still queued.
    expect(keyed.dueUpdates).toBe(2)
    expect(keyed.runDueUpdates().map((r) => r.key)).toEqual(['a', 'c'])
    expect(keyed.dueUpdates).toBe(0)
  })

  it('a queued update survives delete, reset, eviction and a snapshot round trip', () => {
    const keyed = keyedOn(tinyModel(5), { maxKeys: 2 }, learning)
    const complete = (key: string) => {
      keyed.observeDeferred(key, xs[0]!, ys[0]!, 0)
      keyed.observeDeferred(key, xs[1]!, ys[1]!, 0)
    }
    complete('a')
    expect(keyed.delete('a')).toBe(true)
    complete('b')
    keyed.reset('b')
    complete('b')
    complete('c')
    keyed.observeDeferred('d', xs[2]!, ys[2]!, 0) // maxKeys 2: evicts b, whose update runs first
    expect(keyed.has('b')).toBe(false)
    expect(keyed.dueUpdates).toBe(4)
    const resumed = KeyedTrainer.fromSnapshot(keyed.snapshot())
    // The snapshot holds c's complete window (queued again) and d's open one.
    expect(resumed.dueUpdates).toBe(1)
    expect(resumed.runDueUpdates().map((r) => r.key)).toEqual(['c'])
    expect(keyed.runDueUpdates().map((r) => r.key)).toEqual(['a', 'b', 'b', 'c'])
    expect(resumed.trainer.model.params.values).toEqual(keyed.trainer.model.params.values)
  })
})
