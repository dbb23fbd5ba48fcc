import { describe, expect, it } from 'vitest'
import type { RxrnnError } from '../../../src/index.js'
import { CELL_KINDS, OnlineTrainer } from '../../../src/index.js'
import {
  finiteDifferences,
  parameterAt,
  Rng,
  sequenceLoss,
  smallModel,
  twin,
  uniformRows,
  worstRelativeError,
} from '../../helpers/gradcheck.js'

// A direct multi-horizon head, H = 3 rows of one output (the helpers' small model has outputSize 2:
// we use outputSize 3 here), TBPTT(k1 = 2, k2 = k1 + H − 1 = 4), in float64, lr 0 so the weights stay
// put. Step s's rows forecast the targets given at steps s, s + 1, s + 2; its loss enters once the
// last has arrived. Six steps: the update at step 5 (0-based) backpropagates through steps 2..5,
// from the stored state after step 1, and its loss is the mean over steps 2 and 3 (the ones complete).
describe('multi-horizon head: gradients of the delayed-target loss equal finite differences', () => {
  const H = 3
  const k1 = 2
  const k2 = k1 + H - 1
  const T = 6
  for (const cell of CELL_KINDS) {
    for (const numLayers of [1, 2]) {
      it(`${cell}, ${numLayers} layer${numLayers > 1 ? 's' : ''}`, () => {
        const model = smallModel(cell, numLayers, 61 + numLayers, { outputSize: H })
        const rng = new Rng(707 + numLayers)
        const xs = uniformRows(rng, T, 3)
        const ys = Array.from({ length: T }, () => rng.range(-1.5, 1.5))
        const trainer = new OnlineTrainer(model, {
          k1,
          k2,
          horizon: H,
          loss: 'mse',
          optimizer: { type: 'sgd', lr: 0 },
        })
        let grads: Float64Array | undefined
        xs.forEach((x, t) => {
          const { update } = trainer.observe(x, [ys[t]!])
          if (t === 1) expect(update).toBeUndefined() // nothing complete yet
          if (t === 3) expect(update?.lossSteps).toBe(2) // steps 0, 1
          if (t === 5) {
            expect(update?.lossSteps).toBe(2) // steps 2, 3
            expect(update?.windowSteps).toBe(k2)
            grads = model.params.grads.slice() as Float64Array
          }
        })
        const entering = twin(model).initialState()
        const w = twin(model)
        w.step(xs[0]!, entering)
        w.step(xs[1]!, entering)
        const targets = [2, 3, 4, 5].map((s) => (s + H - 1 < T ? [ys[s]!, ys[s + 1]!, ys[s + 2]!] : null))
        const probe = twin(model)
        const spec = { loss: 'mse' as const, xs: xs.slice(2), targets, initialState: entering.data }
        const numeric = finiteDifferences(probe.params.values as Float64Array, () =>
          sequenceLoss(probe, spec),
        )
        const { error, index } = worstRelativeError(grads!, numeric)
        expect(error, `worst at ${parameterAt(model, index)}`).toBeLessThan(1e-6)
        expect(Math.max(...Array.from(grads!, Math.abs))).toBeGreaterThan(1e-3)
      })
    }
  }
})

describe('horizon validation and bookkeeping', () => {
  it('refuses k2 < k1 + H − 1 and explains why', () => {
    const model = smallModel('gru', 1, 1, { outputSize: 4 })
    let error: RxrnnError | undefined
    try {
      new OnlineTrainer(model, { k1: 4, k2: 6, horizon: 4, loss: 'mse', optimizer: { type: 'sgd', lr: 0.1 } })
    } catch (e) {
      error = e as RxrnnError
    }
    expect(error?.code).toBe('bad_config')
    expect(error?.problems[0]).toMatch(
      /k2 \(6\) is too short for horizon 4 with k1 4.*k2 >= k1 \+ horizon - 1 = 7/,
    )
  })

  it('refuses a horizon with a forward-mode algorithm, whose loss enters step by step', () => {
    const model = smallModel('gru', 1, 1, { outputSize: 2 })
    let error: RxrnnError | undefined
    try {
      new OnlineTrainer(model, {
        algorithm: 'rtrl',
        k1: 1,
        horizon: 2,
        loss: 'mse',
        optimizer: { type: 'sgd', lr: 0.1 },
      })
    } catch (e) {
      error = e as RxrnnError
    }
    expect(error?.problems.join()).toMatch(/horizon 2 needs algorithm 'tbptt'/)
  })

  it('refuses an outputSize that is not horizon × target width', () => {
    const model = smallModel('gru', 1, 1, { outputSize: 5 })
    expect(
      () =>
        new OnlineTrainer(model, {
          k1: 2,
          k2: 5,
          horizon: 2,
          loss: 'mse',
          optimizer: { type: 'sgd', lr: 0.1 },
        }),
    ).toThrow(/outputSize 5 is not a multiple of horizon 2/)
  })

  it('a tick without target leaves the H steps it belongs to without loss; targets of the wrong width are refused', () => {
    const model = smallModel('lstm', 1, 2, { outputSize: 2 })
    const trainer = new OnlineTrainer(model, {
      k1: 3,
      k2: 4,
      horizon: 2,
      loss: 'mse',
      optimizer: { type: 'sgd', lr: 0 },
    })
    const x = [0.1, 0.2, 0.3]
    trainer.observe(x, [1])
    trainer.observe(x, null) // steps 0 and 1 lack a complete target now
    const report = trainer.observe(x, [1]).update
    // Steps 0..2: only step 2's targets would be rows of steps 2, 3: none complete.
    expect(report).toBeUndefined()
    expect(() => trainer.observe(x, [1, 2])).toThrow(/target/)
    const seq = trainer.sequence
    expect(seq.targetRun).toBe(1)
  })

  it('a snapshot keeps the horizon and resumes bit-identically', () => {
    const model = smallModel('gru', 1, 5, { outputSize: 2 })
    const trainer = new OnlineTrainer(model, {
      k1: 2,
      k2: 3,
      horizon: 2,
      loss: 'mse',
      optimizer: { type: 'adam', lr: 1e-2 },
    })
    const rng = new Rng(1)
    const xs = uniformRows(rng, 12, 3)
    for (const [t, x] of xs.slice(0, 7).entries()) trainer.observe(x, [t / 10])
    const resumed = OnlineTrainer.fromSnapshot(trainer.snapshot())
    expect(resumed.options.horizon).toBe(2)
    for (const [i, x] of xs.slice(7).entries()) {
      expect(resumed.observe(x, [i]).prediction).toEqual(trainer.observe(x, [i]).prediction)
    }
  })
})

describe('diagnostics with a horizon', () => {
  it('the gradient-flow probe starts at the newest step whose targets are all in', () => {
    const model = smallModel('gru', 1, 9, { outputSize: 3 })
    const trainer = new OnlineTrainer(model, {
      k1: 4,
      k2: 8,
      horizon: 3,
      loss: 'mse',
      optimizer: { type: 'sgd', lr: 0.01 },
    })
    const rng = new Rng(4)
    let flow: { norms: number[]; logGainPerStep: number } | undefined
    for (const x of uniformRows(rng, 16, 3))
      flow = trainer.observe(x, [rng.uniform()]).update?.gradientFlow ?? flow
    // Window of 8 steps, the newest complete one 2 steps back: 6 norms, all positive.
    expect(flow?.norms).toHaveLength(6)
    expect(flow!.norms.every((v) => v > 0)).toBe(true)
    expect(Number.isFinite(flow!.logGainPerStep)).toBe(true)
  })
})
