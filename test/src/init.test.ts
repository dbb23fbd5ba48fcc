import { describe, expect, it } from 'vitest'
import type { FloatArray, InitConfig, Model, ModelConfig, WeightInit } from '../../src/index.js'
import { createModel, RxrnnError, writeSafetensors } from '../../src/index.js'

/** The RxrnnError `make` throws; fails the test when it does not throw one. */
function errorOf(make: () => unknown): RxrnnError {
  try {
    make()
  } catch (e) {
    expect(e).toBeInstanceOf(RxrnnError)
    return e as RxrnnError
  }
  throw new Error('expected an RxrnnError')
}

function stats(values: ArrayLike<number>): { mean: number; std: number; maxAbs: number } {
  let sum = 0
  let maxAbs = 0
  for (let i = 0; i < values.length; i++) {
    sum += values[i]!
    maxAbs = Math.max(maxAbs, Math.abs(values[i]!))
  }
  const mean = sum / values.length
  let sq = 0
  for (let i = 0; i < values.length; i++) sq += (values[i]! - mean) ** 2
  return { mean, std: Math.sqrt(sq / values.length), maxAbs }
}

/** Gate block `g` (rows [gH, (g+1)H)) of a [G·H, cols] row-major matrix. */
function block(w: FloatArray, g: number, H: number, cols: number): FloatArray {
  return w.subarray(g * H * cols, (g + 1) * H * cols)
}

/** max |AᵀA − c·I| for A [rows, cols] (or max |AAᵀ − c·I| with `rowsOrthonormal`). */
function gramError(
  a: ArrayLike<number>,
  rows: number,
  cols: number,
  c: number,
  rowsOrthonormal = false,
): number {
  const n = rowsOrthonormal ? rows : cols
  const len = rowsOrthonormal ? cols : rows
  const at = (vector: number, k: number) => (rowsOrthonormal ? a[vector * cols + k]! : a[k * cols + vector]!)
  let worst = 0
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let dot = 0
      for (let k = 0; k < len; k++) dot += at(i, k) * at(j, k)
      worst = Math.max(worst, Math.abs(dot - (i === j ? c : 0)))
    }
  }
  return worst
}

const lstmConfig: ModelConfig = {
  cell: 'lstm',
  inputSize: 3,
  hiddenSize: 5,
  numLayers: 2,
  outputSize: 2,
  dtype: 'float64',
  seed: 7,
}

describe('seeded initialisation', () => {
  const configs: ModelConfig[] = [
    lstmConfig,
    { ...lstmConfig, cell: 'gru', dtype: 'float32' },
    { ...lstmConfig, cell: 'rnn_tanh', init: { input: 'xavier_normal', recurrent: 'orthogonal', gain: 1.3 } },
    {
      ...lstmConfig,
      init: { input: 'kaiming_normal', recurrent: 'orthogonal', head: 'xavier_uniform', forgetBias: 1 },
    },
  ]

  it.each(configs)('same config and seed give bit-identical weights ($cell, $dtype)', (config) => {
    const a = createModel(config)
    const b = createModel(config)
    expect(a.params.values.constructor).toBe(b.params.values.constructor)
    expect(Array.from(new Uint8Array(b.params.values.buffer))).toEqual(
      Array.from(new Uint8Array(a.params.values.buffer)),
    )
  })

  it.each(configs)('another seed gives different values in every random tensor ($cell)', (config) => {
    const a = createModel(config)
    const b = createModel({ ...config, seed: config.seed! + 1 })
    for (const name of a.parameterNames()) {
      const x = a.getParameter(name)
      const y = b.getParameter(name)
      let same = 0
      for (let i = 0; i < x.length; i++) if (x[i] === y[i]) same++
      // Only the forget blocks set by forgetBias are the same in both.
      expect(same, name).toBeLessThanOrEqual(config.init?.forgetBias === undefined ? 0 : x.length / 4)
    }
  })

  it('no seed draws one and records it, so the model can be rebuilt', () => {
    const a = createModel({ ...lstmConfig, seed: undefined })
    expect(Number.isInteger(a.config.seed)).toBe(true)
    const b = createModel({ ...lstmConfig, seed: a.config.seed })
    expect(Array.from(b.params.values)).toEqual(Array.from(a.params.values))
  })
})

describe('PyTorch default init', () => {
  it('every tensor is U(±1/√H): inside the bound, filling it, variance bound²/3', () => {
    const H = 64
    const model = createModel({
      cell: 'lstm',
      inputSize: 16,
      hiddenSize: H,
      outputSize: 4,
      dtype: 'float64',
      seed: 3,
    })
    const bound = 1 / Math.sqrt(H)
    for (const name of model.parameterNames()) {
      const w = model.getParameter(name)
      const { mean, std, maxAbs } = stats(w)
      expect(maxAbs, name).toBeLessThanOrEqual(bound)
      if (w.length < 1000) continue
      // Uniform on [−b, b]: variance b²/3 = 1/(3H), half the mass inside ±b/2, mean 0.
      expect(maxAbs, name).toBeGreaterThan(0.99 * bound)
      expect(std ** 2 / (bound ** 2 / 3), name).toBeCloseTo(1, 1)
      expect(Math.abs(mean), name).toBeLessThan(0.05 * bound)
      const inner = Array.from(w).filter((v) => Math.abs(v) < bound / 2).length / w.length
      expect(inner, name).toBeGreaterThan(0.47)
      expect(inner, name).toBeLessThan(0.53)
    }
  })

  it('the bound follows H, not the input size', () => {
    for (const [I, H] of [
      [100, 4],
      [2, 100],
    ] as const) {
      const model = createModel({ cell: 'gru', inputSize: I, hiddenSize: H, outputSize: 1, seed: 1 })
      const { maxAbs } = stats(model.getParameter('rnn.weight_ih_l0'))
      expect(maxAbs).toBeLessThanOrEqual(Math.fround(1 / Math.sqrt(H)))
      expect(maxAbs).toBeGreaterThan(0.95 / Math.sqrt(H))
    }
  })
})

describe('xavier and kaiming: std from the fans of each gate block', () => {
  const I = 32
  const H = 64
  const std: Record<
    Exclude<WeightInit, 'pytorch' | 'orthogonal' | 'identity'>,
    (rows: number, cols: number) => number
  > = {
    xavier_uniform: (rows, cols) => Math.sqrt(2 / (rows + cols)),
    xavier_normal: (rows, cols) => Math.sqrt(2 / (rows + cols)),
    kaiming_uniform: (_rows, cols) => Math.sqrt(2 / cols),
    kaiming_normal: (_rows, cols) => Math.sqrt(2 / cols),
  }
  const cases = Object.keys(std).flatMap((scheme) => [1, 2].map((gain) => ({ scheme, gain })))

  it.each(cases)('$scheme, gain $gain', ({ scheme, gain }) => {
    const s = scheme as keyof typeof std
    const model = createModel({
      cell: 'lstm',
      inputSize: I,
      hiddenSize: H,
      outputSize: 48,
      dtype: 'float64',
      seed: 11,
      init: { input: s, recurrent: s, head: s, gain },
    })
    const check = (w: FloatArray, rows: number, cols: number, what: string) => {
      const expected = gain * std[s](rows, cols)
      const got = stats(w)
      expect(got.std / expected, what).toBeGreaterThan(0.9)
      expect(got.std / expected, what).toBeLessThan(1.1)
      expect(Math.abs(got.mean), what).toBeLessThan(0.1 * expected)
      if (s.endsWith('uniform')) expect(got.maxAbs, what).toBeLessThanOrEqual(Math.sqrt(3) * expected)
      else expect(got.maxAbs, what).toBeGreaterThan(2.5 * expected)
    }
    for (let g = 0; g < 4; g++) {
      check(block(model.getParameter('rnn.weight_ih_l0'), g, H, I), H, I, `W_ih gate ${g}`)
      check(block(model.getParameter('rnn.weight_hh_l0'), g, H, H), H, H, `W_hh gate ${g}`)
    }
    check(model.getParameter('head.weight'), 48, H, 'head')
  })
})

describe('orthogonal', () => {
  it.each([1, 1.5])('every W_hh gate block has WᵀW = gain²·I (gain %s)', (gain) => {
    const H = 24
    for (const cell of ['rnn_tanh', 'lstm', 'gru'] as const) {
      const model = createModel({
        cell,
        inputSize: 3,
        hiddenSize: H,
        numLayers: 2,
        outputSize: 1,
        dtype: 'float64',
        seed: 5,
        init: { recurrent: 'orthogonal', gain },
      })
      const G = cell === 'lstm' ? 4 : cell === 'gru' ? 3 : 1
      for (const l of [0, 1]) {
        const w = model.getParameter(`rnn.weight_hh_l${l}`)
        for (let g = 0; g < G; g++) {
          const b = block(w, g, H, H)
          expect(gramError(b, H, H, gain ** 2), `${cell} l${l} gate ${g}`).toBeLessThan(1e-6)
          expect(gramError(b, H, H, gain ** 2, true), `${cell} l${l} gate ${g}`).toBeLessThan(1e-6)
        }
      }
    }
  })

  it('a non-square block is semi-orthogonal: orthonormal columns when tall, rows when wide', () => {
    const H = 16
    const tall = createModel({
      cell: 'lstm',
      inputSize: 6,
      hiddenSize: H,
      outputSize: 1,
      dtype: 'float64',
      seed: 2,
      init: { input: 'orthogonal' },
    })
    const wide = createModel({
      cell: 'lstm',
      inputSize: 40,
      hiddenSize: H,
      outputSize: 1,
      dtype: 'float64',
      seed: 2,
      init: { input: 'orthogonal' },
    })
    for (let g = 0; g < 4; g++) {
      expect(gramError(block(tall.getParameter('rnn.weight_ih_l0'), g, H, 6), H, 6, 1)).toBeLessThan(1e-6)
      expect(gramError(block(wide.getParameter('rnn.weight_ih_l0'), g, H, 40), H, 40, 1, true)).toBeLessThan(
        1e-6,
      )
    }
  })

  it('float32 weights are orthogonal to float32 rounding', () => {
    const H = 32
    const model = createModel({
      cell: 'gru',
      inputSize: 1,
      hiddenSize: H,
      outputSize: 1,
      dtype: 'float32',
      seed: 9,
      init: { recurrent: 'orthogonal' },
    })
    for (let g = 0; g < 3; g++) {
      expect(gramError(block(model.getParameter('rnn.weight_hh_l0'), g, H, H), H, H, 1)).toBeLessThan(1e-5)
    }
  })
})

describe('identity (the IRNN)', () => {
  it.each([1, 0.5])('W_hh is exactly gain·I in every gate block (gain %s)', (gain) => {
    const H = 8
    for (const cell of ['rnn_relu', 'lstm'] as const) {
      for (const dtype of ['float32', 'float64'] as const) {
        const model = createModel({
          cell,
          inputSize: 3,
          hiddenSize: H,
          outputSize: 1,
          dtype,
          seed: 4,
          init: { recurrent: 'identity', bias: 'zeros', gain },
        })
        const w = model.getParameter('rnn.weight_hh_l0')
        const expected = Array.from(w, (_, i) => {
          const within = i % (H * H)
          return Math.floor(within / H) === within % H ? gain : 0
        })
        expect(Array.from(w)).toEqual(expected)
        expect(Array.from(model.getParameter('rnn.bias_ih_l0')).every((b) => b === 0)).toBe(true)
        expect(Array.from(model.getParameter('rnn.bias_hh_l0')).every((b) => b === 0)).toBe(true)
      }
    }
  })
})

describe('forgetBias', () => {
  it.each([1, -0.5, 3])(
    'b_ih + b_hh is exactly %s on the forget block (i, f, g, o) of every layer',
    (value) => {
      const H = 6
      for (const bias of ['pytorch', 'zeros'] as const) {
        const model = createModel({
          ...lstmConfig,
          hiddenSize: H,
          numLayers: 3,
          init: { forgetBias: value, bias },
        })
        const plain = createModel({ ...lstmConfig, hiddenSize: H, numLayers: 3, init: { bias } })
        for (let l = 0; l < 3; l++) {
          const bIh = model.getParameter(`rnn.bias_ih_l${l}`)
          const bHh = model.getParameter(`rnn.bias_hh_l${l}`)
          for (let k = 0; k < 4 * H; k++) {
            const isForget = k >= H && k < 2 * H
            if (isForget) expect(bIh[k]! + bHh[k]!).toBe(value)
            else {
              // The other gates keep the init they would have without forgetBias.
              expect(bIh[k]).toBe(plain.getParameter(`rnn.bias_ih_l${l}`)[k])
              expect(bHh[k]).toBe(plain.getParameter(`rnn.bias_hh_l${l}`)[k])
            }
          }
        }
        // Weights are drawn the same with or without it.
        expect(Array.from(model.getParameter('rnn.weight_hh_l1'))).toEqual(
          Array.from(plain.getParameter('rnn.weight_hh_l1')),
        )
      }
    },
  )
})

describe('config validation', () => {
  it('a bad init config is one bad_config error listing every problem', () => {
    const init = {
      input: 'he',
      recurrent: 'Orthogonal',
      head: 42,
      gain: Number.NaN,
      bias: 'ones',
      forgetBias: '1',
    } as unknown as InitConfig
    const error = errorOf(() => createModel({ ...lstmConfig, init }))
    expect(error.code).toBe('bad_config')
    expect(error.problems).toHaveLength(6)
    for (const field of ['input', 'recurrent', 'head', 'gain', 'bias', 'forgetBias']) {
      expect(
        error.problems.some((p) => p.startsWith(`init.${field} `)),
        field,
      ).toBe(true)
    }
    // Each problem names the choices, and the message carries them all.
    expect(error.problems.find((p) => p.startsWith('init.input'))).toContain('xavier_uniform')
    for (const p of error.problems) expect(error.message).toContain(p)
  })

  it('forgetBias on a cell without a forget gate is refused', () => {
    for (const cell of ['gru', 'rnn_tanh', 'rnn_relu'] as const) {
      const error = errorOf(() => createModel({ ...lstmConfig, cell, init: { forgetBias: 1 } }))
      expect(error.code).toBe('bad_config')
      expect(error.problems).toEqual([`init.forgetBias applies to 'lstm' only, not "${cell}"`])
    }
  })

  it('an init that is not an object is refused', () => {
    for (const init of ['orthogonal', 3, ['identity']]) {
      const error = errorOf(() => createModel({ ...lstmConfig, init: init as unknown as InitConfig }))
      expect(error.code).toBe('bad_config')
      expect(error.problems.some((p) => p.startsWith('init '))).toBe(true)
    }
  })

  it('a bad model config is one error listing every problem', () => {
    const config = {
      cell: 'transformer',
      inputSize: 0,
      hiddenSize: -1,
      numLayers: 1.5,
      outputSize: '3',
      dtype: 'float16',
    } as unknown as ModelConfig
    const error = errorOf(() => createModel(config))
    expect(error.code).toBe('bad_config')
    expect(error.problems).toEqual([
      'cell is "transformer"; use one of rnn_tanh, rnn_relu, lstm, gru',
      'inputSize is 0; it must be a positive integer',
      'hiddenSize is -1; it must be a positive integer',
      'numLayers is 1.5; it must be a positive integer',
      'outputSize is "3"; it must be a positive integer',
      `dtype is "float16"; use 'float32' or 'float64'`,
    ])
    expect(error.message.split('\n')).toHaveLength(7)
  })

  it.each([0, -1, 1.5, '3', Number.NaN, null])('size %s alone is refused', (size) => {
    const error = errorOf(() => createModel({ ...lstmConfig, hiddenSize: size as number }))
    expect(error.problems).toEqual([`hiddenSize is ${JSON.stringify(size)}; it must be a positive integer`])
  })

  it('a missing config is refused, not a TypeError', () => {
    const error = errorOf(() => createModel(undefined as unknown as ModelConfig))
    expect(error.code).toBe('bad_config')
    expect(error.problems.length).toBeGreaterThanOrEqual(4)
  })
})

describe('model.step', () => {
  function stepped(): { model: Model; state: ReturnType<Model['initialState']> } {
    const model = createModel({ ...lstmConfig })
    const state = model.initialState()
    model.step([0.1, -0.2, 0.3], state)
    model.step([0.5, 0.4, -0.1], state)
    return { model, state }
  }

  it.each([
    { x: [1, 2], what: 'too short' },
    { x: [1, 2, 3, 4], what: 'too long' },
    { x: [1, Number.NaN, 3], what: 'NaN' },
    { x: [1, 2, Number.POSITIVE_INFINITY], what: 'Infinity' },
    { x: [1, '2', 3], what: 'a string' },
    { x: null, what: 'null' },
  ])('$what: throws bad_input and leaves the state and the last output untouched', ({ x }) => {
    const { model, state } = stepped()
    const stateBefore = Array.from(state.data)
    const y = model.step([0.2, 0.2, 0.2], state)
    const yBefore = Array.from(y)
    const stateAfterGood = Array.from(state.data)
    expect(stateAfterGood).not.toEqual(stateBefore)
    const error = errorOf(() => model.step(x as unknown as number[], state))
    expect(error.code).toBe('bad_input')
    expect(Array.from(state.data)).toEqual(stateAfterGood)
    expect(Array.from(y)).toEqual(yBefore)
    // And the next good step carries on from that state as if the bad one never came.
    const replay = stepped()
    replay.model.step([0.2, 0.2, 0.2], replay.state)
    expect(Array.from(model.step([0.3, 0.1, 0], state))).toEqual(
      Array.from(replay.model.step([0.3, 0.1, 0], replay.state)),
    )
  })

  it('names the problem: the length it needs, or the index of the bad value', () => {
    const { model, state } = stepped()
    expect(errorOf(() => model.step([1, 2], state)).message).toContain('takes 3 (inputSize)')
    expect(errorOf(() => model.step([1, Number.NaN, 3], state)).message).toContain('x[1]')
  })

  it('returns the same output buffer every call, overwritten in place', () => {
    const { model, state } = stepped()
    const y1 = model.step([1, 0, 0], state)
    const first = Array.from(y1)
    const y2 = model.step([0, 1, 0], state)
    expect(y2).toBe(y1)
    expect(Array.from(y2)).not.toEqual(first)
    expect(y2).toBeInstanceOf(Float64Array)
    expect(y2).toHaveLength(lstmConfig.outputSize)
    // The state is advanced in place too.
    const data = state.data
    model.step([0, 0, 1], state)
    expect(state.data).toBe(data)
  })
})

describe('loadSafetensors is all or nothing', () => {
  function tensorsOf(model: Model) {
    return model.params.specs.map((s) => ({
      name: s.name,
      shape: [...s.shape],
      data: Array.from(model.getParameter(s.name)),
    }))
  }

  it('loads every tensor of a fitting file exactly', () => {
    const target = createModel({ ...lstmConfig, seed: 1 })
    const source = createModel({ ...lstmConfig, seed: 2 })
    target.loadSafetensors(writeSafetensors(tensorsOf(source), 'F64'))
    expect(Array.from(target.params.values)).toEqual(Array.from(source.params.values))
  })

  it('one wrong shape: nothing is loaded', () => {
    const target = createModel({ ...lstmConfig, seed: 1 })
    const before = Array.from(target.params.values)
    const tensors = tensorsOf(createModel({ ...lstmConfig, seed: 2 }))
    const head = tensors.find((t) => t.name === 'head.weight')!
    head.shape = [head.shape[1]!, head.shape[0]!]
    const error = errorOf(() => target.loadSafetensors(writeSafetensors(tensors, 'F64')))
    expect(error.code).toBe('bad_safetensors')
    expect(error.problems).toEqual(['tensor head.weight has shape [5, 2], the model needs [2, 5]'])
    expect(Array.from(target.params.values)).toEqual(before)
  })

  it('missing, unexpected and wrong-shape tensors are reported together, and nothing is loaded', () => {
    const target = createModel({ ...lstmConfig, seed: 1 })
    const before = Array.from(target.params.values)
    const tensors = tensorsOf(createModel({ ...lstmConfig, seed: 2 })).filter(
      (t) => t.name !== 'rnn.bias_hh_l1' && t.name !== 'head.bias',
    )
    tensors.find((t) => t.name === 'rnn.weight_ih_l0')!.shape = [20, 3, 1]
    tensors.push({ name: 'rnn.weight_ih_l2', shape: [1], data: [0] })
    const error = errorOf(() => target.loadSafetensors(writeSafetensors(tensors, 'F32')))
    expect(error.code).toBe('bad_safetensors')
    expect([...error.problems].sort()).toEqual(
      [
        'missing tensor rnn.bias_hh_l1 (shape [20])',
        'missing tensor head.bias (shape [2])',
        'tensor rnn.weight_ih_l0 has shape [20, 3, 1], the model needs [20, 3]',
        'unexpected tensor rnn.weight_ih_l2: this model (lstm 3→5×2→2 float64) has no such parameter',
      ].sort(),
    )
    expect(error.message).toContain('lstm 3→5×2→2 float64')
    expect(Array.from(target.params.values)).toEqual(before)
  })

  it('a file that is not safetensors leaves the weights unchanged', () => {
    const target = createModel({ ...lstmConfig, seed: 1 })
    const before = Array.from(target.params.values)
    const bytes = writeSafetensors(tensorsOf(createModel({ ...lstmConfig, seed: 2 })), 'F64')
    expect(errorOf(() => target.loadSafetensors(bytes.subarray(0, bytes.length - 8))).code).toBe(
      'bad_safetensors',
    )
    expect(Array.from(target.params.values)).toEqual(before)
  })
})
