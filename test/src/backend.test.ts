import { describe, expect, it } from 'vitest'
import type { CellKind, TrainerOptions } from '../../src/index.js'
import { createModel, KeyedTrainer, OnlineTrainer, Rng } from '../../src/index.js'
import { wasmSimdSupported } from '../../src/wasm/kernels.js'

// The WebAssembly SIMD kernels and the portable TypeScript ones must agree to float32 rounding,
// in inference, in training (forward, backward, clipping, Adam) and through staged buffers.
const cells: CellKind[] = ['rnn_tanh', 'rnn_relu', 'lstm', 'gru']

function pair(cell: CellKind, numLayers: number, extra: { zoneout?: number } = {}) {
  const config = { cell, inputSize: 5, hiddenSize: 13, numLayers, outputSize: 3, seed: 11, ...extra }
  return { wasm: createModel(config, { backend: 'wasm' }), js: createModel(config, { backend: 'js' }) }
}

function inputs(n: number, size: number, seed: number): Float32Array[] {
  const rng = new Rng(seed)
  return Array.from({ length: n }, () => Float32Array.from({ length: size }, () => rng.range(-2, 2)))
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)))
  return worst
}

describe.skipIf(!wasmSimdSupported())('wasm and js kernels agree', () => {
  it('float32 models pick the wasm kernels by default, float64 the js ones', () => {
    expect(createModel({ cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1 }).kernels.name).toBe('wasm')
    expect(
      createModel({ cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, dtype: 'float64' }).kernels.name,
    ).toBe('js')
    expect(() =>
      createModel(
        { cell: 'gru', inputSize: 2, hiddenSize: 4, outputSize: 1, dtype: 'float64' },
        { backend: 'wasm' },
      ),
    ).toThrow(/float32/)
  })

  for (const cell of cells) {
    for (const numLayers of [1, 2]) {
      it(`${cell} × ${numLayers}: inference over 200 steps`, () => {
        const { wasm, js } = pair(cell, numLayers)
        expect(Array.from(wasm.params.values)).toEqual(Array.from(js.params.values))
        const sw = wasm.initialState()
        const sj = js.initialState()
        for (const x of inputs(200, 5, 1)) {
          expect(maxDiff(wasm.step(x, sw), js.step(x, sj))).toBeLessThan(1e-5)
        }
        expect(maxDiff(sw.data, sj.data)).toBeLessThan(1e-5)
      })

      it(`${cell} × ${numLayers}: online training (TBPTT(4, 9), Adam, clipping) over 300 steps`, () => {
        const { wasm, js } = pair(cell, numLayers)
        const options: TrainerOptions = {
          k1: 4,
          k2: 9,
          loss: 'mse',
          optimizer: { type: 'adam', lr: 0.003 },
          clipNorm: 0.5,
        }
        const tw = new OnlineTrainer(wasm, options)
        const tj = new OnlineTrainer(js, options)
        const xs = inputs(300, 5, 2)
        const ys = inputs(300, 3, 3)
        let updates = 0
        xs.forEach((x, t) => {
          const a = tw.observe(x, ys[t]!)
          const b = tj.observe(x, ys[t]!)
          expect(maxDiff(a.prediction, b.prediction), `prediction ${t}`).toBeLessThan(2e-4)
          if (a.update) {
            updates++
            expect(b.update).toBeDefined()
            expect(Math.abs(a.update.gradNorm - b.update!.gradNorm) / b.update!.gradNorm).toBeLessThan(1e-3)
            expect(a.update.clipped).toBe(b.update!.clipped)
          }
        })
        expect(updates).toBe(75)
        expect(maxDiff(wasm.params.values, js.params.values)).toBeLessThan(2e-4)
      })
    }
  }

  // The memory holds windows up to k2 = 64 (and what its 64 KiB pages leave over); past it the
  // trainer's buffers become ordinary arrays, which the kernels stage or leave to the TypeScript
  // products: at k2 = 400 the recompute workspace, at k2 = 3000 the step gradients as well.
  for (const k2 of [400, 3000]) {
    it(`a window longer than the kernels' memory was sized for (k2 = ${k2}) agrees too`, () => {
      const { wasm, js } = pair('gru', 1)
      const options: TrainerOptions = { k1: 300, k2, loss: 'mse', optimizer: { type: 'adam', lr: 0.003 } }
      const tw = new OnlineTrainer(wasm, options)
      const tj = new OnlineTrainer(js, options)
      const xs = inputs(1200, 5, 6)
      const ys = inputs(1200, 3, 7)
      let updates = 0
      xs.forEach((x, t) => {
        const a = tw.observe(x, ys[t]!)
        const b = tj.observe(x, ys[t]!)
        expect(maxDiff(a.prediction, b.prediction), `prediction ${t}`).toBeLessThan(2e-4)
        if (a.update) updates++
      })
      expect(updates).toBe(4)
      expect(maxDiff(wasm.params.values, js.params.values)).toBeLessThan(2e-4)
    })
  }

  it('dropout, zoneout and the keyed trainer (staged windows) agree too', () => {
    const { wasm, js } = pair('lstm', 2, { zoneout: 0.1 })
    const options: TrainerOptions = {
      k1: 5,
      loss: 'huber',
      optimizer: { type: 'sgd', lr: 0.01, momentum: 0.9 },
      clipNorm: 1,
      dropout: { input: 0.2, recurrent: 0.2 },
    }
    const kw = new KeyedTrainer(new OnlineTrainer(wasm, options))
    const kj = new KeyedTrainer(new OnlineTrainer(js, options))
    const xs = inputs(240, 5, 4)
    const ys = inputs(240, 3, 5)
    xs.forEach((x, t) => {
      const key = `k${t % 3}`
      const a = Array.from(kw.observe(key, x, ys[t]!, t).prediction)
      const b = Array.from(kj.observe(key, x, ys[t]!, t).prediction)
      expect(maxDiff(a, b), `prediction ${t}`).toBeLessThan(2e-4)
    })
    expect(maxDiff(wasm.params.values, js.params.values)).toBeLessThan(2e-4)
  })
})
