import { describe, expect, it } from 'vitest'
import { createModel } from '../../src/index.js'

// The README's worked example ("The ideas it rests on"): a vanilla RNN with 2 inputs, 2 ReLU
// hidden units and 1 linear output, stepped by hand over three events.
describe("the README's worked example", () => {
  it('matches the hand computation step by step', () => {
    const model = createModel({
      cell: 'rnn_relu',
      inputSize: 2,
      hiddenSize: 2,
      outputSize: 1,
      dtype: 'float64',
    })
    const set = (name: string, values: number[]) => model.getParameter(name).set(values)
    set('rnn.weight_ih_l0', [1, -1, 0.5, 1])
    set('rnn.bias_ih_l0', [0, 0.5])
    set('rnn.weight_hh_l0', [0.5, 0, -1, 1])
    set('rnn.bias_hh_l0', [0, 0])
    set('head.weight', [1, -2])
    set('head.bias', [0.5])
    const state = model.initialState()
    const steps: [number[], number[], number][] = [
      [[1, 2], [0, 3], -5.5],
      [[3, -1], [4, 4], -3.5],
      [[0, 1], [1, 1.5], -1.5],
    ]
    for (const [x, h, y] of steps) {
      expect(Array.from(model.step(x, state))).toEqual([y])
      expect(Array.from(state.hidden())).toEqual(h)
    }
  })
})
