import { describe, expect, it } from 'vitest'
import type { CellKind, LossName, Model, TrainerOptions } from '../../src/index.js'
import { CELL_KINDS, LOSS_NAMES, OnlineTrainer } from '../../src/index.js'
import type { LayerMasks } from '../../src/layer.js'
import {
  finiteDifferences,
  minReluPreActivation,
  parameterAt,
  Rng,
  type SequenceLossSpec,
  sequenceLoss,
  smallModel,
  targetsFor,
  twin,
  uniformRows,
  worstRelativeError,
} from '../helpers/gradcheck.js'

// Every check here is in float64: the trainer's analytic gradient (model.params.grads after the
// update, lr 0 and no clipping so nothing rescales it) against central differences (eps 1e-6)
// of the same loss recomputed from scratch. The relative error floor of 1e-3 makes entries whose
// gradient is below 1e-3 an absolute check at 1e-9 (central differences cannot resolve them better).
const EPS = 1e-6
const TOLERANCE = 1e-6
/** ReLU runs must keep every pre-activation this far from the kink at 0 (eps moves them by < 1e-5). */
const KINK_MARGIN = 1e-4

function expectGradientsMatch(model: Model, analytic: Float64Array, numeric: Float64Array): void {
  const { error, index } = worstRelativeError(analytic, numeric)
  expect(
    error,
    `worst at ${parameterAt(model, index)}: analytic ${analytic[index]}, numeric ${numeric[index]}`,
  ).toBeLessThan(TOLERANCE)
  // The check must not pass vacuously: every tensor has gradients well away from zero, and so has
  // a good share of all entries (ReLU's dead units and dropped inputs legitimately give zeros).
  for (const spec of model.params.specs) {
    const g = analytic.subarray(spec.offset, spec.offset + spec.size)
    expect(Math.max(...Array.from(g, Math.abs)), spec.name).toBeGreaterThan(1e-4)
  }
  const sizeable = Array.from(analytic).filter((g) => Math.abs(g) > 1e-4).length
  expect(sizeable).toBeGreaterThan(analytic.length / 4)
}

/** Observes the sequence, returns the gradient left in the grads by the update that fired at its end. */
function trainerGradient(
  model: Model,
  options: Partial<TrainerOptions>,
  xs: number[][],
  targets: (number[] | number | null)[],
): { grads: Float64Array; trainer: OnlineTrainer } {
  const T = xs.length
  const trainer = new OnlineTrainer(model, {
    k1: T,
    k2: T,
    loss: 'mse',
    optimizer: { type: 'sgd', lr: 0 },
    ...options,
  })
  const before = model.params.values.slice()
  xs.forEach((x, t) => {
    const { update } = trainer.observe(x, targets[t] ?? undefined)
    expect(update === undefined).toBe(t < T - 1)
    if (update) {
      expect(update.skipped).toBe(false)
      expect(update.clipped).toBe(false)
      expect(update.windowSteps).toBe(T)
    }
  })
  expect(model.params.values).toEqual(before)
  return { grads: model.params.grads.slice() as Float64Array, trainer }
}

function gradcheck(model: Model, grads: Float64Array, spec: SequenceLossSpec): void {
  const probe = twin(model)
  const values = probe.params.values as Float64Array
  const numeric = finiteDifferences(values, () => sequenceLoss(probe, spec), EPS)
  expectGradientsMatch(model, grads, numeric)
}

/** Seeds chosen so that every rnn_relu run stays KINK_MARGIN away from ReLU's kink (asserted, not assumed). */
function expectAwayFromKinks(
  model: Model,
  xs: number[][],
  masks?: (LayerMasks | null)[][],
  initialState?: ArrayLike<number>,
): void {
  if (model.config.cell !== 'rnn_relu') return
  expect(minReluPreActivation(model, xs, masks, initialState)).toBeGreaterThan(KINK_MARGIN)
}

describe('full BPTT: TBPTT(T, T) gradients equal finite differences of the sequence loss', () => {
  const T = 5
  for (const cell of CELL_KINDS) {
    for (const numLayers of [1, 2]) {
      it(`${cell}, ${numLayers} layer${numLayers > 1 ? 's' : ''}: every parameter`, () => {
        const model = smallModel(cell, numLayers, 11 + numLayers)
        const rng = new Rng(101 + numLayers)
        const xs = uniformRows(rng, T, 3)
        const targets = targetsFor('mse', rng, T, 2)
        expectAwayFromKinks(model, xs)
        const { grads } = trainerGradient(model, {}, xs, targets)
        gradcheck(model, grads, { loss: 'mse', xs, targets })
      })
    }
  }
})

describe('every loss, through the head', () => {
  const T = 3
  const cases: { loss: LossName; huberDelta?: number }[] = LOSS_NAMES.map((loss) =>
    loss === 'huber' ? { loss, huberDelta: 0.85 } : { loss },
  )
  for (const { loss, huberDelta } of cases) {
    for (const cell of ['gru', 'lstm'] as CellKind[]) {
      it(`${loss} (${cell})`, () => {
        const model = smallModel(cell, 1, 23)
        const rng = new Rng(7)
        const xs = uniformRows(rng, T, 3)
        const targets = targetsFor(loss, rng, T, 2)
        if (loss === 'huber') {
          // Both branches of Huber are exercised, and no residual sits on the switch point.
          const probe = twin(model)
          const state = probe.initialState()
          const residuals = xs.flatMap((x, t) => {
            const y = probe.step(x, state)
            return Array.from(y, (v, o) => Math.abs(v - (targets[t] as number[])[o]!))
          })
          expect(residuals.some((r) => r < huberDelta!)).toBe(true)
          expect(residuals.some((r) => r > huberDelta!)).toBe(true)
          expect(Math.min(...residuals.map((r) => Math.abs(r - huberDelta!)))).toBeGreaterThan(1e-3)
        }
        const { grads, trainer } = trainerGradient(model, { loss, huberDelta }, xs, targets)
        expect(trainer.loss.name).toBe(loss)
        gradcheck(model, grads, { loss, xs, targets, huberDelta })
        // The head's gradients are part of the check: they must be there.
        const headGrad = model.params.grad('head.weight')
        expect(Math.max(...Array.from(headGrad, Math.abs))).toBeGreaterThan(1e-3)
      })
    }
  }

  it('steps without a target add nothing: the mean runs over the steps that have one', () => {
    const T = 5
    const model = smallModel('lstm', 2, 31)
    const rng = new Rng(8)
    const xs = uniformRows(rng, T, 3)
    const targets: (number[] | null)[] = (targetsFor('mse', rng, T, 2) as number[][]).map((t, i) =>
      i === 1 || i === 4 ? null : t,
    )
    const { grads } = trainerGradient(model, {}, xs, targets)
    gradcheck(model, grads, { loss: 'mse', xs, targets })
  })
})

describe('TBPTT(k1, k2) with k2 > k1', () => {
  // k1 = 3, k2 = 5, six steps. Update 1 fires at step 3 (window 1..3) and moves the weights W0 → W1.
  // Update 2 fires at step 6: the window is steps 2..6, entered from the stored state h1 (computed
  // with W0 and held constant), re-run with W1; the loss is the mean over steps 4..6.
  const k1 = 3
  const k2 = 5
  const T = 6
  for (const cell of CELL_KINDS) {
    for (const numLayers of [1, 2]) {
      it(`${cell}, ${numLayers} layer${numLayers > 1 ? 's' : ''}: the second update's gradient`, () => {
        const model = smallModel(cell, numLayers, 41 + numLayers)
        const rng = new Rng(303 + numLayers)
        const xs = uniformRows(rng, T, 3)
        const targets = targetsFor('mse', rng, T, 2)
        const w0 = twin(model)
        const trainer = new OnlineTrainer(model, {
          k1,
          k2,
          loss: 'mse',
          optimizer: { type: 'sgd', lr: 0.5 },
        })
        let w1: Float64Array | undefined
        let grads: Float64Array | undefined
        xs.forEach((x, t) => {
          const { update } = trainer.observe(x, targets[t]!)
          if (t === 2) {
            expect(update?.windowSteps).toBe(3)
            w1 = model.params.values.slice() as Float64Array
          } else if (t === 5) {
            expect(update?.windowSteps).toBe(k2)
            expect(update?.lossSteps).toBe(k1)
            expect(update?.skipped).toBe(false)
            grads = model.params.grads.slice() as Float64Array
          } else expect(update).toBeUndefined()
        })
        // The first update really changed the weights, so re-running the window matters.
        const moved = Math.max(...Array.from(w1!, (v, i) => Math.abs(v - w0.params.values[i]!)))
        expect(moved).toBeGreaterThan(1e-2)

        // h1: the state after step 1 under W0, as the ring stored it.
        const h1 = w0.initialState()
        w0.step(xs[0]!, h1)
        expect(trainer.sequence.slotBack(k2).stateOf.data).toEqual(h1.data)

        const atW1 = twin(model)
        atW1.params.values.set(w1!)
        const spec: SequenceLossSpec = {
          loss: 'mse',
          xs: xs.slice(1),
          targets: targets.slice(1),
          lossFrom: k2 - k1,
          initialState: h1.data,
        }
        expectAwayFromKinks(atW1, spec.xs, undefined, h1.data)
        gradcheck(atW1, grads!, spec)
      })
    }
  }
})

/** The masks the trainer used at each of the last T steps, per layer, copied out of its ring. */
function masksFromRing(trainer: OnlineTrainer, T: number): (LayerMasks | null)[][] {
  return Array.from({ length: T }, (_, t) =>
    trainer.sequence.slotBack(T - 1 - t).masks.map((m) =>
      m
        ? {
            x: m.x ? m.x.slice() : null,
            h: m.h ? m.h.slice() : null,
            zone: m.zone ? m.zone.slice() : null,
          }
        : null,
    ),
  )
}

describe('regularised training: gradients with the masks held fixed', () => {
  const T = 5
  const variants = [
    { name: 'variational dropout (input 0.3, recurrent 0.3)', dropout: { input: 0.3, recurrent: 0.3 } },
    { name: 'zoneout 0.2', zoneout: 0.2 },
    { name: 'dropout and zoneout together', dropout: { input: 0.3, recurrent: 0.3 }, zoneout: 0.2 },
  ]
  for (const v of variants) {
    for (const cell of CELL_KINDS) {
      it(`${v.name}: ${cell}, 2 layers`, () => {
        const model = smallModel(cell, 2, 53, v.zoneout ? { zoneout: v.zoneout } : {})
        const rng = new Rng(505)
        const xs = uniformRows(rng, T, 3)
        const targets = targetsFor('mse', rng, T, 2)
        const { grads, trainer } = trainerGradient(
          model,
          { ...(v.dropout ? { dropout: v.dropout } : {}), seed: 10 },
          xs,
          targets,
        )
        const masks = masksFromRing(trainer, T)
        // The masks really do something: some units are dropped / zoned out and some are not.
        const all = (pick: (m: LayerMasks) => Float64Array | Float32Array | null) =>
          masks.flatMap((step) => step.flatMap((m) => (m && pick(m) ? Array.from(pick(m)!) : [])))
        if (v.dropout) {
          for (const pick of [(m: LayerMasks) => m.x, (m: LayerMasks) => m.h]) {
            const values = all(pick)
            expect(values).toContain(0)
            expect(values.some((s) => Math.abs(s - 1 / 0.7) < 1e-12)).toBe(true)
            expect(values.every((s) => s === 0 || Math.abs(s - 1 / 0.7) < 1e-12)).toBe(true)
          }
          // Variational: one mask for the whole window.
          const windowPart = (step: (LayerMasks | null)[]) => step.map((m) => [m!.x, m!.h])
          for (const step of masks) expect(windowPart(step)).toEqual(windowPart(masks[0]!))
        }
        if (v.zoneout) {
          const zone = all((m) => m.zone)
          expect(zone).toContain(0)
          expect(zone).toContain(1)
        }
        expectAwayFromKinks(model, xs, masks)
        gradcheck(model, grads, { loss: 'mse', xs, targets, masks })
      })
    }
  }
})
