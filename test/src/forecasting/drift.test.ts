import { describe, expect, it } from 'vitest'
import { Adwin } from '../../../src/forecasting/adwin.js'
import { createDriftDetector, resolveDriftOptions } from '../../../src/forecasting/drift.js'
import { PageHinkley } from '../../../src/forecasting/page-hinkley.js'
import { ForecastTracker } from '../../../src/forecasting/tracker.js'
import { createModel, OnlineTrainer, Rng } from '../../../src/index.js'

function gaussian(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.uniform())) * Math.cos(2 * Math.PI * rng.uniform())
}

/** Squared errors of a model that is learning: the level falls from 11 to 1, then steps up by `jump` at `at`. */
function learningLosses(seed: number, n: number, at = Number.POSITIVE_INFINITY, jump = 1): number[] {
  const rng = new Rng(seed)
  return Array.from({ length: n }, (_, t) => {
    const level = (1 + 10 * Math.exp(-t / 150)) * (t >= at ? jump : 1)
    const e = gaussian(rng)
    return level * e * e
  })
}

const detectors = {
  'page-hinkley': () => new PageHinkley({ warmup: 100 }),
  adwin: () => new Adwin({ warmup: 100 }),
}

describe('drift detectors on the prequential loss', () => {
  for (const [name, make] of Object.entries(detectors)) {
    it(`${name}: no false alarm while a model learns a stationary stream (10 seeds × 4000 losses)`, () => {
      for (let seed = 1; seed <= 10; seed++) {
        const d = make()
        const alarms = learningLosses(seed, 4000).filter((l) => d.update(l)).length
        expect(alarms, `seed ${seed}`).toBe(0)
      }
    })

    it(`${name}: catches a fourfold rise of the loss within a bounded delay (10 seeds)`, () => {
      // Measured: Page-Hinkley 33–109 ticks (mean 53), ADWIN 67–131 (mean 104; it checks every 16).
      const bound = name === 'page-hinkley' ? 130 : 160
      const delays: number[] = []
      for (let seed = 1; seed <= 10; seed++) {
        const d = make()
        const losses = learningLosses(seed, 3000, 2000, 4)
        let first = -1
        losses.forEach((l, t) => {
          if (d.update(l) && first < 0) first = t
        })
        expect(first, `seed ${seed}`).toBeGreaterThanOrEqual(2000)
        delays.push(first - 2000)
      }
      expect(Math.max(...delays)).toBeLessThanOrEqual(bound)
    })
  }

  it('options: defaults, and each problem named', () => {
    expect(resolveDriftOptions(true)).toMatchObject({
      detector: 'page-hinkley',
      response: 'report',
      warmup: 100,
    })
    expect(() => resolveDriftOptions({ detector: 'cusum' as never, response: 'panic' as never })).toThrow(
      /detector is "cusum".*\n.*response is "panic"/s,
    )
    expect(createDriftDetector(resolveDriftOptions({ detector: 'adwin' }))).toBeInstanceOf(Adwin)
  })
})

describe('drift on a real learner', () => {
  it('an LSTM learning a sine raises no alarm; a regime change (3× amplitude, new period) is caught within 60 ticks', () => {
    for (const detector of ['page-hinkley', 'adwin'] as const) {
      const model = createModel({ cell: 'lstm', inputSize: 1, hiddenSize: 12, outputSize: 1, seed: 4 })
      const trainer = new OnlineTrainer(model, {
        k1: 4,
        k2: 8,
        loss: 'mse',
        optimizer: { type: 'adam', lr: 1e-2 },
      })
      const tracker = new ForecastTracker(1, 1, { drift: { detector } })
      const rng = new Rng(9)
      const change = 2500
      const value = (t: number) => (t < change ? Math.sin(t / 8) : 3 * Math.sin(t / 3)) + 0.05 * gaussian(rng)
      let x = value(0)
      const alarms: number[] = []
      for (let t = 1; t < change + 300; t++) {
        const y = value(t)
        const { prediction } = trainer.observe([x], [y])
        if (tracker.step(prediction, [y]).drift) alarms.push(t)
        x = y
      }
      expect(
        alarms.filter((t) => t < change),
        detector,
      ).toEqual([])
      expect(alarms.length, detector).toBeGreaterThan(0)
      expect(alarms[0]! - change, detector).toBeLessThanOrEqual(60)
    }
  })
})
