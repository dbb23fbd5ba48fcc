import { describe, expect, it } from 'vitest'
import type { AlgorithmName, Observation, TrainerOptions } from '../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer, Rng, rtrlCost } from '../../src/index.js'

const FORWARD: AlgorithmName[] = ['rtrl', 'snap1', 'uoro']

function options(algorithm: AlgorithmName): TrainerOptions {
  return {
    algorithm,
    k1: 3,
    loss: 'mse',
    optimizer: { type: 'adam', lr: 0.01 },
    clipNorm: 0.5,
    rollback: { lossFactor: 50, every: 2 },
  }
}

function events(n: number, seed: number): { x: number[]; target: number[] }[] {
  const rng = new Rng(seed)
  return Array.from({ length: n }, (_, t) => ({
    x: [Math.sin(t / 3) + 0.1 * rng.normal(), rng.uniform()],
    target: [Math.sin((t + 1) / 3)],
  }))
}

function run(trainer: OnlineTrainer, evs: { x: number[]; target: number[] }[]): Observation[] {
  return evs.map((e, t) => trainer.observe(e.x, t % 4 === 3 ? undefined : e.target))
}

describe('forward-mode snapshots', () => {
  for (const algorithm of FORWARD) {
    for (const dtype of ['float32', 'float64'] as const) {
      it(`${algorithm}: resumes bit-identically mid-window, sensitivities included (${dtype}, lstm ×2)`, () => {
        const model = createModel({
          cell: 'lstm',
          inputSize: 2,
          hiddenSize: 4,
          numLayers: 2,
          outputSize: 1,
          dtype,
          seed: 3,
        })
        const trainer = new OnlineTrainer(model, options(algorithm))
        const evs = events(30, 9)
        run(trainer, evs.slice(0, 8))
        const resumed = OnlineTrainer.fromSnapshot(trainer.snapshot())
        expect(resumed.options.algorithm).toBe(algorithm)
        expect(Array.from(resumed.sequence.carried)).toEqual(Array.from(trainer.sequence.carried))
        const expected = run(trainer, evs.slice(8))
        const actual = run(resumed, evs.slice(8))
        expect(actual.map((o) => Array.from(o.prediction))).toEqual(
          expected.map((o) => Array.from(o.prediction)),
        )
        expect(actual.map((o) => o.update)).toEqual(expected.map((o) => o.update))
        expect(actual.filter((o) => o.update).length).toBeGreaterThan(5)
        expect(Array.from(resumed.model.params.values)).toEqual(Array.from(model.params.values))
        expect(expected.find((o) => o.update)!.update!.gradientFlow).toBeUndefined()
      })
    }
  }
})

describe('forward-mode keyed trainers', () => {
  const config = { cell: 'gru', inputSize: 2, hiddenSize: 3, numLayers: 2, outputSize: 1, seed: 5 } as const

  it('each key carries its own sensitivities, counted in bytesPerKey', () => {
    const model = createModel(config)
    const k1 = 3
    const tbptt = new KeyedTrainer(new OnlineTrainer(model, { ...options('rtrl'), algorithm: 'tbptt', k1 }))
    const window = (k1 + 1) * (2 + 1 + 2 * 3) * 4
    expect(tbptt.bytesPerKey()).toBe(window)
    const rtrl = new KeyedTrainer(new OnlineTrainer(model, { ...options('rtrl'), k1 }))
    // The summed gradient (P floats) and J per layer [S, P_l].
    expect(rtrl.bytesPerKey()).toBe(window + (model.params.size + rtrlCost(model).floats) * 4)
    const snap1 = new KeyedTrainer(new OnlineTrainer(model, { ...options('snap1'), k1 }))
    expect(snap1.bytesPerKey()).toBe(window + (model.params.size + 3 * 3 * (2 + 5) + 3 * 3 * (3 + 5)) * 4)
    const uoro = new KeyedTrainer(new OnlineTrainer(model, { ...options('uoro'), k1 }))
    const recurrent = model.params.size - 4
    expect(uoro.bytesPerKey()).toBe(window + (model.params.size + 2 * 3 + recurrent) * 4)
    rtrl.observe('a', [1, 2], [0], 0)
    const entry = rtrl.entry('a')!
    expect(entry.sequence.slots[0]!.x.buffer.byteLength + entry.sequence.carried.byteLength).toBe(
      rtrl.bytesPerKey(),
    )
  })

  for (const algorithm of FORWARD) {
    it(`${algorithm}: a key learns as a trainer of its own would, and the keyed snapshot resumes it exactly`, () => {
      const evs = events(24, 4)
      // One key through a KeyedTrainer is the single-sequence trainer on the same events.
      const alone = new OnlineTrainer(createModel(config), options(algorithm))
      const single = run(alone, evs)
      const keyed = new KeyedTrainer(new OnlineTrainer(createModel(config), options(algorithm)))
      const seen = evs.map(
        (e, t) => keyed.observe('a', e.x, t % 4 === 3 ? undefined : e.target, t).updates.length,
      )
      expect(seen).toEqual(single.map((o) => (o.update ? 1 : 0)))
      expect(Array.from(keyed.trainer.model.params.values)).toEqual(Array.from(alone.model.params.values))
      // Two keys interleaved, snapshot taken mid-window, resumed.
      const a = new KeyedTrainer(new OnlineTrainer(createModel(config), options(algorithm)))
      const step = (k: KeyedTrainer, t: number) => {
        const e = evs[t]!
        const out = k.observe(t % 2 ? 'x' : 'y', e.x, e.target, t)
        return [Array.from(out.prediction), out.updates.map((u) => u.gradNorm)]
      }
      for (let t = 0; t < 9; t++) step(a, t)
      const b = KeyedTrainer.fromSnapshot(a.snapshot())
      for (let t = 9; t < 24; t++) expect(step(b, t)).toEqual(step(a, t))
      expect(Array.from(b.trainer.model.params.values)).toEqual(Array.from(a.trainer.model.params.values))
    })
  }
})

describe('sequences of another trainer', () => {
  it('refuses a sequence made for another algorithm, before touching it', () => {
    const model = createModel({ cell: 'gru', inputSize: 2, hiddenSize: 3, outputSize: 1, seed: 5 })
    const tbptt = new OnlineTrainer(model, { ...options('rtrl'), algorithm: 'tbptt' })
    const rtrl = new OnlineTrainer(model, options('rtrl'))
    const seq = tbptt.createSequence()
    expect(() => rtrl.observeSequence(seq, [1, 2], [0])).toThrow(
      /carries 0 floats for its gradient algorithm; algorithm 'rtrl' needs \d+\. Make sequences with trainer.createSequence\(\)/,
    )
    expect(seq.observed).toBe(0)
    expect(rtrl.observeSequence(rtrl.createSequence(), [1, 2], [0]).prediction).toHaveLength(1)
  })
})

describe('forward-mode divergence guard', () => {
  for (const algorithm of FORWARD) {
    it(`${algorithm}: sensitivities that overflowed are reset, and learning goes on`, () => {
      const model = createModel({ cell: 'lstm', inputSize: 2, hiddenSize: 3, outputSize: 1, seed: 5 })
      const trainer = new OnlineTrainer(model, { ...options(algorithm), rollback: undefined })
      const evs = events(9, 2)
      const before = Float32Array.from(model.params.values)
      trainer.sequence.carried.fill(Number.POSITIVE_INFINITY, model.params.size)
      const first = run(trainer, evs.slice(0, 3)).at(-1)!.update!
      expect(first.skipped).toBe(true)
      expect(first.reason).toMatch(/non-finite .*; the sensitivities were not finite and were reset/)
      expect(Array.from(model.params.values)).toEqual(Array.from(before))
      const later = run(trainer, evs.slice(3)).filter((o) => o.update)
      expect(later.map((o) => o.update!.skipped)).toEqual([false, false])
    })
  }
})
