import { describe, expect, it } from 'vitest'
import type { OptimizerConfig } from '../../src/index.js'
import { clipByGlobalNorm, clipByValue, createOptimizer, globalNorm, RxrnnError } from '../../src/index.js'
import { resolveOptimizerConfig } from '../../src/optimizers.js'

// Three steps on a small vector, against the update rules of torch.optim written out per element
// from the PyTorch documentation (the pseudo-code of SGD, RMSprop, Adam and AdamW), plus a few
// values worked out by hand. The gradients are fixed per step; with weight decay they get λ·p added.
const p0 = [0.5, -1.2, 2.0, 0.0, 3e-3]
const grads = [
  [0.1, -0.3, 0.0, 2.0, -1e-4],
  [-0.2, 0.25, 0.5, -1.0, 1e-4],
  [0.05, 0.4, -0.6, 0.3, 0.0],
]

function run(config: OptimizerConfig, steps = 3): { p: Float64Array; history: number[][] } {
  const p = Float64Array.from(p0)
  const opt = createOptimizer(config, p)
  const history: number[][] = []
  for (let s = 0; s < steps; s++) {
    opt.step(p, Float64Array.from(grads[s]!))
    expect(opt.t).toBe(s + 1)
    history.push(Array.from(p))
  }
  return { p, history }
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-14): void {
  expect(actual.length).toBe(expected.length)
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!
    expect(Math.abs(actual[i]! - e) / Math.max(1, Math.abs(e)), `[${i}]: ${actual[i]} vs ${e}`).toBeLessThan(
      tolerance,
    )
  }
}

/** torch.optim.SGD: g += λp; b = g (first step) or μb + (1 − τ)g; g = g + μb (nesterov) or b; p −= lr·g. */
function torchSgd(lr: number, mu = 0, dampening = 0, nesterov = false, wd = 0): number[][] {
  const p = [...p0]
  const b = p0.map(() => 0)
  const history: number[][] = []
  grads.forEach((gs, t) => {
    for (let i = 0; i < p.length; i++) {
      let g = gs[i]! + wd * p[i]!
      if (mu !== 0) {
        b[i] = t === 0 ? g : mu * b[i]! + (1 - dampening) * g
        g = nesterov ? g + mu * b[i]! : b[i]!
      }
      p[i] = p[i]! - lr * g
    }
    history.push([...p])
  })
  return history
}

/** torch.optim.RMSprop: v = αv + (1 − α)g²; centered: a = αa + (1 − α)g, v̄ = v − a²; momentum: b = μb + g/(√v̄ + ε), p −= lr·b. */
function torchRmsprop(
  lr: number,
  alpha: number,
  eps: number,
  centered: boolean,
  mu: number,
  wd = 0,
): number[][] {
  const p = [...p0]
  const v = p0.map(() => 0)
  const a = p0.map(() => 0)
  const b = p0.map(() => 0)
  const history: number[][] = []
  for (const gs of grads) {
    for (let i = 0; i < p.length; i++) {
      const g = gs[i]! + wd * p[i]!
      v[i] = alpha * v[i]! + (1 - alpha) * g * g
      let vHat = v[i]!
      if (centered) {
        a[i] = alpha * a[i]! + (1 - alpha) * g
        vHat = vHat - a[i]! * a[i]!
      }
      const denom = Math.sqrt(vHat) + eps
      if (mu > 0) {
        b[i] = mu * b[i]! + g / denom
        p[i] = p[i]! - lr * b[i]!
      } else p[i] = p[i]! - (lr * g) / denom
    }
    history.push([...p])
  }
  return history
}

/**
 * torch.optim.Adam (decoupled = false: g += λp) and AdamW (decoupled: p ← p(1 − lr·λ) first):
 * m = β1 m + (1 − β1)g, v = β2 v + (1 − β2)g², p −= lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε).
 */
function torchAdam(
  lr: number,
  b1: number,
  b2: number,
  eps: number,
  wd: number,
  decoupled: boolean,
): number[][] {
  const p = [...p0]
  const m = p0.map(() => 0)
  const v = p0.map(() => 0)
  const history: number[][] = []
  grads.forEach((gs, s) => {
    const t = s + 1
    for (let i = 0; i < p.length; i++) {
      let g = gs[i]!
      if (decoupled) p[i] = p[i]! * (1 - lr * wd)
      else g += wd * p[i]!
      m[i] = b1 * m[i]! + (1 - b1) * g
      v[i] = b2 * v[i]! + (1 - b2) * g * g
      const mHat = m[i]! / (1 - b1 ** t)
      const vHat = v[i]! / (1 - b2 ** t)
      p[i] = p[i]! - (lr * mHat) / (Math.sqrt(vHat) + eps)
    }
    history.push([...p])
  })
  return history
}

describe('SGD', () => {
  it('plain: p −= lr·g', () => {
    const { history } = run({ type: 'sgd', lr: 0.1 })
    expectClose(history.flat(), torchSgd(0.1).flat())
    // By hand, entry 0: 0.5 − 0.1·(0.1 − 0.2 + 0.05) = 0.505.
    expect(history[2]![0]).toBeCloseTo(0.505, 15)
  })

  it('momentum: the first buffer is the gradient itself', () => {
    const { history } = run({ type: 'sgd', lr: 0.1, momentum: 0.9 })
    expectClose(history.flat(), torchSgd(0.1, 0.9).flat())
    // Entry 0: b = 0.1, then 0.9·0.1 − 0.2 = −0.11, then 0.9·(−0.11) + 0.05 = −0.049.
    expect(history[0]![0]).toBeCloseTo(0.49, 15)
    expect(history[1]![0]).toBeCloseTo(0.501, 15)
    expect(history[2]![0]).toBeCloseTo(0.5059, 15)
  })

  it('momentum with dampening: (1 − τ) scales every gradient but the first', () => {
    const { history } = run({ type: 'sgd', lr: 0.1, momentum: 0.9, dampening: 0.5 })
    expectClose(history.flat(), torchSgd(0.1, 0.9, 0.5).flat())
    // Entry 0: b = 0.1, then 0.09 + 0.5·(−0.2) = −0.01.
    expect(history[1]![0]).toBeCloseTo(0.5 - 0.01 + 0.001, 15)
  })

  it('nesterov: steps along g + μb', () => {
    const { history } = run({ type: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true })
    expectClose(history.flat(), torchSgd(0.1, 0.9, 0, true).flat())
    // Entry 0, step 1: b = 0.1, step g + 0.9b = 0.19.
    expect(history[0]![0]).toBeCloseTo(0.5 - 0.019, 15)
  })

  it('weight decay adds λp to the gradient (with and without momentum)', () => {
    expectClose(
      run({ type: 'sgd', lr: 0.1, weightDecay: 0.01 }).history.flat(),
      torchSgd(0.1, 0, 0, false, 0.01).flat(),
    )
    expectClose(
      run({ type: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 }).history.flat(),
      torchSgd(0.1, 0.9, 0, true, 0.01).flat(),
    )
    // Entry 3 (p = 0, g = 2), step 1: 0 − 0.1·2 = −0.2; step 2: g = −1 + 0.01·(−0.2) = −1.002.
    const { history } = run({ type: 'sgd', lr: 0.1, weightDecay: 0.01 })
    expect(history[1]![3]).toBeCloseTo(-0.2 + 0.1002, 15)
  })
})

describe('RMSprop (alpha 0.99, eps 1e-8)', () => {
  it('plain', () => {
    const { history } = run({ type: 'rmsprop', lr: 0.01 })
    expectClose(history.flat(), torchRmsprop(0.01, 0.99, 1e-8, false, 0).flat())
    // Step 1: v = 0.01g², so p −= lr·g / (0.1|g| + ε) ≈ lr·10·sign(g).
    expect(history[0]![0]).toBeCloseTo(0.5 - (0.01 * 0.1) / (0.01 + 1e-8), 15)
    expect(history[0]![2]).toBe(2)
  })

  it('centered: divides by √(v − a²)', () => {
    const { history } = run({ type: 'rmsprop', lr: 0.01, centered: true })
    expectClose(history.flat(), torchRmsprop(0.01, 0.99, 1e-8, true, 0).flat())
    // Step 1: v − a² = 0.01g² − 0.0001g² = 0.0099g².
    expect(history[0]![0]).toBeCloseTo(0.5 - (0.01 * 0.1) / (Math.sqrt(0.0099) * 0.1 + 1e-8), 14)
  })

  it('momentum, plain and centered, with weight decay', () => {
    expectClose(
      run({ type: 'rmsprop', lr: 0.01, momentum: 0.9 }).history.flat(),
      torchRmsprop(0.01, 0.99, 1e-8, false, 0.9).flat(),
    )
    expectClose(
      run({ type: 'rmsprop', lr: 0.01, momentum: 0.9, centered: true, weightDecay: 0.1 }).history.flat(),
      torchRmsprop(0.01, 0.99, 1e-8, true, 0.9, 0.1).flat(),
    )
    expectClose(
      run({ type: 'rmsprop', lr: 0.01, alpha: 0.9, eps: 1e-3 }).history.flat(),
      torchRmsprop(0.01, 0.9, 1e-3, false, 0).flat(),
    )
  })
})

describe('Adam and AdamW', () => {
  it('Adam with bias correction: the first step is lr·g / (|g| + ε)', () => {
    const { history } = run({ type: 'adam', lr: 0.1 })
    expectClose(history.flat(), torchAdam(0.1, 0.9, 0.999, 1e-8, 0, false).flat())
    for (let i = 0; i < p0.length; i++) {
      const g = grads[0]![i]!
      expect(Math.abs(history[0]![i]! - (p0[i]! - (0.1 * g) / (Math.abs(g) + 1e-8)))).toBeLessThan(1e-14)
    }
  })

  it('Adam with L2 weight decay and other betas', () => {
    expectClose(
      run({ type: 'adam', lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 }).history.flat(),
      torchAdam(0.01, 0.8, 0.99, 1e-6, 0.1, false).flat(),
    )
  })

  it('AdamW decays decoupled: p ← p(1 − lr·λ) first, the moments never see λp', () => {
    const { history } = run({ type: 'adamw', lr: 0.1, weightDecay: 0.1 })
    expectClose(history.flat(), torchAdam(0.1, 0.9, 0.999, 1e-8, 0.1, true).flat())
    // Entry 2 (g = 0 at step 1): only the decay acts, 2·(1 − 0.01) = 1.98.
    expect(history[0]![2]).toBeCloseTo(1.98, 15)
    // Default weight decay is torch's 1e-2 for AdamW, 0 for Adam.
    expectClose(
      run({ type: 'adamw', lr: 0.1 }).history.flat(),
      torchAdam(0.1, 0.9, 0.999, 1e-8, 0.01, true).flat(),
    )
    expect(resolveOptimizerConfig({ type: 'adam', lr: 1 })).toMatchObject({ weightDecay: 0 })
  })

  it('setLearningRate changes the step and keeps the moments', () => {
    const p = Float64Array.from(p0)
    const opt = createOptimizer({ type: 'adam', lr: 0.1 }, p)
    opt.step(p, Float64Array.from(grads[0]!))
    const m = opt.state.expAvg!.slice()
    opt.setLearningRate(0)
    expect(opt.state.expAvg).toEqual(m)
    const before = p.slice()
    opt.step(p, Float64Array.from(grads[1]!))
    expect(p).toEqual(before)
    expect(opt.t).toBe(2)
  })
})

describe('optimizer config', () => {
  it('reports every problem at once', () => {
    try {
      resolveOptimizerConfig({ type: 'sgd', lr: -1, momentum: -0.5, nesterov: true })
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(RxrnnError)
      expect((e as RxrnnError).code).toBe('bad_config')
      expect((e as RxrnnError).problems).toHaveLength(3)
    }
  })
})

describe('clipping helpers', () => {
  it('globalNorm is the L2 norm of the whole buffer, odd lengths included', () => {
    expect(globalNorm(Float64Array.of(3, 4))).toBe(5)
    expect(globalNorm(Float64Array.of(1, 2, 2))).toBe(3)
    expect(globalNorm(Float64Array.of(-2))).toBe(2)
    expect(globalNorm(new Float64Array(0))).toBe(0)
    expect(globalNorm(Float32Array.of(1, 1, 1, 1, 1, 1, 1, 1, 1))).toBe(3)
  })

  it('clipByGlobalNorm scales by maxNorm / (norm + 1e-6) when that is below 1, as clip_grad_norm_', () => {
    const g = Float64Array.of(3, -4)
    const factor = clipByGlobalNorm(g, 5, 1)
    expect(factor).toBe(1 / (5 + 1e-6))
    expect(Array.from(g)).toEqual([3 * factor, -4 * factor])
    expect(globalNorm(g)).toBeCloseTo(1, 6)

    const untouched = Float64Array.of(3, -4)
    expect(clipByGlobalNorm(untouched, 5, 10)).toBe(1)
    expect(Array.from(untouched)).toEqual([3, -4])
    // At norm == maxNorm the 1e-6 still makes the factor just below 1, as in PyTorch.
    const edge = Float64Array.of(3, -4)
    expect(clipByGlobalNorm(edge, 5, 5)).toBe(5 / (5 + 1e-6))
  })

  it('clipByValue clamps to ±clipValue and counts the clamped entries', () => {
    const g = Float64Array.of(0.5, -2, 1, -1, 3, 0)
    expect(clipByValue(g, 1)).toBe(2)
    expect(Array.from(g)).toEqual([0.5, -1, 1, -1, 1, 0])
    expect(clipByValue(g, 1)).toBe(0)
  })
})
