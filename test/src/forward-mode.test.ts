import { describe, expect, it } from 'vitest'
import { layerBlocks } from '../../src/gradients/forward-mode.js'
import { Rtrl } from '../../src/gradients/rtrl.js'
import type { AlgorithmName, CellKind, ModelConfig, TrainerOptions, UpdateReport } from '../../src/index.js'
import { CELL_KINDS, createModel, LOSS_NAMES, OnlineTrainer, Rng, RxrnnError } from '../../src/index.js'
import type { SequenceWindow, Slot } from '../../src/window.js'
import {
  finiteDifferences,
  sequenceLoss,
  targetsFor,
  uniformRows,
  worstRelativeError,
} from '../helpers/gradcheck.js'

const base = { loss: 'mse', optimizer: { type: 'sgd', lr: 0.05 } } as const

function modelConfig(cell: CellKind, numLayers: number, hiddenSize = 3): ModelConfig {
  return { cell, inputSize: 2, hiddenSize, numLayers, outputSize: 2, dtype: 'float64', seed: 11 }
}

function data(steps: number, seed = 3) {
  const rng = new Rng(seed)
  return { xs: uniformRows(rng, steps, 2), ys: uniformRows(rng, steps, 2, -1.5, 1.5) }
}

/** The reports of `steps` observed events (every third without a target). */
function run(config: ModelConfig, options: TrainerOptions, steps: number): UpdateReport[] {
  const trainer = new OnlineTrainer(createModel(config), options)
  const { xs, ys } = data(steps)
  const reports: UpdateReport[] = []
  for (let t = 0; t < steps; t++) {
    const { update } = trainer.observe(xs[t]!, t % 3 === 1 ? null : ys[t]!)
    if (update) reports.push(update)
  }
  return reports
}

function expectSameGradient(a: UpdateReport, b: UpdateReport, tolerance: number): void {
  expect(Math.abs(a.gradNorm - b.gradNorm) / b.gradNorm).toBeLessThan(tolerance)
  expect(Math.abs(a.loss - b.loss) / b.loss).toBeLessThan(tolerance)
  for (const [name, norm] of Object.entries(b.paramGradNorms)) {
    expect(Math.abs(a.paramGradNorms[name]! - norm), name).toBeLessThanOrEqual(
      tolerance * Math.max(norm, 1e-300),
    )
  }
}

describe('RTRL', () => {
  for (const cell of CELL_KINDS) {
    for (const numLayers of [1, 2]) {
      it(`${cell} ×${numLayers}: the first update from zero is TBPTT(k1, k1)'s gradient; later ones differ`, () => {
        const k1 = 5
        const config = modelConfig(cell, numLayers)
        const tbptt = run(config, { ...base, k1 }, 2 * k1)
        const rtrl = run(config, { ...base, k1, algorithm: 'rtrl' }, 2 * k1)
        expect(rtrl.length).toBe(2)
        expectSameGradient(rtrl[0]!, tbptt[0]!, 1e-12)
        expect(rtrl[0]!.windowSteps).toBe(k1)
        expect(rtrl[0]!.lossSteps).toBe(tbptt[0]!.lossSteps)
        // The second window's state entered with a history: RTRL's gradient carries it, TBPTT detaches.
        expect(Math.abs(rtrl[1]!.gradNorm - tbptt[1]!.gradNorm) / tbptt[1]!.gradNorm).toBeGreaterThan(1e-4)
      })
    }
  }
})

/** The gradient of the first `updates` updates (lr so small the weights do not move): one Float64Array each. */
function gradients(
  config: ModelConfig,
  options: TrainerOptions,
  xs: number[][],
  targets: (number[] | null)[],
): Float64Array[] {
  const model = createModel(config)
  const trainer = new OnlineTrainer(model, { ...options, optimizer: { type: 'sgd', lr: 1e-300 } })
  const out: Float64Array[] = []
  xs.forEach((x, t) => {
    if (trainer.observe(x, targets[t]).update) out.push(Float64Array.from(model.params.grads))
  })
  return out
}

describe('forward-mode sequence boundaries', () => {
  for (const algorithm of ['rtrl', 'snap1', 'uoro'] as const) {
    it(`${algorithm}: reset() forgets the sensitivities and the half-summed window`, () => {
      const config = modelConfig('lstm', 2)
      const frozen = { ...base, optimizer: { type: 'sgd', lr: 1e-300 }, k1: 5 } as const
      const { xs, ys } = data(12, 7)
      const trainer = new OnlineTrainer(createModel(config), { ...frozen, algorithm, seed: 4 })
      for (let t = 0; t < 7; t++) trainer.observe(xs[t]!, ys[t]!)
      trainer.reset()
      expect(trainer.sequence.carried.every((v) => v === 0)).toBe(true)
      const after: UpdateReport[] = []
      const expected: UpdateReport[] = []
      for (let t = 7; t < 12; t++) {
        const u = trainer.observe(xs[t]!, ys[t]!).update
        if (u) after.push(u)
      }
      expect(after).toHaveLength(1)
      expect(after[0]!.windowSteps).toBe(5)
      // RTRL and SnAp-1 are deterministic: the update is a fresh trainer's first (UORO's draws differ).
      if (algorithm === 'uoro') return
      const fresh = new OnlineTrainer(createModel(config), { ...frozen, algorithm })
      for (let t = 7; t < 12; t++) {
        const u = fresh.observe(xs[t]!, ys[t]!).update
        if (u) expected.push(u)
      }
      expectSameGradient(after[0]!, expected[0]!, 1e-12)
    })
  }
})

describe('RTRL with every loss', () => {
  for (const loss of LOSS_NAMES) {
    it(`${loss}: the first update from zero is TBPTT(k1, k1)'s gradient`, () => {
      const config = modelConfig('gru', 2)
      const rng = new Rng(8)
      const xs = uniformRows(rng, 6, 2)
      const targets = targetsFor(loss, rng, 6, 2)
      const reports = (options: TrainerOptions) => {
        const trainer = new OnlineTrainer(createModel(config), options)
        return xs.map((x, t) => trainer.observe(x, t === 2 ? null : targets[t]).update).filter((u) => u)
      }
      const options = { loss, optimizer: { type: 'sgd', lr: 0.05 }, k1: 6 } as const
      const [tbptt] = reports(options)
      const [rtrl] = reports({ ...options, algorithm: 'rtrl' })
      expectSameGradient(rtrl!, tbptt!, 1e-12)
      expect(rtrl!.lossSteps).toBe(5)
    })
  }
})

describe('RTRL in float32', () => {
  for (const cell of CELL_KINDS) {
    it(`${cell} ×2 (WebAssembly forward pass): the first update is TBPTT(k1, k1)'s to float32 rounding`, () => {
      const k1 = 5
      const config = { ...modelConfig(cell, 2), dtype: 'float32' } as const
      const tbptt = run(config, { ...base, k1 }, k1)
      const rtrl = run(config, { ...base, k1, algorithm: 'rtrl' }, k1)
      expectSameGradient(rtrl[0]!, tbptt[0]!, 1e-5)
    })
  }
})

describe('RTRL against finite differences', () => {
  for (const cell of CELL_KINDS) {
    it(`${cell} ×2, float64: the second update's gradient is that of its loss through the whole sequence`, () => {
      const k1 = 4
      const config = modelConfig(cell, 2)
      const { xs, ys } = data(2 * k1, 5)
      const targets = ys.map((y, t) => (t % 3 === 1 ? null : y))
      const [, second] = gradients(config, { ...base, k1, algorithm: 'rtrl' }, xs, targets)
      const model = createModel(config)
      const numeric = finiteDifferences(model.params.values as Float64Array, () =>
        sequenceLoss(model, { loss: 'mse', xs, targets, lossFrom: k1 }),
      )
      const { error } = worstRelativeError(second!, numeric)
      expect(error).toBeLessThan(1e-6)
    })
  }
})

/**
 * SnAp-1 by its definition, for one layer: RTRL whose sensitivities are cut, after every step, to
 * the pattern one step makes non-zero (state unit k keeps only the weights of its own gate rows).
 */
class MaskedRtrl extends Rtrl {
  protected override carry(seq: SequenceWindow, slot: Slot, prev: Slot): void {
    super.carry(seq, slot, prev)
    const b = layerBlocks(this.model)[0]!
    const J = seq.carried
    for (let i = 0; i < b.S; i++) {
      for (let p = 0; p < b.end; p++) {
        const row =
          p < b.oWhh
            ? Math.floor((p - b.oWih) / b.I)
            : p < b.oBih
              ? Math.floor((p - b.oWhh) / b.H)
              : p < b.oBhh
                ? p - b.oBih
                : p - b.oBhh
        if (row % b.H !== i % b.H) J[this.P + i * b.end + p] = 0
      }
    }
  }
}

describe('SnAp-1', () => {
  for (const cell of CELL_KINDS) {
    it(`${cell}: is RTRL with its sensitivities cut to one step's pattern after every step`, () => {
      const config = modelConfig(cell, 1, 3)
      const options = { ...base, k1: 3 }
      const masked = new OnlineTrainer(createModel(config), { ...options, algorithm: 'rtrl' })
      Reflect.set(masked, 'algorithm', new MaskedRtrl(masked.model, masked.loss, masked.options.rtrlBudget))
      const snap1 = new OnlineTrainer(createModel(config), { ...options, algorithm: 'snap1' })
      const { xs, ys } = data(30)
      let updates = 0
      xs.forEach((x, t) => {
        const expected = masked.observe(x, ys[t]).update
        const actual = snap1.observe(x, ys[t]).update
        if (expected) {
          expectSameGradient(actual!, expected, 1e-10)
          updates++
        }
      })
      expect(updates).toBe(10)
    })
    it(`${cell}: with one hidden unit it is RTRL`, () => {
      const config = modelConfig(cell, 1, 1)
      const rtrl = run(config, { ...base, k1: 3, algorithm: 'rtrl' }, 30)
      const snap1 = run(config, { ...base, k1: 3, algorithm: 'snap1' }, 30)
      expect(snap1.length).toBe(rtrl.length)
      rtrl.forEach((r, i) => {
        expectSameGradient(snap1[i]!, r, 1e-10)
      })
    })
    it(`${cell}: with more units it is an approximation (its first update is TBPTT's only where nothing crosses units)`, () => {
      const config = modelConfig(cell, 1, 4)
      const rtrl = run(config, { ...base, k1: 6, algorithm: 'rtrl' }, 6)
      const snap1 = run(config, { ...base, k1: 6, algorithm: 'snap1' }, 6)
      const gap = Math.abs(snap1[0]!.gradNorm - rtrl[0]!.gradNorm) / rtrl[0]!.gradNorm
      expect(gap).toBeGreaterThan(1e-6)
      // Still a descent direction of the same size: an approximation, not noise.
      expect(gap).toBeLessThan(0.5)
    })
  }
})

describe('UORO', () => {
  for (const cell of CELL_KINDS) {
    it(`${cell} ×2: the mean of its estimate over many draws approaches RTRL's gradient`, () => {
      const k1 = 3
      const config = modelConfig(cell, 2, 2)
      const { xs, ys } = data(k1, 9)
      const [exact] = gradients(config, { ...base, k1, algorithm: 'rtrl' }, xs, ys)
      const draws = 4000
      const sum = new Float64Array(exact!.length)
      const sumOfSquares = new Float64Array(exact!.length)
      let first = 0
      for (let d = 0; d < draws; d++) {
        const [g] = gradients(config, { ...base, k1, algorithm: 'uoro', seed: 1000 + d }, xs, ys)
        for (let i = 0; i < sum.length; i++) {
          sum[i] = sum[i]! + g![i]!
          sumOfSquares[i] = sumOfSquares[i]! + g![i]! ** 2
        }
        if (d === 0) first = distance(g!, exact!) / norm(exact!)
      }
      const mean = sum.map((s) => s / draws)
      // Unbiased: the mean misses RTRL's gradient by no more than two of its standard errors
      // (√(Σ variance / draws)) says it should, and that is a few percent; one draw is far off.
      let variance = 0
      for (let i = 0; i < sum.length; i++) variance += sumOfSquares[i]! / draws - mean[i]! ** 2
      const standardError = Math.sqrt(variance / draws)
      const miss = distance(mean, exact!)
      expect(miss).toBeLessThan(2 * standardError)
      expect(miss / norm(exact!)).toBeLessThan(0.1)
      expect(first).toBeGreaterThan(0.3)
    })
  }
})

describe('forward-mode options', () => {
  it('refuses k2, dropout and zoneout for forward-mode algorithms, and unknown options, naming them', () => {
    const model = createModel(modelConfig('gru', 1))
    const problems = (options: object, m = model) => {
      try {
        new OnlineTrainer(m, { ...base, k1: 2, ...options } as TrainerOptions)
      } catch (e) {
        expect(e).toBeInstanceOf(RxrnnError)
        return [(e as RxrnnError).message, ...(e as RxrnnError).problems].join('\n')
      }
      return ''
    }
    expect(problems({ algorithm: 'rtrl', k2: 4 })).toMatch(/k2 is 4, but algorithm 'rtrl' has no window/)
    expect(problems({ algorithm: 'snap1', dropout: { input: 0.2 } })).toMatch(
      /dropout is not supported with algorithm 'snap1'/,
    )
    const zoned = createModel({ ...modelConfig('gru', 1), zoneout: 0.1 })
    expect(problems({ algorithm: 'uoro' }, zoned)).toMatch(/does not support zoneout/)
    expect(problems({ algoritm: 'rtrl' })).toMatch(/unknown option "algoritm"/)
    expect(problems({ algorithm: 'bptt' })).toMatch(
      /algorithm is "bptt"; use one of tbptt, rtrl, snap1, uoro/,
    )
    expect(problems({ algorithm: 'uoro', rtrlBudget: { maxBytes: 1 } })).toMatch(
      /rtrlBudget applies to algorithm 'rtrl' only/,
    )
    expect(problems({ algorithm: 'rtrl' })).toBe('')
  })

  it("refuses an RTRL over its budget with the figures, suggesting 'snap1' or 'uoro'", () => {
    const model = createModel({ cell: 'lstm', inputSize: 4, hiddenSize: 64, outputSize: 1, seed: 1 })
    expect(() => new OnlineTrainer(model, { ...base, k1: 1, algorithm: 'rtrl' })).toThrow(
      /lstm 4→64→1 float32: its sensitivities take 8\.8 MiB per sequence \(2,293,760 floats; budget 64\.0 MiB\) and 2\.96e\+8 multiply-adds per step \(budget 1\.00e\+8\)\. Use algorithm 'snap1' or 'uoro'/,
    )
    expect(
      () =>
        new OnlineTrainer(model, {
          ...base,
          k1: 1,
          algorithm: 'rtrl',
          rtrlBudget: { maxMultiplyAddsPerStep: 1e9 },
        }),
    ).not.toThrow()
    for (const algorithm of ['snap1', 'uoro'] as AlgorithmName[])
      expect(() => new OnlineTrainer(model, { ...base, k1: 1, algorithm })).not.toThrow()
  })
})

function norm(a: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!
  return Math.sqrt(s)
}

function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2
  return Math.sqrt(s)
}
