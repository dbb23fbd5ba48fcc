import { describe, expect, it } from 'vitest'
import type { ForecastingExtras } from '../../../src/index.js'
import {
  createModel,
  ForecastBook,
  KeyedTrainer,
  OnlineTrainer,
  RecursiveRollout,
} from '../../../src/index.js'
import { loadSeattleHourly } from '../../../streams/demo/datasets.js'

async function seattleTemperatures(): Promise<number[]> {
  const temps = (await loadSeattleHourly()).map((h) => h.temperature)
  const mean = temps.reduce((a, b) => a + b, 0) / temps.length
  const std = Math.sqrt(temps.reduce((a, b) => a + (b - mean) ** 2, 0) / temps.length)
  return temps.map((t) => (t - mean) / std)
}

/** Trains on z[0..n) as a next-value stream through a book; returns per-row MAE over [from, n) and the book. */
function run(z: number[], n: number, from: number, H: number, direct: boolean) {
  const model = createModel({
    cell: 'lstm',
    inputSize: 1,
    hiddenSize: 16,
    outputSize: direct ? H : 1,
    seed: 3,
  })
  const trainer = new OnlineTrainer(model, {
    k1: 4,
    k2: direct ? 4 + H - 1 : 8,
    loss: 'mse',
    optimizer: { type: 'adam', lr: 5e-3 },
    clipNorm: 1,
    ...(direct ? { horizon: H } : {}),
  })
  const book = new ForecastBook(trainer, { coverage: 0.9, ...(direct ? {} : { rollout: H }) })
  const errors = new Float64Array(H)
  const persistence = new Float64Array(H)
  let counted = 0
  let aheadZeroIsPrediction = true
  for (let t = 0; t + H < n; t++) {
    const { prediction } = trainer.observe([z[t]!], [z[t + 1]!])
    const fields = book.step('', trainer.sequence, prediction, [z[t + 1]!])
    if (fields.ahead![0]![0] !== prediction[0]) aheadZeroIsPrediction = false
    if (t >= from) {
      counted++
      // Row h − 1 forecasts the target of tick t + h − 1, which is z[t + h].
      for (let h = 1; h <= H; h++) {
        errors[h - 1] = errors[h - 1]! + Math.abs(fields.ahead![h - 1]![0]! - z[t + h]!)
        persistence[h - 1] = persistence[h - 1]! + Math.abs(z[t]! - z[t + h]!)
      }
    }
  }
  return {
    mae: Array.from(errors, (e) => e / counted),
    persistence: Array.from(persistence, (e) => e / counted),
    book,
    aheadZeroIsPrediction,
  }
}

describe('forecasting H steps ahead on Seattle hourly temperatures', () => {
  it('the direct 6-row head beats persistence 6 hours ahead; intervals cover at 90 %', async () => {
    const z = await seattleTemperatures()
    const { mae, persistence, book, aheadZeroIsPrediction } = run(z, 5000, 2500, 6, true)
    expect(aheadZeroIsPrediction).toBe(true)
    expect(mae[5]!).toBeLessThan(0.6 * persistence[5]!)
    expect(Math.abs(book.coverage() - 0.9)).toBeLessThan(0.02)
    expect(Math.abs(book.tracker('')!.coverage(5) - 0.9)).toBeLessThan(0.02)
  })

  it('the recursive roll-out beats persistence too, and leaves the key state alone', async () => {
    const z = await seattleTemperatures()
    const { mae, persistence } = run(z, 5000, 2500, 6, false)
    expect(mae[5]!).toBeLessThan(0.8 * persistence[5]!)
    const model = createModel({ cell: 'gru', inputSize: 2, hiddenSize: 5, outputSize: 2, seed: 1 })
    const state = model.initialState()
    const y = Array.from(model.step([0.3, -0.2], state))
    const before = state.data.slice()
    const rows = new RecursiveRollout(model, 3).run(state, y)
    expect(state.data).toEqual(before)
    const copy = model.initialState()
    copy.copyFrom(state)
    const y1 = Array.from(model.step(y, copy))
    const y2 = Array.from(model.step(y1, copy))
    expect(Array.from(rows)).toEqual([...y, ...y1, ...y2])
    expect(
      () => new RecursiveRollout(createModel({ cell: 'gru', inputSize: 2, hiddenSize: 5, outputSize: 1 }), 3),
    ).toThrow(/outputSize \(1\) = inputSize \(2\)/)
  })
})

describe('drift responses', () => {
  it("'reset' zeroes the key's state when the loss jumps; the event names the key and its step", () => {
    const model = createModel({ cell: 'gru', inputSize: 1, hiddenSize: 8, outputSize: 1, seed: 2 })
    const trainer = new OnlineTrainer(model, { k1: 4, loss: 'mse', optimizer: { type: 'adam', lr: 1e-2 } })
    const book = new ForecastBook(trainer, { drift: { warmup: 200, response: 'reset' } })
    let event: ReturnType<ForecastBook['step']>['drift']
    for (let t = 0; t < 1500 && !event; t++) {
      const y = t < 1000 ? Math.sin(t / 6) : 5 * Math.sin(t / 2)
      const { prediction } = trainer.observe(
        [t < 1000 ? Math.sin((t - 1) / 6) : 5 * Math.sin((t - 1) / 2)],
        [y],
      )
      event = book.step('k', trainer.sequence, prediction, [y]).drift
    }
    expect(event).toMatchObject({ type: 'drift', key: 'k', detector: 'page-hinkley', response: 'reset' })
    expect(event!.step).toBeGreaterThan(1000)
    expect(event!.step).toBeLessThan(1100)
    expect(Array.from(trainer.sequence.state.data).every((v) => v === 0)).toBe(true)
    expect(book.drifts).toBe(1)
  })

  it("'raise-lr' multiplies the learning rate for the configured number of updates", () => {
    const model = createModel({ cell: 'gru', inputSize: 1, hiddenSize: 8, outputSize: 1, seed: 2 })
    const trainer = new OnlineTrainer(model, { k1: 1, loss: 'mse', optimizer: { type: 'sgd', lr: 0.01 } })
    const book = new ForecastBook(trainer, {
      drift: { warmup: 50, response: 'raise-lr', raiseFactor: 4, raiseUpdates: 3 },
    })
    const rates: number[] = []
    let fired = -1
    for (let t = 0; t < 400; t++) {
      const y = t < 200 ? 0.1 : 10
      const { prediction, update } = trainer.observe([0], [y])
      rates.push(update!.lr)
      if (book.step('k', trainer.sequence, prediction, [y]).drift && fired < 0) fired = t
    }
    expect(fired).toBeGreaterThanOrEqual(200)
    expect(rates.slice(fired + 1, fired + 5)).toEqual([0.04, 0.04, 0.04, 0.01])
  })

  it("a snapshot taken while 'raise-lr' is in force resumes the raise for the updates it has left", () => {
    const model = createModel({ cell: 'gru', inputSize: 1, hiddenSize: 8, outputSize: 1, seed: 2 })
    const trainer = new OnlineTrainer(model, { k1: 1, loss: 'mse', optimizer: { type: 'sgd', lr: 0.01 } })
    trainer.observe([0], [0.1])
    trainer.learningRate.raise(4, 3)
    trainer.observe([0], [0.1])
    const resumed = OnlineTrainer.fromSnapshot(trainer.snapshot())
    const rates = (t: OnlineTrainer) => [0, 1, 2].map(() => t.observe([0], [0.1]).update!.lr)
    expect(rates(resumed)).toEqual([0.04, 0.04, 0.01])
    expect(rates(trainer)).toEqual([0.04, 0.04, 0.01])
  })
})

describe('ForecastBook options', () => {
  it('refuses intervals and drift on a classifier, naming why', () => {
    const model = createModel({ cell: 'gru', inputSize: 1, hiddenSize: 4, outputSize: 3 })
    const trainer = new OnlineTrainer(model, {
      k1: 2,
      loss: 'cross_entropy',
      optimizer: { type: 'sgd', lr: 0.1 },
    })
    expect(() => new ForecastBook(trainer, { coverage: 0.9 })).toThrow(/work on regression targets/)
    expect(() => new ForecastBook(trainer, { drift: true })).toThrow(/leave coverage and drift out/)
  })
})

describe('ForecastBook snapshots', () => {
  it('exportState → msgpack → importState resumes every key exactly (intervals, anomaly, Page-Hinkley, ADWIN)', async () => {
    // The packer the trainer's snapshots use: typed arrays come back as typed arrays.
    const { Packr } = await import('msgpackr')
    const packr = new Packr({
      useRecords: false,
      moreTypes: true,
      mapsAsObjects: true,
      structuredClone: false,
    })
    for (const detector of ['page-hinkley', 'adwin'] as const) {
      const model = createModel({ cell: 'gru', inputSize: 1, hiddenSize: 6, outputSize: 3, seed: 4 })
      const trainer = new OnlineTrainer(model, {
        k1: 2,
        k2: 4,
        horizon: 3,
        loss: 'mse',
        optimizer: { type: 'sgd', lr: 0 },
      })
      const options = { coverage: 0.9, drift: { detector, warmup: 10 } }
      const book = new ForecastBook(trainer, options)
      const value = (t: number, key: number) => Math.sin(t / 3 + key) + (t > 300 ? 3 * Math.sin(t) : 0)
      const outputs = new Map<string, number[]>()
      for (let t = 0; t < 250; t++)
        for (const key of [0, 1]) outputs.set(`${t}/${key}`, [value(t, key), value(t, key) * 0.5, 0.1])
      const feed = (b: ForecastBook, from: number, to: number) => {
        const fields: unknown[] = []
        for (let t = from; t < to; t++)
          for (const key of [0, 1]) {
            const output = [value(t, key) * 0.9, value(t, key) * 0.5, 0.1]
            fields.push(b.step(`k${key}`, trainer.sequence, output, value(t + 1, key)))
          }
        return fields
      }
      feed(book, 0, 200)
      const resumed = new ForecastBook(trainer, options)
      resumed.importState(packr.unpack(packr.pack(book.exportState())) as Record<string, unknown>)
      // Drift responses would reset the shared sequence: 'report' (the default) leaves it alone.
      expect(feed(resumed, 200, 400)).toEqual(feed(book, 200, 400))
      expect(resumed.coverage()).toBe(book.coverage())
      expect(resumed.drifts).toBe(book.drifts)
      expect(book.drifts).toBeGreaterThan(0)
      expect(() => new ForecastBook(trainer, { coverage: 0.9 }).importState(book.exportState())).toThrow(
        /other forecasting options/,
      )
    }
  })
})

describe('ForecastBook in a KeyedTrainer (trackers: keyed.slots)', () => {
  it('keeps each tracker in its key entry: the same fields as its own map, and an evicted key starts over', () => {
    const model = createModel({ cell: 'gru', inputSize: 1, hiddenSize: 6, outputSize: 1, seed: 4 })
    const trainer = new OnlineTrainer(model, { k1: 2, loss: 'mse', optimizer: { type: 'sgd', lr: 0 } })
    const keyed = new KeyedTrainer<ForecastingExtras>(trainer, { maxKeys: 2, extras: () => ({}) })
    const options = { coverage: 0.9, drift: { detector: 'page-hinkley' as const, warmup: 10 } }
    const inEntries = new ForecastBook(trainer, { ...options, trackers: keyed.slots('tracker') })
    const ownMap = new ForecastBook(trainer, options)
    const value = (t: number, key: number) => Math.sin(t / 3 + key)
    for (let t = 0; t < 120; t++)
      for (const key of [0, 1]) {
        const { prediction } = keyed.observe(`k${key}`, [value(t, key)], [value(t + 1, key)])
        const seq = keyed.entry(`k${key}`)!.sequence
        const a = inEntries.step(`k${key}`, seq, prediction, value(t + 1, key))
        const b = ownMap.step(`k${key}`, seq, prediction, value(t + 1, key))
        expect(a).toEqual(b)
      }
    expect(keyed.entry('k0')!.extras.tracker).toBe(inEntries.tracker('k0'))
    expect(Object.keys(inEntries.exportState().keys as object)).toEqual(['k0', 'k1'])
    // A third key evicts k0, and its tracker with it.
    keyed.observe('k2', [0], [0])
    expect(inEntries.tracker('k0')).toBeUndefined()
    // k2 has no tracker yet: the book has not seen it.
    expect(Object.keys(inEntries.exportState().keys as object)).toEqual(['k1'])
    // Restoring keeps only the keys the trainer holds.
    const saved = ownMap.exportState()
    inEntries.importState(saved)
    expect(inEntries.tracker('k1')!.exportState()).toEqual(ownMap.tracker('k1')!.exportState())
    expect(inEntries.tracker('k0')).toBeUndefined()
  })
})
