import { Rng } from '../../src/rng.js'
import type { OnlineTrainer } from '../../src/trainer.js'

/**
 * Synthetic learning tasks with known answers, each drawn from a seeded Rng so that a test
 * sees the same data on every machine.
 */

/** i.i.d. ±1 bits (mean 0, variance 1): the input of the echo task y_t = x_(t−delay). */
export function randomSigns(length: number, seed: number): number[] {
  const rng = new Rng(seed)
  return Array.from({ length }, () => (rng.uniform() < 0.5 ? -1 : 1))
}

/** One sequence of the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015). */
export interface AddingSequence {
  /** [value ∈ U(0, 1), marker ∈ {0, 1}] per step. */
  inputs: [number, number][]
  /** The sum of the two marked values: the target of the last step only. */
  target: number
}

/**
 * Draws adding-problem sequences of `length` steps with exactly two markers: one in the first
 * half and one in the second, so the first marked value lies at least length/2 steps before the
 * step that must report the sum. Predicting the mean 1 gives MSE Var(u1 + u2) = 1/6.
 */
export function addingSequences(seed: number, length: number): () => AddingSequence {
  const rng = new Rng(seed)
  const half = Math.floor(length / 2)
  return () => {
    const first = Math.floor(rng.uniform() * half)
    const second = half + Math.floor(rng.uniform() * (length - half))
    const inputs: [number, number][] = []
    let target = 0
    for (let t = 0; t < length; t++) {
      const value = rng.uniform()
      const marker = t === first || t === second ? 1 : 0
      if (marker === 1) target += value
      inputs.push([value, marker])
    }
    return { inputs, target }
  }
}

/** sin(2πt/period) + sigma·N(0, 1) for t = 0 … length − 1. */
export function noisySine(length: number, period: number, sigma: number, seed: number): number[] {
  const rng = new Rng(seed)
  return Array.from({ length }, (_, t) => Math.sin((2 * Math.PI * t) / period) + sigma * rng.normal())
}

export function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length
}

/** The median of the finite values (NaN when there are none). */
export function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * The lag task, online: y_t = x_(t−lag) over random signs (seeded), one endless stream with no
 * resets, each prediction made before the step's update. Returns the mean squared error of each
 * block of `block` steps; predicting 0 scores 1.
 */
export function lagTaskErrors(
  trainer: OnlineTrainer,
  { lag, steps, block = 1000, seed }: { lag: number; steps: number; block?: number; seed: number },
): number[] {
  const rng = new Rng(seed)
  const xs: number[] = []
  const blocks: number[] = []
  let squared = 0
  let counted = 0
  for (let t = 0; t < steps; t++) {
    const x = rng.uniform() < 0.5 ? -1 : 1
    xs.push(x)
    const target = t >= lag ? xs[t - lag]! : null
    const { prediction } = trainer.observe([x], target === null ? null : [target])
    if (target !== null) {
      squared += (prediction[0]! - target) ** 2
      counted++
    }
    if ((t + 1) % block === 0) {
      blocks.push(squared / counted)
      squared = 0
      counted = 0
    }
  }
  return blocks
}
