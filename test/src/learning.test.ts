import { describe, expect, it } from 'vitest'
import type { ModelConfig } from '../../src/index.js'
import { createModel, OnlineTrainer } from '../../src/index.js'
import { addingSequences, median, noisySine, randomSigns } from '../helpers/tasks.js'

// Proofs that the online TBPTT trainer learns, and of where it cannot: each task has a known
// baseline and a known limit. Every number is prequential: the prediction is the one made
// before the weights learn from that step, as a model serving a live stream would make it.
// Seeds are fixed; the hyperparameters pass on every seed tried (see each test), with margins.

describe('echo y_t = x_(t−5): the truncation horizon', () => {
  const delay = 5
  const steps = 20_000
  // Adam at 0.01, cut to 0.002 for the last 4000 steps so that the tail measures what was
  // learned rather than Adam's noise (at a constant 0.01 a solved task still spikes now and then).
  const lrCutAt = 16_000
  const tail = 2_000

  /** Prequential MSE over the last `tail` steps of an LSTM trained online with TBPTT(k1, k2). */
  function echoTailMse(k1: number, k2: number): number {
    const xs = randomSigns(steps, 1001)
    const model = createModel({
      cell: 'lstm',
      inputSize: 1,
      hiddenSize: 16,
      outputSize: 1,
      dtype: 'float64',
      seed: 1,
    })
    const trainer = new OnlineTrainer(model, {
      k1,
      k2,
      loss: 'mse',
      optimizer: { type: 'adam', lr: 0.01 },
      clipNorm: 1,
      diagnosticsEvery: 0,
    })
    let squaredError = 0
    for (let t = 0; t < steps; t++) {
      if (t === lrCutAt) trainer.optimizer.setLearningRate(0.002)
      const target = t >= delay ? xs[t - delay]! : undefined
      const { prediction } = trainer.observe([xs[t]!], target)
      if (t >= steps - tail) squaredError += (prediction[0]! - target!) ** 2
    }
    return squaredError / tail
  }

  // x is ±1 bits: Var(x) = 1, and predicting 0 (the best without memory) gives MSE 1.
  // Model seed s with data seed 1000 + s, s = 1–6: k = 4 gave 0.948–1.002, k = 10 gave
  // 0.0003–0.0010, k1 = 4 with k2 = 10 gave 0.0000–0.0008.
  it('k = 4 cannot learn a 5-step dependency: the gradient never reaches x_(t−5)', () => {
    // Every loss in a 4-step window is at most 3 steps from the window's start, and the state
    // entering the window is a constant, so no gradient links y_t to x_(t−5). What x_(t−5)
    // happens to leave in that state can still be read out: a few percent below 1 here.
    expect(echoTailMse(4, 4)).toBeGreaterThan(0.8)
  })

  it('k = 10 learns it', () => {
    expect(echoTailMse(10, 10)).toBeLessThan(0.1)
  })

  it('k1 = 4 with k2 = 10 learns it too: the horizon is k2, how far back the loss is followed', () => {
    expect(echoTailMse(4, 10)).toBeLessThan(0.1)
  })
})

describe('adding problem, T = 30: vanishing gradients', () => {
  const T = 30
  // One budget for every cell: 8000 sequences (one update each), Adam, the learning rate cut
  // to a fifth for the last 3000 so the tail measures the solution rather than Adam's noise.
  const sequences = 8_000
  const lrCutAt = 5_000
  const tail = 500
  const baseline = 1 / 6 // Var(u1 + u2): the MSE of always predicting 1

  interface AddingRun {
    tailMse: number
    /** gradientFlow.logGainPerStep of every diagnosed update. */
    logGains: number[]
    /** ‖∂L/∂h_(t−29)‖ / ‖∂L/∂h_t‖ at the first diagnosed update (the 50th), early in training. */
    firstFlowRatio: number
  }

  function runAdding(config: Pick<ModelConfig, 'cell' | 'hiddenSize' | 'init'>, lr: number): AddingRun {
    const model = createModel({ ...config, inputSize: 2, outputSize: 1, dtype: 'float64', seed: 1 })
    const trainer = new OnlineTrainer(model, {
      k1: T,
      k2: T,
      loss: 'mse',
      optimizer: { type: 'adam', lr },
      clipNorm: 1,
      diagnosticsEvery: 50,
    })
    const next = addingSequences(5001, T)
    let squaredError = 0
    const logGains: number[] = []
    let firstFlowRatio = Number.NaN
    for (let s = 0; s < sequences; s++) {
      if (s === lrCutAt) trainer.optimizer.setLearningRate(lr / 5)
      const { inputs, target } = next()
      trainer.reset()
      for (let t = 0; t < T - 1; t++) trainer.observe(inputs[t]!)
      const { prediction, update } = trainer.observe(inputs[T - 1]!, target)
      if (s === 0) expect(update?.windowSteps).toBe(T)
      if (s >= sequences - tail) squaredError += (prediction[0]! - target) ** 2
      const flow = update?.gradientFlow
      if (flow) {
        logGains.push(flow.logGainPerStep)
        if (Number.isNaN(firstFlowRatio)) firstFlowRatio = flow.norms[T - 1]! / flow.norms[0]!
      }
    }
    return { tailMse: squaredError / tail, logGains, firstFlowRatio }
  }

  // Memoised so that the gradient-flow test reuses the training runs (or makes them when run alone).
  const memo = new Map<string, AddingRun>()
  const run = (name: string, make: () => AddingRun): AddingRun => {
    if (!memo.has(name)) memo.set(name, make())
    return memo.get(name)!
  }
  // IRNN (Le, Jaitly & Hinton 2015): ReLU, W_hh = I, zero biases. Seeds 1–8: tail MSE 0.0001–0.0016.
  const irnn = () =>
    run('irnn', () =>
      runAdding(
        {
          cell: 'rnn_relu',
          hiddenSize: 32,
          init: { recurrent: 'identity', bias: 'zeros', input: 'xavier_uniform' },
        },
        0.005,
      ),
    )
  // Same budget and learning rate as the IRNN, PyTorch's default init. Seeds 1–3: tail MSE 0.17–0.18.
  const tanhRnn = () => run('tanh', () => runAdding({ cell: 'rnn_tanh', hiddenSize: 32 }, 0.005))

  it('an IRNN learns it (MSE < 0.01; predicting 1 gives 1/6)', () => {
    expect(irnn().tailMse).toBeLessThan(0.01)
  })

  it('an LSTM learns it (MSE < 0.01)', () => {
    // Large input weights (kaiming_uniform per gate block) make the marker switch the input gate
    // from the start, which shortens the LSTM's plateau from 2600–6800 sequences (PyTorch's
    // default init) to 660–3800 (seeds 1–10); forget bias 1 keeps the cell's memory early on.
    // Seeds 1, 2, 3, 7: tail MSE 0.0004–0.0017.
    const { tailMse } = runAdding(
      {
        cell: 'lstm',
        hiddenSize: 16,
        init: { input: 'kaiming_uniform', recurrent: 'orthogonal', forgetBias: 1 },
      },
      0.01,
    )
    expect(tailMse).toBeLessThan(0.01)
  })

  it('a tanh RNN with the default init does not learn it in the same budget', () => {
    // Recalling only the nearer marked value would give Var(u1) = 1/12 ≈ 0.083; it learns neither.
    expect(tanhRnn().tailMse).toBeGreaterThan(0.6 * baseline)
  })

  it("the tanh RNN's gradient vanishes across the window; the IRNN's does not", () => {
    // ‖∂L_t/∂h_(t−k)‖ shrinks by e^gain per step back; the median over the 160 diagnosed
    // updates ignores the IRNN's rare spikes (and its NaN when every ReLU unit is off).
    // Seeds 1, 2, 3: tanh −0.45, −0.39, −0.88; IRNN −0.027, −0.061, +0.001.
    const tanhGain = median(tanhRnn().logGains)
    const irnnGain = median(irnn().logGains)
    expect(tanhGain).toBeLessThan(-0.25)
    expect(irnnGain).toBeGreaterThan(-0.1)
    expect(irnnGain - tanhGain).toBeGreaterThan(0.25)
    // What of the last step's gradient reaches 29 steps back, where the first marker may be.
    // Seeds 1, 2, 3: tanh 1.4e-7, 1.1e-7, 8.3e-6; IRNN 0.13, 0.13, 0.12.
    expect(tanhRnn().firstFlowRatio).toBeLessThan(1e-4)
    expect(irnn().firstFlowRatio).toBeGreaterThan(0.05)
  })
})

describe('noisy sine, next-step prediction', () => {
  it('a GRU beats persistence by half and comes near the noise floor', () => {
    const sigma = 0.1
    const steps = 5_000
    const tail = 500
    const series = noisySine(steps + 1, 25, sigma, 9001)
    const model = createModel({
      cell: 'gru',
      inputSize: 1,
      hiddenSize: 16,
      outputSize: 1,
      dtype: 'float64',
      seed: 1,
    })
    const trainer = new OnlineTrainer(model, {
      k1: 5,
      k2: 20,
      loss: 'mse',
      optimizer: { type: 'adam', lr: 0.005 },
      clipNorm: 1,
      diagnosticsEvery: 0,
    })
    let squaredError = 0
    let persistenceError = 0
    for (let t = 0; t < steps; t++) {
      if (t === 3_000) trainer.optimizer.setLearningRate(0.001)
      const { prediction } = trainer.observe([series[t]!], series[t + 1]!)
      if (t >= steps - tail) {
        squaredError += (prediction[0]! - series[t + 1]!) ** 2
        persistenceError += (series[t]! - series[t + 1]!) ** 2
      }
    }
    const mse = squaredError / tail
    const persistenceMse = persistenceError / tail
    const noiseFloor = sigma ** 2
    // Persistence: (1 − cos(2π/25)) + 2σ² ≈ 0.051.
    expect(persistenceMse).toBeGreaterThan(0.045)
    expect(mse).toBeLessThan(0.5 * persistenceMse)
    // x_(t+1) = s_(t+1) + ε_(t+1) with ε_(t+1) independent of everything seen up to t, so any
    // predictor's MSE is σ² + E[(ŷ − s_(t+1))²] ≥ σ². Below 1.5σ² the model's estimate of the
    // clean signal errs by less than half the unpredictable noise. Above 0.8σ² (the sample
    // mean of ε² over 500 steps has sd 0.06σ²) proves the target did not leak into the input.
    // Seeds 1–4: 1.00σ²–1.24σ², 0.21–0.24 of persistence.
    expect(mse).toBeLessThan(1.5 * noiseFloor)
    expect(mse).toBeGreaterThan(0.8 * noiseFloor)
  })
})
