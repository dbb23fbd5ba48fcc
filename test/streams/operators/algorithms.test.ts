import { from, lastValueFrom, toArray } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { ALGORITHM_NAMES, type AlgorithmName, createModel } from '../../../src/index.js'
import { learn, learnByKey } from '../../../streams/index.js'

// The operators pass `algorithm` through to the trainers they build: each algorithm learns the
// same next-step task through `learn` and `learnByKey`, and reports its updates the same way.
const wave = (t: number, phase = 0) => Math.sin(t / 3 + phase)

function trainer(algorithm: AlgorithmName) {
  return {
    algorithm,
    k1: 4,
    loss: 'mse' as const,
    optimizer: { type: 'adam' as const, lr: 0.02 },
    clipNorm: 1,
  }
}

describe('learning operators with every gradient algorithm', () => {
  it.each(ALGORITHM_NAMES)('learn with %s: the error falls and updates are reported', async (algorithm) => {
    const model = createModel({
      cell: 'gru',
      inputSize: 1,
      hiddenSize: 6,
      outputSize: 1,
      seed: 2,
      dtype: 'float64',
    })
    const events = Array.from({ length: 1200 }, (_, t) => ({ x: [wave(t)], target: [wave(t + 1)] }))
    const results = await lastValueFrom(from(events).pipe(learn(model, trainer(algorithm)), toArray()))
    const error = (from: number, to: number) =>
      results.slice(from, to).reduce((s, r, i) => s + ((r.prediction[0] ?? 0) - wave(from + i + 1)) ** 2, 0) /
      (to - from)
    expect(error(1000, 1200)).toBeLessThan(0.3 * error(0, 200))
    const updates = results.flatMap((r) => (r.update ? [r.update] : []))
    expect(updates).toHaveLength(300)
    expect(updates.every((u) => Number.isFinite(u.gradNorm))).toBe(true)
    expect(updates[0]!.gradientFlow === undefined).toBe(algorithm !== 'tbptt')
  })

  it('learnByKey with rtrl keeps sensitivities per key: two keys learn two phases', async () => {
    const model = createModel({
      cell: 'rnn_tanh',
      inputSize: 1,
      hiddenSize: 5,
      outputSize: 1,
      seed: 4,
      dtype: 'float64',
    })
    const events = Array.from({ length: 2400 }, (_, i) => {
      const key = i % 2 === 0 ? 'a' : 'b'
      const t = i >> 1
      const phase = key === 'a' ? 0 : 1.5
      return { key, x: [wave(t, phase)], target: [wave(t + 1, phase)] }
    })
    const results = await lastValueFrom(from(events).pipe(learnByKey(model, trainer('rtrl')), toArray()))
    const late = results.slice(-400)
    const mse =
      late.reduce((s, r, i) => {
        const event = events[events.length - 400 + i]!
        return s + ((r.prediction[0] ?? 0) - (event.target[0] ?? 0)) ** 2
      }, 0) / late.length
    expect(mse).toBeLessThan(0.02)
  })
})
