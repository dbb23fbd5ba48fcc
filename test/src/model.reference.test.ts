import { describe, expect, it } from 'vitest'
import { createModel } from '../../src/index.js'
import { flat, loadReferenceCases, loadReferenceWeights, maxRelativeError } from '../helpers/reference.js'

const forwardCases = loadReferenceCases().filter((c) => c.kind === 'forward')
const tolerance = { float32: 1e-6, float64: 1e-9 } as const

describe('forward pass matches PyTorch', () => {
  for (const c of forwardCases) {
    for (const [dtype, backend] of [
      ['float32', 'wasm'],
      ['float32', 'js'],
      ['float64', 'js'],
    ] as const) {
      it(`${c.name} in ${dtype} (${backend} kernels)`, () => {
        const model = createModel({ ...c, dtype, seed: 1 }, { backend })
        expect(model.kernels.name).toBe(backend)
        model.loadSafetensors(loadReferenceWeights(c))
        for (const [name, value] of Object.entries(c.params!)) {
          expect(maxRelativeError(model.getParameter(name), flat(value))).toBeLessThan(1e-12)
        }
        const state = model.initialState()
        c.x.forEach((x, t) => {
          const y = model.step(x, state)
          expect(maxRelativeError(y, c.y![t]!), `y at step ${t}`).toBeLessThan(tolerance[dtype])
        })
        for (let l = 0; l < c.numLayers; l++) {
          expect(maxRelativeError(state.hidden(l), c.final.h[l]!)).toBeLessThan(tolerance[dtype])
          if (c.final.c) {
            const cell = state.layers[l]!.subarray(c.hiddenSize)
            expect(maxRelativeError(cell, c.final.c[l]!)).toBeLessThan(tolerance[dtype])
          }
        }
      })
    }
  }

  it('round-trips its weights through safetensors with the same names', () => {
    const c = forwardCases[0]!
    const model = createModel({ ...c, dtype: 'float64', seed: 1 })
    model.loadSafetensors(loadReferenceWeights(c))
    const copy = createModel({ ...c, dtype: 'float64', seed: 2 })
    copy.loadSafetensors(model.toSafetensors())
    expect(Array.from(copy.params.values)).toEqual(Array.from(model.params.values))
  })
})
