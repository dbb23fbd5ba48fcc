import { describe, expect, it } from 'vitest'
import type { UpdateReport } from '../../src/index.js'
import { createModel, OnlineTrainer } from '../../src/index.js'
import type { ReferenceCase } from '../helpers/reference.js'
import { flat, loadReferenceCases, loadReferenceWeights, maxRelativeError } from '../helpers/reference.js'

const trainCases = loadReferenceCases().filter((c) => c.kind === 'train')
const tolerance = { float32: 2e-6, float64: 1e-9 } as const

function trainerFor(
  c: ReferenceCase,
  dtype: 'float32' | 'float64',
  overrides: { lr?: number; clip?: boolean } = {},
  backend: 'wasm' | 'js' = 'js',
) {
  const model = createModel({ ...c, dtype, seed: 1 }, { backend })
  expect(model.kernels.name).toBe(backend)
  model.loadSafetensors(loadReferenceWeights(c))
  const trainer = new OnlineTrainer(model, {
    k1: c.k1!,
    k2: c.k2!,
    loss: c.loss!,
    optimizer: { type: c.optimizer!, lr: overrides.lr ?? c.lr! },
    ...(overrides.clip === false ? {} : { clipNorm: c.clipNorm! }),
  })
  return { model, trainer }
}

describe('online TBPTT matches PyTorch', () => {
  for (const c of trainCases) {
    for (const [dtype, backend] of [
      ['float32', 'wasm'],
      ['float32', 'js'],
      ['float64', 'js'],
    ] as const) {
      it(`${c.name} in ${dtype} (${backend} kernels): predictions, losses, gradient norms, clipping, final weights`, () => {
        const { model, trainer } = trainerFor(c, dtype, {}, backend)
        const updates: UpdateReport[] = []
        c.x.forEach((x, t) => {
          const { prediction, update } = trainer.observe(x, c.target![t]!)
          expect(maxRelativeError(prediction, c.predictions![t]!), `prediction ${t}`).toBeLessThan(
            tolerance[dtype],
          )
          if (update) updates.push(update)
        })
        expect(updates.length).toBe(c.updates!.length)
        c.updates!.forEach((ref, i) => {
          const u = updates[i]!
          expect(u.step).toBe(ref.step)
          expect(u.clipped).toBe(ref.clipped)
          expect(Math.abs(u.loss - ref.loss) / ref.loss).toBeLessThan(tolerance[dtype])
          expect(Math.abs(u.gradNorm - ref.gradNorm) / ref.gradNorm).toBeLessThan(tolerance[dtype])
        })
        for (const [name, value] of Object.entries(c.finalParams!)) {
          expect(maxRelativeError(model.getParameter(name), flat(value)), name).toBeLessThan(
            10 * tolerance[dtype],
          )
        }
        for (let l = 0; l < c.numLayers; l++) {
          expect(maxRelativeError(trainer.state.hidden(l), c.final.h[l]!)).toBeLessThan(10 * tolerance[dtype])
        }
      })
    }

    it(`${c.name}: the first update's unclipped gradients`, () => {
      const { model, trainer } = trainerFor(c, 'float64', { lr: 0, clip: false })
      for (let t = 0; t < c.k1!; t++) trainer.observe(c.x[t]!, c.target![t]!)
      for (const [name, value] of Object.entries(c.firstGrads!)) {
        expect(maxRelativeError(model.params.grad(name), flat(value)), name).toBeLessThan(1e-9)
      }
    })
  }
})
