import { describe, expect, it } from 'vitest'
import type { TrainerOptions } from '../../src/index.js'
import { createModel, OnlineTrainer } from '../../src/index.js'
import { lagTaskErrors } from '../helpers/tasks.js'

const LAG = 6

/**
 * y_t = x_(t−6) over random signs, learned online from one endless stream (no resets): the mean
 * squared error of each block of 1,000 steps' predictions (made before each step's update).
 * Predicting 0 scores 1.
 */
function lagTask(options: TrainerOptions, steps: number): number[] {
  const model = createModel({
    cell: 'rnn_tanh',
    inputSize: 1,
    hiddenSize: 12,
    outputSize: 1,
    dtype: 'float64',
    seed: 1,
  })
  const trainer = new OnlineTrainer(model, { diagnosticsEvery: 0, ...options })
  return lagTaskErrors(trainer, { lag: LAG, steps, seed: 101 })
}

describe('learning a lag beyond the TBPTT window', () => {
  const common = { loss: 'mse', optimizer: { type: 'adam', lr: 2e-3 }, clipNorm: 1 } as const

  it('RTRL learns y_t = x_(t−6) from the stream; TBPTT(4, 4) cannot see that far back', () => {
    const rtrl = lagTask({ ...common, algorithm: 'rtrl', k1: 1 }, 10_000)
    const tbptt = lagTask({ ...common, k1: 4, k2: 4 }, 10_000)
    // Measured: RTRL 0.87 over the first 1,000 steps, under 0.005 from step 4,000 on (0.0002 over the
    // last 1,000); TBPTT(4, 4) between 0.84 and 0.99 throughout.
    expect(rtrl[0]!).toBeGreaterThan(0.5)
    expect(Math.max(...rtrl.slice(-3))).toBeLessThan(0.01)
    expect(Math.min(...tbptt.slice(-3))).toBeGreaterThan(0.8)
  })
})
