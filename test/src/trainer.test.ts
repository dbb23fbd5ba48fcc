import { describe, expect, it } from 'vitest'
import type { FloatArray, Model, TrainerOptions, UpdateReport } from '../../src/index.js'
import { createModel, OnlineTrainer, RxrnnError } from '../../src/index.js'
import { Rng, sequenceLoss, smallModel, targetsFor, twin, uniformRows } from '../helpers/gradcheck.js'

const sgd = (lr: number, extra: object = {}) => ({ type: 'sgd' as const, lr, ...extra })

function trainerFor(model: Model, options: Partial<TrainerOptions> = {}): OnlineTrainer {
  return new OnlineTrainer(model, { k1: 3, loss: 'mse', optimizer: sgd(0.1), ...options })
}

function data(steps: number, seed = 1, inputSize = 3, outputSize = 2) {
  const rng = new Rng(seed)
  return {
    xs: uniformRows(rng, steps, inputSize),
    targets: targetsFor('mse', rng, steps, outputSize) as number[][],
  }
}

/** Everything a rejected event must leave as it was. */
function snapshot(trainer: OnlineTrainer) {
  const seq = trainer.sequence
  return {
    weights: Array.from(trainer.model.params.values),
    optimizer: Object.fromEntries(
      Object.entries(trainer.optimizer.state).map(([k, v]) => [k, Array.from(v)]),
    ),
    optimizerT: trainer.optimizer.t,
    state: Array.from(trainer.state.data),
    observed: seq.observed,
    filled: seq.filled,
    sinceUpdate: seq.sinceUpdate,
    newest: seq.newest,
  }
}

function thrown(f: () => unknown): RxrnnError {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(RxrnnError)
    return e as RxrnnError
  }
  throw new Error('expected a throw')
}

describe('predictions', () => {
  for (const cell of ['rnn_tanh', 'lstm'] as const) {
    it(`${cell}: y_t is made with the weights from before the update step t triggers`, () => {
      const model = smallModel(cell, 2, 3)
      const trainer = trainerFor(model, { k1: 3, k2: 5, optimizer: sgd(0.3) })
      const reference = twin(model)
      const refState = reference.initialState()
      const { xs, targets } = data(12)
      const kept: FloatArray[] = []
      xs.forEach((x, t) => {
        reference.copyWeightsFrom(model)
        const expected = Float64Array.from(reference.step(x, refState))
        const before = model.params.values.slice()
        const { prediction, update } = trainer.observe(x, targets[t]!)
        expect(prediction).toEqual(expected)
        expect(trainer.state.data).toEqual(refState.data)
        expect(update !== undefined).toBe((t + 1) % 3 === 0)
        if (update) {
          // The update did move the weights, so a prediction made after it would differ.
          expect(model.params.values).not.toEqual(before)
          const after = twin(model)
          const s = after.initialState()
          s.data.set(trainer.sequence.slotBack(1).stateOf.data)
          expect(
            Math.max(...Array.from(after.step(x, s), (v, o) => Math.abs(v - expected[o]!))),
          ).toBeGreaterThan(1e-6)
        }
        kept.push(prediction)
      })
      // Predictions are copies: later steps do not overwrite them.
      expect(kept[0]).not.toBe(kept[1])
      reference.copyWeightsFrom(twin(smallModel(cell, 2, 3)))
      const fresh = reference.initialState()
      expect(kept[0]).toEqual(Float64Array.from(reference.step(xs[0]!, fresh)))
    })
  }
})

describe('steps without targets', () => {
  it('add no loss: the loss is the mean over the steps that have a target', () => {
    const model = smallModel('gru', 1, 5)
    const probe = twin(model)
    const trainer = trainerFor(model, { k1: 4, k2: 4 })
    const { xs, targets } = data(4)
    const sparse = targets.map((t, i) => (i === 0 || i === 2 ? t : null))
    let report: UpdateReport | undefined
    xs.forEach((x, t) => {
      report = trainer.observe(x, sparse[t] ?? undefined).update
    })
    expect(report?.lossSteps).toBe(2)
    expect(report?.windowSteps).toBe(4)
    const expected = sequenceLoss(probe, { loss: 'mse', xs, targets: sparse })
    expect(Math.abs(report!.loss - expected)).toBeLessThan(1e-14)
    // By hand: mean over 2 steps × 2 outputs of (y − t)².
    const state = probe.initialState()
    let sum = 0
    xs.forEach((x, t) => {
      const y = probe.step(x, state)
      if (sparse[t]) for (let o = 0; o < 2; o++) sum += (y[o]! - sparse[t]![o]!) ** 2
    })
    expect(Math.abs(report!.loss - sum / 4)).toBeLessThan(1e-14)
  })

  it('a window with no target triggers no update, and the next window starts after it', () => {
    const model = smallModel('lstm', 1, 6)
    const trainer = trainerFor(model, { k1: 2, k2: 4, optimizer: { type: 'adam', lr: 0.01 } })
    const { xs, targets } = data(6)
    const before = model.params.values.slice()
    expect(trainer.observe(xs[0]!).update).toBeUndefined()
    expect(trainer.observe(xs[1]!, null as unknown as undefined).update).toBeUndefined()
    expect(trainer.optimizer.t).toBe(0)
    expect(model.params.values).toEqual(before)
    expect(trainer.sequence.sinceUpdate).toBe(0)
    expect(trainer.observe(xs[2]!, targets[2]!).update).toBeUndefined()
    const update = trainer.observe(xs[3]!, targets[3]!).update!
    expect(update.step).toBe(4)
    expect(update.lossSteps).toBe(2)
    expect(update.windowSteps).toBe(4)
    expect(update.update).toBe(1)
    expect(model.params.values).not.toEqual(before)
  })
})

describe('clipping', () => {
  /** The raw gradient of the first update, from a twin that neither clips nor learns. */
  function rawGradient(model: Model, xs: number[][], targets: number[][]) {
    const probe = twin(model)
    const t = trainerFor(probe, { k1: 4, optimizer: sgd(0) })
    for (let i = 0; i < 4; i++) t.observe(xs[i]!, targets[i]!)
    const g = probe.params.grads.slice() as Float64Array
    let sq = 0
    for (const v of g) sq += v * v
    return { g, norm: Math.sqrt(sq) }
  }

  function firstUpdate(options: Partial<TrainerOptions>) {
    const model = smallModel('gru', 2, 8)
    const { xs, targets } = data(4, 8)
    const raw = rawGradient(model, xs, targets)
    const w0 = model.params.values.slice()
    const trainer = trainerFor(model, { k1: 4, optimizer: sgd(0.5), ...options })
    let report: UpdateReport | undefined
    xs.forEach((x, i) => {
      report = trainer.observe(x, targets[i]!).update
    })
    return { model, raw, w0, report: report!, lr: 0.5 }
  }

  const expectStep = (model: Model, w0: ArrayLike<number>, step: ArrayLike<number>, lr: number) => {
    const values = model.params.values
    for (let i = 0; i < values.length; i++)
      expect(Math.abs(values[i]! - (w0[i]! - lr * step[i]!))).toBeLessThan(1e-15)
  }

  it('clipNorm scales by clipNorm / (norm + 1e-6) when that is below 1', () => {
    const clipNorm = 0.01
    const { model, raw, w0, report, lr } = firstUpdate({ clipNorm })
    expect(raw.norm).toBeGreaterThan(10 * clipNorm)
    expect(Math.abs(report.gradNorm - raw.norm) / raw.norm).toBeLessThan(1e-14)
    expect(report.clipped).toBe(true)
    const factor = clipNorm / (raw.norm + 1e-6)
    expect(Math.abs(report.clippedGradNorm - factor * raw.norm) / clipNorm).toBeLessThan(1e-12)
    expect(Math.abs(report.clippedGradNorm - clipNorm) / clipNorm).toBeLessThan(1e-5)
    expect(report.clipRate).toBe(1)
    const clipped = raw.g.map((v) => v * factor)
    for (let i = 0; i < clipped.length; i++)
      expect(Math.abs(model.params.grads[i]! - clipped[i]!)).toBeLessThan(1e-16)
    expectStep(model, w0, clipped, lr)
  })

  it('clipNorm above the norm changes nothing', () => {
    const { model, raw, w0, report, lr } = firstUpdate({ clipNorm: 1e3 })
    expect(report.clipped).toBe(false)
    expect(report.clippedGradNorm).toBe(report.gradNorm)
    expect(report.clipRate).toBe(0)
    expectStep(model, w0, raw.g, lr)
  })

  it('clipValue clamps each gradient to ±clipValue', () => {
    const probe = firstUpdate({ clipNorm: 1e3 })
    const clipValue = 0.5 * Math.max(...Array.from(probe.raw.g, Math.abs))
    const { model, raw, w0, report, lr } = firstUpdate({ clipValue })
    const clamped = raw.g.map((v) => Math.min(clipValue, Math.max(-clipValue, v)))
    expect(clamped.filter((v, i) => v !== raw.g[i]).length).toBeGreaterThan(0)
    expect(report.clipped).toBe(true)
    expect(Math.abs(report.gradNorm - raw.norm) / raw.norm).toBeLessThan(1e-14)
    expect(Math.abs(report.clippedGradNorm - Math.hypot(...clamped))).toBeLessThan(1e-14)
    expect(Array.from(model.params.grads)).toEqual(Array.from(clamped))
    expectStep(model, w0, clamped, lr)
  })

  it('clipValue comes first, then clipNorm rescales the clamped gradient', () => {
    const probe = firstUpdate({})
    const clipValue = 0.5 * Math.max(...Array.from(probe.raw.g, Math.abs))
    const clipNorm = 0.01
    const { model, raw, w0, report, lr } = firstUpdate({ clipValue, clipNorm })
    const clamped = raw.g.map((v) => Math.min(clipValue, Math.max(-clipValue, v)))
    const factor = clipNorm / (Math.hypot(...clamped) + 1e-6)
    expect(report.clipped).toBe(true)
    expect(Math.abs(report.clippedGradNorm - clipNorm) / clipNorm).toBeLessThan(1e-5)
    expectStep(
      model,
      w0,
      clamped.map((v) => v * factor),
      lr,
    )
  })
})

describe('non-finite values', () => {
  function warmTrainer() {
    const model = smallModel('lstm', 2, 12)
    const trainer = trainerFor(model, { k1: 3, k2: 5, optimizer: { type: 'adam', lr: 0.01 } })
    const reference = trainerFor(twin(model), { k1: 3, k2: 5, optimizer: { type: 'adam', lr: 0.01 } })
    return { model, trainer, reference }
  }

  it('a non-finite or malformed x or target throws before anything changes, and the stream goes on', () => {
    const { trainer, reference } = warmTrainer()
    const { xs, targets } = data(10, 12)
    const bad: [number[], unknown, string][] = [
      [[Number.NaN, 0, 0], [0, 0], 'bad_input'],
      [[0, Number.POSITIVE_INFINITY, 0], [0, 0], 'bad_input'],
      [[0, 0], [0, 0], 'bad_input'],
      [[0, 0, 0], [Number.NaN, 0], 'bad_target'],
      [[0, 0, 0], [0, Number.NEGATIVE_INFINITY], 'bad_target'],
      [[0, 0, 0], [0], 'bad_target'],
    ]
    xs.forEach((x, t) => {
      // Bad events arrive at every phase of the window (t = 4: mid-window after an update; t = 5: an update is due).
      if (t === 4 || t === 5) {
        for (const [badX, badTarget, code] of bad) {
          const before = snapshot(trainer)
          const e = thrown(() => trainer.observe(badX, badTarget as number[]))
          expect(e.code).toBe(code)
          expect(snapshot(trainer)).toEqual(before)
        }
      }
      const a = trainer.observe(x, targets[t]!)
      const b = reference.observe(x, targets[t]!)
      expect(a.prediction).toEqual(b.prediction)
      expect(a.update?.loss).toEqual(b.update?.loss)
    })
    expect(trainer.optimizer.t).toBe(3)
    expect(trainer.model.params.values).toEqual(reference.model.params.values)
  })

  it('a non-finite gradient skips the update and leaves weights and optimizer state untouched', () => {
    const model = smallModel('rnn_relu', 1, 13)
    const trainer = trainerFor(model, { k1: 3, optimizer: { type: 'adam', lr: 0.01 } })
    const { xs, targets } = data(9, 13)
    for (let t = 0; t < 3; t++) trainer.observe(xs[t]!, targets[t]!)
    expect(trainer.optimizer.t).toBe(1)
    // A head weight of 1e300 makes the loss overflow to Infinity and the gradient norm with it.
    model.getParameter('head.weight')[0] = 1e300
    const before = snapshot(trainer)
    let report: UpdateReport | undefined
    for (let t = 3; t < 6; t++) report = trainer.observe(xs[t]!, targets[t]!).update
    expect(report?.skipped).toBe(true)
    expect(report?.reason).toMatch(/non-finite/)
    expect(report?.rolledBack).toBe(false)
    expect(Number.isFinite(report!.gradNorm)).toBe(false)
    const after = snapshot(trainer)
    expect(after.weights).toEqual(before.weights)
    expect(after.optimizer).toEqual(before.optimizer)
    expect(after.optimizerT).toBe(before.optimizerT)
    // Repair the weight: the next update is applied again.
    model.getParameter('head.weight')[0] = 0.1
    for (let t = 6; t < 9; t++) report = trainer.observe(xs[t]!, targets[t]!).update
    expect(report?.skipped).toBe(false)
    expect(trainer.optimizer.t).toBe(2)
  })

  it('activations overflowing under a huge learning rate: skipped, weights and state kept', () => {
    const model = smallModel('rnn_relu', 1, 14, { init: { recurrent: 'identity' } })
    const trainer = trainerFor(model, { k1: 2, optimizer: sgd(1e150, { momentum: 0.9 }) })
    const { xs, targets } = data(40, 14)
    let skipped = 0
    xs.forEach((x, t) => {
      const before = snapshot(trainer)
      const { update } = trainer.observe(
        x.map((v) => Math.abs(v) + 0.1),
        targets[t]!,
      )
      if (update?.skipped) {
        skipped++
        expect(update.reason).toMatch(/non-finite/)
        const after = snapshot(trainer)
        expect(after.weights).toEqual(before.weights)
        expect(after.optimizer).toEqual(before.optimizer)
        expect(after.optimizerT).toBe(before.optimizerT)
      }
    })
    expect(skipped).toBeGreaterThan(0)
    expect(model.params.values.every(Number.isFinite)).toBe(true)
  })
})

describe('learning rate 0', () => {
  it('gives complete reports and leaves the weights exactly as they were', () => {
    const model = smallModel('gru', 2, 15)
    const trainer = trainerFor(model, { k1: 2, k2: 4, optimizer: { type: 'adamw', lr: 0 } })
    const before = model.params.values.slice()
    const { xs, targets } = data(8, 15)
    const reports: UpdateReport[] = []
    xs.forEach((x, t) => {
      const { update } = trainer.observe(x, targets[t]!)
      if (update) reports.push(update)
    })
    expect(reports.map((r) => [r.step, r.update, r.windowSteps, r.lossSteps])).toEqual([
      [2, 1, 2, 2],
      [4, 2, 4, 2],
      [6, 3, 4, 2],
      [8, 4, 4, 2],
    ])
    for (const r of reports) {
      expect(r.lr).toBe(0)
      expect(r.loss).toBeGreaterThan(0)
      expect(r.gradNorm).toBeGreaterThan(0)
      expect(r.clippedGradNorm).toBe(r.gradNorm)
      expect([r.clipped, r.skipped, r.rolledBack, r.clipRate, r.reason]).toEqual([
        false,
        false,
        false,
        0,
        undefined,
      ])
      expect(Object.keys(r.paramGradNorms)).toEqual(model.parameterNames())
      const total = Math.hypot(...Object.values(r.paramGradNorms))
      expect(Math.abs(total - r.gradNorm) / r.gradNorm).toBeLessThan(1e-14)
      expect(r.gradientFlow?.norms).toHaveLength(r.windowSteps)
      expect(r.gradientFlow!.norms.every((n) => n > 0 && Number.isFinite(n))).toBe(true)
      expect(Number.isFinite(r.gradientFlow!.logGainPerStep)).toBe(true)
      expect(r.spectralRadius).toHaveLength(2)
    }
    expect(model.params.values).toEqual(before)
  })
})

describe('reset', () => {
  it('zeroes the state and forgets the window; weights and optimizer state are kept', () => {
    const model = smallModel('lstm', 2, 16)
    const trainer = trainerFor(model, { k1: 3, k2: 6, optimizer: { type: 'adam', lr: 0.01 } })
    const { xs, targets } = data(10, 16)
    for (let t = 0; t < 7; t++) trainer.observe(xs[t]!, targets[t]!)
    expect(trainer.optimizer.t).toBe(2)
    const weights = model.params.values.slice()
    const moments = trainer.optimizer.state.expAvg!.slice()
    trainer.reset()
    expect(trainer.state.data.every((v) => v === 0)).toBe(true)
    expect(model.params.values).toEqual(weights)
    expect(trainer.optimizer.state.expAvg).toEqual(moments)
    expect(trainer.optimizer.t).toBe(2)
    expect(trainer.sequence.observed).toBe(7)

    // The next update covers only the 3 steps after the reset, run from a zero state: the same
    // gradient a fresh trainer with these weights computes from those 3 steps.
    const fresh = twin(model)
    const freshTrainer = trainerFor(fresh, { k1: 3, k2: 6, optimizer: sgd(0) })
    let report: UpdateReport | undefined
    for (let t = 7; t < 10; t++) {
      const p = trainer.observe(xs[t]!, targets[t]!)
      const q = freshTrainer.observe(xs[t]!, targets[t]!)
      expect(p.prediction).toEqual(q.prediction)
      report = p.update
    }
    expect(report?.windowSteps).toBe(3)
    expect(report?.step).toBe(10)
    expect(report?.update).toBe(3)
    expect(model.params.grads).toEqual(fresh.params.grads)
  })
})

describe('the ring buffer', () => {
  it('after 10 000 steps holds k2 + 1 slots in the same buffers, and observeSequence hands out ring buffers', () => {
    const model = smallModel('gru', 1, 17)
    const k1 = 4
    const k2 = 8
    const trainer = trainerFor(model, { k1, k2, optimizer: sgd(0.01), diagnosticsEvery: 0 })
    const seq = trainer.sequence
    const slots = seq.slots
    const buffer = slots[0]!.x.buffer
    const ys = new Set(slots.map((s) => s.y))
    const rng = new Rng(17)
    const x = new Float64Array(3)
    const target = new Float64Array(2)
    const seen: unknown[] = []
    let updates = 0
    for (let t = 0; t < 10_000; t++) {
      for (let i = 0; i < 3; i++) x[i] = rng.range(-1, 1)
      target[0] = x[0]! * x[1]!
      target[1] = x[2]!
      const { prediction, update } = trainer.observeSequence(seq, x, target)
      if (update) updates++
      if (t >= 9_000) {
        expect(prediction).toBe(seq.slots[seq.newest]!.y)
        expect(ys.has(prediction as Float64Array)).toBe(true)
        seen.push(prediction)
      }
    }
    expect(seq.slots).toBe(slots)
    expect(seq.slots).toHaveLength(k2 + 1)
    expect(seq.capacity).toBe(k2 + 1)
    for (const s of seq.slots) expect(s.x.buffer).toBe(buffer)
    expect(seq.observed).toBe(10_000)
    expect(seq.filled).toBe(k2)
    expect(seq.sinceUpdate).toBe(0)
    expect(updates).toBe(10_000 / k1)
    expect(trainer.optimizer.t).toBe(10_000 / k1)
    // The same k2 + 1 buffers, cycled: step t and step t + k2 + 1 return the same one.
    expect(new Set(seen).size).toBe(k2 + 1)
    for (let i = 0; i + k2 + 1 < seen.length; i++) expect(seen[i + k2 + 1]).toBe(seen[i])
  })

  it('a sequence that stores no activations recomputes them: same predictions and gradients', () => {
    const stored = smallModel('lstm', 2, 18)
    const recomputed = twin(stored)
    const a = trainerFor(stored, { k1: 3, k2: 5, optimizer: sgd(0.2) })
    const b = trainerFor(recomputed, { k1: 3, k2: 5, optimizer: sgd(0.2) })
    const small = b.createSequence({ storeActivations: false })
    expect(small.slots[0]!.caches).toHaveLength(0)
    const { xs, targets } = data(12, 18)
    xs.forEach((x, t) => {
      const p = a.observeSequence(a.sequence, x, targets[t]!)
      const q = b.observeSequence(small, x, targets[t]!)
      expect(Array.from(q.prediction)).toEqual(Array.from(p.prediction))
      expect(q.update?.loss).toBe(p.update?.loss)
      if (p.update) {
        for (let i = 0; i < stored.params.size; i++)
          expect(Math.abs(recomputed.params.grads[i]! - stored.params.grads[i]!)).toBeLessThan(1e-15)
      }
    })
  })
})

describe('diagnostics', () => {
  function firstReport(model: Model, inputScale: number, k = 8): UpdateReport {
    const trainer = trainerFor(model, { k1: k, k2: k, optimizer: sgd(0) })
    const rng = new Rng(19)
    let report: UpdateReport | undefined
    for (let t = 0; t < k; t++) {
      const x = Array.from({ length: model.config.inputSize }, () => inputScale * rng.range(-1, 1))
      const target = Array.from({ length: model.config.outputSize }, () => rng.range(-1, 1))
      report = trainer.observe(x, target).update
    }
    return report!
  }
  const tanhRnn = (gain: number) =>
    createModel({
      cell: 'rnn_tanh',
      inputSize: 2,
      hiddenSize: 8,
      outputSize: 1,
      dtype: 'float64',
      seed: 20,
      init: { recurrent: 'orthogonal', gain, bias: 'zeros' },
    })

  it('a small recurrent matrix (orthogonal, gain 0.5) makes gradients vanish', () => {
    const report = firstReport(tanhRnn(0.5), 1)
    expect(report.gradientFlow!.norms).toHaveLength(report.windowSteps)
    const slope = report.gradientFlow!.logGainPerStep
    // Each step back multiplies by Wᵀ (norm 0.5) and tanh′ ≤ 1: at most ln 0.5 per step.
    expect(slope).toBeLessThan(Math.log(0.5) + 1e-9)
    expect(slope).toBeGreaterThan(Math.log(0.5) - 0.5)
    expect(Math.abs(report.spectralRadius![0]! - 0.5) / 0.5).toBeLessThan(0.05)
  })

  it('a large recurrent matrix (orthogonal, gain 3) with small inputs makes them explode', () => {
    const report = firstReport(tanhRnn(3), 1e-6)
    const flow = report.gradientFlow!
    expect(flow.norms).toHaveLength(8)
    // Tiny inputs keep tanh in its linear part (tanh′ ≈ 1): the gain is ‖3Q‖ = 3 per step.
    for (let k = 1; k < flow.norms.length; k++) expect(flow.norms[k]! / flow.norms[k - 1]!).toBeCloseTo(3, 4)
    expect(flow.logGainPerStep).toBeCloseTo(Math.log(3), 4)
    expect(Math.abs(report.spectralRadius![0]! - 3) / 3).toBeLessThan(0.05)
  })

  it('spectralRadius reads the gain of an orthogonal init in every layer and cell, and 1 for identity', () => {
    for (const cell of ['rnn_tanh', 'lstm', 'gru'] as const) {
      const model = smallModel(cell, 2, 21, { hiddenSize: 6, init: { recurrent: 'orthogonal', gain: 1.5 } })
      if (cell !== 'rnn_tanh') {
        // Gated cells: the radius is the candidate block's (LSTM g, GRU n: both block 2). Shrink the
        // other blocks so that reading the wrong one would show.
        const H = 6
        for (let l = 0; l < 2; l++) {
          const w = model.getParameter(`rnn.weight_hh_l${l}`)
          for (let i = 0; i < w.length; i++) if (Math.floor(i / (H * H)) !== 2) w[i] = w[i]! * 0.1
        }
      }
      const radii = firstReport(model, 1, 3).spectralRadius!
      expect(radii).toHaveLength(2)
      for (const r of radii) expect(Math.abs(r - 1.5) / 1.5).toBeLessThan(0.05)
    }
    const irnn = smallModel('rnn_relu', 2, 22, { init: { recurrent: 'identity' } })
    for (const r of firstReport(irnn, 1, 3).spectralRadius!) expect(Math.abs(r - 1)).toBeLessThan(0.05)
  })

  it('diagnosticsEvery: 0 measures nothing, 2 every second update', () => {
    const run = (every: number) => {
      const trainer = trainerFor(smallModel('gru', 1, 23), {
        k1: 2,
        optimizer: sgd(0),
        diagnosticsEvery: every,
      })
      const { xs, targets } = data(8, 23)
      return xs.flatMap((x, t) => {
        const u = trainer.observe(x, targets[t]!).update
        return u ? [[u.gradientFlow !== undefined, u.spectralRadius !== undefined]] : []
      })
    }
    expect(run(0)).toEqual([
      [false, false],
      [false, false],
      [false, false],
      [false, false],
    ])
    expect(run(2)).toEqual([
      [false, false],
      [true, true],
      [false, false],
      [true, true],
    ])
  })
})

describe('rollback', () => {
  it('a diverging update is refused and the weights go back to the last good copy; the stream goes on', () => {
    const model = smallModel('rnn_tanh', 1, 24, { hiddenSize: 8 })
    const trainer = trainerFor(model, {
      k1: 2,
      optimizer: sgd(30, { momentum: 0.5 }),
      rollback: { lossFactor: 5, every: 1 },
    })
    const rng = new Rng(24)
    // The last good copy: the weights (and optimizer state) whose loss was last accepted.
    let good: ReturnType<typeof snapshot> | undefined
    let rolledBack = 0
    let appliedAfterRollback = 0
    for (let t = 0; t < 200; t++) {
      const before = snapshot(trainer)
      const x = [rng.range(-1, 1), rng.range(-1, 1), rng.range(-1, 1)]
      const { prediction, update } = trainer.observe(x, [0.3 * x[0]!, -0.2 * x[1]!])
      expect(prediction.every(Number.isFinite)).toBe(true)
      if (!update) continue
      if (update.rolledBack) {
        rolledBack++
        expect(update.skipped).toBe(true)
        expect(update.reason).toMatch(/diverging/)
        const after = snapshot(trainer)
        expect(after.weights).toEqual(good!.weights)
        expect(after.optimizer).toEqual(good!.optimizer)
        expect(after.optimizerT).toBe(good!.optimizerT)
        // Going back means going somewhere else: the refused weights were not the good ones.
        expect(after.weights).not.toEqual(before.weights)
      } else {
        expect(update.skipped).toBe(false)
        good = before
        if (rolledBack > 0) appliedAfterRollback++
      }
    }
    expect(rolledBack).toBeGreaterThan(0)
    expect(appliedAfterRollback).toBeGreaterThan(0)
  })
})

describe('bad options', () => {
  const model = smallModel('gru', 1, 25)
  const problemsOf = (options: unknown) => thrown(() => new OnlineTrainer(model, options as TrainerOptions))

  it('lists every problem at once under bad_config', () => {
    const e = problemsOf({ k1: 4, k2: 2, loss: 'l1', optimizer: { type: 'sgd', lr: -1 } })
    expect(e.code).toBe('bad_config')
    expect(e.problems).toHaveLength(3)
    expect(e.problems[0]).toMatch(/k2 \(2\) is smaller than k1 \(4\)/)
    expect(e.problems[1]).toMatch(/loss is "l1"/)
    expect(e.problems[2]).toMatch(/lr is -1/)
  })

  it('a missing optimizer is one of the problems', () => {
    const e = problemsOf({ k1: 0, loss: 'mse', clipNorm: -1, dropout: { input: 1 } })
    expect(e.code).toBe('bad_config')
    expect(e.problems).toHaveLength(4)
    expect(e.problems.join('\n')).toMatch(/k1 is 0/)
    expect(e.problems.join('\n')).toMatch(/clipNorm is -1/)
    expect(e.problems.join('\n')).toMatch(/dropout.input is 1/)
    expect(e.problems.join('\n')).toMatch(/optimizer is missing/)
  })

  it('an unknown optimizer type and bad optimizer fields are listed with the rest', () => {
    const e = problemsOf({ k1: 2, loss: 'mse', huberDelta: 0, optimizer: { type: 'lbfgs', lr: 1 } })
    expect(e.problems).toHaveLength(2)
    expect(e.problems.join('\n')).toMatch(/huberDelta/)
    expect(e.problems.join('\n')).toMatch(/optimizer.type is "lbfgs"/)
    const f = problemsOf({ k1: 2, loss: 'mse', optimizer: { type: 'adam', lr: Number.NaN, beta1: 1 } })
    expect(f.problems).toHaveLength(2)
  })
})
