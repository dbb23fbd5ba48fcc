import { describe, expect, it } from 'vitest'
import { LearningRateController, scheduleFactor } from '../../../src/forecasting/lr-schedule.js'
import type { RxrnnError } from '../../../src/index.js'
import { createModel, OnlineTrainer } from '../../../src/index.js'

describe('learning-rate schedules', () => {
  it('step, cosine with warm restarts (SGDR), constant', () => {
    expect([0, 9, 10, 25].map((t) => scheduleFactor({ type: 'step', every: 10, factor: 0.5 }, t))).toEqual([
      1, 1, 0.5, 0.25,
    ])
    const cosine = { type: 'cosine', period: 10, min: 0.1 } as const
    expect(scheduleFactor(cosine, 0)).toBe(1)
    expect(scheduleFactor(cosine, 5)).toBeCloseTo(0.55, 12)
    expect(scheduleFactor(cosine, 10)).toBe(1) // warm restart
    // Growing periods: 10, then 20 (restart at 10, 30).
    const sgdr = { type: 'cosine', period: 10, growth: 2 } as const
    expect(scheduleFactor(sgdr, 20)).toBeCloseTo(0.5, 12)
    expect(scheduleFactor(sgdr, 30)).toBe(1)
    expect(scheduleFactor({ type: 'constant' }, 1234)).toBe(1)
  })

  it('a raise lasts the given number of updates, then the schedule resumes', () => {
    const lr = new LearningRateController(0.01, { type: 'constant' })
    lr.raise(5, 2)
    expect([lr.rateAt(0), lr.rateAt(1), lr.rateAt(2)]).toEqual([0.05, 0.05, 0.01])
  })

  it('the trainer reports and uses the scheduled rate; bad schedules are refused with the reason', () => {
    const model = createModel({ cell: 'gru', inputSize: 1, hiddenSize: 4, outputSize: 1, seed: 1 })
    const trainer = new OnlineTrainer(model, {
      k1: 1,
      loss: 'mse',
      optimizer: { type: 'sgd', lr: 0.1 },
      lrSchedule: { type: 'step', every: 2, factor: 0.5 },
    })
    const rates = Array.from({ length: 5 }, (_, t) => trainer.observe([t], [1]).update!.lr)
    expect(rates).toEqual([0.1, 0.1, 0.05, 0.05, 0.025])
    trainer.learningRate.raise(10, 1)
    expect(trainer.observe([0], [1]).update!.lr).toBeCloseTo(0.25, 12)
    expect(trainer.observe([0], [1]).update!.lr).toBeCloseTo(0.0125, 12)
    const refused = (() => {
      try {
        new OnlineTrainer(model, {
          k1: 1,
          loss: 'mse',
          optimizer: { type: 'sgd', lr: 0.1 },
          lrSchedule: { type: 'cosine', period: 0 },
        })
      } catch (e) {
        return e as RxrnnError
      }
    })()
    expect(refused?.code).toBe('bad_config')
    expect(refused?.problems.join()).toMatch(/lrSchedule.period is 0; it must be an integer >= 1/)
  })
})
