import type { FloatArray } from './dtype.js'
import { zerosLike } from './dtype.js'
import { RxrnnError } from './errors.js'
import type { Kernels } from './kernels.js'

/** Optimizer settings, with torch.optim's names and defaults. */
export type OptimizerConfig =
  | {
      type: 'sgd'
      lr: number
      momentum?: number
      dampening?: number
      nesterov?: boolean
      weightDecay?: number
    }
  | {
      type: 'rmsprop'
      lr: number
      alpha?: number
      eps?: number
      momentum?: number
      centered?: boolean
      weightDecay?: number
    }
  | { type: 'adam'; lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }
  | { type: 'adamw'; lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }

/**
 * Updates a flat parameter buffer from a flat gradient buffer, exactly as the torch.optim
 * class of the same name. Its state is flat buffers of the same length; `t` counts updates.
 */
export interface Optimizer {
  readonly config: Required<OptimizerConfig>
  /** Number of updates taken (torch's `step` in the state). */
  t: number
  /** Named state buffers (for snapshots). */
  readonly state: Record<string, FloatArray>
  step(params: FloatArray, grads: FloatArray): void
  /** Changes the learning rate (for schedules); the state is kept. */
  setLearningRate(lr: number): void
}

/** `alloc` places the optimizer's state buffers (default: new arrays of `like`'s type). */
export function createOptimizer(
  config: OptimizerConfig,
  like: FloatArray,
  alloc: (n: number) => FloatArray = (n) => zerosLike(like, n),
  kernels?: Pick<Kernels, 'adam'>,
): Optimizer {
  const c = resolveOptimizerConfig(config)
  const n = like.length
  switch (c.type) {
    case 'sgd':
      return sgd(c as Required<Extract<OptimizerConfig, { type: 'sgd' }>>, alloc(n))
    case 'rmsprop':
      return rmsprop(c as Required<Extract<OptimizerConfig, { type: 'rmsprop' }>>, n, alloc)
    case 'adam':
    case 'adamw':
      return adam(c as Required<Extract<OptimizerConfig, { type: 'adam' | 'adamw' }>>, n, alloc, kernels)
  }
}

/** Fills torch's defaults and checks every field; all problems are reported at once. */
export function resolveOptimizerConfig(config: OptimizerConfig): Required<OptimizerConfig> {
  const problems: string[] = []
  const c = (config ?? {}) as Record<string, unknown>
  const num = (name: string, fallback: number, ok: (v: number) => boolean, rule: string): number => {
    const v = c[name] ?? fallback
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      problems.push(`optimizer.${name} is ${JSON.stringify(c[name])}; it must be ${rule}`)
      return fallback
    }
    return v
  }
  const nonNegative = (v: number) => v >= 0
  const unit = (v: number) => v >= 0 && v < 1
  let resolved: Record<string, unknown>
  const lr = num('lr', Number.NaN, nonNegative, 'a number >= 0 (0 measures gradients without learning)')
  switch (c.type) {
    case 'sgd':
      resolved = {
        type: 'sgd',
        lr,
        momentum: num('momentum', 0, nonNegative, '>= 0'),
        dampening: num('dampening', 0, nonNegative, '>= 0'),
        nesterov: c.nesterov ?? false,
        weightDecay: num('weightDecay', 0, nonNegative, '>= 0'),
      }
      if (resolved.nesterov && !((resolved.momentum as number) > 0 && resolved.dampening === 0)) {
        problems.push('optimizer.nesterov needs momentum > 0 and dampening 0 (as in torch.optim.SGD)')
      }
      break
    case 'rmsprop':
      resolved = {
        type: 'rmsprop',
        lr,
        alpha: num('alpha', 0.99, unit, 'in [0, 1)'),
        eps: num('eps', 1e-8, nonNegative, '>= 0'),
        momentum: num('momentum', 0, nonNegative, '>= 0'),
        centered: c.centered ?? false,
        weightDecay: num('weightDecay', 0, nonNegative, '>= 0'),
      }
      break
    case 'adam':
    case 'adamw':
      resolved = {
        type: c.type,
        lr,
        beta1: num('beta1', 0.9, unit, 'in [0, 1)'),
        beta2: num('beta2', 0.999, unit, 'in [0, 1)'),
        eps: num('eps', 1e-8, nonNegative, '>= 0'),
        weightDecay: num('weightDecay', c.type === 'adamw' ? 0.01 : 0, nonNegative, '>= 0'),
      }
      break
    default:
      problems.push(`optimizer.type is ${JSON.stringify(c.type)}; use 'sgd', 'rmsprop', 'adam' or 'adamw'`)
      resolved = {}
  }
  if (problems.length > 0) throw new RxrnnError('bad_config', 'Invalid optimizer config', problems)
  return resolved as Required<OptimizerConfig>
}

type Cfg<T extends OptimizerConfig['type']> = Required<Extract<OptimizerConfig, { type: T }>>

function sgd(config: Cfg<'sgd'>, buf: FloatArray): Optimizer {
  const { momentum: mu, dampening, nesterov, weightDecay: wd } = config
  return {
    config,
    t: 0,
    state: { momentum: buf },
    step(p, g) {
      const first = this.t === 0
      this.t++
      const lr = this.config.lr
      for (let i = 0; i < p.length; i++) {
        let d = g[i]! + wd * p[i]!
        if (mu !== 0) {
          const b = first ? d : mu * buf[i]! + (1 - dampening) * d
          buf[i] = b
          d = nesterov ? d + mu * b : b
        }
        p[i] = p[i]! - lr * d
      }
    },
    setLearningRate(lr) {
      this.config.lr = lr
    },
  }
}

function rmsprop(config: Cfg<'rmsprop'>, n: number, alloc: (n: number) => FloatArray): Optimizer {
  const { alpha, eps, momentum: mu, centered, weightDecay: wd } = config
  const sq = alloc(n)
  const avg = alloc(centered ? n : 0)
  const buf = alloc(mu > 0 ? n : 0)
  return {
    config,
    t: 0,
    state: { squareAvg: sq, gradAvg: avg, momentum: buf },
    step(p, g) {
      this.t++
      const lr = this.config.lr
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]! + wd * p[i]!
        const v = alpha * sq[i]! + (1 - alpha) * gi * gi
        sq[i] = v
        let denom: number
        if (centered) {
          const a = alpha * avg[i]! + (1 - alpha) * gi
          avg[i] = a
          denom = Math.sqrt(v - a * a) + eps
        } else denom = Math.sqrt(v) + eps
        if (mu > 0) {
          const b = mu * buf[i]! + gi / denom
          buf[i] = b
          p[i] = p[i]! - lr * b
        } else p[i] = p[i]! - (lr * gi) / denom
      }
    },
    setLearningRate(lr) {
      this.config.lr = lr
    },
  }
}

function adam(
  config: Cfg<'adam' | 'adamw'>,
  n: number,
  alloc: (n: number) => FloatArray,
  kernels: Pick<Kernels, 'adam'> | undefined,
): Optimizer {
  const { beta1, beta2, eps, weightDecay: wd } = config
  const decoupled = config.type === 'adamw'
  const m = alloc(n)
  const v = alloc(n)
  return {
    config,
    t: 0,
    state: { expAvg: m, expAvgSq: v },
    step(p, g) {
      this.t++
      const lr = this.config.lr
      const bc1 = 1 - beta1 ** this.t
      const bc2Sqrt = Math.sqrt(1 - beta2 ** this.t)
      const stepSize = lr / bc1
      const decay = decoupled ? 1 - lr * wd : 1
      const l2 = decoupled ? 0 : wd
      if (kernels?.adam(p, g, m, v, stepSize, beta1, beta2, eps, bc2Sqrt, decay, l2)) return
      for (let i = 0; i < p.length; i++) {
        const pi = p[i]! * decay
        const gi = g[i]! + l2 * pi
        const mi = beta1 * m[i]! + (1 - beta1) * gi
        const vi = beta2 * v[i]! + (1 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps)
      }
    },
    setLearningRate(lr) {
      this.config.lr = lr
    },
  }
}
